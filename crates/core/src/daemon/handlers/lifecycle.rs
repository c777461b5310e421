//! Daemon lifecycle methods: `kill` (delete everything, stop) and `shutdown` (stop, keep the table).

use super::{herr, on_each, HResult};
use crate::base::dlog;
use crate::daemon::persist::{persist, stop_all_keep};
use crate::daemon::state::{all_ids, Daemon};
use crate::protocol::ErrorCode;
use crate::supervisor::Op;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Stops serving shortly, once the reply had time to go out.
fn shutdown_soon(d: &Arc<Daemon>) {
    let d2 = d.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        d2.shutdown.notify_one();
    });
}

/// `kill`: deletes every process, saves the (now empty) table and stops the daemon.
pub(super) async fn kill(d: &Arc<Daemon>) -> Value {
    let ids = all_ids(d);
    on_each(d, &ids, |_| Some(Op::Delete)).await.ok();
    if let Ok(mut r) = d.registry.lock() {
        r.procs.clear();
        r.next_id = 0;
    }
    if let Err(e) = persist(d) {
        dlog(format!("cannot save the app table: {e:#}"));
    }
    d.stop_persisting();
    shutdown_soon(d);
    json!({"success": true, "stopped": ids.len()})
}

/// `shutdown`: stops every app gracefully but keeps the app table, so the next daemon (e.g. a newer
/// version after `rpm2 update`) starts them again; then stops the daemon.
pub(super) async fn shutdown(d: &Arc<Daemon>) -> HResult {
    if let Err(e) = persist(d) {
        return Err(herr(ErrorCode::Io, format!("cannot save the app table before shutting down: {e:#}")));
    }
    stop_all_keep(d).await;
    shutdown_soon(d);
    Ok(json!({"success": true}))
}
