//! The app table (`RPM2_HOME/apps.json` via [`Home::state_file`]): saved atomically after every
//! change, restored when the daemon starts, and used without a daemon to stop the processes a dead
//! daemon left behind.

use super::state::{handles, register, Daemon};
use crate::base::dlog;
use crate::base::paths::Home;
use crate::base::procinfo;
use crate::config::spec::AppSpec;
use crate::supervisor::{Op, ProcState, Status};
use anyhow::{Context, Result};
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
    save_table(&d.home, &data)
}

/// The previous table, kept while a new one is put in place (see [`save_table`]).
fn prev_file(home: &Home) -> std::path::PathBuf {
    home.state_file().with_extension("json.prev")
}

/// Puts `data` in place as the table, with no fsync: the table has to survive the daemon's death,
/// not the machine's (the apps die with the machine; boot restores them from the `rpm2 save`
/// dump), and a flush would cost every `start` a disk write. Nor a rename over an existing file:
/// on ext4 that starts the new file's writeback at once (auto_da_alloc), about 0.4 ms of each
/// `start`. The current table moves aside to `apps.json.prev` (a name freed just before), then the
/// new one takes its name. A daemon killed between the two renames leaves no `apps.json`, and
/// [`read_table`] reads the `.prev` one: the table before this change, whose request had no reply.
fn save_table(home: &Home, data: &[u8]) -> Result<()> {
    let path = home.state_file();
    let tmp = path.with_extension("json.next");
    crate::base::paths::write_file(&tmp, data, 0o600)?;
    let prev = prev_file(home);
    let _ = std::fs::remove_file(&prev);
    let writable = || format!("check that {} is writable and its disk not full", home.root().display());
    match std::fs::rename(&path, &prev) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e)
                .with_context(|| format!("cannot move {} to {}: {}", path.display(), prev.display(), writable()));
        }
        _ => {}
    }
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot rename {} to {}: {}", tmp.display(), path.display(), writable()))
}

/// The saved table's bytes: `apps.json`, or `apps.json.prev` when a daemon died while saving (no
/// `apps.json`); None when neither exists or can be read.
fn read_table(home: &Home) -> Option<Vec<u8>> {
    match std::fs::read(home.state_file()) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::read(prev_file(home)).ok(),
        Err(_) => None,
    }
}

/// Brings back the apps of the persisted table: apps that were running are started again (a
/// process left over from the previous daemon is stopped first, so nothing runs twice); stopped apps
/// stay stopped.
pub(crate) async fn restore(d: &Arc<Daemon>) {
    stop_untracked(d).await;
    let path = d.home.state_file();
    let Some(data) = read_table(&d.home) else {
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
    // Processes the previous daemon started but had not saved yet (it died within the save delay).
    for pid in untracked_apps(&d.home) {
        dlog(format!(
            "A process left running by the previous daemon and missing from its table (pid {pid}); stopping it"
        ));
        stop_orphan(pid, 1600).await;
    }
    if let Ok(mut r) = d.registry.lock() {
        r.next_id = r.next_id.max(table.next_id);
    }
    for h in starts {
        h.tell(Op::Start);
    }
}

/// Without a daemon (it died): stops every process the persisted table says is still running (the
/// same process: pid and start time match) and every app process of the home it had not saved yet,
/// then empties the table. Returns how many were stopped.
pub fn kill_orphans(home: &Home) -> usize {
    let data = read_table(home);
    let table = data.as_deref().and_then(|d| serde_json::from_slice::<SavedTable>(d).ok());
    let apps = table.map(|t| t.apps).unwrap_or_default();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return 0 };
    let mut n = 0;
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for p in &apps {
            if let (Some(pid), Some(st)) = (p.state.pid, p.pid_start) {
                if procinfo::stat(pid).map(|s| s.start_time) == Some(st) {
                    n += 1;
                    set.spawn(stop_orphan(pid, p.spec.kill_timeout));
                }
            }
        }
        let listed: Vec<u32> = apps.iter().filter_map(|p| p.state.pid).collect();
        for pid in untracked_apps(home).into_iter().filter(|p| !listed.contains(p)) {
            n += 1;
            set.spawn(stop_orphan(pid, 1600));
        }
        while set.join_next().await.is_some() {}
    });
    if data.is_some() {
        let empty = SavedTable { version: 1, next_id: 0, apps: vec![] };
        if let Ok(bytes) = serde_json::to_vec_pretty(&empty) {
            let _ = save_table(home, &bytes);
        }
    }
    n
}

/// Stops the app processes a previous daemon left running that its table does not list (it died
/// before saving them, or before saving at all), so that restoring starts nothing twice. Those the
/// table lists are stopped by [`restore`] with their own `kill_timeout`.
async fn stop_untracked(d: &Arc<Daemon>) {
    let listed: Vec<u32> = read_table(&d.home)
        .and_then(|b| serde_json::from_slice::<SavedTable>(&b).ok())
        .map(|t| t.apps.iter().filter_map(|p| p.state.pid).collect())
        .unwrap_or_default();
    let mut set = tokio::task::JoinSet::new();
    for pid in untracked_apps(&d.home).into_iter().filter(|p| !listed.contains(p)) {
        dlog(format!("A process left running by the previous daemon, missing from its table (pid {pid}); stopping it"));
        set.spawn(stop_orphan(pid, 1600));
    }
    while set.join_next().await.is_some() {}
}

/// App processes of `home` that no daemon owns: process-group leaders (each app runs in its own
/// group) whose environment, as the daemon gave it, names this home and carries the `pm_id` and
/// `unique_id` every app gets, and that are neither this process nor one of its ancestors. Called
/// when no other daemon of the home runs (at start-up, under its lock, or without a daemon), so
/// such a process was left by a daemon that died before it saved it in the table.
fn untracked_apps(home: &Home) -> Vec<u32> {
    let me = std::process::id();
    let mut ancestors = vec![me];
    let mut cur = me;
    while let Some(st) = procinfo::stat(cur) {
        if st.ppid <= 1 || ancestors.contains(&st.ppid) {
            break;
        }
        ancestors.push(st.ppid);
        cur = st.ppid;
    }
    let home_var = format!("RPM2_HOME={}", home.root().display());
    procinfo::all()
        .into_iter()
        .filter(|st| !ancestors.contains(&st.pid) && st.state != 'Z')
        .filter(|st| {
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(st.pid as i32))).ok().map(|g| g.as_raw() as u32)
                == Some(st.pid)
        })
        .filter(|st| {
            let Ok(env) = std::fs::read(format!("/proc/{}/environ", st.pid)) else { return false };
            let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
            vars.contains(&home_var.as_bytes())
                && vars.iter().any(|v| v.starts_with(b"pm_id="))
                && vars.iter().any(|v| v.starts_with(b"unique_id="))
        })
        .map(|st| st.pid)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_table_is_replaced_and_the_previous_one_read_when_the_new_is_missing() {
        let t = crate::base::paths::TempHome::new("persist");
        let home = &t.0;
        assert_eq!(read_table(home), None);
        save_table(home, b"one").unwrap();
        save_table(home, b"two").unwrap();
        assert_eq!(read_table(home).as_deref(), Some(&b"two"[..]));
        assert_eq!(std::fs::read(prev_file(home)).unwrap(), b"one");
        assert!(!home.state_file().with_extension("json.next").exists());
        assert_eq!(std::fs::metadata(home.state_file()).unwrap().permissions().mode() & 0o777, 0o600);
        // A daemon killed between the two renames: no apps.json, the previous table is read.
        std::fs::rename(home.state_file(), prev_file(home)).unwrap();
        assert_eq!(read_table(home).as_deref(), Some(&b"two"[..]));
        save_table(home, b"three").unwrap();
        assert_eq!(read_table(home).as_deref(), Some(&b"three"[..]));
    }
}
