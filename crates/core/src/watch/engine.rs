//! The shared watcher thread: one native watcher (or pollers) for every watched app, directories
//! watched one by one so ignored trees are never walked, and the debounce clock.

use super::*;

/// `(directory, polling interval in ms or None for native events)`.
pub(super) type DirKey = (PathBuf, Option<u64>);

pub(super) struct AppW {
    pub(super) spec: WatchSpec,
    pub(super) rules: IgnoreRules,
    pub(super) dir_roots: Vec<PathBuf>,
    pub(super) file_roots: Vec<PathBuf>,
    pub(super) deb: Debounce,
    pub(super) breaker: LoopBreaker,
    pub(super) in_flight: bool,
    pub(super) paused: bool,
    pub(super) dirs: HashSet<DirKey>,
}

impl AppW {
    pub(super) fn new(spec: WatchSpec) -> AppW {
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
    pub(super) fn concerns(&self, path: &Path) -> bool {
        if self.file_roots.iter().any(|f| f == path) {
            return true;
        }
        self.dir_roots.iter().any(|r| path.starts_with(r) && !self.rules.is_ignored(r, &self.spec.cwd, path))
    }

    pub(super) fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.spec.cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        }
    }
}

pub(super) struct Engine {
    pub(super) apps: HashMap<String, AppW>,
    pub(super) dirs: HashMap<DirKey, HashSet<String>>,
    pub(super) native: Option<notify::RecommendedWatcher>,
    pub(super) native_broken: bool,
    pub(super) polls: HashMap<u64, notify::PollWatcher>,
    pub(super) tx: smpsc::Sender<Cmd>,
    pub(super) fire: Arc<dyn Fn(WatchFire) + Send + Sync>,
    pub(super) paused: Arc<Mutex<HashMap<String, String>>>,
    pub(super) force_poll: bool,
    pub(super) errors_logged: u32,
}

/// Whether an event kind means "changed" (reads and opens do not).
pub(super) fn is_change(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any)
}

impl Engine {
    pub(super) fn new(
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

    pub(super) fn handler(&self) -> impl notify::EventHandler {
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

    pub(super) fn run(mut self, rx: smpsc::Receiver<Cmd>) {
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

    pub(super) fn handle(&mut self, c: Cmd) {
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

    pub(super) fn set(&mut self, specs: Vec<WatchSpec>) {
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

    pub(super) fn add_app(&mut self, spec: WatchSpec) {
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

    pub(super) fn remove_app(&mut self, name: &str) {
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
    pub(super) fn add_tree(&mut self, a: &mut AppW, root: &Path, start: &Path) {
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
    pub(super) fn watch_dir(&mut self, dir: &Path, poll: Option<Duration>) -> Option<DirKey> {
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
                            let limit = crate::base::platform::native_watch_limit().unwrap_or_else(|| "?".into());
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

    pub(super) fn unwatch_dir(&mut self, k: &DirKey) {
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

    pub(super) fn on_fs(&mut self, ev: notify::Result<Event>, now: Instant) {
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

    pub(super) fn fire_due(&mut self, now: Instant) {
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
            fires.push(WatchFire { app: a.spec.app.clone(), display, count });
        }
        for f in fires {
            (self.fire)(f);
        }
    }
}
