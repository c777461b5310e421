//! Deadlines for requests to the daemon, and stopping a daemon that does not answer.
//!
//! Every request has a deadline, so that a frozen daemon (SIGSTOPped, under a debugger, stuck) never
//! hangs a command or a Promise:
//! - a query (`list`, `describe`, `ping`, ...) must be answered within [`query_timeout`]
//!   (`RPM2_TIMEOUT_MS`, default 5 s);
//! - an operation that waits on processes (`start`, `restart`, `reload`, `stop`, `delete`, `scale`,
//!   `kill`, and any method this client does not know) may legitimately take long (listen timeouts,
//!   kill timeouts, many instances): while it runs, the client checks every [`query_timeout`] that
//!   the daemon still answers a `hello` on a second connection, and gives up only when it does not,
//!   or after [`operation_timeout`] (`RPM2_OP_TIMEOUT_MS`, default 10 min, 0 for none).
//!
//! Either way the error is one line: "the rpm2 daemon (pid N, home H) does not answer ...".

use crate::base::paths::Home;
use crate::base::procinfo;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The default deadline of a query, in ms (`RPM2_TIMEOUT_MS` overrides it).
pub const DEFAULT_QUERY_TIMEOUT_MS: u64 = 5_000;
/// The default cap of an operation, in ms (`RPM2_OP_TIMEOUT_MS` overrides it; 0 = no cap).
pub const DEFAULT_OPERATION_TIMEOUT_MS: u64 = 600_000;

fn env_ms(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok())
}

/// How long a query may wait for its answer (`RPM2_TIMEOUT_MS`, default 5 s, at least 1 ms). This
/// is also the interval of the liveness checks during long operations.
pub fn query_timeout() -> Duration {
    Duration::from_millis(env_ms("RPM2_TIMEOUT_MS").unwrap_or(DEFAULT_QUERY_TIMEOUT_MS).max(1))
}

/// The cap on an operation while the daemon keeps answering (`RPM2_OP_TIMEOUT_MS`, default 10 min);
/// None when set to 0 (no cap).
pub fn operation_timeout() -> Option<Duration> {
    match env_ms("RPM2_OP_TIMEOUT_MS").unwrap_or(DEFAULT_OPERATION_TIMEOUT_MS) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// Whether `method` is a query, answered at once by a healthy daemon. Everything else (including
/// methods this client does not know) is an operation that may wait on processes.
pub fn is_query(method: &str) -> bool {
    matches!(
        method,
        "hello"
            | "ping"
            | "version"
            | "info"
            | "list"
            | "describe"
            | "subscribe"
            | "signal"
            | "send"
            | "flush"
            | "reloadLogs"
            | "dump"
            | "reset"
    )
}

/// The daemon did not answer in time. Its message is the one line people see.
#[derive(Debug, Clone)]
pub struct NotAnswering {
    /// The daemon's pid from its pid file (0 when unknown).
    pub pid: u32,
    /// The one-line message.
    pub message: String,
}

impl std::fmt::Display for NotAnswering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for NotAnswering {}

/// The pid in the home's pid file, when it names a live process.
pub fn daemon_pid(home_root: &Path) -> Option<u32> {
    let pid = std::fs::read_to_string(Home::at(home_root).pid_file()).ok()?.trim().parse::<u32>().ok()?;
    (pid > 0 && procinfo::is_alive(pid)).then_some(pid)
}

/// The error for a daemon that did not answer `method` within `waited`.
pub fn not_answering(home_root: &Path, method: &str, waited: Duration) -> NotAnswering {
    let pid = daemon_pid(home_root).unwrap_or(0);
    let who = if pid > 0 { format!("pid {pid}") } else { "pid unknown".to_string() };
    NotAnswering {
        pid,
        message: format!(
            "the rpm2 daemon ({who}, home {}) does not answer (no reply to `{method}` in {}): \
             `rpm2 kill` stops it and its apps",
            home_root.display(),
            human(waited)
        ),
    }
}

fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// Whether the daemon on `socket` answers a `hello` within `limit` (on a connection of its own).
pub fn answers(socket: &Path, limit: Duration) -> bool {
    let Ok(s) = UnixStream::connect(socket) else { return false };
    let _ = s.set_read_timeout(Some(limit));
    let _ = s.set_write_timeout(Some(limit));
    let Ok(mut w) = s.try_clone() else { return false };
    let hello = serde_json::json!({"id": 1, "method": "hello",
        "params": {"protocol": crate::protocol::PROTOCOL_VERSION, "version": crate::VERSION}});
    let mut line = hello.to_string();
    line.push('\n');
    if w.write_all(line.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let ok = matches!(BufReader::new(s).read_line(&mut reply), Ok(n) if n > 0);
    let _ = w.shutdown(std::net::Shutdown::Both);
    ok
}

/// Whether a process `pid` looks like an rpm2 daemon (its command line has `--daemon`), so that a
/// stale pid file never makes us signal a stranger.
fn is_daemon_process(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|a| a == b"--daemon"))
        .unwrap_or(false)
}

/// How many app processes the pid files of `home` name that are alive.
fn live_apps(home: &Home) -> u64 {
    let Ok(rd) = std::fs::read_dir(home.pids_dir()) else { return 0 };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| s.trim().parse::<u32>().ok())
        .filter(|p| *p > 0 && procinfo::is_alive(*p))
        .count() as u64
}

/// Stops a daemon that does not answer: SIGCONT (it may be stopped), SIGTERM (it stops its apps and
/// keeps the table), SIGKILL after 3 s, then stops every app its persisted table still lists as
/// alive and removes the socket. Returns how many app processes were alive before.
pub fn force_kill(home: &Home, pid: u32) -> u64 {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let before = live_apps(home);
    if pid > 0 && procinfo::is_alive(pid) && is_daemon_process(pid) {
        let p = Pid::from_raw(pid as i32);
        crate::base::dlog(format!("rpm2 kill: the daemon (pid {pid}) does not answer: SIGCONT, SIGTERM"));
        let _ = kill(p, Signal::SIGCONT);
        let _ = kill(p, Signal::SIGTERM);
        for _ in 0..300 {
            if !procinfo::is_alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if procinfo::is_alive(pid) {
            let _ = kill(p, Signal::SIGKILL);
            for _ in 0..300 {
                if !procinfo::is_alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    crate::daemon::kill_orphans(home);
    if daemon_pid(home.root()).is_none() {
        let _ = std::fs::remove_file(home.socket());
        let _ = std::fs::remove_file(home.pid_file());
    }
    before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_operations() {
        assert!(is_query("list") && is_query("hello") && is_query("describe"));
        assert!(!is_query("start") && !is_query("reload") && !is_query("somethingNew"));
    }

    #[test]
    fn message_is_one_line_with_pid_and_home() {
        let dir = std::env::temp_dir().join(format!("rpm2-deadline-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(Home::at(&dir).pid_file(), std::process::id().to_string()).unwrap();
        let e = not_answering(&dir, "list", Duration::from_millis(1500));
        assert!(!e.message.contains('\n'));
        assert!(e.message.starts_with(&format!(
            "the rpm2 daemon (pid {}, home {}) does not answer",
            std::process::id(),
            dir.display()
        )));
        assert!(e.message.contains("1.5 s"), "{}", e.message);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nobody_answers_on_a_missing_socket() {
        assert!(!answers(Path::new("/nonexistent/rpm2.sock"), Duration::from_millis(50)));
    }
}
