//! `watch`: restart an app when files under its watched paths change.
//!
//! One watcher serves the whole daemon, on its own thread (directory walks and watch set-up never
//! block the daemon's runtime). Native events (inotify on Linux, FSEvents/kqueue elsewhere, through
//! `notify`) are used per directory, so ignored trees (`node_modules`, `.git`, ...) are never walked nor
//! watched, and a quiet tree of any size costs nothing: the thread sleeps in a blocking receive. When
//! native events are unavailable (no inotify, or the `fs.inotify.max_user_watches` limit is reached),
//! the directories concerned are polled instead, and the daemon log says so; `watch_options:
//! {usePolling: true, interval: ms}` (chokidar's names) or `RPM2_WATCH_POLL=1` in the daemon's
//! environment ask for polling explicitly (network file systems).
//!
//! What triggers a restart: a file or directory created, removed, renamed, written, or whose
//! metadata changed (`touch`), under a watched path and not ignored. Reads do not count.
//!
//! Ignore rules ([`IgnoreRules`]): always `node_modules`, `.git`, every dot-file and dot-directory
//! (below the watched path), the app's own log and pid files (and rotated logs), the daemon's home;
//! the app's `ignore_watch` entries **extend** these defaults (PM2 replaces them; see the README).
//! An entry is a plain name
//! (`logs`: any file or directory of that name, at any depth), a glob without a slash (`*.log`:
//! matched against every path component), a relative path or glob with a slash (`src/gen`,
//! `data/**/*.csv`: relative to the app's cwd or to the watched path; a match on a directory ignores
//! everything below it), or an absolute path or glob.
//!
//! Debounce ([`Debounce`]): a burst of changes (a `git checkout` of 500 files) gives one restart: the
//! restart happens once no change has been seen for [`QUIET`], but no earlier than `watch_delay` after
//! the first change and no later than `watch_delay` + [`MAX_WAIT`]. Changes seen while the restart
//! runs give one more restart after it, unless they all came before the new process was spawned (the
//! tail of the same burst: the new process already sees them).
//!
//! Loop breaker ([`LoopBreaker`]): an app restarted by file changes more than [`LOOP_MAX`] times within
//! [`LOOP_WINDOW`] (typically one that writes into its own watched tree) has its watching paused; the
//! app is left running, the daemon log and `rpm2 show` say why, and `rpm2 restart <app>` (or turning
//! watch off and on) resumes it.

use crate::base::dlog;
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc as smpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A burst of changes ends after this much silence.
pub const QUIET: Duration = Duration::from_millis(100);
/// Longest wait (after `watch_delay`) for a burst to end: a tree that never stops changing still
/// restarts the app.
pub const MAX_WAIT: Duration = Duration::from_millis(1000);
/// Restarts by file changes allowed within [`LOOP_WINDOW`] before watching is paused.
pub const LOOP_MAX: usize = 10;
/// The loop breaker's window.
pub const LOOP_WINDOW: Duration = Duration::from_secs(60);
pub use crate::config::watch_options::{
    delay_ms, existing_roots, ignore_list, poll_option, roots, IgnoreRules, DEFAULT_IGNORED, DEFAULT_POLL,
};

// ---------------------------------------------------------------------------------------------------
// Debounce and loop breaker (pure logic)

/// Collects one app's changes until the burst is over (see the module doc).
#[derive(Debug, Default)]
pub struct Debounce {
    first: Option<Instant>,
    last: Option<Instant>,
    path: Option<PathBuf>,
    files: HashSet<PathBuf>,
}

/// Distinct paths remembered per burst (only their count is reported).
const MAX_TRACKED: usize = 100_000;

impl Debounce {
    /// Notes a change of `path` at `now`.
    pub fn note(&mut self, now: Instant, path: &Path) {
        if self.first.is_none() {
            self.first = Some(now);
            self.path = Some(path.to_path_buf());
        }
        self.last = Some(now);
        if self.files.len() < MAX_TRACKED {
            self.files.insert(path.to_path_buf());
        }
    }

    /// Whether changes are waiting.
    pub fn pending(&self) -> bool {
        self.first.is_some()
    }

    /// When the pending changes should restart the app, given `watch_delay`.
    pub fn due(&self, delay: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        let quiet_end = (last + QUIET).min(first + delay + MAX_WAIT);
        Some(quiet_end.max(first + delay))
    }

    /// Forgets the pending changes if all of them happened before `t` (a restart that spawned the new
    /// process at `t` already covers them).
    pub fn forget_before(&mut self, t: Instant) {
        if self.last.map(|l| l < t).unwrap_or(false) {
            *self = Debounce::default();
        }
    }

    /// Takes the burst: the first path changed and how many distinct paths changed in all.
    pub fn take(&mut self) -> Option<(PathBuf, usize)> {
        self.first?;
        let path = self.path.take()?;
        let n = self.files.len().max(1);
        *self = Debounce::default();
        Some((path, n))
    }
}

/// Counts restarts caused by file changes in a sliding window.
#[derive(Debug)]
pub struct LoopBreaker {
    times: VecDeque<Instant>,
    max: usize,
    window: Duration,
}

impl LoopBreaker {
    /// At most `max` restarts within `window`.
    pub fn new(max: usize, window: Duration) -> LoopBreaker {
        LoopBreaker { times: VecDeque::new(), max, window }
    }

    /// Whether one more restart at `now` is allowed; it is recorded when it is.
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(t) = self.times.front() {
            if now.duration_since(*t) > self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        if self.times.len() >= self.max {
            return false;
        }
        self.times.push_back(now);
        true
    }

    /// Forgets the history (after the user resumed watching).
    pub fn reset(&mut self) {
        self.times.clear();
    }
}

// ---------------------------------------------------------------------------------------------------
// The shared watcher

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

/// A restart asked by the watcher.
#[derive(Debug, Clone)]
pub struct WatchFire {
    /// App name.
    pub app: String,
    /// The first file that changed (absolute).
    pub path: PathBuf,
    /// That path for people (relative to the app's cwd when below it).
    pub display: String,
    /// How many distinct paths changed in the burst.
    pub count: usize,
}

enum Cmd {
    Set(Vec<WatchSpec>),
    Done(String, Option<u64>),
    Resume(String),
    Fs(notify::Result<Event>),
}

/// Handle on the watcher thread (started with the first watched app).
pub struct Hub {
    tx: Mutex<Option<smpsc::Sender<Cmd>>>,
    fire: Arc<dyn Fn(WatchFire) + Send + Sync>,
    paused: Arc<Mutex<HashMap<String, String>>>,
}

impl Hub {
    /// A hub whose restarts go to `fire`; paused apps and their reasons are kept in `paused`.
    pub fn new(fire: Arc<dyn Fn(WatchFire) + Send + Sync>, paused: Arc<Mutex<HashMap<String, String>>>) -> Hub {
        Hub { tx: Mutex::new(None), fire, paused }
    }

    fn send(&self, c: Cmd, start: bool) {
        self.send_once(c, start, true);
    }

    fn send_once(&self, c: Cmd, start: bool, retry: bool) {
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

/// `(directory, polling interval in ms or None for native events)`.
type DirKey = (PathBuf, Option<u64>);

struct AppW {
    spec: WatchSpec,
    rules: IgnoreRules,
    dir_roots: Vec<PathBuf>,
    file_roots: Vec<PathBuf>,
    deb: Debounce,
    breaker: LoopBreaker,
    in_flight: bool,
    paused: bool,
    dirs: HashSet<DirKey>,
}

impl AppW {
    fn new(spec: WatchSpec) -> AppW {
        let rules = IgnoreRules::new(&spec.ignore, &spec.always_ignored).unwrap_or_else(|e| {
            dlog(format!("App [{}]: ignore_watch {e}; using the default ignore rules", spec.app));
            IgnoreRules::new(&[], &spec.always_ignored)
                .unwrap_or_else(|_| IgnoreRules::only_paths(&spec.always_ignored))
        });
        let (mut dir_roots, mut file_roots) = (vec![], vec![]);
        for r in &spec.roots {
            if r.is_dir() {
                dir_roots.push(r.clone());
            } else {
                file_roots.push(r.clone());
            }
        }
        AppW {
            spec,
            rules,
            dir_roots,
            file_roots,
            deb: Debounce::default(),
            breaker: LoopBreaker::new(LOOP_MAX, LOOP_WINDOW),
            in_flight: false,
            paused: false,
            dirs: HashSet::new(),
        }
    }

    /// Whether a change of `path` concerns this app.
    fn concerns(&self, path: &Path) -> bool {
        if self.file_roots.iter().any(|f| f == path) {
            return true;
        }
        self.dir_roots.iter().any(|r| path.starts_with(r) && !self.rules.is_ignored(r, &self.spec.cwd, path))
    }

    fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.spec.cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        }
    }
}

struct Engine {
    apps: HashMap<String, AppW>,
    dirs: HashMap<DirKey, HashSet<String>>,
    native: Option<notify::RecommendedWatcher>,
    native_broken: bool,
    polls: HashMap<u64, notify::PollWatcher>,
    tx: smpsc::Sender<Cmd>,
    fire: Arc<dyn Fn(WatchFire) + Send + Sync>,
    paused: Arc<Mutex<HashMap<String, String>>>,
    force_poll: bool,
    errors_logged: u32,
}

/// Whether an event kind means "changed" (reads and opens do not).
fn is_change(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any)
}

impl Engine {
    fn new(
        tx: smpsc::Sender<Cmd>,
        fire: Arc<dyn Fn(WatchFire) + Send + Sync>,
        paused: Arc<Mutex<HashMap<String, String>>>,
    ) -> Engine {
        let force_poll = matches!(std::env::var("RPM2_WATCH_POLL").as_deref(), Ok("1") | Ok("true"));
        Engine {
            apps: HashMap::new(),
            dirs: HashMap::new(),
            native: None,
            native_broken: false,
            polls: HashMap::new(),
            tx,
            fire,
            paused,
            force_poll,
            errors_logged: 0,
        }
    }

    fn handler(&self) -> impl notify::EventHandler {
        let tx = self.tx.clone();
        move |ev: notify::Result<Event>| {
            // Filter on the notifier's thread: reads never wake the engine.
            let keep = match &ev {
                Ok(e) => e.need_rescan() || is_change(&e.kind),
                Err(_) => true,
            };
            if keep {
                let _ = tx.send(Cmd::Fs(ev));
            }
        }
    }

    fn run(mut self, rx: smpsc::Receiver<Cmd>) {
        loop {
            let next =
                self.apps.values().filter(|a| !a.in_flight && !a.paused).filter_map(|a| a.deb.due(a.spec.delay)).min();
            let cmd = match next {
                Some(t) => {
                    let now = Instant::now();
                    if t <= now {
                        self.fire_due(now);
                        continue;
                    }
                    match rx.recv_timeout(t - now) {
                        Ok(c) => Some(c),
                        Err(smpsc::RecvTimeoutError::Timeout) => None,
                        Err(smpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                },
            };
            if let Some(c) = cmd {
                self.handle(c);
            }
            self.fire_due(Instant::now());
        }
    }

    fn handle(&mut self, c: Cmd) {
        match c {
            Cmd::Set(specs) => self.set(specs),
            Cmd::Done(app, spawned_ms) => {
                if let Some(a) = self.apps.get_mut(&app) {
                    a.in_flight = false;
                    if let Some(ms) = spawned_ms {
                        let age = Duration::from_millis(crate::base::fmt::now_ms().saturating_sub(ms));
                        if let Some(spawned) = Instant::now().checked_sub(age) {
                            a.deb.forget_before(spawned);
                        }
                    }
                }
            }
            Cmd::Resume(app) => {
                if let Some(a) = self.apps.get_mut(&app) {
                    if a.paused {
                        a.paused = false;
                        a.breaker.reset();
                        a.deb = Debounce::default();
                        dlog(format!("[Watch] watching of app [{app}] resumed"));
                    }
                }
                if let Ok(mut p) = self.paused.lock() {
                    p.remove(&app);
                }
            }
            Cmd::Fs(ev) => self.on_fs(ev, Instant::now()),
        }
    }

    fn set(&mut self, specs: Vec<WatchSpec>) {
        let wanted: HashMap<String, WatchSpec> = specs.into_iter().map(|s| (s.app.clone(), s)).collect();
        let stale: Vec<String> = self
            .apps
            .iter()
            .filter(|(name, a)| wanted.get(*name).map(|w| *w != a.spec).unwrap_or(true))
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            self.remove_app(&name);
        }
        for (name, spec) in wanted {
            if !self.apps.contains_key(&name) {
                self.add_app(spec);
            }
        }
    }

    fn add_app(&mut self, spec: WatchSpec) {
        let mut a = AppW::new(spec);
        let t0 = Instant::now();
        for r in a.dir_roots.clone() {
            self.add_tree(&mut a, &r, &r);
        }
        for f in a.file_roots.clone() {
            if let Some(parent) = f.parent() {
                if let Some(k) = self.watch_dir(parent, a.spec.poll) {
                    self.dirs.entry(k.clone()).or_default().insert(a.spec.app.clone());
                    a.dirs.insert(k);
                }
            }
        }
        let polled = a.dirs.iter().filter(|k| k.1.is_some()).count();
        let roots: Vec<String> = a.spec.roots.iter().map(|r| r.display().to_string()).collect();
        dlog(format!(
            "[Watch] Start watching {} ({}; {} director{}{}, set up in {} ms)",
            a.spec.app,
            roots.join(", "),
            a.dirs.len(),
            if a.dirs.len() == 1 { "y" } else { "ies" },
            if polled > 0 { format!(", {polled} polled") } else { String::new() },
            t0.elapsed().as_millis()
        ));
        if let Ok(mut p) = self.paused.lock() {
            p.remove(&a.spec.app);
        }
        self.apps.insert(a.spec.app.clone(), a);
    }

    fn remove_app(&mut self, name: &str) {
        let Some(a) = self.apps.remove(name) else { return };
        for k in a.dirs {
            let empty = match self.dirs.get_mut(&k) {
                Some(set) => {
                    set.remove(name);
                    set.is_empty()
                }
                None => false,
            };
            if empty {
                self.dirs.remove(&k);
                self.unwatch_dir(&k);
            }
        }
        if let Ok(mut p) = self.paused.lock() {
            p.remove(name);
        }
        dlog(format!("[Watch] Stop watching {name}"));
    }

    /// Watches `start` and every directory below it that `a`'s rules do not ignore (symlinked
    /// directories are not followed).
    fn add_tree(&mut self, a: &mut AppW, root: &Path, start: &Path) {
        let mut stack = vec![start.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Some(k) = self.watch_dir(&dir, a.spec.poll) else { continue };
            self.dirs.entry(k.clone()).or_default().insert(a.spec.app.clone());
            a.dirs.insert(k);
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let p = e.path();
                    if !a.rules.is_ignored(root, &a.spec.cwd, &p) {
                        stack.push(p);
                    }
                }
            }
        }
    }

    /// Starts watching one directory (native events, else polling); None when it cannot be watched.
    fn watch_dir(&mut self, dir: &Path, poll: Option<Duration>) -> Option<DirKey> {
        let poll = if self.force_poll { Some(poll.unwrap_or(DEFAULT_POLL)) } else { poll };
        if poll.is_none() && !self.native_broken {
            let key = (dir.to_path_buf(), None);
            if self.dirs.contains_key(&key) {
                return Some(key);
            }
            if self.native.is_none() {
                match notify::recommended_watcher(self.handler()) {
                    Ok(w) => self.native = Some(w),
                    Err(e) => {
                        dlog(format!(
                            "[Watch] native file events are unavailable ({e}): polling every {} ms instead",
                            DEFAULT_POLL.as_millis()
                        ));
                        self.native_broken = true;
                    }
                }
            }
            if let Some(w) = self.native.as_mut() {
                match w.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => return Some(key),
                    Err(e) => match e.kind {
                        notify::ErrorKind::MaxFilesWatch => {
                            let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                                .map(|s| s.trim().to_string())
                                .unwrap_or_else(|_| "?".into());
                            dlog(format!(
                                "[Watch] the limit of native watches is reached (fs.inotify.max_user_watches = {limit}): \
                                 polling {} and any further directory every {} ms instead (raise the limit with \
                                 `sysctl fs.inotify.max_user_watches=524288`, or ignore more with ignore_watch)",
                                dir.display(),
                                DEFAULT_POLL.as_millis()
                            ));
                            self.native_broken = true;
                        }
                        notify::ErrorKind::PathNotFound => return None,
                        _ => {
                            dlog(format!("[Watch] cannot watch {}: {e}", dir.display()));
                            return None;
                        }
                    },
                }
            }
        }
        let every = poll.unwrap_or(DEFAULT_POLL);
        let ms = every.as_millis() as u64;
        let key = (dir.to_path_buf(), Some(ms));
        if self.dirs.contains_key(&key) {
            return Some(key);
        }
        if !self.polls.contains_key(&ms) {
            let cfg = notify::Config::default().with_poll_interval(every);
            match notify::PollWatcher::new(self.handler(), cfg) {
                Ok(w) => {
                    self.polls.insert(ms, w);
                }
                Err(e) => {
                    dlog(format!("[Watch] cannot poll {}: {e}", dir.display()));
                    return None;
                }
            }
        }
        let w = self.polls.get_mut(&ms)?;
        match w.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(key),
            Err(e) => {
                if !matches!(e.kind, notify::ErrorKind::PathNotFound) {
                    dlog(format!("[Watch] cannot poll {}: {e}", dir.display()));
                }
                None
            }
        }
    }

    fn unwatch_dir(&mut self, k: &DirKey) {
        match k.1 {
            None => {
                if let Some(w) = self.native.as_mut() {
                    let _ = w.unwatch(&k.0);
                }
            }
            Some(ms) => {
                if let Some(w) = self.polls.get_mut(&ms) {
                    let _ = w.unwatch(&k.0);
                }
            }
        }
    }

    fn on_fs(&mut self, ev: notify::Result<Event>, now: Instant) {
        let ev = match ev {
            Ok(e) => e,
            Err(e) => {
                if self.errors_logged < 20 {
                    self.errors_logged += 1;
                    dlog(format!("[Watch] file watch error: {e}"));
                }
                return;
            }
        };
        if ev.need_rescan() {
            // Events were lost (queue overflow): assume everything changed.
            for a in self.apps.values_mut() {
                if !a.paused {
                    let p = a.spec.roots.first().cloned().unwrap_or_default();
                    a.deb.note(now, &p);
                }
            }
            return;
        }
        if !is_change(&ev.kind) {
            return;
        }
        let created = matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(notify::event::ModifyKind::Name(_)));
        let removed = matches!(
            ev.kind,
            EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(notify::event::RenameMode::From))
        );
        for p in &ev.paths {
            if removed {
                // Its watch (if it was a watched directory) is gone with it.
                let k: DirKey = (p.clone(), None);
                if let Some(apps) = self.dirs.remove(&k) {
                    for name in apps {
                        if let Some(a) = self.apps.get_mut(&name) {
                            a.dirs.remove(&k);
                        }
                    }
                    self.unwatch_dir(&k);
                }
            }
            let names: Vec<String> = self.apps.iter().filter(|(_, a)| a.concerns(p)).map(|(n, _)| n.clone()).collect();
            let is_dir = created && p.is_dir();
            for name in names {
                let Some(mut a) = self.apps.remove(&name) else { continue };
                if is_dir {
                    if let Some(root) = a.dir_roots.iter().find(|r| p.starts_with(r)).cloned() {
                        self.add_tree(&mut a, &root, p);
                    }
                }
                if !a.paused {
                    a.deb.note(now, p);
                }
                self.apps.insert(name, a);
            }
        }
    }

    fn fire_due(&mut self, now: Instant) {
        let mut fires = Vec::new();
        for a in self.apps.values_mut() {
            if a.in_flight || a.paused {
                continue;
            }
            match a.deb.due(a.spec.delay) {
                Some(t) if t <= now => {}
                _ => continue,
            }
            let Some((path, count)) = a.deb.take() else { continue };
            let display = a.display(&path);
            if !a.breaker.allow(now) {
                a.paused = true;
                let msg = format!(
                    "restarted {LOOP_MAX} times in less than {} s because of file changes (last: {display}); \
                     watching paused to break the loop, the app keeps running: ignore the files it writes \
                     (ignore_watch), then `rpm2 restart {}` to resume",
                    LOOP_WINDOW.as_secs(),
                    a.spec.app
                );
                dlog(format!("[Watch] App [{}] {msg}", a.spec.app));
                if let Ok(mut p) = self.paused.lock() {
                    p.insert(a.spec.app.clone(), msg);
                }
                continue;
            }
            a.in_flight = true;
            let more = if count > 1 { format!(" (and {} more)", count - 1) } else { String::new() };
            dlog(format!("[Watch] Change detected on path {display}{more} for app {} - restarting", a.spec.app));
            fires.push(WatchFire { app: a.spec.app.clone(), path, display, count });
        }
        for f in fires {
            (self.fire)(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(user: &[&str]) -> IgnoreRules {
        let u: Vec<String> = user.iter().map(|s| s.to_string()).collect();
        IgnoreRules::new(&u, &[PathBuf::from("/w/app/logs/out.log"), PathBuf::from("/home/u/.rpm2")]).unwrap()
    }

    #[test]
    fn default_ignores() {
        let r = rules(&[]);
        let root = Path::new("/w/app");
        let ig = |p: &str| r.is_ignored(root, root, Path::new(p));
        assert!(ig("/w/app/node_modules/x/index.js"));
        assert!(ig("/w/app/lib/node_modules"));
        assert!(ig("/w/app/.git/HEAD"));
        assert!(ig("/w/app/.hidden"));
        assert!(ig("/w/app/src/.env"));
        assert!(ig("/w/app/logs/out.log"), "the app's own log file");
        assert!(ig("/w/app/logs/out__2024-01-02_03-04-05.log.gz"), "and its rotated copies");
        assert!(!ig("/w/app/logs/other.log"));
        assert!(!ig("/w/app/index.js"));
        assert!(!ig("/w/app/src/a.b.js"));
        // Defaults apply below the watched path: a root inside a dot-directory is watched.
        let root2 = Path::new("/w/app/.config");
        assert!(!r.is_ignored(root2, root, Path::new("/w/app/.config/settings.json")));
        // The daemon's home, wherever it is; but a home above the watched path does not hide it.
        assert!(r.is_ignored(Path::new("/home/u"), Path::new("/home/u"), Path::new("/home/u/.rpm2/x")));
        let r2 = IgnoreRules::new(&[], &[PathBuf::from("/srv")]).unwrap();
        assert!(!r2.is_ignored(Path::new("/srv/app"), Path::new("/srv/app"), Path::new("/srv/app/a.js")));
    }

    #[test]
    fn user_entries_extend_the_defaults() {
        let r = rules(&["logs", "*.log", "src/generated", "data/**/*.csv", "/tmp/abs", "./build/"]);
        let root = Path::new("/w/app");
        let ig = |p: &str| r.is_ignored(root, root, Path::new(p));
        assert!(ig("/w/app/logs"), "plain name");
        assert!(ig("/w/app/a/logs/b.txt"), "plain name at any depth");
        assert!(ig("/w/app/debug.log"), "glob without a slash");
        assert!(ig("/w/app/deep/er/x.log"));
        assert!(!ig("/w/app/x.log.js"));
        assert!(ig("/w/app/src/generated"), "relative path");
        assert!(ig("/w/app/src/generated/a/b.js"), "below an ignored directory");
        assert!(!ig("/w/app/src/generator.js"));
        assert!(ig("/w/app/data/x/y/z.csv"));
        assert!(!ig("/w/app/data/x/y/z.json"));
        assert!(ig("/w/app/build/out.js"), "./build/ is build");
        assert!(ig("/w/app/node_modules/x"), "defaults still apply");
        assert!(r.is_ignored(Path::new("/tmp"), root, Path::new("/tmp/abs/f")), "absolute");
        // A relative path entry is also matched against the app's cwd when the root is deeper.
        let src = Path::new("/w/app/src");
        assert!(r.is_ignored(src, root, Path::new("/w/app/src/generated/x.js")));
        assert!(!r.is_ignored(src, root, Path::new("/w/app/src/main.js")));
    }

    #[test]
    fn bad_glob_is_named() {
        let e = IgnoreRules::new(&["src/[oops".to_string()], &[]).unwrap_err();
        assert!(e.contains("src/[oops"), "{e}");
    }

    #[test]
    fn debounce_gives_one_restart_per_burst() {
        let t0 = Instant::now();
        let mut d = Debounce::default();
        assert!(d.due(Duration::ZERO).is_none());
        for i in 0..500u64 {
            d.note(t0 + Duration::from_micros(i * 50), Path::new(&format!("/w/f{i}")));
        }
        let last = t0 + Duration::from_micros(499 * 50);
        assert_eq!(d.due(Duration::ZERO), Some(last + QUIET));
        let (first, n) = d.take().unwrap();
        assert_eq!(first, Path::new("/w/f0"));
        assert_eq!(n, 500);
        assert!(d.take().is_none() && !d.pending());

        // The same file many times counts once.
        d.note(t0, Path::new("/w/a"));
        d.note(t0, Path::new("/w/a"));
        assert_eq!(d.take().unwrap().1, 1);

        // watch_delay: no restart earlier than the delay after the first change.
        d.note(t0, Path::new("/w/a"));
        assert_eq!(d.due(Duration::from_secs(2)), Some(t0 + Duration::from_secs(2)));

        // Changes made before the new process was spawned are covered by that restart.
        let mut d = Debounce::default();
        d.note(t0, Path::new("/w/a"));
        d.forget_before(t0 + Duration::from_millis(5));
        assert!(!d.pending());
        d.note(t0 + Duration::from_millis(10), Path::new("/w/b"));
        d.forget_before(t0 + Duration::from_millis(5));
        assert!(d.pending(), "a change after the spawn is kept");

        // A tree that never stops changing still restarts after delay + MAX_WAIT.
        let mut d = Debounce::default();
        for i in 0..100u64 {
            d.note(t0 + Duration::from_millis(i * 50), Path::new("/w/busy"));
        }
        assert_eq!(d.due(Duration::ZERO), Some(t0 + MAX_WAIT));
    }

    #[test]
    fn loop_breaker_trips_after_max_in_window() {
        let t0 = Instant::now();
        let mut b = LoopBreaker::new(3, Duration::from_secs(10));
        assert!(b.allow(t0));
        assert!(b.allow(t0 + Duration::from_secs(1)));
        assert!(b.allow(t0 + Duration::from_secs(2)));
        assert!(!b.allow(t0 + Duration::from_secs(3)), "a 4th restart within 10 s is refused");
        assert!(b.allow(t0 + Duration::from_secs(11)), "the window slides");
        b.reset();
        assert!(b.allow(t0 + Duration::from_secs(12)));
    }

    #[test]
    fn options_parse_and_fail_clearly() {
        let d = std::env::temp_dir();
        assert_eq!(roots(Some(&json!(true)), &d).unwrap(), vec![d.clone()]);
        assert_eq!(roots(Some(&json!([])), &d).unwrap(), vec![d.clone()]);
        let e = roots(Some(&json!(["nope-rpm2-xyz"])), &d).unwrap_err();
        assert!(e.contains("does not exist") && e.contains("nope-rpm2-xyz"), "{e}");
        assert!(roots(Some(&json!(3)), &d).is_err());
        assert_eq!(delay_ms(Some(&json!(1500))).unwrap(), 1500);
        assert_eq!(delay_ms(Some(&json!("4000ms"))).unwrap(), 4000);
        assert_eq!(delay_ms(Some(&json!("4s"))).unwrap(), 4000);
        assert_eq!(delay_ms(Some(&json!("250"))).unwrap(), 250);
        assert!(delay_ms(Some(&json!("soon"))).unwrap_err().contains("\"soon\""));
        assert!(delay_ms(Some(&json!(-1))).is_err());
        assert_eq!(ignore_list(Some(&json!("logs"))).unwrap(), vec!["logs"]);
        assert!(ignore_list(Some(&json!([1]))).is_err());
        assert_eq!(
            poll_option(Some(&json!({"usePolling": true, "interval": 200}))).unwrap(),
            Some(Duration::from_millis(200))
        );
        assert_eq!(poll_option(Some(&json!({"usePolling": false}))).unwrap(), None);
        assert!(poll_option(Some(&json!("yes"))).is_err());
    }

    /// The real watcher on a temporary tree: a change restarts, an ignored change does not, a burst
    /// is one restart, a new directory is watched.
    #[test]
    fn engine_end_to_end() {
        let dir = std::env::temp_dir().join(format!("rpm2-watch-engine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("node_modules/m")).unwrap();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/a.js"), "1").unwrap();
        let (tx, rx) = smpsc::channel::<WatchFire>();
        let tx = Mutex::new(tx);
        let paused = Arc::new(Mutex::new(HashMap::new()));
        let hub = Hub::new(
            Arc::new(move |f| {
                let _ = tx.lock().map(|t| t.send(f));
            }),
            paused,
        );
        hub.set(vec![WatchSpec {
            app: "t".into(),
            cwd: dir.clone(),
            roots: vec![dir.clone()],
            ignore: vec![],
            always_ignored: vec![],
            delay: Duration::ZERO,
            poll: None,
        }]);
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(dir.join("node_modules/m/x.js"), "x").unwrap();
        std::fs::write(dir.join(".hidden"), "x").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err(), "ignored files do not restart");
        for i in 0..200 {
            std::fs::write(dir.join(format!("src/f{i}.js")), "x").unwrap();
        }
        let f = rx.recv_timeout(Duration::from_secs(5)).expect("a restart");
        assert_eq!(f.app, "t");
        assert!(f.count >= 200, "{f:?}");
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err(), "one restart for the burst");
        hub.done("t", None);
        std::fs::create_dir_all(dir.join("src/new")).unwrap();
        let _ = rx.recv_timeout(Duration::from_secs(5)).expect("the new directory is a change");
        hub.done("t", None);
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(dir.join("src/new/deep.js"), "x").unwrap();
        let f = rx.recv_timeout(Duration::from_secs(5)).expect("a change inside the new directory");
        assert!(f.display.ends_with("deep.js"), "{f:?}");
        hub.set(vec![]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
