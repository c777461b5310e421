//! Automatic restarts that are not crashes: file changes ([`crate::watch`]), `cron_restart`
//! ([`crate::config::cron`]) and `max_memory_restart`. This is the daemon's single entry point for them: the
//! daemon tells it which apps exist ([`Triggers::sync`]) and what the memory sampler measured
//! ([`Triggers::memory`]); it answers with [`Fire`]s on a channel, which the daemon carries out
//! through the supervisors and acknowledges with [`Triggers::done`]. A trigger never fires again for
//! the same target while its previous restart is still running.

use crate::base::dlog;
use crate::base::fmt::human_bytes;
use crate::config::cron::Schedule;
use crate::config::spec::AppSpec;
use crate::watch::{self, Hub, WatchSpec};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What caused an automatic restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A file changed under a watched path.
    Watch,
    /// The app's `cron_restart` schedule.
    Cron,
    /// The process tree went over `max_memory_restart`.
    Memory,
}

/// A restart to carry out.
#[derive(Debug, Clone)]
pub struct Fire {
    /// The cause.
    pub kind: Kind,
    /// The app's name.
    pub app: String,
    /// The processes to restart; None: every instance of the app.
    pub ids: Option<Vec<u32>>,
    /// Why, for the daemon log and `rpm2 show` ("last restart reason").
    pub reason: String,
    /// A graceful replacement (a reload in cluster mode) rather than a plain restart.
    pub graceful: bool,
}

/// One app as the daemon knows it: its spec and the log files it writes (never watched).
pub struct AppView {
    /// The app's spec (any instance's: they share it).
    pub spec: Arc<AppSpec>,
    /// Its log files.
    pub log_files: Vec<PathBuf>,
}

/// See the module doc.
pub struct Triggers {
    tx: mpsc::UnboundedSender<Fire>,
    home: PathBuf,
    hub: Hub,
    watched: Mutex<Vec<WatchSpec>>,
    crons: Mutex<HashMap<String, (String, tokio::task::AbortHandle)>>,
    busy: Arc<Mutex<HashSet<(Kind, String)>>>,
    paused: Arc<Mutex<HashMap<String, String>>>,
}

impl Triggers {
    /// Triggers for the daemon whose home is `home`; restarts arrive on the returned receiver.
    pub fn new(home: PathBuf) -> (Triggers, mpsc::UnboundedReceiver<Fire>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let paused = Arc::new(Mutex::new(HashMap::new()));
        let wtx = tx.clone();
        let hub = Hub::new(
            Arc::new(move |f: watch::WatchFire| {
                let more = if f.count > 1 { format!(" (and {} more)", f.count - 1) } else { String::new() };
                let _ = wtx.send(Fire {
                    kind: Kind::Watch,
                    app: f.app,
                    ids: None,
                    reason: format!("watch: {} changed{more}", f.display),
                    graceful: true,
                });
            }),
            paused.clone(),
        );
        let t = Triggers {
            tx,
            home,
            hub,
            watched: Mutex::new(Vec::new()),
            crons: Mutex::new(HashMap::new()),
            busy: Arc::new(Mutex::new(HashSet::new())),
            paused,
        };
        (t, rx)
    }

    /// Makes watching and cron timers match `apps` (one entry per app name). Cheap when nothing
    /// changed. Must run inside the daemon's runtime (cron timers are tasks).
    pub fn sync(&self, apps: &[AppView]) {
        let mut specs = Vec::new();
        for a in apps {
            let s = &a.spec;
            if !s.watch {
                continue;
            }
            // Declarations are validated when they are made; a watched path removed since is skipped.
            let mut always = vec![self.home.clone()];
            always.extend(a.log_files.iter().cloned());
            specs.push(WatchSpec::for_app(s, always));
        }
        specs.sort_by(|a, b| a.app.cmp(&b.app));
        let changed = match self.watched.lock() {
            Ok(mut w) if *w != specs => {
                *w = specs.clone();
                true
            }
            _ => false,
        };
        if changed {
            self.hub.set(specs);
        }

        let wanted: HashMap<String, String> = apps
            .iter()
            .filter_map(|a| a.spec.cron_restart.as_ref().map(|c| (a.spec.name.clone(), c.clone())))
            .collect();
        let Ok(mut crons) = self.crons.lock() else { return };
        crons.retain(|name, (pattern, task)| {
            let keep = wanted.get(name) == Some(pattern);
            if !keep {
                task.abort();
                dlog(format!("[Cron] cron_restart of app [{name}] removed"));
            }
            keep
        });
        for (name, pattern) in wanted {
            if crons.contains_key(&name) {
                continue;
            }
            let schedule = match Schedule::parse(&pattern) {
                Ok(s) => s,
                Err(e) => {
                    dlog(format!("[Cron] app [{name}]: cron_restart \"{pattern}\" is not valid ({e}); ignored"));
                    continue;
                }
            };
            let tx = self.tx.clone();
            let busy = self.busy.clone();
            let app = name.clone();
            let pat = pattern.clone();
            let task = tokio::spawn(crate::config::cron::run(schedule, move |at| {
                let key = (Kind::Cron, app.clone());
                if let Ok(mut b) = busy.lock() {
                    if !b.insert(key) {
                        return; // the previous cron restart still runs
                    }
                }
                let _ = tx.send(Fire {
                    kind: Kind::Cron,
                    app: app.clone(),
                    ids: None,
                    reason: format!("cron_restart \"{pat}\" ({})", at.format("%Y-%m-%dT%H:%M:%S")),
                    graceful: false,
                });
            }));
            dlog(format!("[Cron] app [{name}] restarts on \"{pattern}\""));
            crons.insert(name, (pattern, task.abort_handle()));
        }
    }

    /// Checks one running process's measured memory (its whole process tree) against its app's
    /// `max_memory_restart`; over the limit, a graceful restart of that process is asked.
    pub fn memory(&self, pm_id: u32, spec: &AppSpec, used: u64) {
        let Some(limit) = spec.max_memory_restart else { return };
        if used <= limit {
            return;
        }
        let key = (Kind::Memory, pm_id.to_string());
        if let Ok(mut b) = self.busy.lock() {
            if !b.insert(key) {
                return;
            }
        }
        dlog(format!(
            "App [{}:{pm_id}] restarted because it exceeds --max-memory-restart value \
             (current_memory={used} max_memory_limit={limit} [octets])",
            spec.name
        ));
        let _ = self.tx.send(Fire {
            kind: Kind::Memory,
            app: spec.name.clone(),
            ids: Some(vec![pm_id]),
            reason: format!(
                "max_memory_restart: using {} ({used} bytes), over the limit of {} ({limit} bytes)",
                human_bytes(used),
                human_bytes(limit)
            ),
            graceful: true,
        });
    }

    /// The daemon carried out `f` (successfully or not): the trigger may fire again. `spawned_ms`:
    /// when the first new process started (epoch ms), if one did.
    pub fn done(&self, f: &Fire, spawned_ms: Option<u64>) {
        match f.kind {
            Kind::Watch => self.hub.done(&f.app, spawned_ms),
            Kind::Cron => {
                if let Ok(mut b) = self.busy.lock() {
                    b.remove(&(Kind::Cron, f.app.clone()));
                }
            }
            Kind::Memory => {
                if let Ok(mut b) = self.busy.lock() {
                    for id in f.ids.iter().flatten() {
                        b.remove(&(Kind::Memory, id.to_string()));
                    }
                }
            }
        }
    }

    /// The user restarted `app` by hand: a watch paused by the loop breaker resumes.
    pub fn resume(&self, app: &str) {
        let paused = self.paused.lock().map(|p| p.contains_key(app)).unwrap_or(false);
        if paused {
            self.hub.resume(app);
            if let Ok(mut p) = self.paused.lock() {
                p.remove(app);
            }
        }
    }

    /// Why the watching of `app` is paused, if it is.
    pub fn paused(&self, app: &str) -> Option<String> {
        self.paused.lock().ok().and_then(|p| p.get(app).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve_app, ResolveCtx};
    use serde_json::json;

    fn spec(name: &str) -> AppSpec {
        let ctx = ResolveCtx { cwd: std::env::temp_dir(), env: Default::default(), env_name: None };
        resolve_app(&json!({"script": "sleep", "args": ["30"], "name": name}), &ctx).expect("valid declaration").spec
    }

    fn triggers() -> (Triggers, mpsc::UnboundedReceiver<Fire>) {
        Triggers::new(std::env::temp_dir().join("rpm2-triggers-test-home"))
    }

    #[test]
    fn memory_fires_once_over_the_limit_until_done() {
        let (t, mut rx) = triggers();
        let mut s = spec("big");
        s.max_memory_restart = Some(1000);
        t.memory(4, &s, 1000);
        assert!(rx.try_recv().is_err(), "at the limit is not over it");
        t.memory(4, &s, 1001);
        let f = rx.try_recv().expect("a fire over the limit");
        assert_eq!((f.kind, f.app.as_str(), f.ids.clone(), f.graceful), (Kind::Memory, "big", Some(vec![4]), true));
        assert!(f.reason.contains("over the limit") && f.reason.contains("1001 bytes"), "{}", f.reason);
        t.memory(4, &s, 5000);
        assert!(rx.try_recv().is_err(), "not again while the restart runs");
        t.memory(5, &s, 5000);
        assert_eq!(rx.try_recv().expect("another process of the app").ids, Some(vec![5]));
        t.done(&f, None);
        t.memory(4, &s, 5000);
        assert_eq!(rx.try_recv().expect("fires again once done").ids, Some(vec![4]));
    }

    #[test]
    fn memory_without_a_limit_never_fires() {
        let (t, mut rx) = triggers();
        t.memory(1, &spec("small"), u64::MAX);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn done_frees_a_busy_cron_and_resume_clears_a_pause() {
        let (t, _rx) = triggers();
        t.busy.lock().expect("lock").insert((Kind::Cron, "app".into()));
        let f = Fire { kind: Kind::Cron, app: "app".into(), ids: None, reason: "cron".into(), graceful: false };
        t.done(&f, Some(1));
        assert!(t.busy.lock().expect("lock").is_empty());

        assert_eq!(t.paused("app"), None);
        t.paused.lock().expect("lock").insert("app".into(), "restart loop".into());
        assert_eq!(t.paused("app").as_deref(), Some("restart loop"));
        t.resume("app");
        assert_eq!(t.paused("app"), None, "a restart by hand resumes the watch");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sync_adds_and_removes_cron_timers() {
        let (t, _rx) = triggers();
        let mut s = spec("nightly");
        s.cron_restart = Some("0 3 * * *".into());
        let mut bad = spec("bad");
        bad.cron_restart = Some("not a cron".into());
        let views = |specs: Vec<AppSpec>| -> Vec<AppView> {
            specs.into_iter().map(|s| AppView { spec: Arc::new(s), log_files: vec![] }).collect()
        };
        t.sync(&views(vec![s.clone(), bad]));
        let names: Vec<String> = t.crons.lock().expect("lock").keys().cloned().collect();
        assert_eq!(names, vec!["nightly".to_string()], "an invalid pattern is skipped");
        s.cron_restart = Some("0 4 * * *".into());
        t.sync(&views(vec![s]));
        assert_eq!(t.crons.lock().expect("lock").get("nightly").map(|c| c.0.clone()).as_deref(), Some("0 4 * * *"));
        t.sync(&[]);
        assert!(t.crons.lock().expect("lock").is_empty(), "removed with its app");
    }
}
