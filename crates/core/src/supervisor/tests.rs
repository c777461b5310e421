//! The actor driven end to end with real children (`sleep`, `/bin/sh`, and `node` when it is on
//! PATH), each test on its own current-thread runtime and temporary home.

use super::*;
use crate::config::{resolve_app, ResolveCtx};
use nix::sys::signal::kill;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A temporary `RPM2_HOME`, removed when dropped.
struct TempHome {
    dir: PathBuf,
    home: Home,
}

impl TempHome {
    fn new(tag: &str) -> TempHome {
        let dir = std::env::temp_dir().join(format!("rpm2-supervisor-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let home = Home::at(dir.join("home"));
        home.ensure().expect("temporary home");
        TempHome { dir, home }
    }

    /// Writes a file in the test's directory and returns its path.
    fn file(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, body).expect("fixture file");
        p
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An app declaration resolved as the daemon gets it from the CLI.
fn spec(dir: &Path, decl: serde_json::Value) -> Arc<AppSpec> {
    let ctx = ResolveCtx { cwd: dir.to_path_buf(), env: Default::default(), env_name: None };
    Arc::new(resolve_app(&decl, &ctx).expect("valid declaration").spec)
}

/// The context `daemon::register` builds, without a cluster.
fn ctx(h: &TempHome, pm_id: u32) -> ProcCtx {
    ProcCtx {
        pm_id,
        instance: 0,
        unique_id: "test".into(),
        home: h.home.clone(),
        bus: broadcast::channel(64).0,
        changed: Arc::new(Notify::new()),
        cluster: None,
    }
}

/// Waits (at most 10 s) until the published state satisfies `pred`, and returns it.
async fn wait_state(h: &Handle, what: &str, pred: impl Fn(&ProcState) -> bool) -> ProcState {
    let mut rx = h.state.clone();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let st = rx.borrow_and_update().clone();
            if pred(&st) {
                return st;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    })
    .await;
    match found {
        Ok(st) if pred(&st) => st,
        _ => panic!("timed out waiting for {what}; state: {:?}", h.state.borrow()),
    }
}

fn alive(pid: u32) -> bool {
    kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

fn node_on_path() -> bool {
    std::process::Command::new("node").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

#[tokio::test(flavor = "current_thread")]
async fn start_goes_online_with_a_pid_and_stop_ends_the_process() {
    let h = TempHome::new("start-stop");
    let s = spec(&h.dir, json!({"script": "sleep", "args": ["30"], "name": "sleeper"}));
    let pid_file = proc_paths(&h.home, &s, 0).pid;
    let handle = spawn(s, ctx(&h, 0), ProcState::new(), false);
    assert_eq!(handle.state.borrow().status, Status::Stopped, "not started without `start`");

    handle.start().await.expect("start");
    let st = handle.state.borrow().clone();
    assert_eq!(st.status, Status::Online);
    let pid = st.pid.expect("a pid once online");
    assert!(alive(pid), "the child runs");
    assert_eq!(std::fs::read_to_string(&pid_file).ok(), Some(pid.to_string()), "pid file written");
    handle.start().await.expect("start of a running app is a no-op");
    assert_eq!(handle.state.borrow().pid, Some(pid), "same process");

    handle.stop().await.expect("stop");
    let st = handle.state.borrow().clone();
    assert_eq!(st.status, Status::Stopped);
    assert_eq!(st.pid, None);
    assert!(!alive(pid), "the child is gone (and reaped) when stop resolves");
    assert!(!pid_file.exists(), "pid file removed");
    assert_eq!(st.restart_time, 0, "a stop is not a restart");

    let err = handle.signal(Signal::SIGUSR2).await.expect_err("no process to signal");
    assert!(err.contains("is not running"), "{err}");
    handle.delete().await.expect("delete");
}

#[tokio::test(flavor = "current_thread")]
async fn restart_replaces_the_process_and_counts() {
    let h = TempHome::new("restart");
    let handle = spawn(spec(&h.dir, json!({"script": "sleep", "args": ["30"]})), ctx(&h, 3), ProcState::new(), true);
    let first = wait_state(&handle, "online", |s| s.status == Status::Online && s.pid.is_some()).await;
    handle.restart(None, "test requested".into()).await.expect("restart");
    let st = handle.state.borrow().clone();
    assert_eq!(st.status, Status::Online);
    assert_ne!(st.pid, first.pid, "a new process");
    assert_eq!(st.restart_time, 1);
    assert_eq!(st.restart_reason.as_deref(), Some("test requested"));
    assert!(!alive(first.pid.unwrap_or(0)), "the old process is gone");
    handle.reset().await.expect("reset");
    assert_eq!(handle.state.borrow().restart_time, 0, "reset zeroes the counter");
    handle.delete().await.expect("delete");
}

#[tokio::test(flavor = "current_thread")]
async fn a_crashing_child_is_restarted_and_the_counter_grows() {
    let h = TempHome::new("crash");
    let s = spec(&h.dir, json!({"script": "/bin/sh", "args": ["-c", "sleep 0.1; exit 3"], "max_restarts": 50}));
    let handle = spawn(s, ctx(&h, 1), ProcState::new(), false);
    handle.start().await.expect("start");
    let st = wait_state(&handle, "two automatic restarts", |s| s.restart_time >= 2).await;
    assert_eq!(st.restart_reason.as_deref(), Some("exited with code 3"));
    assert!(st.unstable_restarts >= 1, "fast exits are unstable: {st:?}");
    handle.stop().await.expect("stop");
    let st = handle.state.borrow().clone();
    assert_eq!(st.status, Status::Stopped, "a stop ends the restart loop");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.state.borrow().status, Status::Stopped, "and nothing restarts it");
    handle.delete().await.expect("delete");
}

#[tokio::test(flavor = "current_thread")]
async fn a_crash_loop_ends_errored_after_max_restarts() {
    let h = TempHome::new("errored");
    let s = spec(&h.dir, json!({"script": "/bin/sh", "args": ["-c", "exit 1"], "max_restarts": 3}));
    let handle = spawn(s, ctx(&h, 2), ProcState::new(), true);
    let st = wait_state(&handle, "errored", |s| s.status == Status::Errored).await;
    assert_eq!(st.pid, None);
    assert_eq!(st.exit_code, Some(1));
    handle.delete().await.expect("delete");
}

#[tokio::test(flavor = "current_thread")]
async fn delete_ends_the_actor_and_later_calls_fail() {
    let h = TempHome::new("delete");
    let handle = spawn(spec(&h.dir, json!({"script": "sleep", "args": ["30"]})), ctx(&h, 4), ProcState::new(), false);
    handle.start().await.expect("start");
    let pid = handle.state.borrow().pid.expect("pid");
    handle.delete().await.expect("delete");
    assert!(!alive(pid), "delete stops the process");
    // The last state a reader sees is the final one, not the `stopping` of the stop.
    let last = handle.state.borrow().clone();
    assert_eq!((last.status, last.pid), (Status::Stopped, None));
    for r in [handle.start().await, handle.stop().await, handle.call(Op::Reset).await] {
        assert_eq!(r, Err(ENDED.to_string()));
    }
    handle.tell(Op::Start); // nothing to report, and no panic
    handle.reload_logs();
}

#[tokio::test(flavor = "current_thread")]
async fn set_watch_changes_the_published_spec_only() {
    let h = TempHome::new("watch");
    let handle = spawn(spec(&h.dir, json!({"script": "sleep", "args": ["30"]})), ctx(&h, 5), ProcState::new(), true);
    let st = wait_state(&handle, "online", |s| s.status == Status::Online).await;
    handle.set_watch(true).await.expect("set_watch");
    assert!(handle.spec.borrow().0.watch);
    assert_eq!(handle.state.borrow().pid, st.pid, "not restarted");
    handle.delete().await.expect("delete");
}

#[tokio::test(flavor = "current_thread")]
async fn stop_cuts_into_a_wait_for_ready() {
    if !node_on_path() {
        eprintln!("skipped: node is not on PATH");
        return;
    }
    let h = TempHome::new("cut-in");
    let app = h.file("never-ready.js", "setInterval(() => {}, 1000);\n");
    let s = spec(&h.dir, json!({"script": app, "wait_ready": true, "listen_timeout": 20000}));
    let handle = spawn(s, ctx(&h, 6), ProcState::new(), false);
    let started = handle.start();
    let st = wait_state(&handle, "launching", |s| s.status == Status::Launching && s.pid.is_some()).await;
    let pid = st.pid.unwrap_or(0);
    let t0 = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(8), handle.stop())
        .await
        .expect("stop does not wait for listen_timeout")
        .expect("stop");
    assert!(t0.elapsed() < Duration::from_secs(8));
    let err = started.await.expect_err("the interrupted start fails");
    assert!(err.contains("stopped before it was ready"), "{err}");
    assert_eq!(handle.state.borrow().status, Status::Stopped);
    assert!(!alive(pid), "the launching process is gone");
    handle.delete().await.expect("delete");
}

#[tokio::test(flavor = "current_thread")]
async fn node_app_ready_and_ipc_messages() {
    if !node_on_path() {
        eprintln!("skipped: node is not on PATH");
        return;
    }
    let h = TempHome::new("ipc");
    let app = h.file(
        "ready.js",
        "process.on('message', (m) => { if (m && m.bye) process.exit(7); });\n\
         process.send('ready');\nsetInterval(() => {}, 1000);\n",
    );
    let c = ctx(&h, 7);
    let mut bus = c.bus.subscribe();
    let s = spec(&h.dir, json!({"script": app, "wait_ready": true, "listen_timeout": 20000}));
    let handle = spawn(s, c, ProcState::new(), false);
    tokio::time::timeout(Duration::from_secs(8), handle.start())
        .await
        .expect("online once 'ready' arrives, not after listen_timeout")
        .expect("start");
    assert_eq!(handle.state.borrow().status, Status::Online);
    let mut saw_ready = false;
    while let Ok(ev) = bus.try_recv() {
        saw_ready |= ev.topic == "process:msg" && ev.data["raw"] == "ready";
    }
    assert!(saw_ready, "'ready' is published on the bus");

    handle.send(json!({"bye": true})).await.expect("send on the IPC channel");
    let st = wait_state(&handle, "restart after exit 7", |s| s.restart_time >= 1 && s.status == Status::Online).await;
    assert_eq!(st.restart_reason.as_deref(), Some("exited with code 7"));
    handle.delete().await.expect("delete");
}

#[tokio::test(flavor = "current_thread")]
async fn send_without_a_channel_says_so() {
    let h = TempHome::new("no-channel");
    let handle = spawn(spec(&h.dir, json!({"script": "sleep", "args": ["30"]})), ctx(&h, 8), ProcState::new(), true);
    wait_state(&handle, "online", |s| s.status == Status::Online).await;
    let err = handle.send(json!("hi")).await.expect_err("sleep has no IPC channel");
    assert!(err.contains("no open IPC channel"), "{err}");
    handle.delete().await.expect("delete");
}

#[test]
fn child_env_carries_pm2_variables_and_drops_channel_ones() {
    let h = TempHome::new("env");
    let mut s = spec(&h.dir, json!({"script": "sleep", "args": ["30"], "name": "envy"})).as_ref().clone();
    s.env.insert("NODE_CHANNEL_FD".into(), "9".into());
    s.env.insert("MINE".into(), "1".into());
    let c = ctx(&h, 9);
    let paths = proc_paths(&c.home, &s, 9);
    let (self_tx, inbox) = mpsc::unbounded_channel();
    let actor = Actor {
        logs: Arc::new(Mutex::new(LogFiles::for_app(&s, 9, paths.clone()))),
        spec_tx: watch::channel((Arc::new(s.clone()), paths.clone())).0,
        spec: Arc::new(s),
        paths,
        ctx: c,
        st: ProcState::new(),
        counters: Counters::default(),
        inbox,
        self_tx,
        state_tx: watch::channel(ProcState::new()).0,
        gen: 0,
        running: None,
        retiring: None,
        restart_at: None,
        deferred: VecDeque::new(),
        pending_exit: None,
        pending_probe: None,
    };
    let env: std::collections::HashMap<String, String> = actor.child_env().into_iter().collect();
    assert_eq!(env.get("pm_id").map(String::as_str), Some("9"));
    assert_eq!(env.get("name").map(String::as_str), Some("envy"));
    assert_eq!(env.get("NODE_APP_INSTANCE").map(String::as_str), Some("0"));
    assert_eq!(env.get("MINE").map(String::as_str), Some("1"));
    assert!(!env.contains_key("NODE_CHANNEL_FD"), "the channel fd is the supervisor's to set");
    assert_eq!(env.get("RPM2_HOME").map(PathBuf::from), Some(h.home.root().to_path_buf()));
}
