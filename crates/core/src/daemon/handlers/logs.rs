//! Log file methods: `flush`, `reloadLogs`.

use super::HResult;
use crate::daemon::state::{all_ids, handle_of, handles, resolve_targets, Daemon};
use crate::protocol::request::FlushParams;
use serde_json::{json, Value};

/// `flush {targets}`: empties the log files of the targets (all processes, and the daemon's own log,
/// when none); answers the app files emptied.
pub(super) fn flush(d: &Daemon, p: FlushParams) -> HResult {
    let ids = if p.targets.is_empty() { all_ids(d) } else { resolve_targets(d, &p.targets)? };
    let mut files = Vec::new();
    for id in ids {
        if let Some(h) = handle_of(d, id) {
            let paths = h.spec.borrow().1.clone();
            for f in [paths.out, paths.err, paths.combined].into_iter().flatten() {
                if f.exists() && std::fs::OpenOptions::new().write(true).truncate(true).open(&f).is_ok() {
                    files.push(f.display().to_string());
                }
            }
        }
    }
    if p.targets.is_empty() {
        // Every app's logs: the daemon's own log too (for the CLI and the API alike).
        let _ = std::fs::OpenOptions::new().write(true).truncate(true).open(d.home.daemon_log());
    }
    Ok(json!(files))
}

/// `reloadLogs`: every process reopens its log files (after an outside rotation).
pub(super) fn reload_logs(d: &Daemon) -> Value {
    for (_, h) in handles(d) {
        h.reload_logs();
    }
    json!({})
}
