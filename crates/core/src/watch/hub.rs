//! The daemon's handle on the shared watcher thread: what to watch ([`WatchSpec`]), what fires
//! ([`WatchFire`]), and the commands sent to the thread.

use super::*;
use crate::config::spec::AppSpec;

/// What the daemon asks to watch for one app (derived from its spec; equal specs mean no change).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    /// App name (all its instances restart).
    pub app: String,
    /// The app's cwd (relative ignore entries and displayed paths are relative to it).
    pub cwd: PathBuf,
    /// Watched files and directories (absolute).
    pub roots: Vec<PathBuf>,
    /// `ignore_watch` entries.
    pub ignore: Vec<String>,
    /// Absolute paths always ignored (log files, the daemon's home).
    pub always_ignored: Vec<PathBuf>,
    /// `watch_delay`.
    pub delay: Duration,
    /// Polling interval when polling was asked for.
    pub poll: Option<Duration>,
}

impl WatchSpec {
    /// What to watch for `spec`, from its parsed watch options: the watched paths that exist now
    /// (one removed since the app was declared is skipped), its `ignore_watch`, `watch_delay` and
    /// polling; `always_ignored` are the daemon's home and the app's log and pid files.
    pub fn for_app(spec: &AppSpec, always_ignored: Vec<PathBuf>) -> WatchSpec {
        let w = spec.watch_options();
        WatchSpec {
            app: spec.name.clone(),
            cwd: spec.cwd.clone(),
            roots: w.existing_roots(),
            ignore: w.ignore.clone(),
            always_ignored,
            delay: w.delay(),
            poll: w.poll(),
        }
    }
}

/// A restart asked by the watcher.
#[derive(Debug, Clone)]
pub struct WatchFire {
    /// App name.
    pub app: String,
    /// That path for people (relative to the app's cwd when below it).
    pub display: String,
    /// How many distinct paths changed in the burst.
    pub count: usize,
}

pub(super) enum Cmd {
    Set(Vec<WatchSpec>),
    Done(String, Option<u64>),
    Resume(String),
    Fs(notify::Result<Event>),
}

/// Handle on the watcher thread (started with the first watched app).
pub struct Hub {
    pub(super) tx: Mutex<Option<smpsc::Sender<Cmd>>>,
    pub(super) fire: Arc<dyn Fn(WatchFire) + Send + Sync>,
    pub(super) paused: Arc<Mutex<HashMap<String, String>>>,
}

impl Hub {
    /// A hub whose restarts go to `fire`; paused apps and their reasons are kept in `paused`.
    pub fn new(fire: Arc<dyn Fn(WatchFire) + Send + Sync>, paused: Arc<Mutex<HashMap<String, String>>>) -> Hub {
        Hub { tx: Mutex::new(None), fire, paused }
    }

    pub(super) fn send(&self, c: Cmd, start: bool) {
        self.send_once(c, start, true);
    }

    pub(super) fn send_once(&self, c: Cmd, start: bool, retry: bool) {
        let Ok(mut g) = self.tx.lock() else { return };
        if g.is_none() {
            if !start {
                return;
            }
            let (tx, rx) = smpsc::channel();
            let engine = Engine::new(tx.clone(), self.fire.clone(), self.paused.clone());
            match std::thread::Builder::new()
                .name("rpm2-watch".into())
                .stack_size(512 * 1024)
                .spawn(move || engine.run(rx))
            {
                Ok(_) => *g = Some(tx),
                Err(e) => {
                    dlog(format!("cannot start the file watcher thread: {e}; watch is not available"));
                    return;
                }
            }
        }
        if let Some(tx) = g.as_ref() {
            if let Err(smpsc::SendError(c)) = tx.send(c) {
                // The thread is gone (it never should be): start a new one for a full set.
                *g = None;
                drop(g);
                if start && retry {
                    dlog("[Watch] the file watcher thread ended; starting it again");
                    self.send_once(c, true, false);
                }
            }
        }
    }

    /// Sets the complete list of watched apps (apps not in it stop being watched).
    pub fn set(&self, specs: Vec<WatchSpec>) {
        let start = !specs.is_empty();
        self.send(Cmd::Set(specs), start);
    }

    /// The restart asked for `app` is over; its (first) new process was spawned at `spawned_ms`
    /// (epoch ms), when known.
    pub fn done(&self, app: &str, spawned_ms: Option<u64>) {
        self.send(Cmd::Done(app.to_string(), spawned_ms), false);
    }

    /// Resumes the watching of `app` if the loop breaker paused it.
    pub fn resume(&self, app: &str) {
        self.send(Cmd::Resume(app.to_string()), false);
    }
}
