//! The daemon's side of automatic restarts (file changes, cron, memory limits) and of watching
//! controls: hands the triggers the current apps and carries out their fires.

use super::state::{handle_of, handles, Daemon};
use crate::base::dlog;
use crate::config::spec::ExecMode;
use crate::protocol::request::WatchChange;
use crate::supervisor::triggers::{AppView, Fire};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Hands the triggers the current apps (one entry per name, with every instance's own files).
pub(crate) fn sync_triggers(d: &Daemon) {
    let mut apps: Vec<AppView> = Vec::new();
    for (_, h) in handles(d) {
        let (spec, paths) = h.spec.borrow().clone();
        let files = [paths.out, paths.err, paths.combined, Some(paths.pid)].into_iter().flatten();
        match apps.iter_mut().find(|a| a.spec.name == spec.name) {
            Some(a) => a.log_files.extend(files),
            None => apps.push(AppView { spec, log_files: files.collect() }),
        }
    }
    d.triggers.sync(&apps);
}

/// Carries out the triggers' restarts (each on its own task) and acknowledges them.
pub(crate) async fn trigger_task(d: Arc<Daemon>, mut fires: mpsc::UnboundedReceiver<Fire>) {
    while let Some(f) = fires.recv().await {
        let d = d.clone();
        tokio::spawn(async move {
            let spawned = if d.persisting() { run_fire(&d, &f).await } else { None };
            d.triggers.done(&f, spawned);
        });
    }
}

/// Restarts the fire's processes; returns when the first new process was spawned (epoch ms).
async fn run_fire(d: &Daemon, f: &Fire) -> Option<u64> {
    let ids: Vec<u32> = match &f.ids {
        Some(ids) => ids.clone(),
        None => handles(d).into_iter().filter(|(_, h)| h.spec.borrow().0.name == f.app).map(|(id, _)| id).collect(),
    };
    let first = ids.first().and_then(|id| handle_of(d, *id))?;
    let cluster = first.spec.borrow().0.exec_mode == ExecMode::Cluster;
    let (reason, graceful) = (f.reason.clone(), f.graceful);
    let mut errors = Vec::new();
    if graceful && cluster {
        // A rolling reload, one instance at a time, as `rpm2 reload`.
        for &id in &ids {
            let Some(h) = handle_of(d, id) else { continue };
            let reason = reason.clone();
            if let Err(e) = h.trigger(reason, graceful).await {
                errors.push(e);
                break;
            }
        }
    } else {
        let mut set = tokio::task::JoinSet::new();
        for &id in &ids {
            let Some(h) = handle_of(d, id) else { continue };
            let reason = reason.clone();
            set.spawn(h.trigger(reason, graceful));
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Err(e)) = r {
                errors.push(e);
            }
        }
    }
    for e in errors {
        dlog(format!("App [{}]: automatic restart ({}) failed: {e}", f.app, f.reason));
    }
    ids.iter()
        .filter_map(|id| handle_of(d, *id))
        .filter_map(|h| {
            let st = h.state.borrow();
            st.pid.map(|_| st.pm_uptime)
        })
        .min()
}

/// `stop` turns watching off (as PM2); `restart` with `watch: "toggle"` (CLI `--watch`) toggles it per
/// app, `watch: true|false` sets it; a restart or reload by hand resumes a watch the loop breaker paused.
/// `method` is the wire name of the request.
pub(crate) async fn watch_controls(d: &Daemon, method: &str, watch: Option<WatchChange>, ids: &[u32]) {
    let mut wanted: HashMap<String, bool> = HashMap::new();
    for &id in ids {
        let Some(h) = handle_of(d, id) else { continue };
        let (name, watching) = {
            let s = h.spec.borrow();
            (s.0.name.clone(), s.0.watch)
        };
        let on = match (method, watch) {
            ("stop", _) => Some(false),
            ("restart" | "reload", Some(WatchChange::Toggle)) => Some(*wanted.entry(name.clone()).or_insert(!watching)),
            ("restart" | "reload", Some(WatchChange::Set(b))) => Some(b),
            _ => None,
        };
        if matches!(method, "restart" | "reload") {
            d.triggers.resume(&name);
        }
        if let Some(on) = on {
            if on != watching {
                let _ = h.set_watch(on).await;
            }
        }
    }
}
