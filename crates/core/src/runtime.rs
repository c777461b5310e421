//! `rpm2-runtime`: rpm2 in the foreground for containers. Starts the daemon and the apps, streams
//! their logs to its own stdout/stderr, works as PID 1 (child subreaper: reaps every orphan), turns
//! SIGTERM/SIGINT into a graceful stop of all apps, and exits when everything has stopped: 0 after a
//! requested stop, 1 when an app is errored, else the apps' exit code. `rpm2 list`/`rpm2 logs` keep
//! working inside the container (same `RPM2_HOME`).

use crate::base::paths::Home;
use crate::client::Client;
use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::time::Duration;

/// Options of `rpm2-runtime` that are its own; everything else is passed to `rpm2 start`.
#[derive(Debug, Default)]
struct Opts {
    json: bool,
    health: bool,
    no_auto_exit: bool,
    start_args: Vec<OsString>,
}

fn parse(argv: &[OsString]) -> Opts {
    let mut o = Opts::default();
    for a in argv.iter().skip(1) {
        match a.to_str() {
            Some("--json") => o.json = true,
            Some("--health") => o.health = true,
            Some("--no-auto-exit") => o.no_auto_exit = true,
            Some("--runtime") => {}
            _ => o.start_args.push(a.clone()),
        }
    }
    o
}

/// Runs `rpm2-runtime` with `argv` (program name first); returns the exit code.
pub fn run(argv: Vec<OsString>) -> i32 {
    match run_inner(argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("[rpm2-runtime][ERROR] {e:#}");
            1
        }
    }
}

/// `--health`: 0 when the daemon answers and every app is online, 1 otherwise (for probes).
fn health(home: &Home) -> Result<i32> {
    let mut c = Client::connect(home)?;
    let list = c.call("list", json!({}))?;
    let all_online =
        list.as_array().map(|a| !a.is_empty() && a.iter().all(|p| p["pm2_env"]["status"] == "online")).unwrap_or(false);
    println!("{}", if all_online { "healthy" } else { "unhealthy" });
    Ok(if all_online { 0 } else { 1 })
}

fn run_inner(argv: Vec<OsString>) -> Result<i32> {
    let opts = parse(&argv);
    let home = Home::from_env()?;
    if opts.health {
        return health(&home);
    }
    if opts.start_args.is_empty() {
        anyhow::bail!(
            "usage: rpm2-runtime <app.js|ecosystem.config.js> [rpm2 start options] [--json] [--no-auto-exit]"
        );
    }
    // Become the reaper of every orphan below us (we are PID 1 in a container anyway).
    crate::base::platform::become_subreaper();
    // Signals are taken synchronously by the main thread (sigtimedwait); block them before any
    // thread exists so every thread inherits the mask.
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD, Signal::SIGHUP, Signal::SIGQUIT] {
        set.add(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("cannot block signals")?;

    let exe = std::env::current_exe().context("cannot find the rpm2 executable")?;
    let daemon_pid = {
        let c = Client::connect_or_start(&home, &exe)?;
        drop(c);
        std::fs::read_to_string(home.pid_file()).ok().and_then(|s| s.trim().parse::<i32>().ok()).unwrap_or(0)
    };
    eprintln!("[rpm2-runtime] daemon running (pid {daemon_pid}, home {})", home.root().display());

    // Stream logs before starting so the first lines are not missed.
    let log_client = Client::connect(&home)?;
    let sub = log_client.subscribe(&["log:out", "log:err"], &[])?;
    let json_logs = opts.json;
    std::thread::spawn(move || print_logs(sub, json_logs));

    let mut args: Vec<OsString> = vec!["rpm2".into(), "start".into(), "-s".into()];
    args.extend(opts.start_args.iter().cloned());
    let code = crate::cli::run(args);
    if code != 0 {
        stop_all(&home, daemon_pid);
        return Ok(code);
    }

    supervise(&home, &set, daemon_pid, opts.no_auto_exit)
}

/// Prints the apps' log lines as they come: stdout lines on stdout, stderr lines on stderr, raw or
/// (`--json`) one JSON object per line.
fn print_logs(sub: impl IntoIterator<Item = (String, Value)>, json_logs: bool) {
    use std::io::Write;
    for (topic, data) in sub {
        let text = data["data"].as_str().unwrap_or("");
        let err = topic == "log:err";
        for line in text.split_inclusive('\n') {
            let line = line.trim_end_matches('\n');
            let out = if json_logs {
                json!({"message": line, "timestamp": crate::base::fmt::iso_utc(data["at"].as_u64().unwrap_or(0)),
                    "type": if err { "err" } else { "out" }, "process_id": data["process"]["pm_id"],
                    "app_name": data["process"]["name"]})
                .to_string()
            } else {
                line.to_string()
            };
            if err {
                let _ = writeln!(std::io::stderr().lock(), "{out}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{out}");
            }
        }
    }
}

/// Waits for a stop signal (every app is stopped, exit 0) or for no app to run any more (unless
/// `no_auto_exit`): exits with 1 when one errored, else the first non-zero exit code. Reaps orphans.
fn supervise(home: &Home, set: &SigSet, daemon_pid: i32, no_auto_exit: bool) -> Result<i32> {
    let mut idle_checks = 0;
    loop {
        let sig = wait_signal(set, Duration::from_secs(2));
        reap_all();
        match sig {
            Some(Signal::SIGTERM) | Some(Signal::SIGINT) | Some(Signal::SIGQUIT) => {
                eprintln!("[rpm2-runtime] {} received: stopping every app", sig.map(|s| s.as_str()).unwrap_or(""));
                stop_all(home, daemon_pid);
                return Ok(0);
            }
            Some(_) => continue,
            None => {}
        }
        let list = match Client::connect(home).and_then(|mut c| c.call("list", json!({}))) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("[rpm2-runtime] the daemon stopped answering ({e:#}); exiting");
                return Ok(1);
            }
        };
        let procs: Vec<Value> = list.as_array().cloned().unwrap_or_default();
        let alive = procs.iter().any(|p| {
            matches!(p["pm2_env"]["status"].as_str(), Some("online" | "launching" | "waiting restart" | "stopping"))
        });
        if alive || no_auto_exit {
            idle_checks = 0;
            continue;
        }
        idle_checks += 1;
        if idle_checks >= 3 {
            let errored = procs.iter().any(|p| p["pm2_env"]["status"] == "errored");
            let code = if errored {
                1
            } else {
                procs.iter().filter_map(|p| p["pm2_env"]["exit_code"].as_i64()).find(|c| *c != 0).unwrap_or(0) as i32
            };
            eprintln!("[rpm2-runtime] no app is running any more; exiting with code {code}");
            stop_all(home, daemon_pid);
            return Ok(code);
        }
    }
}

fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
    crate::base::platform::wait_signal(set, timeout)
}

/// Reaps every exited child (orphans reparented to us included).
fn reap_all() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        }
    }
}

/// Stops every app gracefully (the daemon's `kill`) and waits for the daemon to exit.
fn stop_all(home: &Home, daemon_pid: i32) {
    if let Ok(mut c) = Client::connect(home) {
        let _ = c.call("kill", json!({}));
    }
    for _ in 0..3000 {
        reap_all();
        if daemon_pid <= 0 || !crate::base::procinfo::is_alive(daemon_pid as u32) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    reap_all();
}
