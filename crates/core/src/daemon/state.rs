//! The daemon's shared state ([`Daemon`]) and its registry of processes.
//!
//! Rules:
//! - **Who owns what.** Each process's state and declaration live in its supervisor actor; the
//!   daemon only keeps the actor's [`Handle`] (whose `state`/`spec` watch channels it reads). The
//!   registry maps pm_id → handle; the cluster primaries, the metrics and the triggers have their
//!   own locks.
//! - **No lock across an await.** Every `Mutex` here is a std mutex taken for a few statements:
//!   code copies what it needs (e.g. [`handles`] clones the handles) and drops the guard before
//!   awaiting anything. A poisoned lock reads as empty rather than panicking.
//! - **Ids.** `pm_id`s come from `next_id`, which only grows, except that it goes back to 0 when the
//!   last process is deleted (as PM2). A process restored from the app table keeps its id, and
//!   `next_id` is kept above every registered id. An app's instances get the lowest
//!   `NODE_APP_INSTANCE` numbers not used by another process of the same name.

use super::error::{herr, HandlerError};
use crate::base::fmt::now_ms;
use crate::base::paths::Home;
use crate::base::procinfo::{Sampler, Usage};
use crate::cluster::ClusterApp;
use crate::config::spec::{AppSpec, ExecMode};
use crate::protocol::ErrorCode;
use crate::supervisor::triggers::{Fire, Triggers};
use crate::supervisor::{self, BusEvent, Handle, ProcCtx, ProcState};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{broadcast, mpsc, Notify};

/// One registered process: its instance number, the id shared by the instances started together,
/// and the handle of its supervisor.
pub(crate) struct Entry {
    pub(crate) instance: u32,
    pub(crate) unique_id: String,
    pub(crate) handle: Handle,
}

/// pm_id → process, and the next id to give.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) next_id: u32,
    pub(crate) procs: BTreeMap<u32, Entry>,
}

impl Registry {
    /// Takes the next pm_id and the lowest instance number free among the processes named `name`.
    /// The instance is reserved only once the process is registered, so callers register each new
    /// process before reserving the next.
    pub(crate) fn reserve(&mut self, name: &str) -> (u32, u32) {
        let pm_id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        let used: Vec<u32> =
            self.procs.values().filter(|e| e.handle.spec.borrow().0.name == name).map(|e| e.instance).collect();
        (pm_id, (0..).find(|i| !used.contains(i)).unwrap_or(0))
    }
}

/// Shared daemon state, one per daemon, behind an `Arc` (see the module doc for its rules).
pub(crate) struct Daemon {
    pub(crate) home: Home,
    pub(crate) registry: Mutex<Registry>,
    /// Process events, fanned out to subscribers.
    pub(crate) bus: broadcast::Sender<BusEvent>,
    /// Notified on every change the app table must save.
    pub(crate) changed: Arc<Notify>,
    /// Notified to stop serving.
    pub(crate) shutdown: Notify,
    /// Off once the daemon is going away: the table is no longer saved, triggers no longer fire.
    pub(crate) persist_enabled: AtomicBool,
    pub(crate) metrics: Mutex<Metrics>,
    /// Wakes the sampler early when a client starts looking after an idle period.
    pub(crate) sampler_wake: Notify,
    /// When the daemon started (epoch ms).
    pub(crate) started_at: u64,
    /// The cluster primary of each cluster-mode app, by name.
    pub(crate) clusters: Mutex<HashMap<String, Arc<ClusterApp>>>,
    /// Restarts on file changes, cron and memory limits.
    pub(crate) triggers: Triggers,
}

impl Daemon {
    /// A daemon with an empty registry for `home`, and the receiver of its triggers' fires.
    pub(crate) fn new(home: Home) -> (Arc<Daemon>, mpsc::UnboundedReceiver<Fire>) {
        // Slots are allocated up front (about 120 bytes each). A log pump sends one event per read
        // (whole lines), not one per line, and tokio's budget yields to the subscribers every 128
        // reads, so 1024 slots are ample; 4096 held 480 kB for nothing.
        let (bus, _) = broadcast::channel(1024);
        let (triggers, fires) = Triggers::new(home.root().to_path_buf());
        let d = Arc::new(Daemon {
            home,
            registry: Mutex::new(Registry::default()),
            bus,
            changed: Arc::new(Notify::new()),
            shutdown: Notify::new(),
            persist_enabled: AtomicBool::new(true),
            metrics: Mutex::new(Metrics::default()),
            sampler_wake: Notify::new(),
            started_at: now_ms(),
            clusters: Mutex::new(HashMap::new()),
            triggers,
        });
        (d, fires)
    }

    /// Whether the daemon still saves its table and runs triggers (false once it is going away).
    pub(crate) fn persisting(&self) -> bool {
        self.persist_enabled.load(Ordering::SeqCst)
    }

    /// Stops saving the table and running triggers (the daemon is going away).
    pub(crate) fn stop_persisting(&self) {
        self.persist_enabled.store(false, Ordering::SeqCst);
    }
}

/// Every registered process: (pm_id, handle), by id.
pub(crate) fn handles(d: &Daemon) -> Vec<(u32, Handle)> {
    match d.registry.lock() {
        Ok(r) => r.procs.iter().map(|(id, e)| (*id, e.handle.clone())).collect(),
        Err(_) => vec![],
    }
}

/// The handle of process `id`, if registered.
pub(crate) fn handle_of(d: &Daemon, id: u32) -> Option<Handle> {
    d.registry.lock().ok().and_then(|r| r.procs.get(&id).map(|e| e.handle.clone()))
}

/// Every registered pm_id, ascending.
pub(crate) fn all_ids(d: &Daemon) -> Vec<u32> {
    d.registry.lock().map(|r| r.procs.keys().copied().collect()).unwrap_or_default()
}

/// Starts the supervisor of one process (not its child) and registers it under `pm_id`.
pub(crate) fn register(
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

/// A random (v4) UUID, shared by the instances started together.
pub(crate) fn new_unique_id() -> String {
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

/// Resolves targets (`all`, ids, names, script paths, namespaces, `/regex/`) to pm_ids, in order,
/// without duplicates (see [`resolve`]).
pub(crate) fn resolve_targets(d: &Daemon, targets: &[String]) -> Result<Vec<u32>, HandlerError> {
    let all: Vec<Known> = handles(d)
        .into_iter()
        .map(|(id, h)| {
            let s = h.spec.borrow();
            Known { id, name: s.0.name.clone(), namespace: s.0.namespace.clone(), script: s.0.script.clone() }
        })
        .collect();
    resolve(&all, targets)
}

/// A registered process as target resolution sees it.
pub(crate) struct Known {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) namespace: String,
    /// The absolute script path (PM2's `pm_exec_path`).
    pub(crate) script: std::path::PathBuf,
}

/// The regular expression of a `/.../` target (PM2 drops every `/` of it, then matches names), or
/// None when `t` is not of that form. A pattern the `regex` crate rejects is a `bad_request`.
fn regex_target(t: &str) -> Result<Option<regex::Regex>, HandlerError> {
    if t.len() < 2 || !t.starts_with('/') || !t.ends_with('/') || t.parse::<f64>().is_ok() {
        return Ok(None);
    }
    let src: String = t.chars().filter(|c| *c != '/').collect();
    regex::Regex::new(&src).map(Some).map_err(|e| {
        herr(
            ErrorCode::BadRequest,
            format!("'{t}' is not a regular expression rpm2 understands ({e}): JS-only syntax (lookarounds, backreferences) is not supported"),
        )
    })
}

/// [`resolve_targets`] over a given list. Each target must match something:
/// - `all`: every process;
/// - `/re/`: the processes whose name the expression matches (PM2);
/// - a number: that id, unless it is the name or namespace of processes (PM2's order);
/// - otherwise the processes of that name or of that absolute script path (the client sends file
///   targets absolute), and only when none, that namespace.
pub(crate) fn resolve(all: &[Known], targets: &[String]) -> Result<Vec<u32>, HandlerError> {
    let mut out = Vec::new();
    for t in targets {
        let t = t.trim();
        let named = |t: &str| -> Vec<u32> {
            let by_name: Vec<u32> = all
                .iter()
                .filter(|a| a.name == t || (t.starts_with('/') && a.script.as_os_str() == t))
                .map(|a| a.id)
                .collect();
            if by_name.is_empty() {
                all.iter().filter(|a| a.namespace == t).map(|a| a.id).collect()
            } else {
                by_name
            }
        };
        let found: Vec<u32> = if t == "all" {
            all.iter().map(|a| a.id).collect()
        } else if let Some(re) = regex_target(t)? {
            let ids: Vec<u32> = all.iter().filter(|a| re.is_match(&a.name)).map(|a| a.id).collect();
            if ids.is_empty() {
                return Err(herr(
                    ErrorCode::NotFound,
                    format!("no process name matches {t}: run `rpm2 list` to see the apps"),
                ));
            }
            ids
        } else if let Ok(id) = t.parse::<u32>() {
            let ids = named(t);
            if !ids.is_empty() {
                ids
            } else if all.iter().any(|a| a.id == id) {
                vec![id]
            } else {
                return Err(herr(
                    ErrorCode::NotFound,
                    format!("no process with id {id}: run `rpm2 list` to see the ids"),
                ));
            }
        } else {
            named(t)
        };
        if found.is_empty() && t != "all" {
            return Err(herr(
                ErrorCode::NotFound,
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

/// The latest usage sample of every running process (by OS pid) and when clients last looked.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(super) sampler: Sampler,
    pub(super) last: Option<Instant>,
    pub(crate) usage: HashMap<u32, Usage>,
    /// When a client last read the list (`list`, `describe`, `monit`, the web API): while that is
    /// recent the sampler runs every second, otherwise every [`SAMPLE_IDLE`].
    pub(super) last_look: Option<Instant>,
}

/// The cluster primary of an app (created on first use; one per app name). Every app's primary
/// shares one server table, as Node's one primary does: two apps listening on the same address share
/// its listener (round-robin over the workers of both), as under PM2.
pub(crate) fn cluster_of(d: &Daemon, spec: &AppSpec) -> Arc<ClusterApp> {
    let balance = spec.balance();
    match d.clusters.lock() {
        Ok(mut m) => {
            if let Some(app) = m.get(&spec.name) {
                return app.clone();
            }
            let app = match m.values().next() {
                Some(other) => ClusterApp::sharing(&spec.name, balance, other),
                None => ClusterApp::new(&spec.name, balance),
            };
            m.insert(spec.name.clone(), app.clone());
            app
        }
        Err(_) => ClusterApp::new(&spec.name, balance),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<Known> {
        let k = |id, name: &str, namespace: &str| Known {
            id,
            name: name.into(),
            namespace: namespace.into(),
            script: format!("/srv/{name}.js").into(),
        };
        vec![
            k(0, "api", "web"),
            k(1, "api", "web"),
            k(2, "worker", "jobs"),
            k(3, "jobs", "default"),
            k(7, "cron", "jobs"),
        ]
    }

    fn targets(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolves_ids_names_namespaces_and_all() {
        let all = known();
        assert_eq!(resolve(&all, &targets(&["2"])).unwrap(), vec![2]);
        assert_eq!(resolve(&all, &targets(&[" 7 "])).unwrap(), vec![7]);
        assert_eq!(resolve(&all, &targets(&["api"])).unwrap(), vec![0, 1]);
        assert_eq!(resolve(&all, &targets(&["web"])).unwrap(), vec![0, 1]);
        // A name wins over a namespace of the same name.
        assert_eq!(resolve(&all, &targets(&["jobs"])).unwrap(), vec![3]);
        assert_eq!(resolve(&all, &targets(&["all"])).unwrap(), vec![0, 1, 2, 3, 7]);
        // In order, without duplicates.
        assert_eq!(resolve(&all, &targets(&["worker", "api", "1", "2"])).unwrap(), vec![2, 0, 1]);
        assert_eq!(resolve(&all, &[]).unwrap(), Vec::<u32>::new());
        assert_eq!(resolve(&[], &targets(&["all"])).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn unknown_targets_are_not_found() {
        let all = known();
        let e = resolve(&all, &targets(&["5"])).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(e.message, "no process with id 5: run `rpm2 list` to see the ids");
        let e = resolve(&all, &targets(&["api", "nope"])).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(e.message, "no process or namespace named 'nope': run `rpm2 list` to see the apps");
        let e = resolve(&all, &targets(&["/^zz/"])).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let e = resolve(&all, &targets(&["/(?<=a)pi/"])).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    #[test]
    fn resolves_regexes_script_paths_and_numeric_names() {
        let mut all = known();
        assert_eq!(resolve(&all, &targets(&["/^(api|cron)$/"])).unwrap(), vec![0, 1, 7]);
        assert_eq!(resolve(&all, &targets(&["/ork/"])).unwrap(), vec![2]);
        assert_eq!(resolve(&all, &targets(&["/srv/worker.js"])).unwrap(), vec![2]);
        all.push(Known { id: 9, name: "2".into(), namespace: "default".into(), script: "/x".into() });
        // A number that is an app's name acts on that app, as PM2.
        assert_eq!(resolve(&all, &targets(&["2"])).unwrap(), vec![9]);
        assert_eq!(resolve(&all, &targets(&["3"])).unwrap(), vec![3]);
    }
}
