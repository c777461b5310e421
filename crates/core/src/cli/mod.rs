//! The `rpm2` command line: PM2's commands, flags and outputs, answered by the daemon. Node is started
//! only to evaluate JS ecosystem files and to render `prettylist`.
//!
//! This file parses and dispatches; each command group lives in its own file and the decisions of
//! `start`/`stop`/`restart`/... are the core's start/operate flow ([`crate::client::start`]).

mod actions;
mod args;
mod conf;
mod daemon_cmds;
mod deploy;
mod extra;
pub mod foreground;
pub mod health_http;
mod list;
mod logs;
pub mod ops;
mod process;
mod progress;
mod start;
mod stdin;

use crate::base::fmt::Paint;
use crate::base::paths::Home;
use crate::client::operate::Method;
use crate::client::{Client, RpcError};
use anyhow::{Context, Result};
use args::{Cli, Cmd};
use clap::Parser;
use std::ffi::OsString;
use std::io::IsTerminal;

/// A CLI error that has already been explained to the user.
pub(crate) struct Shown;

/// How the CLI talks to the user and reaches the daemon.
pub(crate) struct Ui {
    /// Colours (off with --no-color, NO_COLOR or when stdout is not a terminal).
    pub(crate) paint: Paint,
    /// `-s`: print nothing but errors.
    pub(crate) silent: bool,
    /// The RPM2_HOME of the daemon.
    pub(crate) home: Home,
}

impl Ui {
    /// A `[rpm2] ...` progress line on stdout (none with --silent).
    pub(crate) fn info(&self, msg: &str) {
        if !self.silent {
            println!("{} {msg}", self.paint.cyan("[rpm2]"));
        }
    }
    /// A `[rpm2][WARN] ...` line on stderr.
    pub(crate) fn warn(&self, msg: &str) {
        eprintln!("{} {msg}", self.paint.yellow("[rpm2][WARN]"));
    }
    /// A connection to the daemon, starting it (and saying so on stderr) when it is not running.
    pub(crate) fn client(&self) -> Result<Client> {
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
    if argv.get(1).map(|a| a == crate::web::SERVE_FLAG).unwrap_or(false) {
        let args: Vec<String> = argv.iter().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        return crate::web::serve_main(&args);
    }
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
        && (std::env::var_os("FORCE_COLOR").is_some() || std::io::stdout().is_terminal());
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
            report(&ui, &e);
            1
        }
    }
}

/// Prints a command's error as one `[rpm2][ERROR]` line on stderr (nothing when already shown).
pub(crate) fn report(ui: &Ui, e: &anyhow::Error) {
    if e.downcast_ref::<Shown>().is_none() {
        let msg = match e.downcast_ref::<RpcError>() {
            Some(r) => r.message.clone(),
            None => format!("{e:#}"),
        };
        eprintln!("{} {msg}", ui.paint.red("[rpm2][ERROR]"));
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

fn dispatch(ui: &Ui, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Start(a) => start::start(ui, *a, None),
        Cmd::StartOrRestart(a) => start::start(ui, *a, Some(Method::Restart)),
        Cmd::StartOrReload(a) | Cmd::StartOrGracefulReload(a) => start::start(ui, *a, Some(Method::Reload)),
        Cmd::Stop(t) => start::operate(ui, Method::Stop, &t.targets, None, t.env),
        Cmd::Restart(a) => start::operate(ui, Method::Restart, &a.targets.clone(), Some(*a), None),
        Cmd::Reload(a) | Cmd::GracefulReload(a) => {
            start::operate(ui, Method::Reload, &a.targets.clone(), Some(*a), None)
        }
        Cmd::Delete(t) => start::operate(ui, Method::Delete, &t.targets, None, t.env),
        Cmd::Reset(t) => start::operate(ui, Method::Reset, &t.targets, None, t.env),
        Cmd::List => list::list(ui),
        Cmd::Show(a) => list::show(ui, &file_target(&a.target)?, a.env),
        Cmd::Jlist(f) => list::jlist(ui, f.env),
        Cmd::Prettylist(f) => list::prettylist(ui, f.env),
        Cmd::Logs(mut a) => {
            a.target = a.target.as_deref().map(file_target).transpose()?;
            logs::logs(ui, a)
        }
        Cmd::Flush { targets } => logs::flush(ui, &targets),
        Cmd::ReloadLogs => logs::reload_logs(ui),
        Cmd::SendSignal { signal, target, .. } => process::send_signal(ui, &signal, &target),
        Cmd::Send { pm_id, line } => stdin::send(ui, &pm_id, &line),
        Cmd::Attach { pm_id, separator } => stdin::attach(ui, &pm_id, separator.as_deref()),
        Cmd::Trigger { target, action, param } => actions::trigger(ui, &target, &action, param.as_deref()),
        Cmd::Monitor { target } => actions::monitor(ui, target.as_deref(), true),
        Cmd::Unmonitor { target } => actions::monitor(ui, target.as_deref(), false),
        Cmd::Pid { target } => process::pid(ui, target),
        Cmd::Id { name } => process::id(ui, name),
        Cmd::Env { id } => process::env(ui, id),
        Cmd::Scale { name, number } => process::scale(ui, name, number),
        Cmd::Web(a) => process::web(ui, a),
        Cmd::Serve(a) => extra::serve(ui, &a),
        Cmd::Set { key, value } => conf::set(ui, key.as_deref(), value.as_deref()),
        Cmd::Multiset { serial } => conf::multiset(ui, &serial),
        Cmd::Get { key } => conf::get(ui, key.as_deref()),
        Cmd::Conf { key, value } => match key {
            Some(k) => conf::config(ui, &k, value.as_deref()),
            None => conf::get(ui, None),
        },
        Cmd::Config { key, value } => conf::config(ui, &key, value.as_deref()),
        Cmd::Unset { key } => conf::unset(ui, &key),
        Cmd::Link { .. } => extra::link(ui, true),
        Cmd::Unlink => extra::link(ui, false),
        Cmd::Report => extra::report(ui),
        Cmd::Completion { shell } => extra::completion(shell.as_deref()),
        Cmd::Inspect { target } => extra::inspect(ui, &target),
        Cmd::Monit => crate::monit::run(&ui.home, &|| ui.client()),
        Cmd::Kill => daemon_cmds::kill(ui),
        Cmd::Ping => daemon_cmds::ping(ui),
        Cmd::Update => daemon_cmds::update(ui),
        Cmd::Init { mode, force } => daemon_cmds::init(mode, force),
        Cmd::Save { force } => daemon_cmds::save(ui, force),
        Cmd::Cleardump => daemon_cmds::cleardump(ui),
        Cmd::Resurrect => ops::resurrect(ui),
        Cmd::ImportPm2 { path } => ops::import_pm2(path.as_deref(), &ui.paint, &|| ui.client()),
        Cmd::Startup { platform, user, home_path, print } => {
            ops::startup(&ui.home, platform.as_deref(), user, home_path, print)
        }
        Cmd::Unstartup { platform } => ops::unstartup(&ui.home, platform.as_deref()),
        Cmd::Deploy { args } => deploy::deploy(ui, &args),
    }
}

/// The directory targets and files are resolved from.
fn cwd() -> Result<std::path::PathBuf> {
    std::env::current_dir().context("cannot read the current directory")
}

/// A target as the daemon gets it: a script file becomes its absolute path (PM2 matches scripts by
/// path); ids, names, namespaces, `all` and `/regex/` are unchanged.
fn file_target(t: &str) -> Result<String> {
    Ok(crate::client::operate::target_string(t, &cwd()?))
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
