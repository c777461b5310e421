//! `report`: what a bug report needs (PM2's `pm2 report`), built once for the CLI and the API:
//! versions, the daemon, this client, the system, every app with its last log lines, and the end of
//! the daemon log.

use super::env::node_info;
use super::Client;
use crate::base::paths::Home;
use crate::logs::tail_lines;
use serde_json::{json, Value};
use std::path::Path;

/// Lines of the daemon log in a report.
pub const DAEMON_LOG_LINES: usize = 20;
/// Lines of each app log file in a report.
pub const APP_LOG_LINES: usize = 5;

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn tail(path: Option<&str>, n: usize) -> Vec<String> {
    match path.filter(|p| !p.is_empty() && *p != "/dev/null") {
        Some(p) => tail_lines(Path::new(p), n).unwrap_or_default(),
        None => vec![],
    }
}

/// The report. `client` is a connection to the daemon, or None when none runs (the daemon part is
/// then `null` and the app list empty). Never fails: what cannot be read is left out.
pub fn build(home: &Home, client: Option<&mut Client>) -> Value {
    let (daemon, list) = match client {
        Some(c) => (c.call("info", json!({})).ok(), c.processes().ok()),
        None => (None, None),
    };
    let apps: Vec<Value> = list
        .iter()
        .flatten()
        .map(|p| {
            let e = &p.pm2_env;
            json!({
                "name": p.name, "pm_id": p.pm_id, "namespace": e.namespace, "status": e.status,
                "pid": p.pid, "exec_mode": e.exec_mode, "restart_time": e.restart_time,
                "unstable_restarts": e.unstable_restarts, "pm_exec_path": e.pm_exec_path,
                "memory": p.monit.memory, "cpu": p.monit.cpu,
                "out_log": tail(Some(&e.pm_out_log_path), APP_LOG_LINES),
                "err_log": tail(Some(&e.pm_err_log_path), APP_LOG_LINES),
            })
        })
        .collect();
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    json!({
        "date": crate::base::fmt::now_ms(),
        "daemon": daemon,
        "cli": {
            "rpm2_version": crate::VERSION,
            "node": node_info(),
            "argv": std::env::args().collect::<Vec<_>>(),
            "user": std::env::var("USER").unwrap_or_default(),
            "uid": uid,
            "gid": gid,
            "home": home.root(),
        },
        "system": {
            "arch": std::env::consts::ARCH,
            "platform": std::env::consts::OS,
            "cpus": cpu_model(),
            "cpus_nb": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "freemem": meminfo("MemAvailable:"),
            "totalmem": meminfo("MemTotal:"),
        },
        "apps": apps,
        "daemon_log": tail_lines(&home.daemon_log(), DAEMON_LOG_LINES).unwrap_or_default(),
    })
}
