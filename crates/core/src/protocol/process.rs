//! The PM2 `jlist` object of one process, as `list`, `describe`, `start` and `scale` return it (and
//! `rpm2 jlist` prints it). Its JSON is PM2's: keys, their order and their types are a contract with
//! every tool that reads PM2's output, so a field is never renamed or moved.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One process as PM2's `jlist` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pm2Process {
    /// The OS pid of the main process; 0 when not running.
    pub pid: u32,
    /// The app name.
    pub name: String,
    /// The process id in rpm2 (unique per daemon, reused after the last app is deleted).
    pub pm_id: u32,
    /// Resource use from the latest sample.
    pub monit: Monit,
    /// The declaration and the state.
    pub pm2_env: Pm2Env,
}

/// CPU and memory of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Monit {
    /// RSS of the process and its descendants, in bytes.
    pub memory: u64,
    /// CPU since the previous sample, in % of one core.
    pub cpu: f64,
}

/// PM2's `pm2_env`: the declaration and the state of one process. The `Option` fields are absent
/// from the JSON when `None`; [`Pm2Env::extra`] holds the app's extra options (PM2 options rpm2 keeps
/// but does not act on), written after every other key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pm2Env {
    /// The app name.
    pub name: String,
    /// The namespace (`default` unless set).
    pub namespace: String,
    /// Same as [`Pm2Process::pm_id`].
    pub pm_id: u32,
    /// `launching`, `online`, `stopping`, `stopped`, `errored`, `waiting restart`.
    pub status: String,
    /// Restarts since start (or the last `reset`).
    pub restart_time: u32,
    /// Restarts that happened before `min_uptime`.
    pub unstable_restarts: u32,
    /// When the process was created (epoch ms).
    pub created_at: u64,
    /// When the current process was spawned (epoch ms).
    pub pm_uptime: u64,
    /// `fork_mode` or `cluster_mode`.
    pub exec_mode: String,
    /// The declared number of instances.
    pub instances: u32,
    /// The interpreter, or `none`.
    pub exec_interpreter: String,
    /// The script, absolute.
    pub pm_exec_path: PathBuf,
    /// The working directory.
    pub pm_cwd: PathBuf,
    /// The script's arguments.
    pub args: Vec<String>,
    /// The interpreter's arguments.
    pub node_args: Vec<String>,
    /// The stdout log file, or `/dev/null`.
    pub pm_out_log_path: String,
    /// The stderr log file, or `/dev/null`.
    pub pm_err_log_path: String,
    /// The pid file.
    pub pm_pid_path: PathBuf,
    /// Whether the instances share their log files.
    pub merge_logs: bool,
    /// Whether a crash restarts the process.
    pub autorestart: bool,
    /// Whether `start` starts the process.
    pub autostart: bool,
    /// Whether file changes restart the process.
    pub watch: bool,
    /// Unstable restarts allowed before the process is marked errored.
    pub max_restarts: u32,
    /// Uptime (ms) under which a restart counts as unstable.
    pub min_uptime: u64,
    /// Ms between SIGINT and SIGKILL.
    pub kill_timeout: u64,
    /// Ms a cluster worker (or `wait_ready` process) has to become ready.
    pub listen_timeout: u64,
    /// Wait for `process.send('ready')`.
    pub wait_ready: bool,
    /// Ask to stop with a `shutdown` message instead of a signal.
    pub shutdown_with_message: bool,
    /// Ms to wait before a restart.
    pub restart_delay: u64,
    /// Signal the whole process tree.
    pub treekill: bool,
    /// The env variable holding the instance number.
    pub instance_var: String,
    /// The instance number (0..instances).
    #[serde(rename = "NODE_APP_INSTANCE")]
    pub node_app_instance: u32,
    /// Shared by the instances started together.
    pub unique_id: String,
    /// The user the daemon runs as.
    pub username: String,
    /// `version` of the nearest `package.json` above the script, or `N/A`.
    pub version: String,
    /// The process env (values `[hidden]` unless asked for).
    pub env: Map<String, Value>,
    /// PM2's `filter_env` (the app's, else `[]`; rpm2 keeps it without acting on it).
    pub filter_env: Value,
    /// PM2's git metadata switch: always `true` (the app's value when it sets one).
    pub vizion: bool,
    /// PM2's @pm2/io injection switch: always `true` (rpm2 injects nothing).
    pub pmx: bool,
    /// PM2.io automation switch: always `true` (no effect in rpm2).
    pub automation: bool,
    /// PM2's Windows console flag: always `true`.
    #[serde(rename = "windowsHide")]
    pub windows_hide: bool,
    /// PM2's interval (ms) between kill retries: `100`.
    pub kill_retry_time: u64,
    /// Whether PM2.io is linked: always `false`.
    pub km_link: bool,
    /// Whether a git metadata refresh runs: always `false`.
    pub vizion_running: bool,
    /// Code metrics (`axm:monitor`): the built-in ones of rpm2's metrics preload and the app's own
    /// (`@pm2/io`, tx2), merged by name; `{}` until the app reports some.
    pub axm_monitor: Value,
    /// @pm2/io options the app reported: `{}` (rpm2 injects no agent).
    pub axm_options: Value,
    /// @pm2/io dynamic data: `{}`.
    pub axm_dynamic: Value,
    /// The combined log file, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pm_log_path: Option<PathBuf>,
    /// The exponential backoff base (ms), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp_backoff_restart_delay: Option<u64>,
    /// The last backoff delay (ms); present with `exp_backoff_restart_delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_restart_delay: Option<u64>,
    /// Exit codes that do not trigger a restart; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_exit_codes: Option<Vec<i32>>,
    /// Memory limit in bytes, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_restart: Option<u64>,
    /// Cron expression of periodic restarts, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_restart: Option<String>,
    /// Timestamp format of log lines, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_date_format: Option<String>,
    /// The env variable incremented per instance, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment_var: Option<String>,
    /// The last exit code, once the process exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the process last restarted, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_reason: Option<String>,
    /// Why watching is paused (a restart loop), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_paused: Option<String>,
    /// The version of the Node.js that runs the app (`20.11.1`), for Node apps; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_version: Option<String>,
    /// The readiness probe's verdict (`ready` or `not ready`), for apps that declare a
    /// `readiness_probe`; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<String>,
    /// The app's extra options, written last; a key that names a field above is never written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The keys [`Pm2Env`] always writes (before the optional ones), in order.
pub const PM2_ENV_KEYS: &[&str] = &[
    "name",
    "namespace",
    "pm_id",
    "status",
    "restart_time",
    "unstable_restarts",
    "created_at",
    "pm_uptime",
    "exec_mode",
    "instances",
    "exec_interpreter",
    "pm_exec_path",
    "pm_cwd",
    "args",
    "node_args",
    "pm_out_log_path",
    "pm_err_log_path",
    "pm_pid_path",
    "merge_logs",
    "autorestart",
    "autostart",
    "watch",
    "max_restarts",
    "min_uptime",
    "kill_timeout",
    "listen_timeout",
    "wait_ready",
    "shutdown_with_message",
    "restart_delay",
    "treekill",
    "instance_var",
    "NODE_APP_INSTANCE",
    "unique_id",
    "username",
    "version",
    "env",
    "filter_env",
    "vizion",
    "pmx",
    "automation",
    "windowsHide",
    "kill_retry_time",
    "km_link",
    "vizion_running",
    "axm_monitor",
    "axm_options",
    "axm_dynamic",
];

impl Pm2Env {
    /// Whether the JSON of this `pm2_env` (without `extra`) has `key`: one of [`PM2_ENV_KEYS`] or
    /// an optional field that is set.
    pub fn has_key(&self, key: &str) -> bool {
        if PM2_ENV_KEYS.contains(&key) {
            return true;
        }
        match key {
            "pm_log_path" => self.pm_log_path.is_some(),
            "exp_backoff_restart_delay" => self.exp_backoff_restart_delay.is_some(),
            "prev_restart_delay" => self.prev_restart_delay.is_some(),
            "stop_exit_codes" => self.stop_exit_codes.is_some(),
            "max_memory_restart" => self.max_memory_restart.is_some(),
            "cron_restart" => self.cron_restart.is_some(),
            "log_date_format" => self.log_date_format.is_some(),
            "increment_var" => self.increment_var.is_some(),
            "exit_code" => self.exit_code.is_some(),
            "restart_reason" => self.restart_reason.is_some(),
            "watch_paused" => self.watch_paused.is_some(),
            "node_version" => self.node_version.is_some(),
            _ => false,
        }
    }

    /// Adds the app's extra options, skipping any whose key is already written (a field wins over
    /// an extra option of the same name).
    pub fn add_extra<'a>(&mut self, extra: impl IntoIterator<Item = (&'a String, &'a Value)>) {
        for (k, v) in extra {
            if !self.has_key(k) && !self.extra.contains_key(k) {
                self.extra.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Pm2Process {
        let mut env = Map::new();
        env.insert("NODE_ENV".into(), json!("[hidden]"));
        Pm2Process {
            pid: 4242,
            name: "api".into(),
            pm_id: 3,
            monit: Monit { memory: 1024, cpu: 0.0 },
            pm2_env: Pm2Env {
                name: "api".into(),
                namespace: "default".into(),
                pm_id: 3,
                status: "online".into(),
                restart_time: 1,
                unstable_restarts: 0,
                created_at: 1000,
                pm_uptime: 2000,
                exec_mode: "fork_mode".into(),
                instances: 1,
                exec_interpreter: "node".into(),
                pm_exec_path: "/srv/api/index.js".into(),
                pm_cwd: "/srv/api".into(),
                args: vec!["--port".into(), "80".into()],
                node_args: vec![],
                pm_out_log_path: "/h/logs/api-out.log".into(),
                pm_err_log_path: "/dev/null".into(),
                pm_pid_path: "/h/pids/api-3.pid".into(),
                merge_logs: false,
                autorestart: true,
                autostart: true,
                watch: false,
                max_restarts: 16,
                min_uptime: 1000,
                kill_timeout: 1600,
                listen_timeout: 3000,
                wait_ready: false,
                shutdown_with_message: false,
                restart_delay: 0,
                treekill: true,
                instance_var: "NODE_APP_INSTANCE".into(),
                node_app_instance: 0,
                unique_id: "u".into(),
                username: "me".into(),
                version: "1.2.3".into(),
                env,
                filter_env: json!([]),
                vizion: true,
                pmx: true,
                automation: true,
                windows_hide: true,
                kill_retry_time: 100,
                km_link: false,
                vizion_running: false,
                axm_monitor: json!({}),
                axm_options: json!({}),
                axm_dynamic: json!({}),
                pm_log_path: None,
                exp_backoff_restart_delay: Some(100),
                prev_restart_delay: Some(0),
                stop_exit_codes: None,
                max_memory_restart: None,
                cron_restart: None,
                log_date_format: None,
                increment_var: None,
                exit_code: Some(1),
                restart_reason: None,
                watch_paused: None,
                node_version: Some("22.1.0".into()),
                readiness: None,
                extra: Map::new(),
            },
        }
    }

    #[test]
    fn serializes_to_pm2_jlist_shape() {
        let mut p = sample();
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("exit_code".to_string(), json!(99)); // a field: ignored
        extra.insert("vizion".to_string(), json!(false)); // a field: ignored
        extra.insert("vizion_x".to_string(), json!(false));
        extra.insert("cron_restart".to_string(), json!("* * * * *")); // absent field: kept as extra
        p.pm2_env.add_extra(&extra);
        let v = serde_json::to_value(&p).unwrap();
        let top: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(top, ["pid", "name", "pm_id", "monit", "pm2_env"]);
        assert_eq!(v["monit"], json!({"memory": 1024, "cpu": 0.0}));
        assert!(v["monit"]["cpu"].is_f64());
        let env = v["pm2_env"].as_object().unwrap();
        let keys: Vec<&str> = env.keys().map(|k| k.as_str()).collect();
        let mut want: Vec<&str> = PM2_ENV_KEYS.to_vec();
        want.extend([
            "exp_backoff_restart_delay",
            "prev_restart_delay",
            "exit_code",
            "node_version",
            "cron_restart",
            "vizion_x",
        ]);
        assert_eq!(keys, want);
        assert_eq!(env["NODE_APP_INSTANCE"], json!(0));
        assert_eq!(env["pm_exec_path"], json!("/srv/api/index.js"));
        assert_eq!(env["exit_code"], json!(1));
        assert_eq!(env["env"], json!({"NODE_ENV": "[hidden]"}));
        assert!(env.get("pm_log_path").is_none());
        assert_eq!(env["windowsHide"], json!(true));
        // Typed reading gives back the same process.
        let back: Pm2Process = serde_json::from_value(v).unwrap();
        assert_eq!(back.pm2_env.cron_restart, Some("* * * * *".into()));
        assert_eq!(back.pm2_env.extra.get("vizion_x"), Some(&json!(false)));
        assert!(back.pm2_env.vizion);
        assert!(back.pm2_env.windows_hide);
        assert_eq!(back.pm2_env.axm_monitor, json!({}));
        assert_eq!(back.pm2_env.exit_code, Some(1));
    }
}
