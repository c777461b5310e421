//! The daemon's own log (`rpm2.log`): the `log` facade's sink, and the file stdout/stderr point at.

use super::*;

/// The `log` facade's sink in the daemon: each record of rpm2's own modules (see [`crate::base::dlog`])
/// becomes one timestamped line of the daemon log ([`daemon_log_line`]); records of other crates are
/// dropped.
pub(super) struct DaemonLogger;

impl log::Log for DaemonLogger {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.target().starts_with("rpm2")
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let at = fmt::format_date(fmt::now_ms(), "YYYY-MM-DDTHH:mm:ss");
            daemon_log_line(&format!("{at}: rpm2: {}", record.args()));
        }
    }
    fn flush(&self) {}
}

pub(super) static DAEMON_LOGGER: DaemonLogger = DaemonLogger;

/// Routes [`crate::base::dlog`] to the daemon log for the rest of this process. Called once by the
/// daemon at start; a second call (or another logger already set) changes nothing.
pub fn install_daemon_logger() {
    if log::set_logger(&DAEMON_LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

pub(super) struct DaemonLog {
    pub(super) path: Option<PathBuf>,
    /// Whether our stderr is that file (decided at the first line).
    pub(super) owned: Option<bool>,
    pub(super) rotation: Rotation,
}

pub(super) static DAEMON_LOG: Mutex<Option<DaemonLog>> = Mutex::new(None);

pub(super) fn reopen_stdio(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(f) = OpenOptions::new().create(true).append(true).mode(0o600).open(path) {
        let _ = nix::unistd::dup2_stdout(&f);
        let _ = nix::unistd::dup2_stderr(&f);
    }
}

/// Writes one line to the daemon's stderr (never panics), and when stderr is `RPM2_HOME/rpm2.log`
/// rotates it past the size limit ([`Rotation::defaults`] from the daemon's environment) and follows
/// an external rename (logrotate) by reopening it.
pub fn daemon_log_line(line: &str) {
    {
        let mut err = std::io::stderr().lock();
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let _ = err.write_all(&buf);
    }
    let Ok(mut guard) = DAEMON_LOG.lock() else { return };
    let st = guard.get_or_insert_with(|| DaemonLog {
        // The file our stderr was opened on (before any rename), else RPM2_HOME's.
        path: crate::base::platform::fd_path(2)
            .filter(|p| p.file_name().map(|n| n == "rpm2.log").unwrap_or(false))
            .or_else(|| Home::from_env().ok().map(|h| h.daemon_log())),
        owned: None,
        rotation: Rotation::defaults(&|k| std::env::var(k).ok()),
    });
    let Some(path) = st.path.clone() else { return };
    let Ok(sb) = nix::sys::stat::fstat(std::io::stderr()) else { return };
    if (sb.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return;
    }
    // dev_t is i32 on macOS and u64 on Linux: the casts make one type everywhere.
    #[allow(clippy::unnecessary_cast)]
    let fd_id = (sb.st_dev as u64, sb.st_ino as u64);
    let at_path = std::fs::metadata(&path).ok().map(|m| file_id(&m));
    let owned = *st.owned.get_or_insert(at_path == Some(fd_id));
    if !owned {
        return;
    }
    if at_path != Some(fd_id) {
        reopen_stdio(&path);
        return;
    }
    let max = st.rotation.max_size;
    if max == 0 || (sb.st_size as u64) < max {
        return;
    }
    let target = rotated_path(&path, fmt::now_ms());
    if std::fs::rename(&path, &target).is_ok() {
        reopen_stdio(&path);
        let rotation = st.rotation.clone();
        drop(guard); // finish_rotation may log
        finish_rotation(path, target, rotation);
    }
}
