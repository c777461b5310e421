//! The `rpm2` command line: PM2's commands, flags and outputs, answered by the daemon. Node is started
//! only to evaluate JS ecosystem files and to render `prettylist`.

pub mod ops;

use crate::base::fmt::{human_bytes, human_duration, iso_utc, now_ms, Paint};
use crate::base::paths::Home;
use crate::client::env::{client_env, node_info};
use crate::client::{Client, RpcError};
use crate::config::{self, ResolveCtx};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

#[derive(Parser, Debug)]
#[command(
    name = "rpm2",
    bin_name = "rpm2",
    about = "rpm2: a fast, PM2-compatible process manager for Node.js",
    disable_version_flag = true
)]
struct Cli {
    /// Print the version.
    #[arg(short = 'v', long = "version", global = false)]
    version: bool,
    /// No colours.
    #[arg(long = "no-color", global = true)]
    no_color: bool,
    /// Print nothing but errors.
    #[arg(short = 's', long = "silent", global = true)]
    silent: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
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
struct Targets {
    /// Ids, names, namespaces, or `all`.
    #[arg(required = true)]
    targets: Vec<String>,
}

#[derive(Args, Debug)]
struct StopArgs {
    /// Ids, names, namespaces, or `all`.
    #[arg(required = true)]
    targets: Vec<String>,
    /// Stop watching for file changes (every stop does, as PM2).
    #[arg(long)]
    watch: bool,
}

#[derive(Args, Debug)]
struct EnvFlag {
    /// Show environment values (hidden by default).
    #[arg(long = "env")]
    env: bool,
}

#[derive(Args, Debug)]
struct ShowArgs {
    target: String,
    /// Show environment values.
    #[arg(long = "env")]
    env: bool,
}

#[derive(Args, Debug)]
struct RestartArgs {
    #[arg(required = true)]
    targets: Vec<String>,
    /// Replace the stored environment with the current one.
    #[arg(short = 'a', long = "update-env")]
    update_env: bool,
    /// Ecosystem environment name (env_<name>).
    #[arg(long = "env")]
    env: Option<String>,
    /// Toggle watching for file changes (restart only).
    #[arg(long)]
    watch: bool,
}

#[derive(Args, Debug)]
struct LogsArgs {
    /// An id, a name, a namespace, or `all` (the default).
    target: Option<String>,
    /// Lines to show from the end of each file before streaming.
    #[arg(long = "lines", default_value_t = 15)]
    lines: usize,
    /// Bare lines: no prefixes, no headers.
    #[arg(long)]
    raw: bool,
    /// Print the last lines and exit (no streaming).
    #[arg(long)]
    nostream: bool,
    /// Only stdout.
    #[arg(long)]
    out: bool,
    /// Only stderr.
    #[arg(long)]
    err: bool,
    /// One JSON object per line: message, timestamp, type, process_id, app_name.
    #[arg(long)]
    json: bool,
    /// `timestamp=... app=... id=... type=... message=...` lines.
    #[arg(long)]
    format: bool,
    /// Prefix each streamed line with its time (dayjs format, default YYYY-MM-DD-HH:mm:ss).
    #[arg(long, num_args = 0..=1, default_missing_value = "YYYY-MM-DD-HH:mm:ss")]
    timestamp: Option<String>,
}

#[derive(Args, Debug, Default)]
struct StartArgs {
    /// Script, command, ecosystem file, or the name/id of an existing app.
    script: Option<String>,
    /// Arguments for the script (after --).
    #[arg(last = true)]
    args: Vec<String>,
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Number of instances (a number, max, or -1 for CPUs minus one).
    #[arg(short = 'i', long, allow_hyphen_values = true)]
    instances: Option<String>,
    #[arg(long)]
    namespace: Option<String>,
    #[arg(long)]
    cwd: Option<String>,
    #[arg(long)]
    interpreter: Option<String>,
    #[arg(long = "node-args", alias = "interpreter-args", allow_hyphen_values = true)]
    node_args: Option<String>,
    /// Watch for file changes (optionally given paths).
    #[arg(short = 'w', long, num_args = 0..)]
    watch: Option<Vec<String>>,
    #[arg(long = "ignore-watch", num_args = 1..)]
    ignore_watch: Option<Vec<String>>,
    #[arg(long = "watch-delay")]
    watch_delay: Option<String>,
    #[arg(long = "max-memory-restart")]
    max_memory_restart: Option<String>,
    #[arg(short = 'k', long = "kill-timeout", allow_hyphen_values = true)]
    kill_timeout: Option<String>,
    #[arg(long = "listen-timeout", allow_hyphen_values = true)]
    listen_timeout: Option<String>,
    #[arg(long = "restart-delay", allow_hyphen_values = true)]
    restart_delay: Option<String>,
    #[arg(long = "exp-backoff-restart-delay", allow_hyphen_values = true)]
    exp_backoff_restart_delay: Option<String>,
    #[arg(long = "max-restarts", allow_hyphen_values = true)]
    max_restarts: Option<String>,
    #[arg(long = "min-uptime", allow_hyphen_values = true)]
    min_uptime: Option<String>,
    #[arg(long = "no-autorestart")]
    no_autorestart: bool,
    #[arg(long = "no-autostart")]
    no_autostart: bool,
    #[arg(long = "no-treekill")]
    no_treekill: bool,
    #[arg(long = "stop-exit-codes", num_args = 1..)]
    stop_exit_codes: Option<Vec<String>>,
    #[arg(long = "wait-ready")]
    wait_ready: bool,
    #[arg(long = "shutdown-with-message")]
    shutdown_with_message: bool,
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
    #[arg(short = 'e', long = "error")]
    error: Option<String>,
    #[arg(short = 'l', long = "log", num_args = 0..=1, default_missing_value = "")]
    log: Option<String>,
    #[arg(short = 'p', long = "pid")]
    pid: Option<String>,
    #[arg(short = 'm', long = "merge-logs")]
    merge_logs: bool,
    #[arg(long = "log-date-format")]
    log_date_format: Option<String>,
    /// Prefix log lines with the time.
    #[arg(long)]
    time: bool,
    #[arg(long = "log-type")]
    log_type: Option<String>,
    #[arg(short = 'c', long = "cron-restart", alias = "cron")]
    cron_restart: Option<String>,
    /// Start even if an app of that name runs.
    #[arg(short = 'f', long)]
    force: bool,
    /// Force fork mode.
    #[arg(short = 'x', long = "execute-command")]
    execute_command: bool,
    /// Environment name (env_<name>) of an ecosystem file.
    #[arg(long)]
    env: Option<String>,
    /// Only these apps of an ecosystem file (comma-separated).
    #[arg(long)]
    only: Option<String>,
    #[arg(short = 'a', long = "update-env")]
    update_env: bool,
    #[arg(long = "increment-var")]
    increment_var: Option<String>,
    #[arg(long = "instance-var")]
    instance_var: Option<String>,
    #[arg(long = "lb")]
    cluster_lb: Option<String>,
    /// Set by `reload <file>`: existing apps are reloaded rather than restarted.
    #[arg(skip)]
    reload: bool,
}

/// A CLI error that has already been explained to the user.
struct Shown;

pub(crate) struct Ui {
    paint: Paint,
    silent: bool,
    home: Home,
}

impl Ui {
    fn info(&self, msg: &str) {
        if !self.silent {
            println!("{} {msg}", self.paint.cyan("[rpm2]"));
        }
    }
    fn warn(&self, msg: &str) {
        eprintln!("{} {msg}", self.paint.yellow("[rpm2][WARN]"));
    }
    fn client(&self) -> Result<Client> {
        // RPM2_DAEMON_EXE: the daemon executable when this CLI runs inside another host (the addon).
        let exe = match std::env::var_os("RPM2_DAEMON_EXE") {
            Some(p) => std::path::PathBuf::from(p),
            None => std::env::current_exe().context("cannot find the rpm2 executable")?,
        };
        let c = Client::connect_or_start(&self.home, &exe)?;
        if c.started_daemon && !self.silent {
            // stderr: stdout stays clean for `rpm2 jlist | jq` even when the daemon had to start.
            eprintln!("{} Spawned the rpm2 daemon (home {})", self.paint.cyan("[rpm2]"), self.home.root().display());
        }
        if c.daemon_version != crate::VERSION && !c.daemon_version.is_empty() {
            self.warn(&format!(
                "the daemon runs rpm2 {} but this is rpm2 {}: run `rpm2 update`",
                c.daemon_version,
                crate::VERSION
            ));
        }
        Ok(c)
    }
}

/// Runs the CLI with `argv` (program name first) and returns the process exit code.
pub fn run(argv: Vec<OsString>) -> i32 {
    if argv.get(1).map(|a| a == crate::web::SERVER_FLAG).unwrap_or(false) {
        let args: Vec<String> = argv.iter().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        return crate::web::server_main(&args);
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if cli.version {
        println!("{}", crate::VERSION);
        return 0;
    }
    let use_color = !cli.no_color
        && std::env::var_os("NO_COLOR").is_none()
        && (std::env::var_os("FORCE_COLOR").is_some() || is_tty(1));
    let paint = Paint { enabled: use_color };
    let home = match Home::from_env() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{} {e:#}", paint.red("[rpm2][ERROR]"));
            return 1;
        }
    };
    let ui = Ui { paint, silent: cli.silent, home };
    let Some(cmd) = cli.cmd else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return 1;
    };
    match dispatch(&ui, cmd) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<Shown>().is_none() {
                let msg = match e.downcast_ref::<RpcError>() {
                    Some(r) => r.message.clone(),
                    None => format!("{e:#}"),
                };
                eprintln!("{} {msg}", ui.paint.red("[rpm2][ERROR]"));
            }
            1
        }
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("error already shown")
    }
}
impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shown")
    }
}
impl std::error::Error for Shown {}

fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn dispatch(ui: &Ui, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Start(a) => start(ui, *a),
        Cmd::List => {
            let mut c = ui.client()?;
            print_list(ui, &mut c)?;
            Ok(0)
        }
        Cmd::Stop(t) => action(ui, "stop", &t.targets, json!({"watch": false})),
        Cmd::Restart(a) if a.targets.first().is_some_and(|t| is_ecosystem(t)) => {
            let sa = StartArgs {
                script: a.targets.first().cloned(),
                env: a.env.clone(),
                update_env: true,
                ..Default::default()
            };
            start(ui, sa)
        }
        Cmd::Reload(a) | Cmd::GracefulReload(a) if a.targets.first().is_some_and(|t| is_ecosystem(t)) => {
            let sa = StartArgs {
                script: a.targets.first().cloned(),
                env: a.env.clone(),
                update_env: true,
                reload: true,
                ..Default::default()
            };
            start(ui, sa)
        }
        Cmd::Restart(a) => restart_like(ui, "restart", a),
        Cmd::Reload(a) | Cmd::GracefulReload(a) => restart_like(ui, "reload", a),
        Cmd::Delete(t) => action(ui, "delete", &t.targets, json!({})),
        Cmd::Reset(t) => action(ui, "reset", &t.targets, json!({})),
        Cmd::Show(a) => show(ui, &a.target, a.env),
        Cmd::Jlist(f) => {
            let mut c = ui.client()?;
            let list = c.call("list", json!({"env": f.env}))?;
            println!("{}", serde_json::to_string(&list)?);
            Ok(0)
        }
        Cmd::Prettylist(f) => {
            let mut c = ui.client()?;
            let list = c.call("list", json!({"env": f.env}))?;
            prettylist(&list)?;
            Ok(0)
        }
        Cmd::Kill => {
            if !crate::client::is_running(&ui.home) {
                // The daemon died: stop what its persisted table says is still running, and forget it.
                let n = crate::daemon::kill_orphans(&ui.home);
                ui.info(&format!("No daemon running; stopped {n} process(es) left by the previous one"));
                return Ok(0);
            }
            let mut c = Client::connect(&ui.home)?;
            let pid = c.call("info", json!({}))?.get("pid").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
            let r = c.call("kill", json!({}))?;
            let n = r.get("stopped").and_then(|v| v.as_u64()).unwrap_or(0);
            // Wait for the daemon to be gone so the next command starts a fresh one.
            for _ in 0..500 {
                if pid == 0 || !crate::base::procinfo::is_alive(pid) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            ui.info(&format!("[v] All Applications Stopped ({n})"));
            ui.info("[v] rpm2 daemon stopped");
            Ok(0)
        }
        Cmd::Ping => {
            let mut c = ui.client()?;
            let r = c.call("ping", json!({}))?;
            println!("{{ msg: '{}' }}", r.get("msg").and_then(|v| v.as_str()).unwrap_or(""));
            Ok(0)
        }
        Cmd::SendSignal { signal, target } => {
            let mut c = ui.client()?;
            c.call("signal", json!({"signal": signal, "targets": [target]}))?;
            ui.info(&format!("successfully sent signal {signal} to {target}"));
            print_list(ui, &mut c)?;
            Ok(0)
        }
        Cmd::Flush { targets } => {
            let mut c = ui.client()?;
            let files = c.call("flush", json!({"targets": targets}))?;
            ui.info("Flushing:");
            for f in files.as_array().into_iter().flatten() {
                ui.info(f.as_str().unwrap_or(""));
            }
            if targets.is_empty() {
                let _ = std::fs::OpenOptions::new().write(true).truncate(true).open(ui.home.daemon_log());
            }
            ui.info("Logs flushed");
            Ok(0)
        }
        Cmd::ReloadLogs => {
            let mut c = ui.client()?;
            println!("Reloading all logs...");
            c.call("reloadLogs", json!({}))?;
            println!("All logs reloaded");
            Ok(0)
        }
        Cmd::Logs(a) => logs(ui, a),
        Cmd::Pid { target } => {
            let mut c = ui.client()?;
            let list = match &target {
                Some(t) => c.call("describe", json!({"targets": [t]}))?,
                None => c.call("list", json!({}))?,
            };
            for p in list.as_array().into_iter().flatten() {
                println!("{}", p["pid"]);
            }
            Ok(0)
        }
        Cmd::Id { name } => {
            let mut c = ui.client()?;
            let list = c.call("describe", json!({"targets": [name]})).unwrap_or(json!([]));
            let ids: Vec<String> = list.as_array().into_iter().flatten().map(|p| p["pm_id"].to_string()).collect();
            println!("[ {} ]", ids.join(", "));
            Ok(0)
        }
        Cmd::Init { mode, force } => {
            let path =
                std::env::current_dir().context("cannot read the current directory")?.join("ecosystem.config.js");
            if path.exists() && !force {
                bail!("{} already exists: use --force to overwrite it", path.display());
            }
            let text = if mode.as_deref() == Some("simple") {
                "module.exports = {\n  apps: [{\n    name: 'app1',\n    script: './app.js',\n  }],\n};\n"
            } else {
                crate::config::ecosystem::STARTER
            };
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            println!("File {} generated", path.display());
            Ok(0)
        }
        Cmd::Save { force } => {
            let mut c = ui.client()?;
            ui.info("Saving current process list...");
            let r = c.call("dump", json!({"force": force, "node": node_info()}))?;
            ui.info(&format!("Successfully saved {} app(s) in {}", r["count"], r["path"].as_str().unwrap_or("")));
            Ok(0)
        }
        Cmd::Resurrect => crate::cli::ops::resurrect(&ui.home, &ui.paint, ui.silent, &|| ui.client()),
        Cmd::Cleardump => {
            for f in ["dump.rpm2", "dump.rpm2.bak"] {
                let _ = std::fs::remove_file(ui.home.root().join(f));
            }
            ui.info(&format!("Saved app list removed from {}", ui.home.root().display()));
            Ok(0)
        }
        Cmd::ImportPm2 { path } => crate::cli::ops::import_pm2(path.as_deref(), &ui.paint, &|| ui.client()),
        Cmd::Startup { platform, user, home_path, print } => {
            crate::cli::ops::startup(&ui.home, platform.as_deref(), user, home_path, print)
        }
        Cmd::Unstartup { platform } => crate::cli::ops::unstartup(&ui.home, platform.as_deref()),
        Cmd::Update => {
            if crate::client::is_running(&ui.home) {
                let mut c = Client::connect(&ui.home)?;
                let old = c.daemon_version.clone();
                let pid = c.call("info", json!({}))?.get("pid").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
                ui.info(&format!("Stopping the rpm2 {old} daemon (apps are restarted by the new one)"));
                c.call("shutdown", json!({}))?;
                for _ in 0..1000 {
                    if pid == 0 || !crate::base::procinfo::is_alive(pid) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            let mut c = ui.client()?;
            ui.info(&format!("rpm2 daemon {} running", c.daemon_version));
            // Give restored apps a moment to come up before showing them.
            std::thread::sleep(std::time::Duration::from_millis(300));
            print_list(ui, &mut c)?;
            Ok(0)
        }
        Cmd::Scale { name, number } => {
            let mut c = ui.client()?;
            let up = number.starts_with('+') || number.parse::<i64>().map(|_| true).unwrap_or(false);
            c.call("scale", json!({"name": name, "number": number}))?;
            ui.info(if up && !number.starts_with('-') { "Scaling application" } else { "Scaling down application" });
            if !ui.silent {
                print_list(ui, &mut c)?;
            }
            Ok(0)
        }
        Cmd::Monit => crate::monit::run(&ui.home, &|| ui.client()),
        Cmd::Web(a) => {
            let code = crate::web::command(&ui.home, &ui.paint, ui.silent, a, &|| ui.client())?;
            if !ui.silent {
                print_list(ui, &mut ui.client()?)?;
            }
            Ok(code)
        }
        Cmd::Env { id } => {
            let mut c = ui.client()?;
            let list = c.call("describe", json!({"targets": [id], "env": true}))?;
            for p in list.as_array().into_iter().flatten() {
                if let Some(env) = p["pm2_env"]["env"].as_object() {
                    for (k, v) in env {
                        println!("{k}: {}", v.as_str().unwrap_or(""));
                    }
                }
            }
            Ok(0)
        }
    }
}

fn restart_like(ui: &Ui, method: &str, a: RestartArgs) -> Result<i32> {
    if a.env.is_some() {
        bail!("--env needs an ecosystem file: `rpm2 {method} ecosystem.config.js --env {}`", a.env.unwrap_or_default());
    }
    let mut params = json!({});
    if a.update_env {
        params["update_env"] = json!(true);
        params["env"] = json!(client_env());
    } else if !ui.silent {
        println!("Use --update-env to update environment variables");
    }
    if a.watch && method == "restart" {
        params["watch"] = json!("toggle");
    }
    action(ui, method, &a.targets, params)
}

/// Targets with ecosystem files replaced by the names of their apps (as PM2 accepts a file).
fn expand_targets(targets: &[String]) -> Result<Vec<String>> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut out = Vec::new();
    for t in targets {
        let p = config::absolutize(&cwd, t);
        if is_ecosystem(t) && p.is_file() {
            for app in crate::config::ecosystem::load(&p)?.apps {
                let name = app.get("name").and_then(|n| n.as_str()).map(String::from).or_else(|| {
                    let script = app.get("script").and_then(|s| s.as_str())?;
                    let file = Path::new(script).file_name()?.to_str()?;
                    Some(file.rsplit_once('.').map(|(b, _)| b.to_string()).unwrap_or_else(|| file.to_string()))
                });
                if let Some(n) = name {
                    out.push(n);
                }
            }
        } else {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn action(ui: &Ui, method: &str, targets: &[String], mut params: Value) -> Result<i32> {
    let targets = &expand_targets(targets)?;
    let mut c = ui.client()?;
    params["targets"] = json!(targets);
    ui.info(&format!("Applying action {method} on app [{}]", targets.join(", ")));
    let res = c.call(method, params)?;
    for p in res.as_array().into_iter().flatten() {
        ui.info(&format!("[{}]({}) {}", p["name"].as_str().unwrap_or(""), p["pm_id"], ui.paint.green("✓")));
    }
    if !ui.silent {
        print_list(ui, &mut c)?;
    }
    Ok(0)
}

fn is_ecosystem(s: &str) -> bool {
    crate::config::ecosystem::kind_of(s).is_some()
}

/// Turns `rpm2 start` flags into a PM2-style app object.
fn flags_to_app(a: &StartArgs, script: &str) -> Result<Value> {
    let mut o = Map::new();
    o.insert("script".into(), json!(script));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    let num = |flag: &str, v: &Option<String>| -> Result<Option<Value>> {
        match v {
            None => Ok(None),
            Some(s) => {
                let unit = if flag == "--max-restarts" { "" } else { " of milliseconds" };
                match s.trim().parse::<i64>() {
                    Ok(n) if n >= 0 => Ok(Some(json!(n))),
                    _ => Err(anyhow!("{flag} must be a positive whole number{unit}, got '{s}'")),
                }
            }
        }
    };
    put("name", a.name.clone().map(Value::String));
    put("instances", a.instances.clone().map(Value::String));
    put("namespace", a.namespace.clone().map(Value::String));
    put("cwd", a.cwd.clone().map(Value::String));
    put("interpreter", a.interpreter.clone().map(Value::String));
    put("node_args", a.node_args.clone().map(Value::String));
    if let Some(w) = &a.watch {
        put("watch", Some(if w.is_empty() { json!(true) } else { json!(w) }));
    }
    put("ignore_watch", a.ignore_watch.clone().map(|v| json!(v)));
    // `--watch-delay 4` is seconds, `--watch-delay 4000ms` milliseconds (PM2); the option is ms.
    put(
        "watch_delay",
        a.watch_delay.clone().map(|d| match d.trim().parse::<f64>() {
            Ok(secs) if secs >= 0.0 && secs.is_finite() => json!((secs * 1000.0).round() as u64),
            _ => Value::String(d),
        }),
    );
    put("max_memory_restart", a.max_memory_restart.clone().map(Value::String));
    put("kill_timeout", num("--kill-timeout", &a.kill_timeout)?);
    put("listen_timeout", num("--listen-timeout", &a.listen_timeout)?);
    put("restart_delay", num("--restart-delay", &a.restart_delay)?);
    put("exp_backoff_restart_delay", num("--exp-backoff-restart-delay", &a.exp_backoff_restart_delay)?);
    put("max_restarts", num("--max-restarts", &a.max_restarts)?);
    put("min_uptime", a.min_uptime.clone().map(Value::String));
    if a.no_autorestart {
        put("autorestart", Some(json!(false)));
    }
    if a.no_autostart {
        put("autostart", Some(json!(false)));
    }
    if a.no_treekill {
        put("treekill", Some(json!(false)));
    }
    if let Some(codes) = &a.stop_exit_codes {
        let mut v = Vec::new();
        for c in codes {
            v.push(c.parse::<i64>().map_err(|_| anyhow!("--stop-exit-codes must be numbers, got '{c}'"))?);
        }
        put("stop_exit_codes", Some(json!(v)));
    }
    if a.wait_ready {
        put("wait_ready", Some(json!(true)));
    }
    if a.shutdown_with_message {
        put("shutdown_with_message", Some(json!(true)));
    }
    put("out_file", a.output.clone().map(Value::String));
    put("error_file", a.error.clone().map(Value::String));
    put("log_file", a.log.clone().map(|l| if l.is_empty() { json!(true) } else { json!(l) }));
    put("pid_file", a.pid.clone().map(Value::String));
    if a.merge_logs {
        put("merge_logs", Some(json!(true)));
    }
    put("log_date_format", a.log_date_format.clone().map(Value::String));
    if a.time {
        put("time", Some(json!(true)));
    }
    put("log_type", a.log_type.clone().map(Value::String));
    put("cron_restart", a.cron_restart.clone().map(Value::String));
    if a.execute_command {
        put("exec_mode", Some(json!("fork")));
    }
    put("increment_var", a.increment_var.clone().map(Value::String));
    put("instance_var", a.instance_var.clone().map(Value::String));
    put("cluster_lb", a.cluster_lb.clone().map(Value::String));
    if !a.args.is_empty() {
        put("args", Some(json!(a.args)));
    }
    Ok(Value::Object(o))
}

/// Reads an ecosystem file into its list of app objects (see [`crate::config::ecosystem`]).
pub fn load_ecosystem(path: &Path) -> Result<Vec<Value>> {
    Ok(crate::config::ecosystem::load(path)?.apps)
}

fn start(ui: &Ui, a: StartArgs) -> Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let script = match &a.script {
        Some(s) => s.clone(),
        None => {
            if cwd.join("ecosystem.config.js").exists() {
                "ecosystem.config.js".into()
            } else {
                bail!("no script given and no ecosystem.config.js here: `rpm2 start app.js` or `rpm2 start ecosystem.config.js`");
            }
        }
    };
    let env = client_env();
    let mut ctx = ResolveCtx { cwd: cwd.clone(), env, env_name: a.env.clone() };
    let mut raws = Vec::new();
    let file_path = config::absolutize(&cwd, &script);
    if is_ecosystem(&script) && file_path.is_file() {
        let eco = crate::config::ecosystem::load(&file_path)?;
        let mut apps = eco.apps;
        // PM2's precedence: shell env < deploy.<env>.env < app env < app env_<env>.
        if let Some(n) = &a.env {
            if let Some(Value::Object(denv)) = eco.deploy_env.get(n) {
                for (k, v) in denv {
                    ctx.env.insert(k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string()));
                }
            }
        }
        if let Some(only) = &a.only {
            let names: Vec<&str> = only.split(',').map(str::trim).collect();
            apps.retain(|app| app.get("name").and_then(|n| n.as_str()).map(|n| names.contains(&n)).unwrap_or(false));
            if apps.is_empty() {
                bail!("--only {only}: no app of that name in {}", file_path.display());
            }
        }
        if let Some(n) = &a.env {
            let key = format!("env_{n}");
            if !apps.iter().any(|app| app.get(&key).is_some()) {
                bail!("--env {n}: no app in {} has an `{key}` block", file_path.display());
            }
        }
        raws = apps;
    } else {
        if a.env.is_some() {
            ctx.env_name = None;
        }
        // Not a file: an existing app's name or id is restarted, as PM2 does.
        if !file_path.exists() && !script.contains('/') && !script.contains(' ') && config::which(&script).is_none() {
            let mut c = ui.client()?;
            let known = c
                .call("describe", json!({"targets": [script]}))
                .ok()
                .and_then(|v| v.as_array().map(|a| !a.is_empty()))
                .unwrap_or(false);
            if known {
                let mut params = json!({"targets": [script]});
                if a.update_env {
                    params["update_env"] = json!(true);
                    params["env"] = json!(client_env());
                }
                if a.watch.is_some() {
                    params["watch"] = json!(true); // `start <app> --watch` enables watching, as PM2
                }
                c.call("restart", params)?;
                print_list(ui, &mut c)?;
                return Ok(0);
            }
        }
        raws.push(flags_to_app(&a, &script)?);
    }
    // Resolve every app before starting any: nothing starts half-way.
    let mut specs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for raw in &raws {
        let r = if is_ecosystem(&script) {
            config::resolve_app(raw, &ctx).with_context(|| file_path.display().to_string())?
        } else {
            config::resolve_app(raw, &ctx)?
        };
        for w in &r.warnings {
            ui.warn(&format!("app '{}': {w}", r.spec.name));
        }
        if !names.insert(r.spec.name.clone()) {
            bail!("{}: two apps are named '{}': names in one file must be unique", file_path.display(), r.spec.name);
        }
        specs.push(r.spec);
    }
    let mut c = ui.client()?;
    let mut to_start = Vec::new();
    let from_file = is_ecosystem(&script);
    for s in specs {
        // An ecosystem app that already exists is restarted with the file's options and env, as PM2.
        if from_file && !a.force {
            let existing = c
                .call("describe", json!({"targets": [s.name]}))
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            if !existing.is_empty() {
                ui.info(&format!("Restarting [{}] with the file's options", s.name));
                // `reload <file>`: a zero-downtime rollout of the new declaration; else a restart.
                let method = if a.reload { "reload" } else { "restart" };
                c.call(method, json!({"targets": [s.name], "spec": s}))?;
                continue;
            }
        }
        ui.info(&format!(
            "Starting {} in {} ({} instance{})",
            s.script.display(),
            s.exec_mode.pm2_name(),
            s.instances,
            if s.instances == 1 { "" } else { "s" }
        ));
        to_start.push(s);
    }
    if !to_start.is_empty() {
        c.call("start", json!({"apps": to_start, "force": a.force}))?;
    }
    ui.info("Done.");
    if !ui.silent {
        print_list(ui, &mut c)?;
    }
    Ok(0)
}

fn print_list(ui: &Ui, c: &mut Client) -> Result<()> {
    let list = c.call("list", json!({}))?;
    let p = &ui.paint;
    let header: Vec<String> =
        ["App name", "id", "mode", "pid", "status", "restart", "uptime", "cpu", "memory", "watching"]
            .iter()
            .map(|h| p.bold(&p.cyan(h)))
            .collect();
    let now = now_ms();
    let mut rows = Vec::new();
    for proc_ in list.as_array().into_iter().flatten() {
        let env = &proc_["pm2_env"];
        let status = env["status"].as_str().unwrap_or("");
        let online = status == "online" || status == "launching";
        let mode = if env["exec_mode"] == "cluster_mode" { "cluster" } else { "fork" };
        rows.push(vec![
            p.bold(proc_["name"].as_str().unwrap_or("")),
            proc_["pm_id"].to_string(),
            mode.to_string(),
            proc_["pid"].to_string(),
            p.status(status),
            env["restart_time"].to_string(),
            if online {
                human_duration(now.saturating_sub(env["pm_uptime"].as_u64().unwrap_or(now)))
            } else {
                "0".into()
            },
            format!("{}%", proc_["monit"]["cpu"].as_f64().unwrap_or(0.0)),
            human_bytes(proc_["monit"]["memory"].as_u64().unwrap_or(0)),
            if env["watch_paused"].is_string() {
                p.yellow("paused")
            } else if env["watch"].as_bool().unwrap_or(false) {
                p.green("enabled")
            } else {
                p.grey("disabled")
            },
        ]);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(crate::base::table::render(&header, &rows).as_bytes());
    if rows.is_empty() {
        let _ = writeln!(out, " Use `rpm2 start app.js` to start an app");
    }
    Ok(())
}

fn show(ui: &Ui, target: &str, env: bool) -> Result<i32> {
    let mut c = ui.client()?;
    let list = match c.call("describe", json!({"targets": [target], "env": env})) {
        Ok(l) => l,
        Err(e) if e.downcast_ref::<RpcError>().map(|r| r.code == "not_found").unwrap_or(false) => {
            ui.warn(&format!("{target} doesn't exist"));
            return Err(Shown.into());
        }
        Err(e) => return Err(e),
    };
    let p = &ui.paint;
    let now = now_ms();
    for proc_ in list.as_array().into_iter().flatten() {
        let e = &proc_["pm2_env"];
        let s = |k: &str| match &e[k] {
            Value::String(s) => s.clone(),
            Value::Null => "N/A".into(),
            Value::Array(a) if a.is_empty() => "N/A".into(),
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
            v => v.to_string(),
        };
        let status = s("status");
        let online = status == "online" || status == "launching";
        println!(
            " Describing process with id {} - name {} ",
            proc_["pm_id"],
            p.bold(proc_["name"].as_str().unwrap_or(""))
        );
        let mut rows = vec![
            ("status", p.status(&status)),
            ("name", s("name")),
            ("namespace", s("namespace")),
            ("version", s("version")),
            ("restarts", s("restart_time")),
            (
                "uptime",
                if online {
                    human_duration(now.saturating_sub(e["pm_uptime"].as_u64().unwrap_or(now)))
                } else {
                    "0".into()
                },
            ),
            ("pid", proc_["pid"].to_string()),
            ("script path", s("pm_exec_path")),
            ("script args", s("args")),
            ("error log path", s("pm_err_log_path")),
            ("out log path", s("pm_out_log_path")),
            ("pid path", s("pm_pid_path")),
            ("interpreter", s("exec_interpreter")),
            ("interpreter args", s("node_args")),
            ("script id", proc_["pm_id"].to_string()),
            ("exec cwd", s("pm_cwd")),
            ("exec mode", s("exec_mode")),
            ("watch & reload", if e["watch"].as_bool().unwrap_or(false) { p.green("✔") } else { p.red("✘") }),
            ("unstable restarts", s("unstable_restarts")),
            ("created at", iso_utc(e["created_at"].as_u64().unwrap_or(0))),
        ];
        if e["vizion"] != json!(false) {
            if let Some(g) = e["pm_cwd"].as_str().and_then(|c| git_info(Path::new(c))) {
                rows.push(("revision control", "git".into()));
                rows.push(("remote url", g.url.unwrap_or_else(|| "N/A".into())));
                rows.push(("repository root", g.root));
                rows.push(("branch", g.branch.unwrap_or_else(|| "N/A".into())));
                rows.push(("revision", g.revision.unwrap_or_else(|| "N/A".into())));
            }
        }
        if let Some(r) = e["restart_reason"].as_str() {
            rows.push(("last restart reason", r.to_string()));
        }
        if let Some(r) = e["watch_paused"].as_str() {
            rows.push(("watch paused", p.yellow(r)));
        }
        if let Some(c) = e["exit_code"].as_i64() {
            rows.push(("last exit code", c.to_string()));
        }
        for k in ["kill_timeout", "max_memory_restart", "cron_restart", "pm_log_path"] {
            if !e[k].is_null() {
                rows.push((k, s(k)));
            }
        }
        let table_rows: Vec<Vec<String>> = rows.into_iter().map(|(k, v)| vec![k.to_string(), v]).collect();
        let t = crate::base::table::render(&["key".into(), "value".into()], &table_rows);
        // Drop the header row: PM2's describe table has none.
        let lines: Vec<&str> = t.lines().collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            if i == 1 || i == 2 {
                continue;
            }
            out.push_str(l);
            out.push('\n');
        }
        print!("{out}");
        if let Some(m) = e["axm_monitor"].as_object() {
            println!(" Code metrics value ");
            let rows: Vec<Vec<String>> = m
                .iter()
                .map(|(k, v)| {
                    vec![
                        k.clone(),
                        v.get("value")
                            .map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string()))
                            .unwrap_or_else(|| v.to_string()),
                    ]
                })
                .collect();
            print!("{}", crate::base::table::render(&["metric".into(), "value".into()], &rows));
        }
        if env {
            println!(" Environment ");
            for (k, v) in e["env"].as_object().into_iter().flatten() {
                println!("  {k}: {}", v.as_str().unwrap_or(""));
            }
        }
        println!(" Use `rpm2 logs {} [--lines 1000]` to display logs", proc_["name"].as_str().unwrap_or(""));
    }
    Ok(0)
}

/// Git metadata of the repository holding `dir` (PM2's `vizion`), read from `.git` directly.
struct GitInfo {
    root: String,
    branch: Option<String>,
    revision: Option<String>,
    url: Option<String>,
}

fn git_info(dir: &Path) -> Option<GitInfo> {
    let mut d = Some(dir);
    while let Some(cur) = d {
        let git = cur.join(".git");
        if git.is_dir() {
            let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
            let head = head.trim();
            let (branch, revision) = match head.strip_prefix("ref: ") {
                Some(r) => {
                    let rev = std::fs::read_to_string(git.join(r)).ok().map(|s| s.trim().to_string()).or_else(|| {
                        let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
                        packed
                            .lines()
                            .find(|l| l.ends_with(r))
                            .and_then(|l| l.split_whitespace().next())
                            .map(String::from)
                    });
                    (Some(r.trim_start_matches("refs/heads/").to_string()), rev)
                }
                None => (None, Some(head.to_string())),
            };
            let config = std::fs::read_to_string(git.join("config")).unwrap_or_default();
            let mut in_origin = false;
            let mut url = None;
            for l in config.lines() {
                let l = l.trim();
                if l.starts_with('[') {
                    in_origin = l == "[remote \"origin\"]";
                } else if in_origin {
                    if let Some(u) = l.strip_prefix("url") {
                        url = Some(u.trim_start_matches([' ', '=']).trim().to_string());
                    }
                }
            }
            return Some(GitInfo { root: cur.display().to_string(), branch, revision, url });
        }
        d = cur.parent();
    }
    None
}

fn prettylist(list: &Value) -> Result<()> {
    let mut child = std::process::Command::new("node")
        .arg("-e")
        .arg("let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(require('util').inspect(JSON.parse(s),false,null,false)))")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("prettylist needs Node.js on PATH")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(serde_json::to_string(list)?.as_bytes())?;
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("node failed to render the list");
    }
    Ok(())
}

/// How `rpm2 logs` prints one line.
struct LogPrinter<'a> {
    a: &'a LogsArgs,
    paint: Paint,
    /// Width of the `<id>|<name>` column (grows as longer names appear, as PM2's does).
    width: usize,
}

const LOG_COLOURS: [&str; 8] = ["36", "32", "35", "33", "34", "96", "92", "95"];

impl LogPrinter<'_> {
    /// The line as `rpm2 logs` prints it. `at` is the event time (ms) for streamed lines.
    fn line(&mut self, id: u64, name: &str, is_err: bool, text: &str, at: Option<u64>) -> String {
        let kind = if is_err { "err" } else { "out" };
        if self.a.json || self.a.format {
            // A line of a `log_type: json` file is already an object: use its fields.
            let parsed = serde_json::from_str::<Value>(text).ok().filter(|v| v.get("message").is_some());
            let (message, ts) = match &parsed {
                Some(v) => (
                    v["message"].as_str().unwrap_or("").trim_end_matches('\n').to_string(),
                    v.get("timestamp").cloned().unwrap_or(Value::Null),
                ),
                None => (text.to_string(), at.map(|t| json!(iso_utc(t))).unwrap_or(Value::Null)),
            };
            if self.a.json {
                return json!({"message": message, "timestamp": ts, "type": kind, "process_id": id, "app_name": name})
                    .to_string();
            }
            let ts = ts.as_str().map(|s| s.to_string()).unwrap_or_default();
            return format!("timestamp={ts} app={name} id={id} type={kind} message={message}");
        }
        let ts = match (&self.a.timestamp, at) {
            (Some(f), Some(t)) => format!("{} ", crate::base::fmt::format_date(t, f)),
            _ => String::new(),
        };
        if self.a.raw {
            return format!("{ts}{text}");
        }
        let tag = format!("{id}|{name}");
        self.width = self.width.max(tag.chars().count());
        let tag = format!("{tag:<w$}", w = self.width);
        if self.paint.enabled {
            let code = LOG_COLOURS[(id as usize) % LOG_COLOURS.len()];
            let sep = if is_err { "\x1b[31m|\x1b[0m" } else { "|" };
            format!("{ts}\x1b[{code}m{tag}\x1b[0m {sep} {text}")
        } else {
            format!("{ts}{tag} | {text}")
        }
    }
}

fn logs(ui: &Ui, a: LogsArgs) -> Result<i32> {
    let mut c = ui.client()?;
    let target = a.target.clone().filter(|t| t != "all");
    let list = match &target {
        Some(t) => c.call("describe", json!({"targets": [t]}))?,
        None => c.call("list", json!({}))?,
    };
    let procs: Vec<Value> = list.as_array().cloned().unwrap_or_default();
    let (want_out, want_err) = match (a.out, a.err) {
        (true, false) => (true, false),
        (false, true) => (false, true),
        _ => (true, true),
    };
    // Subscribe before reading the files, so that no line falls between the tail and the stream.
    let sub = if a.nostream {
        None
    } else {
        let mut topics = vec![];
        if want_out {
            topics.push("log:out");
        }
        if want_err {
            topics.push("log:err");
        }
        let targets: Vec<String> = target.iter().cloned().collect();
        Some(ui.client()?.subscribe(&topics, &targets)?)
    };
    c.close();
    let decorated = !a.raw && !a.json && !a.format;
    let width = procs
        .iter()
        .map(|p| format!("{}|{}", p["pm_id"], p["name"].as_str().unwrap_or("")).chars().count())
        .max()
        .unwrap_or(0);
    let mut pr = LogPrinter { a: &a, paint: ui.paint, width };
    let mut out = std::io::stdout().lock();
    if decorated {
        let _ = writeln!(
            out,
            "{} Tailing last {} lines for [{}] process{} (change the value with --lines option)",
            ui.paint.cyan("[TAILING]"),
            a.lines,
            target.clone().unwrap_or_else(|| "all".into()),
            if target.is_none() { "es" } else { "" }
        );
        if target.is_none() && want_out && want_err && a.lines > 0 {
            let path = ui.home.daemon_log();
            let lines = crate::logs::tail_lines(&path, a.lines).unwrap_or_default();
            let _ = writeln!(out, "{}", ui.paint.grey(&format!("{} last {} lines:", path.display(), a.lines)));
            let w = pr.width.max(4);
            for l in lines {
                let _ = writeln!(out, "{} | {l}", ui.paint.grey(&format!("{:<w$}", "rpm2")));
            }
            let _ = writeln!(out);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &procs {
        let id = p["pm_id"].as_u64().unwrap_or(0);
        let name = p["name"].as_str().unwrap_or("");
        let env = &p["pm2_env"];
        for (key, is_err) in [("pm_err_log_path", true), ("pm_out_log_path", false)] {
            if (is_err && !want_err) || (!is_err && !want_out) {
                continue;
            }
            let Some(path) = env[key].as_str() else { continue };
            if path.is_empty() || path == "/dev/null" || !seen.insert(path.to_string()) {
                continue;
            }
            if decorated {
                let _ = writeln!(out, "{}", ui.paint.grey(&format!("{path} last {} lines:", a.lines)));
            }
            if a.lines == 0 {
                continue;
            }
            for l in crate::logs::tail_lines(Path::new(path), a.lines).unwrap_or_default() {
                let line = pr.line(id, name, is_err, &l, None);
                if writeln!(out, "{line}").is_err() {
                    return Ok(0);
                }
            }
        }
    }
    if decorated && !procs.is_empty() {
        let _ = writeln!(out);
    }
    let _ = out.flush();
    let Some(sub) = sub else { return Ok(0) };
    for (topic, data) in sub {
        if topic == "rpm2:lagged" {
            let n = data["dropped"].as_u64().unwrap_or(0);
            ui.warn(&format!("{n} log events were dropped: this terminal reads slower than the apps write"));
            continue;
        }
        let is_err = topic == "log:err";
        let id = data["process"]["pm_id"].as_u64().unwrap_or(0);
        let name = data["process"]["name"].as_str().unwrap_or("");
        let at = data["at"].as_u64().unwrap_or_else(now_ms);
        let text = data["data"].as_str().unwrap_or("");
        for piece in text.split_inclusive('\n') {
            let piece = piece.strip_suffix('\n').unwrap_or(piece);
            let line = pr.line(id, name, is_err, piece, Some(at));
            if writeln!(out, "{line}").is_err() {
                return Ok(0);
            }
        }
        if out.flush().is_err() {
            return Ok(0);
        }
    }
    Ok(0)
}

/// For `main`: whether argv asks for the daemon mode (`rpm2d --daemon`).
pub fn is_daemon_mode(argv: &[OsString]) -> bool {
    argv.get(1).map(|a| a == "--daemon").unwrap_or(false)
}

/// For `main`: the daemon's entry.
pub fn run_daemon() -> i32 {
    let home = match Home::from_env() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e:#}");
            return 1;
        }
    };
    if std::env::args().any(|a| a == "--foreground") {
        // Under systemd (or a container): no fork, logs to stderr, stops on SIGTERM.
        return match crate::daemon::run_foreground(home) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e:#}");
                1
            }
        };
    }
    match crate::daemon::start_detached(home) {
        Ok(started) => {
            // Read by the client that ran us: did this call start the daemon?
            println!("{}", if started { "started" } else { "running" });
            0
        }
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}
