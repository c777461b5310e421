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
    /// Start the apps of an ecosystem file (or a script) that are not running, restart the others.
    #[command(name = "startOrRestart")]
    StartOrRestart(Box<StartArgs>),
    /// Start the apps of an ecosystem file (or a script) that are not running, reload the others.
    #[command(name = "startOrReload")]
    StartOrReload(Box<StartArgs>),
    /// Alias of startOrReload, as in PM2.
    #[command(name = "startOrGracefulReload")]
    StartOrGracefulReload(Box<StartArgs>),
    /// List every process.
    #[command(visible_aliases = ["ls", "l", "status", "ps"])]
    List,
    /// Stop processes (ids, names, namespaces, all, /regex/, script or ecosystem files).
    Stop(StopArgs),
    /// Restart processes (targets as stop; start options given here are applied).
    Restart(Box<RestartArgs>),
    /// Reload processes (zero-downtime in cluster mode; a graceful restart in fork mode).
    Reload(Box<RestartArgs>),
    /// Alias of reload, as in older PM2.
    #[command(name = "gracefulReload")]
    GracefulReload(Box<RestartArgs>),
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
    /// Send a signal to processes: sendSignal <signal> <id|name|namespace|all|/regex/|script>.
    #[command(name = "sendSignal")]
    SendSignal {
        /// The signal: a name (SIGUSR2, usr2) or a number.
        signal: String,
        /// The processes: an id, a name, a namespace, `all`, `/regex/` or a script file.
        target: String,
        /// Extra words are ignored, as PM2 does.
        #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Write a line to the stdin of a process (fork mode): send <pm_id> <line>.
    Send {
        /// The process id.
        pm_id: String,
        /// The text; a newline is added.
        line: String,
    },
    /// Attach to a process: print its output and send each line typed to its stdin.
    Attach {
        /// The process id.
        pm_id: String,
        /// Line separator sent after each line (default a newline).
        separator: Option<String>,
    },
    /// Run an action an app declared with tx2/@pm2/io: trigger <app|id> <action> [param].
    Trigger {
        /// An id, a name, a namespace, a script file name, or `all`.
        target: String,
        /// The declared action (see `rpm2 show <app>`).
        action: String,
        /// A parameter passed to the action.
        param: Option<String>,
    },
    /// Mark processes as monitored (PM2's `_km_monitored` flag; rpm2 has no cloud dashboard).
    Monitor {
        /// An id, a name, or `all`.
        target: Option<String>,
    },
    /// Clear the monitored mark of processes.
    Unmonitor {
        /// An id, a name, or `all`.
        target: Option<String>,
    },
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
    /// Replace the running daemon with this version, restarting every app (restart counts start at 0).
    #[command(visible_alias = "updatePM2")]
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
    /// Serve a folder's static files over HTTP as a managed process (static-page-server-<port>).
    #[command(visible_alias = "expose")]
    Serve(crate::web::ServeArgs),
    /// Set a module configuration value: set <module>:<key> <value> (RPM2_HOME/module_conf.json).
    Set { key: Option<String>, value: Option<String> },
    /// Set several values: multiset "<module>:<k1> <v1> <module>:<k2> <v2>".
    Multiset { serial: String },
    /// Print a configuration value (all values without a key).
    Get { key: Option<String> },
    /// Print every module configuration value.
    Conf { key: Option<String>, value: Option<String> },
    /// Get (or, with a value, set) one configuration value.
    Config { key: String, value: Option<String> },
    /// Remove a configuration value.
    Unset { key: String },
    /// PM2 Plus cloud link: rpm2 has none (prints how to monitor instead and exits with 1).
    #[command(visible_alias = "plus")]
    Link {
        /// Ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// PM2 Plus cloud unlink: rpm2 has no link (exits with 1).
    Unlink,
    /// Print what a bug report needs: versions, daemon, apps and their last log lines.
    Report,
    /// Print a shell completion script: completion [bash|zsh|fish] (default bash).
    Completion { shell: Option<String> },
    /// Restart an app with Node's inspector on (--inspect added to its node args).
    Inspect { target: String },
}

#[derive(Args, Debug)]
pub(crate) struct Targets {
    /// Ids, names, namespaces, `all`, `/regex/`, script files or ecosystem files.
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
    /// With an ecosystem file: the `--env` its apps were started with (`append_env_to_name` names).
    #[arg(long)]
    pub(crate) env: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct StopArgs {
    /// Ids, names, namespaces, `all`, `/regex/`, script files or ecosystem files.
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
    /// Stop watching for file changes (every stop does, as PM2).
    #[arg(long)]
    pub(crate) watch: bool,
    /// With an ecosystem file: the `--env` its apps were started with (`append_env_to_name` names).
    #[arg(long)]
    pub(crate) env: Option<String>,
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
    /// Ids, names, namespaces, `all`, `/regex/`, script files or ecosystem files.
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
    /// New arguments for the script (after --).
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
    /// Start options to apply to the apps (`--node-args`, `--max-memory-restart`, ...); `--watch`
    /// toggles watching, `--env` picks an ecosystem environment, `-a` refreshes the environment.
    #[command(flatten)]
    pub(crate) opts: StartFlags,
}

#[derive(Args, Debug)]
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

#[derive(Args, Debug, Default)]
pub(crate) struct StartArgs {
    /// Scripts, commands, ecosystem files, names/ids of existing apps, or `-` (a JSON declaration on
    /// stdin); several are started one after the other, each with the options given.
    pub(crate) scripts: Vec<String>,
    /// Arguments for the script (after --).
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
    #[command(flatten)]
    pub(crate) opts: StartFlags,
}

/// The options of `start`, also accepted (and applied to the apps) by `restart` and `reload`.
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct StartFlags {
    /// The app's name.
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
    /// Arguments for the interpreter, space separated (`--node-args="--harmony"`).
    #[arg(long = "node-args", alias = "interpreter-args", allow_hyphen_values = true)]
    pub(crate) node_args: Option<String>,
    /// Arguments for the script as one string (`--args "-p 80 -v"`); `-- a b` gives them as words.
    #[arg(long = "args", allow_hyphen_values = true)]
    pub(crate) args_line: Option<String>,
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
    /// Refresh the apps' environment from this shell (and the file's env) on restart/reload.
    #[arg(short = 'a', long = "update-env")]
    pub(crate) update_env: bool,
    #[arg(long = "increment-var")]
    pub(crate) increment_var: Option<String>,
    #[arg(long = "instance-var")]
    pub(crate) instance_var: Option<String>,
    #[arg(long = "lb")]
    pub(crate) cluster_lb: Option<String>,
}
