//! `dump`: saves the app list to `RPM2_HOME/dump.rpm2` for `rpm2 resurrect`.

use super::{herr, HResult};
use crate::base::fmt::now_ms;
use crate::base::paths::write_atomic;
use crate::daemon::state::{handles, Daemon};
use crate::protocol::request::DumpParams;
use crate::protocol::ErrorCode;
use crate::supervisor::Status;
use serde_json::{json, Value};
use std::path::Path;

/// `dump {force, node}`: writes the app list to `RPM2_HOME/dump.rpm2` (atomically, 0600, the previous
/// dump kept as `dump.rpm2.bak`). An empty list does not replace a non-empty dump unless `force`.
pub(super) fn handle(d: &Daemon, p: DumpParams) -> HResult {
    let apps = saved_apps(d);
    let path = d.home.root().join("dump.rpm2");
    if apps.is_empty() && !p.force && path.exists() {
        refuse_to_empty(&path)?;
    }
    let doc = json!({
        "format": 1,
        "rpm2": crate::VERSION,
        "saved_at": now_ms(),
        "node": p.node,
        "apps": apps,
    });
    let data = serde_json::to_vec_pretty(&doc).map_err(|e| herr(ErrorCode::Internal, e.to_string()))?;
    if path.exists() {
        let bak = d.home.root().join("dump.rpm2.bak");
        if let Ok(old) = std::fs::read(&path) {
            if serde_json::from_slice::<Value>(&old).is_ok() {
                write_atomic(&bak, &old, 0o600).map_err(|e| herr(ErrorCode::Io, format!("{e:#}")))?;
            }
        }
    }
    write_atomic(&path, &data, 0o600)
        .map_err(|e| herr(ErrorCode::Io, format!("cannot save the app list: {e:#} (the previous dump is intact)")))?;
    Ok(json!({"path": path, "count": doc["apps"].as_array().map(|a| a.len()).unwrap_or(0)}))
}

/// One `{spec, status}` per app name (instances are in the spec), in id order.
fn saved_apps(d: &Daemon) -> Vec<Value> {
    let mut apps: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, h) in handles(d) {
        let spec = h.spec.borrow().0.clone();
        if !seen.insert(spec.name.clone()) {
            continue; // one entry per app: instances are in the spec
        }
        let count = handles(d).iter().filter(|(_, o)| o.spec.borrow().0.name == spec.name).count() as u32;
        let mut spec = spec.as_ref().clone();
        spec.instances = count.max(1);
        let status = h.state.borrow().status;
        let running = !matches!(status, Status::Stopped | Status::Errored);
        apps.push(json!({"spec": spec, "status": if running { "online" } else { "stopped" }}));
    }
    apps
}

/// Fails when the dump at `path` lists apps (an empty list must not replace it without `force`).
fn refuse_to_empty(path: &Path) -> Result<(), super::HandlerError> {
    let existing = std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let n = existing.as_ref().and_then(|v| v.get("apps")).and_then(|a| a.as_array()).map(|a| a.len()).unwrap_or(0);
    if n > 0 {
        return Err(herr(
            ErrorCode::Empty,
            format!(
                "no app is running: not replacing the saved list of {n} app(s) in {} (use --force)",
                path.display()
            ),
        ));
    }
    Ok(())
}
