//! The command line's shape: clap definitions of every command and flag (PM2's names).

use clap::{Args, Parser, Subcommand};

/// The examples at the end of `rpm2 --help`.
const MAIN_EXAMPLES: &str = "\
Examples:
  rpm2 start app.js                    start and daemonize an app
  rpm2 start api.js -i 4               run 4 instances of api.js in cluster mode
  rpm2 start ecosystem.config.js       start every app of an ecosystem file
  rpm2 start app.js --no-daemon        run in the foreground (containers), logs on this terminal
  rpm2 list                            list every process
  rpm2 logs api --lines 50             show the last 50 lines of api's logs, then stream
  rpm2 reload all                      zero-downtime reload of every app
  rpm2 save && rpm2 startup            restore the current apps at boot";

/// The examples at the end of `rpm2 start --help`.
const START_EXAMPLES: &str = "\
Examples:
  rpm2 start app.js --name api                  start app.js as `api`
  rpm2 start app.js -i max                      one instance per CPU, in cluster mode
  rpm2 start app.js --watch --ignore-watch node_modules
  rpm2 start app.js --max-memory-restart 300M   restart when it uses more than 300 MB
  rpm2 start app.js -- --port 8080              pass arguments to the script
  rpm2 start ecosystem.config.js --env production --only api
  rpm2 start \"python3 -m http.server\" --name web  run any command
  rpm2 start app.js --no-daemon                 foreground: logs here, Ctrl-C stops every app
  rpm2 start app.js --attach                    start, then stream its logs (Ctrl-C leaves it running)";

#[derive(Parser, Debug)]
#[command(
    name = "rpm2",
    bin_name = "rpm2",
    about = "rpm2: a fast, PM2-compatible process manager for Node.js",
    disable_version_flag = true,
    after_help = MAIN_EXAMPLES
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

/// The commands. Each one's arguments are defined only when that command is parsed (or its help
/// shown): `defer` keeps a `rpm2 list` from building the ~300 options of the start-like commands.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
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
    Flush {
        /// Ids or names (all apps when none is given).
        targets: Vec<String>,
    },
    /// Reopen every log file.
    #[command(name = "reloadLogs")]
    ReloadLogs,
    /// Print the last log lines, then stream new lines.
    Logs(LogsArgs),
    /// Print the pid(s) of an app (all processes when no name is given).
    Pid {
        /// An app name or id (every process when none is given).
        target: Option<String>,
    },
    /// Print the id(s) of an app.
    Id {
        /// The app name.
        name: String,
    },
    /// Print the environment of a process.
    Env {
        /// The process id.
        id: String,
    },
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
    ImportPm2 {
        /// The PM2 dump file (default ~/.pm2/dump.pm2).
        path: Option<String>,
    },
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
    Unstartup {
        /// Init system (only systemd is supported).
        platform: Option<String>,
    },
    /// Deploy over ssh and git: deploy [file] <env> [setup|update|revert [n]|curr|prev|list|exec <cmd>|ref <ref>].
    Deploy {
        /// `[file] <env> [command...]` (`rpm2 deploy help` lists the commands).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Replace the running daemon with this version, restarting every app (restart counts start at 0).
    #[command(visible_alias = "updatePM2")]
    Update,
    /// Scale an app: N instances, or +N / -N.
    Scale {
        /// The app name.
        name: String,
        /// The number of instances, or +N / -N to add or remove some.
        #[arg(allow_hyphen_values = true)]
        number: String,
    },
    /// Full-screen dashboard: processes with CPU and memory, the selected one's details, logs and metrics.
    #[command(visible_aliases = ["dashboard", "dash"])]
    Monit,
    /// Serve the live web dashboard, the JSON web API and Prometheus /metrics as `rpm2-http-interface`.
    Web(crate::web::WebArgs),
    /// Serve a folder's static files over HTTP as a managed process (static-page-server-<port>).
    #[command(visible_alias = "expose")]
    Serve(crate::web::ServeArgs),
    /// Set a module configuration value: set <module>:<key> <value> (RPM2_HOME/module_conf.json).
    Set {
        /// `<module>:<key>` (module configuration, as PM2's `module_conf.json`).
        key: Option<String>,
        /// The value to store.
        value: Option<String>,
    },
    /// Set several values: multiset "<module>:<k1> <v1> <module>:<k2> <v2>".
    Multiset {
        /// Pairs in one string: "<module>:<k1> <v1> <module>:<k2> <v2>".
        serial: String,
    },
    /// Print a configuration value (all values without a key).
    Get {
        /// `<module>:<key>`; every value without it.
        key: Option<String>,
    },
    /// Print every module configuration value.
    Conf {
        /// `<module>:<key>`; every value without it.
        key: Option<String>,
        /// With a key: the value to store.
        value: Option<String>,
    },
    /// Get (or, with a value, set) one configuration value.
    Config {
        /// `<module>:<key>`.
        key: String,
        /// The value to store; prints the current one without it.
        value: Option<String>,
    },
    /// Remove a configuration value.
    Unset {
        /// `<module>:<key>` to remove.
        key: String,
    },
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
    Completion {
        /// bash, zsh or fish (default: from $SHELL).
        shell: Option<String>,
    },
    /// Restart an app with Node's inspector on (--inspect added to its node args).
    Inspect {
        /// An id, a name or a namespace.
        target: String,
    },
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
    /// An id or a name.
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

/// `rpm2 start`'s help groups.
const H_GENERAL: &str = "General";
const H_CLUSTER: &str = "Instances and cluster";
const H_RESTART: &str = "Restart and stop policy";
const H_LOGS: &str = "Logs";
const H_WATCH: &str = "Watch";
const H_ECO: &str = "Ecosystem files";
const H_RUN: &str = "Foreground and attach";
const H_COMPAT: &str = "Accepted for PM2 compatibility";

#[derive(Args, Debug, Default)]
#[command(after_help = START_EXAMPLES)]
pub(crate) struct StartArgs {
    /// Scripts, commands, ecosystem files, names/ids of existing apps, or `-` (a JSON declaration on
    /// stdin); several are started one after the other, each with the options given.
    pub(crate) scripts: Vec<String>,
    /// Arguments for the script (after --).
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
    #[command(flatten)]
    pub(crate) opts: StartFlags,
    /// Run in the foreground: the daemon, the apps' logs on this terminal, Ctrl-C stops every app
    /// (also RPM2_NO_DAEMON=1).
    #[arg(long = "no-daemon", help_heading = H_RUN)]
    pub(crate) no_daemon: bool,
    /// After starting, stream the app's logs until Ctrl-C (the app keeps running).
    #[arg(long, help_heading = H_RUN)]
    pub(crate) attach: bool,
    /// Do not load rpm2's metrics preload into Node apps (pmx: false): no built-in code metrics.
    #[arg(long = "no-pmx", help_heading = H_GENERAL)]
    pub(crate) no_pmx: bool,
    #[command(flatten)]
    #[allow(dead_code)]
    pub(crate) compat: CompatFlags,
}

/// The options of `start`, also accepted (and applied to the apps) by `restart` and `reload`.
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct StartFlags {
    /// The app's name (default: the script's file name without extension).
    #[arg(short = 'n', long, help_heading = H_GENERAL)]
    pub(crate) name: Option<String>,
    /// Number of instances (a number, max, or -1 for CPUs minus one).
    #[arg(short = 'i', long, allow_hyphen_values = true, help_heading = H_CLUSTER)]
    pub(crate) instances: Option<String>,
    /// Namespace of the app, for acting on a group of apps at once.
    #[arg(long, help_heading = H_GENERAL)]
    pub(crate) namespace: Option<String>,
    /// Working directory of the app (default: the current one).
    #[arg(long, help_heading = H_GENERAL)]
    pub(crate) cwd: Option<String>,
    /// The interpreter that runs the script (node, python3, bash, none...).
    #[arg(long, help_heading = H_GENERAL)]
    pub(crate) interpreter: Option<String>,
    /// Arguments for the interpreter, space separated (`--node-args="--max-old-space-size=512"`).
    #[arg(long = "node-args", alias = "interpreter-args", allow_hyphen_values = true, help_heading = H_GENERAL)]
    pub(crate) node_args: Option<String>,
    /// Arguments for the script as one string (`--args "-p 80 -v"`); `-- a b` gives them as words.
    #[arg(long = "args", allow_hyphen_values = true, help_heading = H_GENERAL)]
    pub(crate) args_line: Option<String>,
    /// Watch for file changes (optionally given paths).
    #[arg(short = 'w', long, num_args = 0.., help_heading = H_WATCH)]
    pub(crate) watch: Option<Vec<String>>,
    /// Paths or globs that watching ignores.
    #[arg(long = "ignore-watch", num_args = 1.., help_heading = H_WATCH)]
    pub(crate) ignore_watch: Option<Vec<String>>,
    /// Delay between a file change and the restart (seconds, or a number with ms).
    #[arg(long = "watch-delay", help_heading = H_WATCH)]
    pub(crate) watch_delay: Option<String>,
    /// Restart the app when its memory goes over this (e.g. 300M, 1G).
    #[arg(long = "max-memory-restart", help_heading = H_RESTART)]
    pub(crate) max_memory_restart: Option<String>,
    /// Ms between the stop signal (SIGINT) and SIGKILL.
    #[arg(short = 'k', long = "kill-timeout", allow_hyphen_values = true, help_heading = H_RESTART)]
    pub(crate) kill_timeout: Option<String>,
    /// Ms a cluster instance (or a --wait-ready app) has to listen or be ready.
    #[arg(long = "listen-timeout", allow_hyphen_values = true, help_heading = H_CLUSTER)]
    pub(crate) listen_timeout: Option<String>,
    /// Ms to wait before restarting a crashed app.
    #[arg(long = "restart-delay", allow_hyphen_values = true, help_heading = H_RESTART)]
    pub(crate) restart_delay: Option<String>,
    /// Exponential back-off between crash restarts, starting at this many ms.
    #[arg(long = "exp-backoff-restart-delay", allow_hyphen_values = true, help_heading = H_RESTART)]
    pub(crate) exp_backoff_restart_delay: Option<String>,
    /// Unstable restarts allowed before the app is marked errored.
    #[arg(long = "max-restarts", allow_hyphen_values = true, help_heading = H_RESTART)]
    pub(crate) max_restarts: Option<String>,
    /// Uptime under which a restart counts as unstable (ms, or 5s, 1m...).
    #[arg(long = "min-uptime", allow_hyphen_values = true, help_heading = H_RESTART)]
    pub(crate) min_uptime: Option<String>,
    /// Do not restart the app when it exits or crashes.
    #[arg(long = "no-autorestart", help_heading = H_RESTART)]
    pub(crate) no_autorestart: bool,
    /// Add the app to the list without starting it.
    #[arg(long = "no-autostart", help_heading = H_GENERAL)]
    pub(crate) no_autostart: bool,
    /// Stop only the app's own process, not its children.
    #[arg(long = "no-treekill", help_heading = H_RESTART)]
    pub(crate) no_treekill: bool,
    /// Exit codes after which the app is not restarted.
    #[arg(long = "stop-exit-codes", num_args = 1.., help_heading = H_RESTART)]
    pub(crate) stop_exit_codes: Option<Vec<String>>,
    /// Count the app online only once it sends process.send('ready').
    #[arg(long = "wait-ready", help_heading = H_CLUSTER)]
    pub(crate) wait_ready: bool,
    /// Stop the app with a `shutdown` message instead of SIGINT.
    #[arg(long = "shutdown-with-message", help_heading = H_RESTART)]
    pub(crate) shutdown_with_message: bool,
    /// The stdout log file.
    #[arg(short = 'o', long = "output", help_heading = H_LOGS)]
    pub(crate) output: Option<String>,
    /// The stderr log file.
    #[arg(short = 'e', long = "error", help_heading = H_LOGS)]
    pub(crate) error: Option<String>,
    /// Also write stdout and stderr to one combined file (optionally its path).
    #[arg(short = 'l', long = "log", num_args = 0..=1, default_missing_value = "", help_heading = H_LOGS)]
    pub(crate) log: Option<String>,
    /// The pid file.
    #[arg(short = 'p', long = "pid", help_heading = H_GENERAL)]
    pub(crate) pid: Option<String>,
    /// One log file for every instance of the app (no -<id> suffix).
    #[arg(short = 'm', long = "merge-logs", help_heading = H_LOGS)]
    pub(crate) merge_logs: bool,
    /// Prefix each log line with its time in this format (e.g. "YYYY-MM-DD HH:mm:ss").
    #[arg(long = "log-date-format", help_heading = H_LOGS)]
    pub(crate) log_date_format: Option<String>,
    /// Prefix log lines with the time.
    #[arg(long, help_heading = H_LOGS)]
    pub(crate) time: bool,
    /// `json` for one JSON object per log line.
    #[arg(long = "log-type", help_heading = H_LOGS)]
    pub(crate) log_type: Option<String>,
    /// Restart the app on this cron pattern (e.g. "0 3 * * *").
    #[arg(short = 'c', long = "cron-restart", alias = "cron", help_heading = H_RESTART)]
    pub(crate) cron_restart: Option<String>,
    /// Start even if an app of that name runs.
    #[arg(short = 'f', long, help_heading = H_GENERAL)]
    pub(crate) force: bool,
    /// Force fork mode.
    #[arg(short = 'x', long = "execute-command", help_heading = H_CLUSTER)]
    pub(crate) execute_command: bool,
    /// Environment name (env_<name>) of an ecosystem file.
    #[arg(long, help_heading = H_ECO)]
    pub(crate) env: Option<String>,
    /// Only these apps of an ecosystem file (comma-separated).
    #[arg(long, help_heading = H_ECO)]
    pub(crate) only: Option<String>,
    /// Refresh the apps' environment from this shell (and the file's env) on restart/reload.
    #[arg(short = 'a', long = "update-env", help_heading = H_GENERAL)]
    pub(crate) update_env: bool,
    /// An env variable incremented for each instance (e.g. PORT: 3000, 3001...).
    #[arg(long = "increment-var", help_heading = H_CLUSTER)]
    pub(crate) increment_var: Option<String>,
    /// The env variable that holds the instance number (default NODE_APP_INSTANCE).
    #[arg(long = "instance-var", help_heading = H_CLUSTER)]
    pub(crate) instance_var: Option<String>,
    /// How cluster connections are shared: round-robin or shared (the kernel's).
    #[arg(long = "lb", help_heading = H_CLUSTER)]
    pub(crate) cluster_lb: Option<String>,
}

/// PM2 flags rpm2 has no use for: accepted so PM2 command lines keep working, and ignored (never
/// read, hence the allow).
#[allow(dead_code)]
#[derive(Args, Debug, Default)]
pub(crate) struct CompatFlags {
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every command (positionals included) says what it is for.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            if help.trim().is_empty() {
                out.push(format!("{path} {}", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_has_help() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        undocumented(&cmd, "rpm2", &mut missing);
        assert!(missing.is_empty(), "arguments without a description: {missing:?}");
    }

    #[test]
    fn start_help_groups_and_examples() {
        let mut cmd = Cli::command();
        let start = cmd.find_subcommand_mut("start").map(|c| c.render_long_help().to_string()).unwrap_or_default();
        assert!(start.contains("Examples:"), "{start}");
        assert!(start.contains("Accepted for PM2 compatibility:"), "{start}");
        assert!(start.contains("--no-pmx"), "{start}");
        let main = Cli::command().render_long_help().to_string();
        assert!(main.contains("Examples:"), "{main}");
    }
}
