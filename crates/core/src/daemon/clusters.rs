//! The cluster primaries of cluster-mode apps: created on first use, their listeners closed when
//! no process of the app runs any more.

use super::state::{cluster_of, handle_of, handles, Daemon};
use crate::cluster::ClusterApp;
use crate::config::spec::ExecMode;
use crate::supervisor::Status;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Closes the listening sockets of cluster apps none of whose processes runs any more (after a stop
/// or delete); forgets the primaries of apps that no longer exist.
pub(crate) fn release_clusters(d: &Daemon) {
    let mut running: HashMap<String, bool> = HashMap::new();
    for (_, h) in handles(d) {
        let name = h.spec.borrow().0.name.clone();
        let alive = !matches!(h.state.borrow().status, Status::Stopped | Status::Errored);
        *running.entry(name).or_default() |= alive;
    }
    if let Ok(mut m) = d.clusters.lock() {
        m.retain(|name, app| match running.get(name) {
            None => {
                app.close_all();
                false
            }
            Some(false) => {
                app.close_all();
                true
            }
            Some(true) => true,
        });
    }
}

/// After an app was restarted or reloaded with a new declaration (it may listen elsewhere now): once
/// its workers had time to listen (listen_timeout + 1 s), close the listeners no worker uses, so an
/// old port refuses connections instead of queueing them forever.
pub(crate) fn prune_listeners_later(d: &Arc<Daemon>, ids: &[u32]) {
    let mut apps: Vec<(Arc<ClusterApp>, u64)> = Vec::new();
    for id in ids {
        let Some(h) = handle_of(d, *id) else { continue };
        let spec = h.spec.borrow().0.clone();
        if spec.exec_mode != ExecMode::Cluster {
            continue;
        }
        let app = cluster_of(d, &spec);
        if !apps.iter().any(|(a, _)| Arc::ptr_eq(a, &app)) {
            apps.push((app, spec.listen_timeout));
        }
    }
    for (app, wait) in apps {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait.saturating_add(1000))).await;
            app.prune_unused();
        });
    }
}
