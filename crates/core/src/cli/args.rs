//! The command line's shape: clap definitions of every command and flag (PM2's names).

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rpm2",
    bin_name = "rpm2",
    about = "rpm2: a fast, PM2-compatible process manager for Node.js",
    disable_version_flag = true
)]
pub(crate) struct Cli {
    /// Print the version.
    #[arg(short = 'v', long = "version", global = false)]
    pub(crate) version: bool,
    /// No colours.
    #[arg(long = "no-color", global = true)]
    pub(crate) no_color: bool,
    /// Print nothing but errors.
    #[arg(short = 's', long = "silent", global = true)]
    pub(crate) silent: bool,
    #[command(subcommand)]
    pub(crate) cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Start an app (a script, a command, or an ecosystem file), or restart one by name or id.
    Start(Box<StartArgs>),
    /// List every process.
    #[command(visible_aliases = ["ls", "l", "status", "ps"])]
    List,
    /// Stop processes (ids, names, namespaces or all).
    Stop(StopArgs),
    /// Restart processes.
    Restart(RestartArgs),
    /// Reload processes (zero-downtime in cluster mode; a graceful restart in fork mode).
    Reload(RestartArgs),
    /// Alias of reload, as in older PM2.
    #[command(name = "gracefulReload")]
    GracefulReload(RestartArgs),
    /// Stop processes and remove them from the list.
    #[command(visible_alias = "del")]
    Delete(Targets),
    /// Describe a process in detail.
    #[command(visible_aliases = ["describe", "desc", "info"])]
    Show(ShowArgs),
    /// The process list as JSON (PM2's shape).
    Jlist(EnvFlag),
    /// The process list as Node's util.inspect prints it.
    Prettylist(EnvFlag),
    /// Stop every app and the daemon.
    Kill,
    /// Check that the daemon answers (starting it if needed).
    Ping,
    /// Send a signal to processes: sendSignal <signal> <id|name>.
    #[command(name = "sendSignal")]
    SendSignal { signal: String, target: String },
    /// Zero the restart counters of processes.
    Reset(Targets),
    /// Empty log files (all apps when no target is given).
    Flush { targets: Vec<String> },
    /// Reopen every log file.
    #[command(name = "reloadLogs")]
    ReloadLogs,
    /// Print the last log lines, then stream new lines.
    Logs(LogsArgs),
    /// Print the pid(s) of an app (all processes when no name is given).
    Pid { target: Option<String> },
    /// Print the id(s) of an app.
    Id { name: String },
    /// Print the environment of a process.
    Env { id: String },
    /// Write a commented starter ecosystem.config.js in the current folder.
    #[command(visible_alias = "ecosystem")]
    Init {
        /// `simple` for a minimal file.
        mode: Option<String>,
        /// Overwrite an existing file.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Save the app list to RPM2_HOME/dump.rpm2 (restored by `resurrect` and at boot).
    #[command(visible_alias = "dump")]
    Save {
        /// Save even an empty list over a non-empty dump.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Start the saved apps that are not running.
    Resurrect,
    /// Remove the saved app list.
    Cleardump,
    /// Import a PM2 dump (default ~/.pm2/dump.pm2) and start its apps.
    #[command(name = "import-pm2")]
    ImportPm2 { path: Option<String> },
    /// Print (or, as root, install) a systemd unit that starts rpm2 and the saved apps at boot.
    Startup {
        /// Init system (only systemd is supported).
        platform: Option<String>,
        /// User to run as.
        #[arg(short = 'u', long)]
        user: Option<String>,
        /// Home directory of that user.
        #[arg(long = "hp")]
        home_path: Option<String>,
        /// Print the unit instead of installing it.
        #[arg(long = "print")]
        print: bool,
    },
    /// Remove the systemd unit installed by `startup`.
    Unstartup { platform: Option<String> },
    /// Replace the running daemon with this version, restarting every app gracefully.
    Update,
    /// Scale an app: N instances, or +N / -N.
    Scale {
        name: String,
        #[arg(allow_hyphen_values = true)]
        number: String,
    },
    /// Full-screen dashboard: processes with CPU and memory, the selected one's details, logs and metrics.
    #[command(visible_aliases = ["dashboard", "dash"])]
    Monit,
    /// Serve the JSON web API and Prometheus /metrics as the `rpm2-http-interface` process.
    Web(crate::web::WebArgs),
}

#[derive(Args, Debug)]
pub(crate) struct Targets {
    /// Ids, names, namespaces, or `all`.
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
}

#[derive(Args, Debug)]
pub(crate) struct StopArgs {
    /// Ids, names, namespaces, or `all`.
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
    /// Stop watching for file changes (every stop does, as PM2).
    #[arg(long)]
    pub(crate) watch: bool,
}

#[derive(Args, Debug)]
pub(crate) struct EnvFlag {
    /// Show environment values (hidden by default).
    #[arg(long = "env")]
    pub(crate) env: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    pub(crate) target: String,
    /// Show environment values.
    #[arg(long = "env")]
    pub(crate) env: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RestartArgs {
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
    /// Replace the stored environment with the current one.
    #[arg(short = 'a', long = "update-env")]
    pub(crate) update_env: bool,
    /// Ecosystem environment name (env_<name>).
    #[arg(long = "env")]
    pub(crate) env: Option<String>,
    /// Toggle watching for file changes (restart only).
    #[arg(long)]
    pub(crate) watch: bool,
}

#[derive(Args, Debug, Default)]
pub(crate) struct LogsArgs {
    /// An id, a name, a namespace, or `all` (the default).
    pub(crate) target: Option<String>,
    /// Lines to show from the end of each file before streaming.
    #[arg(long = "lines", default_value_t = 15)]
    pub(crate) lines: usize,
    /// Bare lines: no prefixes, no headers.
    #[arg(long)]
    pub(crate) raw: bool,
    /// Print the last lines and exit (no streaming).
    #[arg(long)]
    pub(crate) nostream: bool,
    /// Only stdout.
    #[arg(long)]
    pub(crate) out: bool,
    /// Only stderr.
    #[arg(long)]
    pub(crate) err: bool,
    /// One JSON object per line: message, timestamp, type, process_id, app_name.
    #[arg(long)]
    pub(crate) json: bool,
    /// `timestamp=... app=... id=... type=... message=...` lines.
    #[arg(long)]
    pub(crate) format: bool,
    /// Prefix each streamed line with its time (dayjs format, default YYYY-MM-DD-HH:mm:ss).
    #[arg(long, num_args = 0..=1, default_missing_value = "YYYY-MM-DD-HH:mm:ss")]
    pub(crate) timestamp: Option<String>,
}

impl LogsArgs {
    /// `rpm2 logs <target> --lines 0`: only the new lines of `target`, streamed (`start --attach`).
    pub(crate) fn stream_of(target: String) -> LogsArgs {
        LogsArgs { target: Some(target), lines: 0, ..LogsArgs::default() }
    }
}

/// `rpm2 start`'s help group of the flags that change how it runs.
const H_RUN: &str = "Foreground and attach";
/// `rpm2 start`'s help group of the PM2 flags rpm2 ignores.
const H_COMPAT: &str = "Accepted for PM2 compatibility";

#[derive(Args, Debug, Default)]
pub(crate) struct StartArgs {
    /// Script, command, ecosystem file, or the name/id of an existing app.
    pub(crate) script: Option<String>,
    /// Arguments for the script (after --).
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
    #[arg(short = 'n', long)]
    pub(crate) name: Option<String>,
    /// Number of instances (a number, max, or -1 for CPUs minus one).
    #[arg(short = 'i', long, allow_hyphen_values = true)]
    pub(crate) instances: Option<String>,
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    #[arg(long)]
    pub(crate) cwd: Option<String>,
    #[arg(long)]
    pub(crate) interpreter: Option<String>,
    #[arg(long = "node-args", alias = "interpreter-args", allow_hyphen_values = true)]
    pub(crate) node_args: Option<String>,
    /// Watch for file changes (optionally given paths).
    #[arg(short = 'w', long, num_args = 0..)]
    pub(crate) watch: Option<Vec<String>>,
    #[arg(long = "ignore-watch", num_args = 1..)]
    pub(crate) ignore_watch: Option<Vec<String>>,
    #[arg(long = "watch-delay")]
    pub(crate) watch_delay: Option<String>,
    #[arg(long = "max-memory-restart")]
    pub(crate) max_memory_restart: Option<String>,
    #[arg(short = 'k', long = "kill-timeout", allow_hyphen_values = true)]
    pub(crate) kill_timeout: Option<String>,
    #[arg(long = "listen-timeout", allow_hyphen_values = true)]
    pub(crate) listen_timeout: Option<String>,
    #[arg(long = "restart-delay", allow_hyphen_values = true)]
    pub(crate) restart_delay: Option<String>,
    #[arg(long = "exp-backoff-restart-delay", allow_hyphen_values = true)]
    pub(crate) exp_backoff_restart_delay: Option<String>,
    #[arg(long = "max-restarts", allow_hyphen_values = true)]
    pub(crate) max_restarts: Option<String>,
    #[arg(long = "min-uptime", allow_hyphen_values = true)]
    pub(crate) min_uptime: Option<String>,
    #[arg(long = "no-autorestart")]
    pub(crate) no_autorestart: bool,
    #[arg(long = "no-autostart")]
    pub(crate) no_autostart: bool,
    #[arg(long = "no-treekill")]
    pub(crate) no_treekill: bool,
    #[arg(long = "stop-exit-codes", num_args = 1..)]
    pub(crate) stop_exit_codes: Option<Vec<String>>,
    #[arg(long = "wait-ready")]
    pub(crate) wait_ready: bool,
    #[arg(long = "shutdown-with-message")]
    pub(crate) shutdown_with_message: bool,
    #[arg(short = 'o', long = "output")]
    pub(crate) output: Option<String>,
    #[arg(short = 'e', long = "error")]
    pub(crate) error: Option<String>,
    #[arg(short = 'l', long = "log", num_args = 0..=1, default_missing_value = "")]
    pub(crate) log: Option<String>,
    #[arg(short = 'p', long = "pid")]
    pub(crate) pid: Option<String>,
    #[arg(short = 'm', long = "merge-logs")]
    pub(crate) merge_logs: bool,
    #[arg(long = "log-date-format")]
    pub(crate) log_date_format: Option<String>,
    /// Prefix log lines with the time.
    #[arg(long)]
    pub(crate) time: bool,
    #[arg(long = "log-type")]
    pub(crate) log_type: Option<String>,
    #[arg(short = 'c', long = "cron-restart", alias = "cron")]
    pub(crate) cron_restart: Option<String>,
    /// Start even if an app of that name runs.
    #[arg(short = 'f', long)]
    pub(crate) force: bool,
    /// Force fork mode.
    #[arg(short = 'x', long = "execute-command")]
    pub(crate) execute_command: bool,
    /// Environment name (env_<name>) of an ecosystem file.
    #[arg(long)]
    pub(crate) env: Option<String>,
    /// Only these apps of an ecosystem file (comma-separated).
    #[arg(long)]
    pub(crate) only: Option<String>,
    #[arg(short = 'a', long = "update-env")]
    pub(crate) update_env: bool,
    #[arg(long = "increment-var")]
    pub(crate) increment_var: Option<String>,
    #[arg(long = "instance-var")]
    pub(crate) instance_var: Option<String>,
    #[arg(long = "lb")]
    pub(crate) cluster_lb: Option<String>,
    /// Run in the foreground: the daemon, the apps' logs on this terminal, Ctrl-C stops every app
    /// (also RPM2_NO_DAEMON=1).
    #[arg(long = "no-daemon", help_heading = H_RUN)]
    pub(crate) no_daemon: bool,
    /// After starting, stream the app's logs until Ctrl-C (the app keeps running).
    #[arg(long, help_heading = H_RUN)]
    pub(crate) attach: bool,
    #[command(flatten)]
    #[allow(dead_code)]
    pub(crate) compat: CompatFlags,
}

/// PM2 flags rpm2 has no use for: accepted so PM2 command lines keep working, and ignored (never
/// read, hence the allow).
#[allow(dead_code)]
#[derive(Args, Debug, Default)]
pub(crate) struct CompatFlags {
    /// No effect (PM2: do not inject @pm2/io).
    #[arg(long = "no-pmx", help_heading = H_COMPAT)]
    pub(crate) no_pmx: bool,
    /// No effect (PM2: no git metadata).
    #[arg(long = "no-vizion", help_heading = H_COMPAT)]
    pub(crate) no_vizion: bool,
    /// No effect (PM2: no PM2.io automation).
    #[arg(long = "no-automation", help_heading = H_COMPAT)]
    pub(crate) no_automation: bool,
    /// No effect (PM2: no transaction tracing).
    #[arg(long = "disable-trace", help_heading = H_COMPAT)]
    pub(crate) disable_trace: bool,
    /// No effect (PM2: transaction tracing for PM2.io).
    #[arg(long = "trace", help_heading = H_COMPAT)]
    pub(crate) trace: bool,
    /// No effect (PM2: no source map support).
    #[arg(long = "disable-source-map-support", help_heading = H_COMPAT)]
    pub(crate) disable_source_map_support: bool,
    /// No effect (PM2: source map support).
    #[arg(long = "source-map-support", help_heading = H_COMPAT)]
    pub(crate) source_map_support: bool,
}

