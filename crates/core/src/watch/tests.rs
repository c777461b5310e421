use super::*;
use crate::config::watch_options::{delay_ms, existing_roots, ignore_list, poll_option, roots};
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

#[test]
fn watch_spec_for_app_matches_the_raw_options() {
    let d = std::env::temp_dir().join(format!("rpm2-watchspec-{}", std::process::id()));
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::write(d.join("app.js"), "").unwrap();
    let ctx = crate::config::ResolveCtx { cwd: d.clone(), env: Default::default(), env_name: None };
    for raw in [
        json!({"script": "app.js", "watch": ["src", "app.js"], "ignore_watch": "x", "watch_delay": "50ms",
               "watch_options": {"usePolling": true, "interval": 20}}),
        json!({"script": "app.js", "watch": true}),
        json!({"script": "app.js"}),
    ] {
        let spec = crate::config::resolve_app(&raw, &ctx).unwrap().spec;
        let always = vec![PathBuf::from("/home/u/.rpm2")];
        // As the supervisor's triggers built it from the raw options before they were parsed once.
        let x = &spec.extra;
        let before = WatchSpec {
            app: spec.name.clone(),
            cwd: spec.cwd.clone(),
            roots: roots(x.get("watch"), &spec.cwd).unwrap_or_else(|_| existing_roots(x.get("watch"), &spec.cwd)),
            ignore: ignore_list(x.get("ignore_watch")).unwrap_or_default(),
            always_ignored: always.clone(),
            delay: Duration::from_millis(delay_ms(x.get("watch_delay")).unwrap_or(0)),
            poll: poll_option(x.get("watch_options")).unwrap_or(None),
        };
        assert_eq!(WatchSpec::for_app(&spec, always), before);
    }
    std::fs::remove_dir_all(d).unwrap();
}
