//! The app table (`RPM2_HOME/apps.json` via [`Home::state_file`]): saved atomically after every
//! change, restored when the daemon starts, and used without a daemon to stop the processes a dead
//! daemon left behind.

use super::state::{handles, register, Daemon};
use crate::base::dlog;
use crate::base::paths::{write_atomic, Home};
use crate::base::procinfo;
use crate::config::spec::AppSpec;
use crate::supervisor::{Op, ProcState, Status};
use anyhow::Result;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The persisted form of one process.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedProc {
    pm_id: u32,
    instance: u32,
    unique_id: String,
    spec: AppSpec,
    state: ProcState,
    /// The start time (clock ticks since boot) of `state.pid`, to tell it from a reused pid.
    #[serde(default)]
    pid_start: Option<u64>,
}

/// The persisted app table.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedTable {
    version: u32,
    next_id: u32,
    apps: Vec<SavedProc>,
}

/// Saves the table shortly after each change (changes within 20 ms are saved once).
pub(crate) async fn persister(d: Arc<Daemon>) {
    loop {
        d.changed.notified().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !d.persisting() {
            continue;
        }
        if let Err(e) = persist(&d) {
            dlog(format!("cannot save the app table: {e:#}"));
        }
    }
}

/// Saves the app table now (atomically, 0600).
pub(crate) fn persist(d: &Daemon) -> Result<()> {
    let table = {
        let r = d.registry.lock().map_err(|_| anyhow::anyhow!("registry poisoned"))?;
        SavedTable {
            version: 1,
            next_id: r.next_id,
            apps: r
                .procs
                .iter()
                .map(|(id, e)| {
                    let state = e.handle.state.borrow().clone();
                    let spec = e.handle.spec.borrow().0.as_ref().clone();
                    let pid_start = state.pid.and_then(procinfo::stat).map(|s| s.start_time);
                    SavedProc {
                        pm_id: *id,
                        instance: e.instance,
                        unique_id: e.unique_id.clone(),
                        spec,
                        state,
                        pid_start,
                    }
                })
                .collect(),
        }
    };
    let data = serde_json::to_vec_pretty(&table)?;
    write_atomic(&d.home.state_file(), &data, 0o600)
}

/// Brings back the apps of the persisted table: apps that were running are started again (a
/// process left over from the previous daemon is stopped first, so nothing runs twice); stopped apps
/// stay stopped.
pub(crate) async fn restore(d: &Arc<Daemon>) {
    let path = d.home.state_file();
    let Ok(data) = std::fs::read(&path) else {
        return;
    };
    let table: SavedTable = match serde_json::from_slice(&data) {
        Ok(t) => t,
        Err(e) => {
            let bad = path.with_extension("json.corrupt");
            let _ = std::fs::rename(&path, &bad);
            dlog(format!("app table {} is unreadable ({e}); kept as {}", path.display(), bad.display()));
            return;
        }
    };
    let mut starts = Vec::new();
    for mut p in table.apps {
        // A table written before the options were typed: parse them once, here.
        p.spec.fill_options();
        if let (Some(pid), Some(st)) = (p.state.pid, p.pid_start) {
            if procinfo::stat(pid).map(|s| s.start_time) == Some(st) {
                dlog(format!(
                    "App [{}:{}] left running by the previous daemon (pid {pid}); stopping it",
                    p.spec.name, p.pm_id
                ));
                stop_orphan(pid, p.spec.kill_timeout).await;
            }
        }
        let run =
            matches!(p.state.status, Status::Online | Status::Launching | Status::WaitingRestart | Status::Stopping);
        let mut state = p.state.clone();
        state.pid = None;
        if state.status != Status::Errored {
            state.status = Status::Stopped;
        }
        let h = register(d, p.pm_id, p.instance, p.unique_id, Arc::new(p.spec), state);
        if run {
            starts.push(h);
        }
    }
    if let Ok(mut r) = d.registry.lock() {
        r.next_id = r.next_id.max(table.next_id);
    }
    for h in starts {
        h.tell(Op::Start);
    }
}

/// Without a daemon (it died): stops every process the persisted table says is still running (the
/// same process: pid and start time match), then empties the table. Returns how many were stopped.
pub fn kill_orphans(home: &Home) -> usize {
    let Ok(data) = std::fs::read(home.state_file()) else { return 0 };
    let Ok(table) = serde_json::from_slice::<SavedTable>(&data) else { return 0 };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return 0 };
    let mut n = 0;
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for p in &table.apps {
            if let (Some(pid), Some(st)) = (p.state.pid, p.pid_start) {
                if procinfo::stat(pid).map(|s| s.start_time) == Some(st) {
                    n += 1;
                    set.spawn(stop_orphan(pid, p.spec.kill_timeout));
                }
            }
        }
        while set.join_next().await.is_some() {}
    });
    let empty = SavedTable { version: 1, next_id: 0, apps: vec![] };
    if let Ok(bytes) = serde_json::to_vec_pretty(&empty) {
        let _ = write_atomic(&home.state_file(), &bytes, 0o600);
    }
    n
}

/// Stops a process group left behind: SIGINT, then SIGKILL after `kill_timeout` ms.
async fn stop_orphan(pid: u32, kill_timeout: u64) {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(-(pid as i32)), Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_millis(kill_timeout);
    while procinfo::is_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = kill(Pid::from_raw(-(pid as i32)), Signal::SIGKILL);
}

/// Stops every process but keeps the app table as it is (daemon shutdown): saving stops first, so
/// the table still says which apps were running.
pub(crate) async fn stop_all_keep(d: &Arc<Daemon>) {
    d.stop_persisting();
    let mut set = tokio::task::JoinSet::new();
    for (_, h) in handles(d) {
        set.spawn(h.stop());
    }
    while set.join_next().await.is_some() {}
}
