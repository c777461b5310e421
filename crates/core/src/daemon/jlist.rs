//! Builds the PM2 `jlist` objects ([`Pm2Process`]) of registered processes, and the short summaries
//! that control methods answer.

use super::sampler::{mark_look, sample, usage_of};
use super::state::{handle_of, Daemon};
use crate::protocol::{Monit, Pm2Env, Pm2Process};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How a `jlist` object carries the app's environment (`pm2_env.env`, and each key again at the top
/// level of `pm2_env`, as PM2 does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvView {
    /// The keys, their values reading `[hidden]` (PM2's shape, with the values kept private).
    Hidden,
    /// The keys and their values.
    Shown,
    /// No env key anywhere (`env` is `{}`): for readers that show none.
    Omitted,
}

impl EnvView {
    /// `Shown` when `show`, else `Hidden`.
    pub(crate) fn shown_if(show: bool) -> EnvView {
        if show {
            EnvView::Shown
        } else {
            EnvView::Hidden
        }
    }
}

/// The PM2 `jlist` object of process `id` (None when it is not registered), its environment as
/// `view` says.
pub(crate) fn pm2_process(d: &Daemon, id: u32, view: EnvView) -> Option<Pm2Process> {
    let (instance, unique_id, h) = {
        let r = d.registry.lock().ok()?;
        let e = r.procs.get(&id)?;
        (e.instance, e.unique_id.clone(), e.handle.clone())
    };
    // Borrowed, not cloned: this function never awaits, so the borrows end before anything else
    // runs on this thread.
    let st_ref = h.state.borrow();
    let st = &*st_ref;
    let spec_ref = h.spec.borrow();
    let (spec, paths) = &*spec_ref;
    let usage = usage_of(d, st.pid);
    let env: Map<String, Value> = match view {
        EnvView::Omitted => Map::new(),
        _ => spec
            .env
            .iter()
            .map(|(k, v)| {
                (k.clone(), Value::String(if view == EnvView::Shown { v.clone() } else { "[hidden]".into() }))
            })
            .collect(),
    };
    let top_env = env.clone();
    let log_path =
        |x: &Option<PathBuf>| x.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "/dev/null".into());
    let mut pm2_env = Pm2Env {
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
        pm_id: id,
        status: st.status.as_str().into(),
        restart_time: st.restart_time,
        unstable_restarts: st.unstable_restarts,
        created_at: st.created_at,
        pm_uptime: st.pm_uptime,
        exec_mode: spec.exec_mode.pm2_name().into(),
        instances: spec.instances,
        exec_interpreter: spec.interpreter.clone().unwrap_or_else(|| "none".into()),
        pm_exec_path: spec.script.clone(),
        pm_cwd: spec.cwd.clone(),
        args: spec.args.clone(),
        node_args: spec.node_args.clone(),
        pm_out_log_path: log_path(&paths.out),
        pm_err_log_path: log_path(&paths.err),
        pm_pid_path: paths.pid.clone(),
        merge_logs: spec.merge_logs,
        autorestart: spec.autorestart,
        autostart: spec.autostart,
        watch: spec.watch,
        max_restarts: spec.max_restarts,
        min_uptime: spec.min_uptime,
        kill_timeout: spec.kill_timeout,
        listen_timeout: spec.listen_timeout,
        wait_ready: spec.wait_ready,
        shutdown_with_message: spec.shutdown_with_message,
        restart_delay: spec.restart_delay,
        treekill: spec.treekill,
        instance_var: spec.instance_var.clone(),
        node_app_instance: instance,
        unique_id,
        username: username(),
        version: package_version(&spec.script),
        env,
        filter_env: spec.extra.get("filter_env").cloned().unwrap_or_else(|| json!([])),
        vizion: spec.extra.get("vizion").and_then(Value::as_bool).unwrap_or(true),
        pmx: spec.pmx(),
        automation: true,
        windows_hide: true,
        kill_retry_time: 100,
        km_link: false,
        vizion_running: false,
        axm_monitor: st.axm_monitor.clone().unwrap_or_else(|| json!({})),
        axm_options: json!({}),
        axm_dynamic: json!({}),
        pm_log_path: paths.combined.clone(),
        exp_backoff_restart_delay: spec.exp_backoff_restart_delay,
        prev_restart_delay: spec.exp_backoff_restart_delay.map(|_| st.prev_restart_delay),
        stop_exit_codes: (!spec.stop_exit_codes.is_empty()).then(|| spec.stop_exit_codes.clone()),
        max_memory_restart: spec.max_memory_restart,
        cron_restart: spec.cron_restart.clone(),
        log_date_format: spec.log_date_format.clone(),
        increment_var: spec.increment_var.clone(),
        exit_code: st.exit_code,
        restart_reason: st.restart_reason.clone(),
        watch_paused: d.triggers.paused(&spec.name),
        node_version: spec.interpreter.as_deref().and_then(|i| node_version(i, spec.env.get("PATH"))),
        // The readiness probe's verdict, for apps that declare one.
        readiness: spec.probes.readiness.is_some().then(|| {
            let ready = st.ready == Some(true) && st.pid.is_some();
            (if ready { "ready" } else { "not ready" }).to_string()
        }),
        extra: Map::new(),
    };
    pm2_env.add_extra(&spec.extra);
    // Declared actions (tx2/@pm2/io), always present as in PM2; `_km_monitored` once set.
    pm2_env.extra.insert("axm_actions".into(), Value::Array(st.axm_actions.clone()));
    if let Some(on) = st.km_monitored {
        pm2_env.extra.insert("_km_monitored".into(), Value::Bool(on));
    }
    // As PM2: each env key also at the top level of pm2_env (scripts read `pm2_env.PORT`).
    pm2_env.add_extra(&top_env);
    Some(Pm2Process {
        pid: st.pid.unwrap_or(0),
        name: spec.name.clone(),
        pm_id: id,
        monit: Monit { memory: usage.memory, cpu: usage.cpu },
        pm2_env,
    })
}

/// How long a value read from the filesystem for the jlist ([`RECENT_VERSIONS`], [`RECENT_NODES`])
/// is used again before it is read afresh: a burst of `list` calls (a script, monit, the
/// dashboard) then costs no file lookups, and a change shows within this time.
const RECENT_FOR: Duration = Duration::from_secs(5);

/// Values computed from the filesystem, each kept for `keep` after it was computed.
struct Recent<K, V> {
    keep: Duration,
    map: OnceLock<Mutex<HashMap<K, (Instant, V)>>>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Recent<K, V> {
    const fn new(keep: Duration) -> Self {
        Recent { keep, map: OnceLock::new() }
    }

    /// The value of `key` computed less than `keep` ago, else `compute()` (kept). Entries older
    /// than that are dropped as new ones come, so the map holds only what was recently asked.
    fn get_or(&self, key: &K, compute: impl FnOnce() -> V) -> V {
        let map = self.map.get_or_init(|| Mutex::new(HashMap::new()));
        let now = Instant::now();
        if let Ok(m) = map.lock() {
            if let Some((at, v)) = m.get(key) {
                if now.duration_since(*at) < self.keep {
                    return v.clone();
                }
            }
        }
        let v = compute();
        if let Ok(mut m) = map.lock() {
            m.retain(|_, (at, _)| now.duration_since(*at) < self.keep);
            m.insert(key.clone(), (now, v.clone()));
        }
        v
    }
}

/// `version` of the nearest package.json, by script path.
static RECENT_VERSIONS: Recent<PathBuf, String> = Recent::new(RECENT_FOR);
/// The Node.js version, by interpreter and the app's `PATH`.
static RECENT_NODES: Recent<(String, Option<String>), Option<String>> = Recent::new(RECENT_FOR);

/// The version (`22.1.0`) of the Node.js interpreter `interp` as the app's `PATH` finds it; None
/// when it is not Node or does not answer. Looked up again at most every [`RECENT_FOR`].
fn node_version(interp: &str, path_env: Option<&String>) -> Option<String> {
    RECENT_NODES.get_or(&(interp.to_string(), path_env.cloned()), || probe_node_version(interp, path_env))
}

/// [`node_version`] without the short-term memory: finds the executable on `PATH` (one `stat` per
/// folder), then asks it once per executable (and again after it changes); the answer is cached,
/// and a hung interpreter holds the daemon for 2 s at most.
fn probe_node_version(interp: &str, path_env: Option<&String>) -> Option<String> {
    type Cache = Mutex<HashMap<(PathBuf, Option<SystemTime>), Option<String>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let exe = find_executable(interp, path_env)?;
    let name = exe.file_name()?.to_str()?;
    if !name.starts_with("node") {
        return None;
    }
    let key = (exe.clone(), std::fs::metadata(&exe).and_then(|m| m.modified()).ok());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().ok()?.get(&key) {
        return v.clone();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = exe.clone();
    std::thread::spawn(move || {
        let out = std::process::Command::new(&probe)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        let _ = tx.send(out);
    });
    let version = match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(Ok(o)) if o.status.success() => {
            let v = String::from_utf8_lossy(&o.stdout).trim().trim_start_matches('v').to_string();
            (!v.is_empty()).then_some(v)
        }
        _ => None,
    };
    if let Ok(mut c) = cache.lock() {
        c.insert(key, version.clone());
    }
    version
}

/// `cmd` as an executable path: itself when it holds a `/`, else the first match on `path_env`
/// (the daemon's PATH when None).
fn find_executable(cmd: &str, path_env: Option<&String>) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    let path = path_env.cloned().or_else(|| std::env::var("PATH").ok())?;
    std::env::split_paths(&path).map(|d| d.join(cmd)).find(|p| p.is_file())
}

/// The user the daemon runs as: `$USER`, else the name of the real uid, else empty.
fn username() -> String {
    std::env::var("USER").unwrap_or_else(|_| {
        nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name).unwrap_or_default()
    })
}

/// `version` of the nearest package.json above the script, or `N/A`. Read again at most every
/// [`RECENT_FOR`].
fn package_version(script: &Path) -> String {
    RECENT_VERSIONS.get_or(&script.to_path_buf(), || read_package_version(script))
}

/// [`package_version`] read from the files (one open per folder up from the script).
fn read_package_version(script: &Path) -> String {
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

/// The `jlist` array of `ids` (those still registered), with a fresh enough CPU/memory sample, as
/// JSON text written straight from the typed objects. Marks that a client is looking, so the
/// sampler speeds up.
pub(crate) fn list_json(d: &Daemon, ids: &[u32], view: EnvView) -> Box<RawValue> {
    mark_look(d);
    sample(d, Duration::from_millis(1000));
    let list: Vec<Pm2Process> = ids.iter().filter_map(|id| pm2_process(d, *id, view)).collect();
    // A Pm2Process always serializes (string keys, finite numbers).
    serde_json::value::to_raw_value(&list).unwrap_or_default()
}

/// `[{name, namespace, pm_id, status, restart_time, pid}]` of `ids`: the answer of control methods.
pub(crate) fn summary(d: &Daemon, ids: &[u32]) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_value_is_computed_once_within_its_time() {
        // Kept for an hour: the test does not depend on how fast the machine runs it.
        static R: Recent<u32, u32> = Recent::new(Duration::from_secs(3600));
        let mut runs = 0;
        assert_eq!(
            R.get_or(&1, || {
                runs += 1;
                10
            }),
            10
        );
        assert_eq!(
            R.get_or(&1, || {
                runs += 1;
                11
            }),
            10,
            "kept"
        );
        assert_eq!(
            R.get_or(&2, || {
                runs += 1;
                20
            }),
            20,
            "another key is its own"
        );
        assert_eq!(runs, 2);
    }
}
