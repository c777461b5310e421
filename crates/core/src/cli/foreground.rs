//! The foreground mode shared by `rpm2-runtime` and `rpm2 start --no-daemon` (or `RPM2_NO_DAEMON=1`):
//! starts the daemon and the apps, streams the apps' logs to this process's stdout/stderr, reaps
//! orphans (child subreaper, for PID 1 in a container), turns SIGTERM/SIGINT/SIGQUIT into a graceful
//! stop of every app, and returns an exit code that says how it ended: 0 after a requested stop, 1
//! when an app is errored (or the daemon stopped answering), else the first non-zero exit code of an
//! app, once no app runs any more.

use crate::base::paths::Home;
use crate::client::Client;
use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How a foreground run behaves.
pub struct Foreground {
    /// Print the apps' log lines as JSON objects (one per line) instead of raw.
    pub json_logs: bool,
    /// Keep running when no app runs any more (until a stop signal).
    pub no_auto_exit: bool,
    /// The tag of this mode's own lines on stderr (`rpm2-runtime`, `rpm2`).
    pub tag: &'static str,
    /// Serve `/healthz` and `/readyz` on this host and port (`rpm2-runtime --health-port`).
    pub health_port: Option<(String, u16)>,
}

/// Set while a foreground run starts its apps: the `start` it runs must not go foreground again
/// (`RPM2_NO_DAEMON=1` is still in the environment then).
static IN_FOREGROUND: AtomicBool = AtomicBool::new(false);

/// Whether this process is already running in the foreground mode.
pub(crate) fn active() -> bool {
    IN_FOREGROUND.load(Ordering::Relaxed)
}

/// `--health`: 0 when the daemon answers and every app is online, 1 otherwise (for probes).
pub fn health(home: &Home) -> Result<i32> {
    let mut c = Client::connect(home)?;
    let list = c.processes()?;
    let all_online = !list.is_empty() && list.iter().all(|p| p.pm2_env.status == "online");
    println!("{}", if all_online { "healthy" } else { "unhealthy" });
    Ok(if all_online { 0 } else { 1 })
}

/// Runs in the foreground: blocks the stop signals (call it before this process has other
/// threads), starts the daemon, streams logs, runs `start` (which starts the apps and returns an exit
/// code: not 0 stops everything and returns it), then supervises until a stop signal or until no app
/// runs. Returns the exit code described in the module doc.
pub fn run(home: &Home, fg: &Foreground, start: &mut dyn FnMut() -> i32) -> Result<i32> {
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
        let c = Client::connect_or_start(home, &exe)?;
        drop(c);
        std::fs::read_to_string(home.pid_file()).ok().and_then(|s| s.trim().parse::<i32>().ok()).unwrap_or(0)
    };
    eprintln!("[{}] daemon running (pid {daemon_pid}, home {})", fg.tag, home.root().display());
    if let Some((host, port)) = &fg.health_port {
        if let Err(e) = super::health_http::serve(home, host, *port) {
            stop_all(home, daemon_pid);
            return Err(e);
        }
        eprintln!("[{}] serving /healthz and /readyz on {host}:{port}", fg.tag);
    }

    // Stream logs before starting so the first lines are not missed.
    let log_client = Client::connect(home)?;
    let sub = log_client.subscribe(&["log:out", "log:err"], &[])?;
    let json_logs = fg.json_logs;
    std::thread::spawn(move || print_logs(sub, json_logs));

    IN_FOREGROUND.store(true, Ordering::Relaxed);
    let code = start();
    if code != 0 {
        stop_all(home, daemon_pid);
        return Ok(code);
    }
    supervise(home, &set, daemon_pid, fg)
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
fn supervise(home: &Home, set: &SigSet, daemon_pid: i32, fg: &Foreground) -> Result<i32> {
    let mut idle_checks = 0;
    loop {
        let sig = wait_signal(set, Duration::from_secs(2));
        reap_all();
        match sig {
            Some(Signal::SIGTERM) | Some(Signal::SIGINT) | Some(Signal::SIGQUIT) => {
                eprintln!("[{}] {} received: stopping every app", fg.tag, sig.map(|s| s.as_str()).unwrap_or(""));
                stop_all(home, daemon_pid);
                return Ok(0);
            }
            Some(_) => continue,
            None => {}
        }
        let procs = match Client::connect(home).and_then(|mut c| c.processes()) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("[{}] the daemon stopped answering ({e:#}); exiting", fg.tag);
                return Ok(1);
            }
        };
        let alive = procs
            .iter()
            .any(|p| matches!(p.pm2_env.status.as_str(), "online" | "launching" | "waiting restart" | "stopping"));
        if alive || fg.no_auto_exit {
            idle_checks = 0;
            continue;
        }
        idle_checks += 1;
        if idle_checks >= 3 {
            let errored = procs.iter().any(|p| p.pm2_env.status == "errored");
            let code = if errored {
                1
            } else {
                procs.iter().filter_map(|p| p.pm2_env.exit_code).find(|c| *c != 0).unwrap_or(0)
            };
            eprintln!("[{}] no app is running any more; exiting with code {code}", fg.tag);
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
