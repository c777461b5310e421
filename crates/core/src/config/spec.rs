//! The resolved app model: what the daemon needs to run one app, with every path absolute and every
//! default filled in. Built by [`crate::config`] from CLI flags, JS objects or ecosystem files.

pub use super::probes::{Probe, ProbeCheck, Probes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How an app's instances are run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ExecMode {
    /// One child per instance, each on its own (PM2's `fork_mode`).
    #[serde(rename = "fork_mode")]
    Fork,
    /// Node cluster workers with rpm2d as the primary (PM2's `cluster_mode`).
    #[serde(rename = "cluster_mode")]
    Cluster,
}

impl ExecMode {
    /// PM2's name (`fork_mode` / `cluster_mode`).
    pub fn pm2_name(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork_mode",
            ExecMode::Cluster => "cluster_mode",
        }
    }
    /// The short name of the `mode` column (`fork` / `cluster`).
    pub fn short(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork",
            ExecMode::Cluster => "cluster",
        }
    }
}

/// Where a log stream goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogTarget {
    /// The default file under `RPM2_HOME/logs`.
    Default,
    /// Discarded (`NULL` or `/dev/null`).
    Null,
    /// An explicit file (absolute).
    File(PathBuf),
}

/// How a cluster app's connections are spread over its workers (`cluster_lb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// rpm2d accepts and hands each connection to the next free worker (Node's default on Linux).
    #[default]
    RoundRobin,
    /// Every worker accepts on the shared socket; the kernel distributes.
    Shared,
}

impl Balance {
    /// Parses `cluster_lb` (`rr`/`round-robin`/`roundrobin` or `shared`); None when unknown.
    pub fn parse(s: &str) -> Option<Balance> {
        match s.to_ascii_lowercase().as_str() {
            "rr" | "round-robin" | "roundrobin" | "round_robin" => Some(Balance::RoundRobin),
            "shared" | "none" | "kernel" => Some(Balance::Shared),
            _ => None,
        }
    }
}

/// The watch options of an app (`watch`, `ignore_watch`, `watch_delay`, `watch_options`), parsed and
/// validated once by [`crate::config::resolve_app`]. Kept even while watching is off, since
/// `restart --watch` may turn it on later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchOptions {
    /// Watched files and directories, absolute, without duplicates (the cwd when `watch` names no
    /// path). They existed when the app was declared; [`WatchOptions::existing_roots`] skips those
    /// removed since.
    pub roots: Vec<PathBuf>,
    /// `ignore_watch` entries, as given (they compile into valid ignore rules).
    pub ignore: Vec<String>,
    /// `watch_delay`, in ms.
    pub delay_ms: u64,
    /// The polling interval in ms, when `watch_options.usePolling` asks for polling.
    pub poll_ms: Option<u64>,
}

impl WatchOptions {
    /// The watched paths that exist now.
    pub fn existing_roots(&self) -> Vec<PathBuf> {
        self.roots.iter().filter(|p| p.exists()).cloned().collect()
    }
    /// `watch_delay`.
    pub fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.delay_ms)
    }
    /// The polling interval, when polling was asked for.
    pub fn poll(&self) -> Option<std::time::Duration> {
        self.poll_ms.map(std::time::Duration::from_millis)
    }
}

/// An app's own rotation options (`max_size`, `retain`, `compress`): `None` leaves the default
/// (`RPM2_LOG_*` variables, then 10 MiB / 30 files / no gzip) in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationOptions {
    /// Rotate at this many bytes; 0 = never.
    pub max_size: Option<u64>,
    /// Rotated files kept (`usize::MAX` for `"all"`).
    pub retain: Option<usize>,
    /// Gzip rotated files.
    pub compress: Option<bool>,
}

/// The log options of an app (`log_type`, `disable_logs`, rotation), parsed and validated once by
/// [`crate::config::resolve_app`]. (`log_date_format` is [`AppSpec::log_date_format`].)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSettings {
    /// `log_type: json`: one JSON object per line.
    pub json: bool,
    /// `disable_logs`: output is read and dropped.
    pub disabled: bool,
    /// The app's rotation options.
    pub rotation: RotationOptions,
}

/// One app, fully resolved. Guarantees: `script`, `cwd` and explicit log paths are absolute; `name` is
/// not empty; numbers are validated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppSpec {
    /// App name (not unique: all instances share it).
    pub name: String,
    /// Namespace (`default` unless given).
    pub namespace: String,
    /// Absolute path of the script (or of the executable for interpreter `none`).
    pub script: PathBuf,
    /// Arguments given to the script.
    pub args: Vec<String>,
    /// The interpreter command (`node`, `python3`, `bash`, a path) or `None` to exec the script itself.
    pub interpreter: Option<String>,
    /// Arguments for the interpreter, before the script (`node_args` / `interpreter_args`).
    pub node_args: Vec<String>,
    /// Working directory of the app (absolute).
    pub cwd: PathBuf,
    /// The environment captured at start: client env, then the app's `env` (and `env_<name>`).
    pub env: BTreeMap<String, String>,
    /// Fork or cluster.
    pub exec_mode: ExecMode,
    /// Number of instances requested (already resolved from `max` / negative values).
    pub instances: u32,
    /// stdout destination.
    pub out_file: LogTarget,
    /// stderr destination.
    pub error_file: LogTarget,
    /// Combined log (stdout + stderr), if any.
    pub log_file: Option<LogTarget>,
    /// Explicit pid file (the `-<pm_id>` suffix is inserted), or the default under `RPM2_HOME/pids`.
    pub pid_file: Option<PathBuf>,
    /// No `-<pm_id>` suffix on log files.
    pub merge_logs: bool,
    /// Restart the app when it exits on its own.
    pub autorestart: bool,
    /// Unstable restarts allowed before the app is put in `errored`.
    pub max_restarts: u32,
    /// An exit earlier than this (ms) after start counts as unstable.
    pub min_uptime: u64,
    /// Fixed delay (ms) before an automatic restart.
    pub restart_delay: u64,
    /// Exponential back-off base (ms), if enabled.
    pub exp_backoff_restart_delay: Option<u64>,
    /// Exit codes that do not trigger a restart.
    pub stop_exit_codes: Vec<i32>,
    /// Grace period (ms) between the stop signal/message and SIGKILL.
    pub kill_timeout: u64,
    /// How long (ms) to wait for `ready` / listening.
    pub listen_timeout: u64,
    /// Wait for `process.send('ready')` before `online`.
    pub wait_ready: bool,
    /// Stop by sending the IPC message `'shutdown'` instead of SIGINT.
    pub shutdown_with_message: bool,
    /// Start the app when it is declared (false: registered as stopped).
    pub autostart: bool,
    /// Signal the whole process group on stop (PM2's `treekill`).
    pub treekill: bool,
    /// Watch for file changes (parsed now; enforced by the watch module).
    pub watch: bool,
    /// Restart above this RSS (bytes), if set.
    pub max_memory_restart: Option<u64>,
    /// Restart on this cron pattern, if set.
    pub cron_restart: Option<String>,
    /// Date prefix format for log lines, if set.
    pub log_date_format: Option<String>,
    /// Name of the per-instance index variable (`NODE_APP_INSTANCE`).
    pub instance_var: String,
    /// Env var incremented per instance, if set.
    pub increment_var: Option<String>,
    /// Every option the declaration carried that rpm2 knows, as given (shown by `show`/`jlist`).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The watch options, parsed. `None` only in a spec saved by an rpm2 that did not write them: read
    /// them with [`AppSpec::watch_options`], which then parses `extra`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching: Option<WatchOptions>,
    /// The log options, parsed; `None` as for `watching` (read them with [`AppSpec::log_settings`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LogSettings>,
    /// `cluster_lb`, parsed (an unknown value is round-robin); `None` as for `watching` (read it
    /// with [`AppSpec::balance`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
    /// `liveness_probe` and `readiness_probe`, parsed (empty when none is declared).
    #[serde(default, skip_serializing_if = "Probes::is_empty")]
    pub probes: Probes,
}

impl AppSpec {
    /// Whether the interpreter is Node (the app gets an IPC channel and may be a cluster worker).
    pub fn is_node(&self) -> bool {
        match &self.interpreter {
            Some(i) => {
                let base = std::path::Path::new(i).file_name().and_then(|s| s.to_str()).unwrap_or(i);
                base == "node" || base == "nodejs" || base.starts_with("node-") || base == "bun"
            }
            None => false,
        }
    }

    /// `pmx` (PM2's switch for its in-app agent): false only when the declaration turned it off
    /// (`pmx: false`, `--no-pmx`); then rpm2 loads no metrics preload into the app.
    pub fn pmx(&self) -> bool {
        !matches!(self.extra.get("pmx"), Some(serde_json::Value::Bool(false)))
    }
}
