//! The daemon (`rpm2d --daemon`): one per `RPM2_HOME`, guarded by a lock; serves the control socket,
//! keeps the registry of apps (pm_id → supervisor handle), persists the app table atomically, samples
//! CPU/memory, and fans events out to subscribers. Handlers never hold a lock across an await.

use crate::base::dlog;
use crate::base::fmt::{iso_utc, now_ms};
use crate::base::paths::{write_atomic, Home};
use crate::base::procinfo::{self, Sampler, Usage};
use crate::cluster::{Balance, ClusterApp};
use crate::config::spec::{AppSpec, ExecMode};
use crate::protocol::{Request, Response, MAX_LINE, PROTOCOL_VERSION};
use crate::supervisor::triggers::{AppView, Fire, Triggers};
use crate::supervisor::{self, BusEvent, Handle, Op, ProcCtx, ProcState, Status};
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, Notify};

/// Creates the home and takes its daemon lock (flock, held for the daemon's life). None when another
/// daemon holds it: there is exactly one daemon per home.
fn take_lock(home: &Home) -> Result<Option<std::fs::File>> {
    home.ensure()?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.lock_file())
        .with_context(|| format!("cannot open {}", home.lock_file().display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(None);
    }
    Ok(Some(lock))
}

/// Entry point of `rpm2d --daemon`: takes the home's lock (exiting quietly when another daemon holds
/// it), detaches into its own session, binds the socket and serves until killed. The parent process
/// exits 0 once the daemon is ready to accept connections, or 1 with the reason on stderr. Returns
/// whether this call started it (false: another daemon already owns the home).
pub fn start_detached(home: Home) -> Result<bool> {
    let Some(lock) = take_lock(&home)? else {
        // Another daemon owns this home (or is starting): nothing to do.
        return Ok(false);
    };
    let (rd, wr) = nix::unistd::pipe().context("cannot create a pipe")?;
    // SAFETY: no threads exist yet in this process (no runtime has been built), so fork is sound.
    match unsafe { nix::unistd::fork() }.context("cannot fork the daemon")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(wr);
            drop(lock);
            use std::io::Read;
            let mut f = std::fs::File::from(rd);
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            if s.starts_with("ok") {
                Ok(true)
            } else if s.is_empty() {
                bail!("the daemon exited before it was ready: see {}", home.daemon_log().display())
            } else {
                bail!("{}", s.trim())
            }
        }
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            redirect_stdio(&home);
            // Descriptors inherited from whoever ran the first command (a held flock, a pipe) must
            // not live on in the daemon and every app it starts.
            close_inherited_fds(&[lock.as_raw_fd(), wr.as_raw_fd()]);
            let ready = std::fs::File::from(wr);
            let code = match run(home, Some(ready), lock) {
                Ok(()) => 0,
                Err(e) => {
                    dlog(format!("daemon failed: {e:#}"));
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

/// Closes every descriptor above 2 except `keep` (single-threaded, right after the fork).
fn close_inherited_fds(keep: &[i32]) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => return,
    };
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors this process does not use; the read_dir handle is gone.
            unsafe { libc::close(fd) };
        }
    }
}

fn redirect_stdio(home: &Home) {
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(home.daemon_log());
    let null = std::fs::File::open("/dev/null");
    // SAFETY: dup2 onto the standard descriptors of this (single-threaded) process.
    unsafe {
        if let Ok(n) = &null {
            libc::dup2(n.as_raw_fd(), 0);
        }
        if let Ok(l) = &log {
            libc::dup2(l.as_raw_fd(), 1);
            libc::dup2(l.as_raw_fd(), 2);
        }
    }
}

/// Runs the daemon in the foreground (systemd `Type=simple`, containers): takes the home's lock,
/// fails when another daemon holds it, and serves until SIGTERM/SIGINT or `kill`.
pub fn run_foreground(home: Home) -> Result<()> {
    let Some(lock) = take_lock(&home)? else {
        bail!("another rpm2 daemon is already running for {}", home.root().display());
    };
    run(home, None, lock)
}

/// Runs the daemon in this process until `kill` or SIGTERM/SIGINT. `ready` receives `ok` once the
/// socket accepts connections (or the error). `lock` must hold the home's flock.
pub fn run(home: Home, ready: Option<std::fs::File>, lock: std::fs::File) -> Result<()> {
    // One malloc arena: the daemon is single-threaded on its hot path, and per-thread arenas (the
    // watcher, rotation and blocking threads) would each keep megabytes of RSS.
    // SAFETY: mallopt only tunes the allocator; called before the runtime's threads exist.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    crate::logs::install_daemon_logger();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot build the runtime")?;
    let res = rt.block_on(serve(home.clone(), ready));
    let _ = std::fs::remove_file(home.socket());
    let _ = std::fs::remove_file(home.pid_file());
    drop(lock);
    res
}

/// The persisted form of one process.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedProc {
    pm_id: u32,
    instance: u32,
    unique_id: String,
    spec: AppSpec,
    state: ProcState,
    #[serde(default)]
    pid_start: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedTable {
    version: u32,
    next_id: u32,
    apps: Vec<SavedProc>,
}

struct Entry {
    instance: u32,
    unique_id: String,
    handle: Handle,
}

#[derive(Default)]
struct Registry {
    next_id: u32,
    procs: BTreeMap<u32, Entry>,
}

struct Metrics {
    sampler: Sampler,
    last: Option<Instant>,
    usage: HashMap<u32, Usage>,
    /// When a client last read the list (`list`, `describe`, `monit`, the web API): while that is
    /// recent the sampler runs every second, otherwise every [`SAMPLE_IDLE`].
    last_look: Option<Instant>,
}

/// Sampling period while someone looks (a `list` within [`LOOK_WINDOW`]).
const SAMPLE_BUSY: Duration = Duration::from_secs(1);
/// Sampling period when nobody looks: an idle daemon reads /proc this rarely.
const SAMPLE_IDLE: Duration = Duration::from_secs(10);
/// Sampling period while an app has a `max_memory_restart`.
const SAMPLE_LIMITS: Duration = Duration::from_secs(2);
/// How long after the last `list` the daemon keeps sampling every second.
const LOOK_WINDOW: Duration = Duration::from_secs(5);

/// Shared daemon state. The registry mutex guards only the id → handle map and is never held across
/// an await; each process's state lives in its actor.
struct Daemon {
    home: Home,
    registry: Mutex<Registry>,
    bus: broadcast::Sender<BusEvent>,
    changed: Arc<Notify>,
    shutdown: Notify,
    persist_enabled: std::sync::atomic::AtomicBool,
    metrics: Mutex<Metrics>,
    /// Wakes the sampler early when a client starts looking after an idle period.
    sampler_wake: Notify,
    started_at: u64,
    clusters: Mutex<HashMap<String, Arc<ClusterApp>>>,
    /// Restarts on file changes, cron and memory limits.
    triggers: Triggers,
}

async fn serve(home: Home, ready: Option<std::fs::File>) -> Result<()> {
    let sock = home.socket();
    let _ = std::fs::remove_file(&sock); // stale socket of a dead daemon: we hold the lock
    let listener = match bind(&home) {
        Ok(l) => l,
        Err(e) => {
            if let Some(mut r) = ready {
                use std::io::Write;
                let _ = writeln!(r, "{e:#}");
            }
            return Err(e);
        }
    };
    std::fs::write(home.pid_file(), std::process::id().to_string()).ok();
    let (bus, _) = broadcast::channel(4096);
    let (triggers, fires) = Triggers::new(home.root().to_path_buf());
    let d = Arc::new(Daemon {
        home: home.clone(),
        registry: Mutex::new(Registry::default()),
        bus,
        changed: Arc::new(Notify::new()),
        shutdown: Notify::new(),
        persist_enabled: std::sync::atomic::AtomicBool::new(true),
        metrics: Mutex::new(Metrics { sampler: Sampler::new(), last: None, usage: HashMap::new(), last_look: None }),
        sampler_wake: Notify::new(),
        started_at: now_ms(),
        clusters: Mutex::new(HashMap::new()),
        triggers,
    });
    dlog(format!(
        "--- rpm2d {} started (pid {}, home {}) ---",
        crate::VERSION,
        std::process::id(),
        home.root().display()
    ));
    restore(&d).await;
    sync_triggers(&d);
    tokio::spawn(trigger_task(d.clone(), fires));
    tokio::spawn(persister(d.clone()));
    tokio::spawn(sampler_task(d.clone()));
    if let Some(mut r) = ready {
        use std::io::Write;
        let _ = r.write_all(b"ok\n");
    }
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("signal handler")?;
    let mut int =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("signal handler")?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("signal handler")?;
    let mut usr2 =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2()).context("signal handler")?;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => { tokio::spawn(connection(d.clone(), stream)); }
                Err(e) => { dlog(format!("accept failed: {e}")); tokio::time::sleep(Duration::from_millis(50)).await; }
            },
            _ = d.shutdown.notified() => break,
            _ = term.recv() => { dlog("SIGTERM: stopping every app, keeping the app table"); stop_all_keep(&d).await; break; }
            _ = int.recv() => { dlog("SIGINT: stopping every app, keeping the app table"); stop_all_keep(&d).await; break; }
            _ = hup.recv() => {}
            _ = usr2.recv() => { for (_, h) in handles(&d) { h.reload_logs(); } }
        }
    }
    dlog("rpm2d stopped");
    Ok(())
}

fn bind(home: &Home) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let sock = home.socket();
    // Create the socket with a restrictive umask so it is never reachable by others, even briefly.
    // SAFETY: umask is process-wide but we are single-threaded at this point of start-up.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(&sock);
    unsafe { libc::umask(old) };
    let l = l.with_context(|| format!("cannot listen on {}", sock.display()))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).ok();
    Ok(l)
}

fn handles(d: &Daemon) -> Vec<(u32, Handle)> {
    match d.registry.lock() {
        Ok(r) => r.procs.iter().map(|(id, e)| (*id, e.handle.clone())).collect(),
        Err(_) => vec![],
    }
}

async fn stop_all_keep(d: &Arc<Daemon>) {
    d.persist_enabled.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut set = tokio::task::JoinSet::new();
    for (_, h) in handles(d) {
        set.spawn(h.stop());
    }
    while set.join_next().await.is_some() {}
}

async fn persister(d: Arc<Daemon>) {
    loop {
        d.changed.notified().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !d.persist_enabled.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        if let Err(e) = persist(&d) {
            dlog(format!("cannot save the app table: {e:#}"));
        }
    }
}

fn persist(d: &Daemon) -> Result<()> {
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
async fn restore(d: &Arc<Daemon>) {
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
    for p in table.apps {
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

/// The cluster primary of an app (created on first use; one per app name).
fn cluster_of(d: &Daemon, spec: &AppSpec) -> Arc<ClusterApp> {
    let balance =
        spec.extra.get("cluster_lb").and_then(|v| v.as_str()).and_then(Balance::parse).unwrap_or(Balance::RoundRobin);
    match d.clusters.lock() {
        Ok(mut m) => m.entry(spec.name.clone()).or_insert_with(|| ClusterApp::new(&spec.name, balance)).clone(),
        Err(_) => ClusterApp::new(&spec.name, balance),
    }
}

/// Closes the listening sockets of cluster apps none of whose processes runs any more (after a stop
/// or delete); forgets the primaries of apps that no longer exist.
fn release_clusters(d: &Daemon) {
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
fn prune_listeners_later(d: &Arc<Daemon>, ids: &[u32]) {
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

fn register(
    d: &Arc<Daemon>,
    pm_id: u32,
    instance: u32,
    unique_id: String,
    spec: Arc<AppSpec>,
    state: ProcState,
) -> Handle {
    let cluster = if spec.exec_mode == ExecMode::Cluster { Some(cluster_of(d, &spec)) } else { None };
    let ctx = ProcCtx {
        pm_id,
        instance,
        unique_id: unique_id.clone(),
        home: d.home.clone(),
        bus: d.bus.clone(),
        changed: d.changed.clone(),
        cluster,
    };
    let handle = supervisor::spawn(spec, ctx, state, false);
    if let Ok(mut r) = d.registry.lock() {
        r.procs.insert(pm_id, Entry { instance, unique_id, handle: handle.clone() });
        r.next_id = r.next_id.max(pm_id.saturating_add(1));
    }
    d.changed.notify_one();
    handle
}

/// Samples CPU/memory of every running app: every [`SAMPLE_BUSY`] while a client has looked at the
/// list within [`LOOK_WINDOW`], every [`SAMPLE_IDLE`] otherwise (an idle daemon costs next to nothing).
async fn sampler_task(d: Arc<Daemon>) {
    loop {
        let busy = d.metrics.lock().ok().and_then(|m| m.last_look).map(|t| t.elapsed() < LOOK_WINDOW).unwrap_or(false);
        let period = if busy { SAMPLE_BUSY } else { SAMPLE_IDLE };
        // max_memory_restart is checked at least every SAMPLE_LIMITS.
        let limits = handles(&d).iter().any(|(_, h)| h.spec.borrow().0.max_memory_restart.is_some());
        let period = if limits { period.min(SAMPLE_LIMITS) } else { period };
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = d.sampler_wake.notified() => continue,
        }
        let any_running = handles(&d).iter().any(|(_, h)| h.state.borrow().pid.is_some());
        if any_running {
            // A little under the period, so a `list` that just sampled does not make us skip a beat.
            sample(&d, period.mul_f32(0.9));
            if limits {
                check_memory(&d);
            }
        } else if let Ok(mut m) = d.metrics.lock() {
            m.usage.clear();
        }
    }
}

/// Records that a client is looking at the list: the sampler goes to one sample a second.
fn mark_look(d: &Daemon) {
    let was_idle = match d.metrics.lock() {
        Ok(mut m) => {
            let idle = m.last_look.map(|t| t.elapsed() >= LOOK_WINDOW).unwrap_or(true);
            m.last_look = Some(Instant::now());
            idle
        }
        Err(_) => false,
    };
    if was_idle {
        d.sampler_wake.notify_one();
    }
}

/// Refreshes the usage cache if it is older than `max_age`.
fn sample(d: &Daemon, max_age: Duration) {
    let pids: Vec<u32> = handles(d).iter().filter_map(|(_, h)| h.state.borrow().pid).collect();
    if let Ok(mut m) = d.metrics.lock() {
        let fresh = m.last.map(|t| t.elapsed() < max_age).unwrap_or(false);
        let missing = pids.iter().any(|p| !m.usage.contains_key(p));
        if fresh && !missing {
            return;
        }
        m.usage = m.sampler.sample(&pids);
        // A pid that vanished between the registry read and /proc (an exit between two samples)
        // reads as zero until its supervisor notices, instead of forcing a rescan on every call.
        for p in pids {
            m.usage.entry(p).or_default();
        }
        m.last = Some(Instant::now());
    }
}

/// Hands the triggers the current apps (one entry per name, with every instance's own files).
fn sync_triggers(d: &Daemon) {
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

/// Over-the-limit check of every online process with a `max_memory_restart` (fresh sample).
fn check_memory(d: &Daemon) {
    let usage = match d.metrics.lock() {
        Ok(m) => m.usage.clone(),
        Err(_) => return,
    };
    for (id, h) in handles(d) {
        let spec = h.spec.borrow().0.clone();
        let (status, pid) = {
            let st = h.state.borrow();
            (st.status, st.pid)
        };
        if let (Some(_), Status::Online, Some(pid)) = (spec.max_memory_restart, status, pid) {
            if let Some(u) = usage.get(&pid).filter(|u| u.memory > 0) {
                d.triggers.memory(id, &spec, u.memory);
            }
        }
    }
}

/// Carries out the triggers' restarts (each on its own task) and acknowledges them.
async fn trigger_task(d: Arc<Daemon>, mut fires: mpsc::UnboundedReceiver<Fire>) {
    while let Some(f) = fires.recv().await {
        let d = d.clone();
        tokio::spawn(async move {
            let spawned =
                if d.persist_enabled.load(std::sync::atomic::Ordering::SeqCst) { run_fire(&d, &f).await } else { None };
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
async fn watch_controls(d: &Daemon, method: &str, p: &Value, ids: &[u32]) {
    let mut wanted: HashMap<String, bool> = HashMap::new();
    for &id in ids {
        let Some(h) = handle_of(d, id) else { continue };
        let (name, watching) = {
            let s = h.spec.borrow();
            (s.0.name.clone(), s.0.watch)
        };
        let on = match (method, p.get("watch")) {
            ("stop", _) => Some(false),
            ("restart" | "reload", Some(Value::String(t))) if t == "toggle" => {
                Some(*wanted.entry(name.clone()).or_insert(!watching))
            }
            ("restart" | "reload", Some(Value::Bool(b))) => Some(*b),
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

fn new_unique_id() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

async fn connection(d: Arc<Daemon>, stream: UnixStream) {
    // Only the daemon's own user may talk to it.
    match stream.peer_cred() {
        Ok(c) if c.uid() == nix::unistd::getuid().as_raw() => {}
        _ => {
            dlog("refused a connection from another user");
            return;
        }
    }
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    // Subscription events go through a bounded queue: a client that stops reading loses events
    // (and is told how many) instead of growing the daemon's memory.
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let ev_queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ev_out = EventOut { tx: ev_tx, queued: ev_queued.clone() };
    let writer = tokio::spawn(async move {
        loop {
            let (line, event) = tokio::select! {
                biased;
                l = rx.recv() => (l, false),
                l = ev_rx.recv() => (l, true),
            };
            let Some(line) = line else { break };
            let ok = wr.write_all(&line).await.is_ok();
            if event {
                ev_queued.fetch_sub(line.len(), std::sync::atomic::Ordering::Relaxed);
            }
            if !ok {
                break;
            }
        }
    });
    let mut reader = BufReader::new(rd);
    let mut buf = Vec::new();
    let mut hello = false;
    let closed = Arc::new(Notify::new());
    loop {
        buf.clear();
        let n = match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if n > MAX_LINE {
            let _ = tx.send(Response::err(0, "bad_request", "request line too long").to_line());
            break;
        }
        let req: Request = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Response::err(0, "bad_request", format!("malformed request: {e}")).to_line());
                continue;
            }
        };
        if req.method == "hello" {
            let theirs = req.params.get("protocol").and_then(|v| v.as_u64()).unwrap_or(0);
            if theirs != PROTOCOL_VERSION as u64 {
                let _ = tx.send(
                    Response::err(
                        req.id,
                        "version_mismatch",
                        format!("the running daemon speaks protocol {PROTOCOL_VERSION} but this client speaks {theirs}: run `rpm2 update` to restart the daemon with the installed version"),
                    )
                    .to_line(),
                );
                break;
            }
            hello = true;
            let _ = tx.send(Response::ok(req.id, json!({"protocol": PROTOCOL_VERSION, "version": crate::VERSION, "pid": std::process::id(), "home": d.home.root()})).to_line());
            continue;
        }
        if !hello {
            let _ = tx.send(Response::err(req.id, "bad_request", "send hello first").to_line());
            break;
        }
        let d = d.clone();
        let tx = tx.clone();
        let ev_out = ev_out.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            let id = req.id;
            if req.method == "subscribe" {
                subscribe(d, req, tx, ev_out, closed).await;
                return;
            }
            let method = req.method.clone();
            let resp = match handle(&d, req).await {
                Ok(v) => Response::ok(id, v),
                Err(e) => Response::err(id, e.code, e.message),
            };
            if !matches!(method.as_str(), "list" | "describe" | "ping" | "version" | "info") {
                sync_triggers(&d);
            }
            let _ = tx.send(resp.to_line());
        });
    }
    closed.notify_waiters();
    drop(tx);
    let _ = writer.await;
}

/// An error for the client: a stable code and a message for people.
#[derive(Debug)]
pub struct HandlerError {
    code: &'static str,
    message: String,
}

fn herr(code: &'static str, message: impl Into<String>) -> HandlerError {
    HandlerError { code, message: message.into() }
}

type HResult = std::result::Result<Value, HandlerError>;

/// Bytes of events queued per subscriber connection before new ones are dropped (and counted).
const EVENT_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// The event side of a connection: an unbounded channel whose queued bytes are counted, so a
/// subscriber that stops reading loses events instead of growing the daemon past the limit.
#[derive(Clone)]
struct EventOut {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

enum Sent {
    Ok,
    Full,
    Closed,
}

impl EventOut {
    fn send(&self, line: Vec<u8>) -> Sent {
        use std::sync::atomic::Ordering;
        if self.queued.load(Ordering::Relaxed) + line.len() > EVENT_QUEUE_BYTES {
            return Sent::Full;
        }
        self.queued.fetch_add(line.len(), Ordering::Relaxed);
        let n = line.len();
        if self.tx.send(line).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return Sent::Closed;
        }
        Sent::Ok
    }
}

async fn subscribe(
    d: Arc<Daemon>,
    req: Request,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    ev_tx: EventOut,
    closed: Arc<Notify>,
) {
    let topics: Vec<String> =
        req.params.get("topics").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let filter: Option<Vec<String>> = req
        .params
        .get("targets")
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .filter(|t| !t.is_empty());
    let ids: Option<Vec<u32>> = match filter {
        Some(t) => match resolve_targets(&d, &t) {
            Ok(ids) => Some(ids),
            Err(e) => {
                let _ = tx.send(Response::err(req.id, e.code, e.message).to_line());
                return;
            }
        },
        None => None,
    };
    let mut rx = d.bus.subscribe();
    let _ = tx.send(Response::ok(req.id, json!({"subscribed": true})).to_line());
    let matches = |topic: &str| {
        topics.is_empty()
            || topics
                .iter()
                .any(|t| t == "*" || t == topic || (t.ends_with(":*") && topic.starts_with(&t[..t.len() - 1])))
    };
    let mut dropped: u64 = 0;
    loop {
        tokio::select! {
            _ = closed.notified() => break,
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if !matches(&ev.topic) { continue; }
                    if let Some(ids) = &ids {
                        let id = ev.data.get("process").and_then(|p| p.get("pm_id")).and_then(|v| v.as_u64());
                        if !id.map(|i| ids.contains(&(i as u32))).unwrap_or(false) { continue; }
                    }
                    if dropped > 0 {
                        let note = Response::event(req.id, json!({"topic": "rpm2:lagged", "data": {"dropped": dropped}})).to_line();
                        if matches!(ev_tx.send(note), Sent::Ok) { dropped = 0; }
                    }
                    match ev_tx.send(Response::event(req.id, json!({"topic": ev.topic, "data": ev.data})).to_line()) {
                        Sent::Ok => {}
                        Sent::Full => dropped += 1,
                        Sent::Closed => break,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => dropped += n,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

fn targets_param(p: &Value) -> Vec<String> {
    match p.get("targets") {
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())).collect()
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => vec![],
    }
}

/// Resolves targets (`all`, ids, names, namespaces) to pm_ids, in order, without duplicates.
fn resolve_targets(d: &Daemon, targets: &[String]) -> std::result::Result<Vec<u32>, HandlerError> {
    let all: Vec<(u32, String, String)> = handles(d)
        .into_iter()
        .map(|(id, h)| {
            let s = h.spec.borrow();
            (id, s.0.name.clone(), s.0.namespace.clone())
        })
        .collect();
    let mut out = Vec::new();
    for t in targets {
        let t = t.trim();
        let found: Vec<u32> = if t == "all" {
            all.iter().map(|a| a.0).collect()
        } else if let Ok(id) = t.parse::<u32>() {
            if !all.iter().any(|a| a.0 == id) {
                return Err(herr("not_found", format!("no process with id {id}: run `rpm2 list` to see the ids")));
            }
            vec![id]
        } else {
            let by_name: Vec<u32> = all.iter().filter(|a| a.1 == t).map(|a| a.0).collect();
            if by_name.is_empty() {
                all.iter().filter(|a| a.2 == t).map(|a| a.0).collect()
            } else {
                by_name
            }
        };
        if found.is_empty() && t != "all" {
            return Err(herr(
                "not_found",
                format!("no process or namespace named '{t}': run `rpm2 list` to see the apps"),
            ));
        }
        for id in found {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

fn handle_of(d: &Daemon, id: u32) -> Option<Handle> {
    d.registry.lock().ok().and_then(|r| r.procs.get(&id).map(|e| e.handle.clone()))
}

/// The PM2 `jlist` object of one process.
fn proc_json(d: &Daemon, id: u32, show_env: bool) -> Option<Value> {
    let (instance, unique_id, h) = {
        let r = d.registry.lock().ok()?;
        let e = r.procs.get(&id)?;
        (e.instance, e.unique_id.clone(), e.handle.clone())
    };
    let st = h.state.borrow().clone();
    let (spec, paths) = h.spec.borrow().clone();
    let usage = st.pid.and_then(|p| d.metrics.lock().ok().and_then(|m| m.usage.get(&p).copied())).unwrap_or_default();
    let env: serde_json::Map<String, Value> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), if show_env { Value::String(v.clone()) } else { Value::String("[hidden]".into()) }))
        .collect();
    let p = |x: &Option<std::path::PathBuf>| {
        x.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "/dev/null".into())
    };
    let mut pm2_env = json!({
        "name": spec.name,
        "namespace": spec.namespace,
        "pm_id": id,
        "status": st.status.as_str(),
        "restart_time": st.restart_time,
        "unstable_restarts": st.unstable_restarts,
        "created_at": st.created_at,
        "pm_uptime": st.pm_uptime,
        "exec_mode": spec.exec_mode.pm2_name(),
        "instances": spec.instances,
        "exec_interpreter": spec.interpreter.clone().unwrap_or_else(|| "none".into()),
        "pm_exec_path": spec.script,
        "pm_cwd": spec.cwd,
        "args": spec.args,
        "node_args": spec.node_args,
        "pm_out_log_path": p(&paths.out),
        "pm_err_log_path": p(&paths.err),
        "pm_pid_path": paths.pid,
        "merge_logs": spec.merge_logs,
        "autorestart": spec.autorestart,
        "autostart": spec.autostart,
        "watch": spec.watch,
        "max_restarts": spec.max_restarts,
        "min_uptime": spec.min_uptime,
        "kill_timeout": spec.kill_timeout,
        "listen_timeout": spec.listen_timeout,
        "wait_ready": spec.wait_ready,
        "shutdown_with_message": spec.shutdown_with_message,
        "restart_delay": spec.restart_delay,
        "treekill": spec.treekill,
        "instance_var": spec.instance_var,
        "NODE_APP_INSTANCE": instance,
        "unique_id": unique_id,
        "username": std::env::var("USER").unwrap_or_else(|_| nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name).unwrap_or_default()),
        "version": package_version(&spec.script),
        "env": env,
    });
    let o = pm2_env.as_object_mut()?;
    if let Some(c) = paths.combined {
        o.insert("pm_log_path".into(), json!(c));
    }
    if let Some(v) = spec.exp_backoff_restart_delay {
        o.insert("exp_backoff_restart_delay".into(), json!(v));
        o.insert("prev_restart_delay".into(), json!(st.prev_restart_delay));
    }
    if !spec.stop_exit_codes.is_empty() {
        o.insert("stop_exit_codes".into(), json!(spec.stop_exit_codes));
    }
    if let Some(v) = spec.max_memory_restart {
        o.insert("max_memory_restart".into(), json!(v));
    }
    if let Some(v) = &spec.cron_restart {
        o.insert("cron_restart".into(), json!(v));
    }
    if let Some(v) = &spec.log_date_format {
        o.insert("log_date_format".into(), json!(v));
    }
    if let Some(v) = &spec.increment_var {
        o.insert("increment_var".into(), json!(v));
    }
    if let Some(v) = st.exit_code {
        o.insert("exit_code".into(), json!(v));
    }
    if let Some(v) = &st.restart_reason {
        o.insert("restart_reason".into(), json!(v));
    }
    if let Some(v) = d.triggers.paused(&spec.name) {
        o.insert("watch_paused".into(), json!(v));
    }
    if let Some(v) = &st.axm_monitor {
        o.insert("axm_monitor".into(), v.clone());
    }
    for (k, v) in &spec.extra {
        o.entry(k.clone()).or_insert(v.clone());
    }
    Some(json!({
        "pid": st.pid.unwrap_or(0),
        "name": spec.name,
        "pm_id": id,
        "monit": {"memory": usage.memory, "cpu": usage.cpu},
        "pm2_env": pm2_env,
    }))
}

/// `version` of the nearest package.json above the script, or `N/A`.
fn package_version(script: &std::path::Path) -> String {
    let mut dir = script.parent();
    while let Some(d) = dir {
        if let Ok(t) = std::fs::read_to_string(d.join("package.json")) {
            return serde_json::from_str::<Value>(&t)
                .ok()
                .and_then(|v| v.get("version").and_then(|v| v.as_str()).map(String::from))
                .unwrap_or_else(|| "N/A".into());
        }
        dir = d.parent();
    }
    "N/A".into()
}

fn list_json(d: &Daemon, ids: &[u32], show_env: bool) -> Value {
    mark_look(d);
    sample(d, Duration::from_millis(1000));
    Value::Array(ids.iter().filter_map(|id| proc_json(d, *id, show_env)).collect())
}

fn all_ids(d: &Daemon) -> Vec<u32> {
    d.registry.lock().map(|r| r.procs.keys().copied().collect()).unwrap_or_default()
}

/// Sends the operation `make` builds to every process in `ids`, which run it concurrently; fails
/// with the first error (after all ran).
async fn on_each(d: &Daemon, ids: &[u32], make: impl Fn(u32) -> Option<Op>) -> std::result::Result<(), HandlerError> {
    let mut set = tokio::task::JoinSet::new();
    for &id in ids {
        let Some(h) = handle_of(d, id) else { continue };
        let Some(op) = make(id) else { continue };
        let done = h.call(op);
        set.spawn(async move {
            match done.await {
                Err(e) if e == supervisor::ENDED => Err(format!("the supervisor of process {id} has ended")),
                r => r,
            }
        });
    }
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(herr("failed", e)),
        None => Ok(()),
    }
}

fn summary(d: &Daemon, ids: &[u32]) -> Value {
    Value::Array(
        ids.iter()
            .filter_map(|id| {
                let h = handle_of(d, *id)?;
                let st = h.state.borrow().clone();
                let spec = h.spec.borrow().0.clone();
                Some(json!({"name": spec.name, "namespace": spec.namespace, "pm_id": id, "status": st.status.as_str(), "restart_time": st.restart_time, "pid": st.pid.unwrap_or(0)}))
            })
            .collect(),
    )
}

fn parse_signal(s: &str) -> std::result::Result<Signal, HandlerError> {
    use std::str::FromStr;
    let up = s.trim().to_ascii_uppercase();
    if let Ok(n) = up.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| herr("bad_request", format!("unknown signal {s}")));
    }
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    Signal::from_str(&name)
        .map_err(|_| herr("bad_request", format!("unknown signal '{s}': use a name like SIGUSR2 or a number")))
}

async fn handle(d: &Arc<Daemon>, req: Request) -> HResult {
    let p = &req.params;
    match req.method.as_str() {
        "ping" => Ok(json!({"msg": "pong"})),
        "version" => Ok(json!(crate::VERSION)),
        "info" => Ok(
            json!({"version": crate::VERSION, "pid": std::process::id(), "home": d.home.root(), "started_at": d.started_at, "started_at_iso": iso_utc(d.started_at)}),
        ),
        "list" => {
            let show_env = p.get("env").and_then(|v| v.as_bool()).unwrap_or(false);
            Ok(list_json(d, &all_ids(d), show_env))
        }
        "describe" => {
            let ids = resolve_targets(d, &targets_param(p))?;
            let show_env = p.get("env").and_then(|v| v.as_bool()).unwrap_or(false);
            Ok(list_json(d, &ids, show_env))
        }
        "start" => start(d, p).await,
        "stop" | "restart" | "reload" | "delete" | "reset" => {
            let targets = targets_param(p);
            if targets.is_empty() {
                return Err(herr(
                    "bad_request",
                    format!("{} needs a target: an id, a name, a namespace or all", req.method),
                ));
            }
            let ids = resolve_targets(d, &targets)?;
            if ids.is_empty() {
                return Err(herr("not_found", "no process found: nothing to do"));
            }
            let update_env: Option<BTreeMap<String, String>> =
                if p.get("update_env").and_then(|v| v.as_bool()).unwrap_or(false) {
                    p.get("env").and_then(|v| serde_json::from_value(v.clone()).ok())
                } else {
                    None
                };
            let method = req.method.clone();
            let new_spec: Option<Arc<AppSpec>> = match p.get("spec") {
                Some(v) if !v.is_null() => Some(Arc::new(
                    serde_json::from_value(v.clone())
                        .map_err(|e| herr("bad_request", format!("malformed app: {e}")))?,
                )),
                _ => None,
            };
            watch_controls(d, &method, p, &ids).await;
            let before = summary(d, &ids);
            // The declaration each process gets: a new one (ecosystem file), the stored one with the
            // shell env merged over it (--update-env), or none (unchanged).
            let spec_for = |id: u32| -> Option<Arc<AppSpec>> {
                new_spec.clone().or_else(|| {
                    update_env.as_ref().and_then(|env| {
                        let h = handle_of(d, id)?;
                        let mut s = h.spec.borrow().0.as_ref().clone();
                        let mut merged = s.env.clone();
                        // The new shell env wins over the stored one, as PM2's --update-env.
                        for (k, v) in env {
                            merged.insert(k.clone(), v.clone());
                        }
                        s.env = merged;
                        Some(Arc::new(s))
                    })
                })
            };
            let changed = new_spec.is_some() || update_env.is_some();
            if req.method == "reload" {
                // One instance at a time; the rollout stops at the first instance that fails, so the
                // app never ends with fewer healthy processes than it had.
                for id in &ids {
                    if let Some(h) = handle_of(d, *id) {
                        let spec = spec_for(*id);
                        if let Err(e) = h.reload(spec).await {
                            return Err(herr("reload_failed", format!("{e} (rollout stopped at id {id})")));
                        }
                    }
                }
                if changed {
                    prune_listeners_later(d, &ids);
                }
                return Ok(summary(d, &ids));
            }
            on_each(d, &ids, |id| {
                Some(match method.as_str() {
                    "stop" => Op::Stop,
                    "delete" => Op::Delete,
                    "reset" => Op::Reset,
                    _ => Op::Restart { spec: spec_for(id), reason: format!("{method} requested") },
                })
            })
            .await?;
            if req.method == "stop" {
                release_clusters(d);
            }
            if req.method == "restart" && changed {
                prune_listeners_later(d, &ids);
            }
            if req.method == "delete" {
                if let Ok(mut r) = d.registry.lock() {
                    for id in &ids {
                        r.procs.remove(id);
                    }
                    if r.procs.is_empty() {
                        r.next_id = 0;
                    }
                }
                d.changed.notify_one();
                release_clusters(d);
                // The deleted processes, as they are now: stopped, no pid.
                let mut gone = before;
                for p in gone.as_array_mut().into_iter().flatten() {
                    p["status"] = json!("stopped");
                    p["pid"] = json!(0);
                }
                return Ok(gone);
            }
            Ok(summary(d, &ids))
        }
        "signal" => {
            let sig = parse_signal(p.get("signal").and_then(|v| v.as_str()).unwrap_or(""))?;
            let ids = resolve_targets(d, &targets_param(p))?;
            on_each(d, &ids, |_| Some(Op::Signal(sig))).await?;
            Ok(summary(d, &ids))
        }
        "send" => {
            let id = p
                .get("id")
                .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| herr("bad_request", "send needs a numeric process id"))?;
            let packet = p.get("packet").cloned().unwrap_or(Value::Null);
            if handle_of(d, id).is_none() {
                return Err(herr("not_found", format!("no process with id {id}: run `rpm2 list` to see the ids")));
            }
            on_each(d, &[id], |_| Some(Op::Send(packet.clone()))).await?;
            Ok(json!({"success": true, "data": packet}))
        }
        "flush" => {
            let targets = targets_param(p);
            let ids = if targets.is_empty() { all_ids(d) } else { resolve_targets(d, &targets)? };
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
            Ok(json!(files))
        }
        "reloadLogs" => {
            for (_, h) in handles(d) {
                h.reload_logs();
            }
            Ok(json!({}))
        }
        "kill" => {
            let ids = all_ids(d);
            on_each(d, &ids, |_| Some(Op::Delete)).await.ok();
            if let Ok(mut r) = d.registry.lock() {
                r.procs.clear();
                r.next_id = 0;
            }
            if let Err(e) = persist(d) {
                dlog(format!("cannot save the app table: {e:#}"));
            }
            d.persist_enabled.store(false, std::sync::atomic::Ordering::SeqCst);
            let d2 = d.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                d2.shutdown.notify_one();
            });
            Ok(json!({"success": true, "stopped": ids.len()}))
        }
        "scale" => scale(d, p).await,
        "dump" => dump(d, p),
        "shutdown" => {
            // Stop every app gracefully but keep the app table: the next daemon (e.g. a newer
            // version after `rpm2 update`) starts them again.
            if let Err(e) = persist(d) {
                return Err(herr("io", format!("cannot save the app table before shutting down: {e:#}")));
            }
            stop_all_keep(d).await;
            let d2 = d.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                d2.shutdown.notify_one();
            });
            Ok(json!({"success": true}))
        }
        m => Err(herr("bad_request", format!("unknown method '{m}'"))),
    }
}

/// Starts apps: params `{apps: [AppSpec], force?: bool}`. An app whose name already runs is refused
/// unless `force`; one whose processes are all stopped is restarted with the new declaration.
async fn start(d: &Arc<Daemon>, p: &Value) -> HResult {
    let specs: Vec<AppSpec> = serde_json::from_value(p.get("apps").cloned().unwrap_or(Value::Null))
        .map_err(|e| herr("bad_request", format!("malformed app list: {e}")))?;
    let force = p.get("force").and_then(|v| v.as_bool()).unwrap_or(false);
    let skip_existing = p.get("skip_existing").and_then(|v| v.as_bool()).unwrap_or(false);
    // Validate everything first: nothing is started half-way.
    let mut plan = Vec::new();
    for spec in specs {
        if skip_existing && handles(d).iter().any(|(_, h)| h.spec.borrow().0.name == spec.name) {
            continue;
        }
        let existing: Vec<(u32, Status)> = handles(d)
            .into_iter()
            .filter(|(_, h)| h.spec.borrow().0.name == spec.name)
            .map(|(id, h)| (id, h.state.borrow().status))
            .collect();
        if !existing.is_empty() && !force {
            let running = existing.iter().filter(|(_, s)| !matches!(s, Status::Stopped | Status::Errored)).count();
            if running > 0 {
                let ids: Vec<String> = existing.iter().map(|(i, _)| i.to_string()).collect();
                return Err(herr(
                    "already_running",
                    format!(
                        "app '{}' is already running (id {}): use `rpm2 restart {}`, or -f to start another copy",
                        spec.name,
                        ids.join(", "),
                        spec.name
                    ),
                ));
            }
            plan.push((spec, existing.into_iter().map(|(i, _)| i).collect::<Vec<_>>()));
        } else {
            plan.push((spec, vec![]));
        }
    }
    let mut started = Vec::new();
    let mut set = tokio::task::JoinSet::new();
    for (spec, existing) in plan {
        let spec = Arc::new(spec);
        if !existing.is_empty() {
            d.triggers.resume(&spec.name);
            for id in existing {
                if let Some(h) = handle_of(d, id) {
                    let s = spec.clone();
                    set.spawn(h.restart(Some(s), "started again".into()));
                    started.push(id);
                }
            }
            continue;
        }
        let unique_id = new_unique_id();
        for _ in 0..spec.instances.max(1) {
            let (pm_id, instance) = {
                let Ok(mut r) = d.registry.lock() else {
                    return Err(herr("internal", "registry unavailable"));
                };
                let pm_id = r.next_id;
                r.next_id = r.next_id.saturating_add(1);
                let used: Vec<u32> = r
                    .procs
                    .values()
                    .filter(|e| e.handle.spec.borrow().0.name == spec.name)
                    .map(|e| e.instance)
                    .collect();
                let instance = (0..).find(|i| !used.contains(i)).unwrap_or(0);
                // Reserve the slot so the next instance sees it.
                (pm_id, instance)
            };
            // Registered as launching (not stopped) so that a concurrent start of the same name sees
            // it as running and is refused.
            let mut state = ProcState::new();
            if spec.autostart {
                state.status = Status::Launching;
            }
            let h = register(d, pm_id, instance, unique_id.clone(), spec.clone(), state);
            started.push(pm_id);
            if spec.autostart {
                set.spawn(h.start());
            }
        }
    }
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            errors.push(e);
        }
    }
    if !errors.is_empty() && errors.len() == started.len() {
        return Err(herr("start_failed", errors.join("; ")));
    }
    Ok(list_json(d, &started, false))
}

/// `scale {name, number}`: `N` sets the instance count, `+N`/`-N` changes it. New instances clone the
/// first one's declaration (and fill NODE_APP_INSTANCE gaps first); removal deletes the oldest ids, as PM2.
async fn scale(d: &Arc<Daemon>, p: &Value) -> HResult {
    let name = p.get("name").and_then(|v| v.as_str()).ok_or_else(|| herr("bad_request", "scale needs an app name"))?;
    let number = match p.get("number") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(herr("bad_request", "scale needs a number: N, +N or -N")),
    };
    let ids: Vec<u32> =
        handles(d).into_iter().filter(|(_, h)| h.spec.borrow().0.name == name).map(|(id, _)| id).collect();
    if ids.is_empty() {
        return Err(herr("not_found", format!("no app named '{name}': run `rpm2 list` to see the apps")));
    }
    let cur = ids.len() as i64;
    let bad = || herr("bad_request", format!("'{number}' is not a number of instances: use N, +N or -N"));
    let target = if let Some(n) = number.strip_prefix('+') {
        cur.checked_add(n.parse::<i64>().map_err(|_| bad())?).ok_or_else(bad)?
    } else if number.starts_with('-') {
        cur.checked_add(number.parse::<i64>().map_err(|_| bad())?).ok_or_else(bad)?
    } else {
        number.parse::<i64>().map_err(|_| bad())?
    };
    if target < 1 {
        return Err(herr("bad_request", format!("cannot scale '{name}' below 1 instance: use `rpm2 delete {name}`")));
    }
    if target == cur {
        return Err(herr("nothing_to_do", format!("'{name}' already has {cur} instance(s): nothing to do")));
    }
    if target < cur {
        let remove: Vec<u32> = ids.iter().copied().take((cur - target) as usize).collect();
        on_each(d, &remove, |_| Some(Op::Delete)).await?;
        if let Ok(mut r) = d.registry.lock() {
            for id in &remove {
                r.procs.remove(id);
            }
        }
        d.changed.notify_one();
        return Ok(list_json(d, &all_ids(d), false));
    }
    let Some(first) = handle_of(d, ids[0]) else { return Err(herr("internal", "app vanished")) };
    let spec = first.spec.borrow().0.clone();
    let unique_id = new_unique_id();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..(target - cur) {
        let (pm_id, instance) = {
            let Ok(mut r) = d.registry.lock() else { return Err(herr("internal", "registry unavailable")) };
            let pm_id = r.next_id;
            r.next_id = r.next_id.saturating_add(1);
            let used: Vec<u32> =
                r.procs.values().filter(|e| e.handle.spec.borrow().0.name == spec.name).map(|e| e.instance).collect();
            (pm_id, (0..).find(|i| !used.contains(i)).unwrap_or(0))
        };
        let h = register(d, pm_id, instance, unique_id.clone(), spec.clone(), ProcState::new());
        set.spawn(h.start());
    }
    while set.join_next().await.is_some() {}
    Ok(list_json(d, &all_ids(d), false))
}

/// `dump {force, node}`: writes the app list to `RPM2_HOME/dump.rpm2` (atomically, 0600, the previous
/// dump kept as `dump.rpm2.bak`). An empty list does not replace a non-empty dump unless `force`.
fn dump(d: &Daemon, p: &Value) -> HResult {
    let force = p.get("force").and_then(|v| v.as_bool()).unwrap_or(false);
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
    let path = d.home.root().join("dump.rpm2");
    if apps.is_empty() && !force && path.exists() {
        let existing = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let n = existing.as_ref().and_then(|v| v.get("apps")).and_then(|a| a.as_array()).map(|a| a.len()).unwrap_or(0);
        if n > 0 {
            return Err(herr(
                "empty",
                format!(
                    "no app is running: not replacing the saved list of {n} app(s) in {} (use --force)",
                    path.display()
                ),
            ));
        }
    }
    let doc = json!({
        "format": 1,
        "rpm2": crate::VERSION,
        "saved_at": now_ms(),
        "node": p.get("node").cloned().unwrap_or(Value::Null),
        "apps": apps,
    });
    let data = serde_json::to_vec_pretty(&doc).map_err(|e| herr("internal", e.to_string()))?;
    if path.exists() {
        let bak = d.home.root().join("dump.rpm2.bak");
        if let Ok(old) = std::fs::read(&path) {
            if serde_json::from_slice::<Value>(&old).is_ok() {
                write_atomic(&bak, &old, 0o600).map_err(|e| herr("io", format!("{e:#}")))?;
            }
        }
    }
    write_atomic(&path, &data, 0o600)
        .map_err(|e| herr("io", format!("cannot save the app list: {e:#} (the previous dump is intact)")))?;
    Ok(json!({"path": path, "count": doc["apps"].as_array().map(|a| a.len()).unwrap_or(0)}))
}
