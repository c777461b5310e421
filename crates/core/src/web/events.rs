//! `GET /events`: the dashboard's live stream (server-sent events).
//!
//! One [`Hub`] per server feeds every open page: a thread follows the daemon's bus (process events
//! and log lines, pushed as they happen) and a task takes one list snapshot a second for the CPU and
//! memory samples (one per server, never one per page). Each page first gets the recent history (the
//! last [`HISTORY`] samples and [`LOG_BACKLOG`] log lines), then the live frames. With no page open
//! the server neither subscribes to the bus nor asks for the list.
//!
//! Frames (`event:` name, one JSON object as `data:`): `hello` (first on every connection),
//! `daemon` (`{up, error?}`), `list` (the processes, sent again when anything but the figures
//! changes; env values are never part of it), `sample` (`{t, daemon: {pid, memory, cpu}, p: [[pm_id,
//! cpu, memory], ...]}`), `event` (a `process:event`) and `log` (`{id, name, err, at, text}`).

use super::server::State;
use super::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::sync::{broadcast, Notify};

/// Period of the list snapshot while a page is open.
const TICK: Duration = Duration::from_secs(1);
/// Samples kept for a page that connects (five minutes at one a second).
pub(super) const HISTORY: usize = 300;
/// Log lines kept for a page that connects.
pub(super) const LOG_BACKLOG: usize = 500;
/// A log chunk longer than this is cut (bytes).
const LOG_TEXT_MAX: usize = 4096;
/// Log frames sent per second at most: a flood is counted and said, not forwarded.
const LOGS_PER_SECOND: usize = 200;
/// A comment is sent after this long without a frame, so that dead connections are noticed.
const PING: Duration = Duration::from_secs(15);
/// The `retry:` the stream announces (ms): how soon a page reconnects.
pub(super) const RETRY_MS: u64 = 1000;
/// The keys of `pm2_env` a page gets (what `rpm2 show` prints, the table's, and the metrics).
const PAGE_ENV_KEYS: [&str; 31] = [
    "status",
    "name",
    "namespace",
    "version",
    "restart_time",
    "unstable_restarts",
    "pm_uptime",
    "created_at",
    "pm_exec_path",
    "args",
    "pm_err_log_path",
    "pm_out_log_path",
    "pm_log_path",
    "pm_pid_path",
    "exec_interpreter",
    "node_args",
    "node_version",
    "pm_cwd",
    "exec_mode",
    "instances",
    "watch",
    "watch_paused",
    "autorestart",
    "restart_reason",
    "exit_code",
    "kill_timeout",
    "max_memory_restart",
    "cron_restart",
    "axm_monitor",
    "axm_actions",
    "unique_id",
];

/// One SSE frame: `event: <event>`, then one `data:` line per line of `data`, then a blank line.
pub(super) fn sse_frame(event: &str, data: &str) -> String {
    let mut f = String::with_capacity(data.len() + event.len() + 16);
    f.push_str("event: ");
    f.push_str(event);
    f.push('\n');
    for line in data.split('\n') {
        f.push_str("data: ");
        f.push_str(line.strip_suffix('\r').unwrap_or(line));
        f.push('\n');
    }
    f.push('\n');
    f
}

/// What a frame is, for the backlog a new page gets.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Daemon,
    List,
    Sample,
    Log,
    Event,
}

#[derive(Default)]
struct Backlog {
    daemon: Option<Arc<str>>,
    list: Option<Arc<str>>,
    samples: VecDeque<Arc<str>>,
    logs: VecDeque<Arc<str>>,
    /// Log frames sent in the current second, lines dropped, and when the second began.
    log_window: Option<(Instant, usize, u64)>,
}

/// The server's one fan-out of live frames to its pages.
pub(super) struct Hub {
    tx: broadcast::Sender<Arc<str>>,
    clients: AtomicUsize,
    /// A page arrived or a process changed: take a snapshot now.
    wake: Notify,
    backlog: Mutex<Backlog>,
    /// Ends the bus subscription when the last page leaves.
    bus_stop: Mutex<Option<std::os::unix::net::UnixStream>>,
    /// The bus thread, unparked when a page arrives.
    bus_thread: std::sync::OnceLock<std::thread::Thread>,
}

/// A page's place in the hub: leaving is on drop (the last page out ends the bus subscription).
pub(super) struct Joined<'a> {
    hub: &'a Hub,
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        if self.hub.clients.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(s) = self.hub.bus_stop.lock().ok().and_then(|mut s| s.take()) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Hub {
    pub(super) fn new() -> Hub {
        Hub {
            tx: broadcast::channel(1024).0,
            clients: AtomicUsize::new(0),
            wake: Notify::new(),
            backlog: Mutex::new(Backlog::default()),
            bus_stop: Mutex::new(None),
            bus_thread: std::sync::OnceLock::new(),
        }
    }

    /// Asks for a snapshot now (after an action).
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// How many pages are connected.
    pub(super) fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }

    /// Sends a frame to every page and keeps it for the pages to come (by kind).
    fn publish(&self, kind: Kind, event: &str, data: &Value) {
        let frame: Arc<str> = sse_frame(event, &data.to_string()).into();
        let Ok(mut b) = self.backlog.lock() else { return };
        match kind {
            Kind::Daemon => b.daemon = Some(frame.clone()),
            Kind::List => b.list = Some(frame.clone()),
            Kind::Sample => push_capped(&mut b.samples, frame.clone(), HISTORY),
            Kind::Log => push_capped(&mut b.logs, frame.clone(), LOG_BACKLOG),
            Kind::Event => {}
        }
        // Under the lock, so a page that joins gets each frame exactly once (backlog or live).
        let _ = self.tx.send(frame);
    }

    /// A new page: its place, its receiver and the frames it has missed (daemon state, list,
    /// history, logs).
    pub(super) fn join(&self) -> (Joined<'_>, broadcast::Receiver<Arc<str>>, Vec<Arc<str>>) {
        let (rx, replay) = match self.backlog.lock() {
            Ok(b) => {
                let mut replay: Vec<Arc<str>> = b.daemon.iter().chain(b.list.iter()).cloned().collect();
                replay.extend(b.samples.iter().cloned());
                replay.extend(b.logs.iter().cloned());
                (self.tx.subscribe(), replay)
            }
            Err(_) => (self.tx.subscribe(), Vec::new()),
        };
        self.clients.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = self.bus_thread.get() {
            t.unpark();
        }
        self.wake.notify_one();
        (Joined { hub: self }, rx, replay)
    }

    /// The latest list frame (resent to a page that fell behind).
    fn last_list(&self) -> Option<Arc<str>> {
        self.backlog.lock().ok().and_then(|b| b.list.clone())
    }

    /// One event of the daemon's bus.
    pub(super) fn on_bus(&self, topic: &str, data: &Value) {
        let p = &data["process"];
        match topic {
            "process:event" => {
                let ev = json!({
                    "id": p["pm_id"], "name": p["name"], "event": data["event"], "status": p["status"],
                    "restart_time": p["restart_time"], "pm_uptime": p["pm_uptime"], "at": data["at"],
                });
                self.publish(Kind::Event, "event", &ev);
                self.wake.notify_one();
            }
            "log:out" | "log:err" => {
                let (allowed, dropped) = self.log_budget();
                if dropped > 0 {
                    let note = json!({"id": null, "note": format!("{dropped} log lines not shown (more than {LOGS_PER_SECOND} a second)"), "at": now_ms()});
                    self.publish(Kind::Log, "log", &note);
                }
                if !allowed {
                    return;
                }
                let text = data["data"].as_str().unwrap_or("");
                let line = json!({
                    "id": p["pm_id"], "name": p["name"], "err": topic == "log:err", "at": data["at"],
                    "text": cut(text, LOG_TEXT_MAX),
                });
                self.publish(Kind::Log, "log", &line);
            }
            _ => {}
        }
    }

    /// Whether one more log frame fits in this second, and how many were dropped in the last one
    /// (to be said once).
    fn log_budget(&self) -> (bool, u64) {
        let Ok(mut b) = self.backlog.lock() else { return (false, 0) };
        let now = Instant::now();
        let (start, sent, dropped) = b.log_window.get_or_insert((now, 0, 0));
        let mut said = 0;
        if now.duration_since(*start) >= Duration::from_secs(1) {
            said = *dropped;
            (*start, *sent, *dropped) = (now, 0, 0);
        }
        if *sent < LOGS_PER_SECOND {
            *sent += 1;
            (true, said)
        } else {
            *dropped += 1;
            (false, said)
        }
    }
}

fn push_capped(q: &mut VecDeque<Arc<str>>, f: Arc<str>, cap: usize) {
    if q.len() >= cap {
        q.pop_front();
    }
    q.push_back(f);
}

/// `s` cut to at most `max` bytes on a character boundary (with `…` when cut).
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The processes as a page gets them: ids, pid, and the whitelisted `pm2_env` keys (never `env`).
pub(super) fn page_processes(list: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in list.as_array().into_iter().flatten() {
        let mut env = Map::new();
        for k in PAGE_ENV_KEYS {
            if let Some(v) = p["pm2_env"].get(k) {
                env.insert(k.to_string(), v.clone());
            }
        }
        out.push(json!({"pm_id": p["pm_id"], "name": p["name"], "pid": p["pid"], "pm2_env": env}));
    }
    out
}

/// The sample frame of a list: each process's CPU and memory, and its custom metrics when it has
/// some (`[pm_id, cpu, memory, axm_monitor?]`).
pub(super) fn sample_of(list: &Value, t: u64, daemon: Value) -> Value {
    let p: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut s = vec![p["pm_id"].clone(), p["monit"]["cpu"].clone(), p["monit"]["memory"].clone()];
            if let Some(m) = p["pm2_env"].get("axm_monitor").filter(|m| m.as_object().is_some_and(|o| !o.is_empty())) {
                s.push(m.clone());
            }
            Value::Array(s)
        })
        .collect();
    json!({"t": t, "daemon": daemon, "p": p})
}

/// What a `list` frame is sent again for: the processes without their custom metrics (which change
/// all the time and travel in the samples).
fn list_key(procs: &[Value]) -> String {
    let mut procs = procs.to_vec();
    for p in &mut procs {
        if let Some(env) = p.get_mut("pm2_env").and_then(|e| e.as_object_mut()) {
            env.remove("axm_monitor");
        }
    }
    serde_json::to_string(&procs).unwrap_or_default()
}

/// The snapshot task: while a page is open, one list a second (or at once after a process event),
/// turned into `sample`, `list` (when changed) and `daemon` (when up/down changes) frames.
pub(super) async fn ticker(state: Arc<State>) {
    let hub = &state.hub;
    let mut up: Option<bool> = None;
    let mut last_list = String::new();
    let mut last_cpu: Option<(Instant, f64, u32)> = None;
    loop {
        if hub.clients() == 0 {
            hub.wake.notified().await;
            continue;
        }
        match state.snapshot(Duration::ZERO).await {
            Ok(s) => {
                if up != Some(true) {
                    up = Some(true);
                    hub.publish(
                        Kind::Daemon,
                        "daemon",
                        &json!({"up": true, "pid": s.daemon.pid, "version": s.daemon.version}),
                    );
                }
                let now = Instant::now();
                let cpu = match last_cpu {
                    Some((at, secs, pid)) if pid == s.daemon.pid && now > at => {
                        ((s.daemon.cpu_seconds - secs) / now.duration_since(at).as_secs_f64() * 100.0).max(0.0)
                    }
                    _ => 0.0,
                };
                last_cpu = Some((now, s.daemon.cpu_seconds, s.daemon.pid));
                let procs = page_processes(&s.list);
                let key = list_key(&procs);
                if key != last_list {
                    last_list = key;
                    hub.publish(Kind::List, "list", &json!({"at": now_ms(), "processes": procs}));
                }
                let daemon =
                    json!({"pid": s.daemon.pid, "memory": s.daemon.memory, "cpu": (cpu * 10.0).round() / 10.0});
                hub.publish(Kind::Sample, "sample", &sample_of(&s.list, now_ms(), daemon));
            }
            Err(e) => {
                if up != Some(false) {
                    up = Some(false);
                    last_cpu = None;
                    hub.publish(Kind::Daemon, "daemon", &json!({"up": false, "error": e}));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            // A burst of events (a restart is exit + online) makes one snapshot.
            _ = hub.wake.notified() => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The bus thread: subscribed to the daemon's process events and log lines while a page is open,
/// resubscribing (every 300 ms) when the daemon goes away and comes back.
pub(super) fn follow_bus(hub: Arc<Hub>, home: Home) {
    loop {
        while hub.clients() == 0 {
            std::thread::park();
        }
        let sub = Client::connect(&home).and_then(|c| {
            c.set_timeout(None);
            c.subscribe(&["process:event", "log:out", "log:err"], &[])
        });
        let sub = match sub {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(300));
                continue;
            }
        };
        if let (Ok(h), Ok(mut slot)) = (sub.shutdown_handle(), hub.bus_stop.lock()) {
            *slot = Some(h);
        }
        // The last page may have left before the handle was stored: then nobody ends it but us.
        if hub.clients() == 0 {
            if let Some(s) = hub.bus_stop.lock().ok().and_then(|mut s| s.take()) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            continue;
        }
        hub.wake.notify_one();
        for (topic, data) in sub {
            hub.on_bus(&topic, &data);
        }
        if let Ok(mut s) = hub.bus_stop.lock() {
            s.take();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Starts the hub's thread and task on the server's runtime.
pub(super) fn start(state: &Arc<State>) -> Result<()> {
    let hub = state.hub.clone();
    let home = state.home.clone();
    let t = std::thread::Builder::new()
        .name("rpm2-web-bus".into())
        .spawn(move || follow_bus(hub, home))
        .context("cannot start the event thread")?;
    let _ = state.hub.bus_thread.set(t.thread().clone());
    tokio::spawn(ticker(state.clone()));
    Ok(())
}

/// The head of the `/events` answer: no length, the stream ends when the connection closes.
pub(super) const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n";

/// Serves one `/events` connection until the page goes away: the head, `retry:`, `hello`, what the
/// page missed, then the live frames (a comment after [`PING`] without one).
pub(super) async fn stream(state: Arc<State>, mut conn: TcpStream) {
    let (joined, mut rx, replay) = state.hub.join();
    let hello = json!({
        "version": crate::VERSION, "host": hostname(), "actions": state.opts.token.is_some(),
        "history": HISTORY, "retry": RETRY_MS,
    });
    let mut out = format!("{STREAM_HEAD}retry: {RETRY_MS}\n\n{}", sse_frame("hello", &hello.to_string()));
    for f in replay {
        out.push_str(&f);
    }
    let (mut rd, mut wr) = conn.split();
    let mut scratch = [0u8; 256];
    loop {
        if !out.is_empty() {
            match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(out.as_bytes())).await {
                Ok(Ok(())) => out.clear(),
                _ => break,
            }
        }
        tokio::select! {
            got = rx.recv() => match got {
                Ok(f) => {
                    out.push_str(&f);
                    // Everything already queued goes in the same write.
                    while let Ok(f) = rx.try_recv() {
                        out.push_str(&f);
                        if out.len() > 256 * 1024 { break; }
                    }
                }
                // Fell behind: frames were lost; the list is sent again so the table is right.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(l) = state.hub.last_list() { out.push_str(&l); }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tokio::time::sleep(PING) => out.push_str(": ping\n\n"),
            r = rd.read(&mut scratch) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    drop(joined);
    let _ = conn.shutdown().await;
}
