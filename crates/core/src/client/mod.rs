//! The client side of the control socket, blocking (std only) so that the CLI starts in
//! milliseconds and the napi addon can run calls on libuv's thread pool. Starts the daemon when it is
//! not running.

pub mod actions;
pub mod conf;
pub mod deadline;
pub mod dump;
pub mod env;
pub mod operate;
mod processes;
pub mod report;
pub mod shape;
pub mod start;

use crate::base::paths::Home;
use crate::protocol::{Request, Response, PROTOCOL_VERSION};
use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An error the daemon returned: its stable code and its message for people.
#[derive(Debug, Clone)]
pub struct RpcError {
    /// Stable code (`not_found`, `already_running`, ...).
    pub code: String,
    /// One line for people.
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for RpcError {}

/// Where [`Client::watch_events`] sends each event: its topic and data.
pub type EventSink = Box<dyn FnMut(&str, &Value) + Send>;

/// A connection to the daemon that has completed the hello. Every [`Client::call`] has a deadline
/// (see [`deadline`]): a daemon that does not answer is an error, never a hang.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// The home's root (for the pid in the "does not answer" message) and its socket (liveness checks).
    home_root: PathBuf,
    socket: PathBuf,
    /// A partial reply line kept across read timeouts.
    pending: Vec<u8>,
    /// The caller's timeout ([`Client::set_timeout`]), which replaces the per-method deadlines.
    timeout: std::cell::Cell<Option<Option<Duration>>>,
    /// Receives the events of [`Client::watch_events`] while a call waits for its reply.
    events: Option<EventSink>,
    /// The daemon's version (from the hello).
    pub daemon_version: String,
    /// Whether this connection started the daemon.
    pub started_daemon: bool,
}

impl Client {
    /// Connects to a running daemon; fails (without starting one) when none answers.
    pub fn connect(home: &Home) -> Result<Client> {
        let stream = UnixStream::connect(home.socket())
            .with_context(|| format!("the rpm2 daemon is not running (no answer on {})", home.socket().display()))?;
        Client::handshake(home, stream, false)
    }

    /// Connects, starting the daemon with `daemon_exe --daemon` when none is running.
    pub fn connect_or_start(home: &Home, daemon_exe: &Path) -> Result<Client> {
        if let Ok(s) = UnixStream::connect(home.socket()) {
            return Client::handshake(home, s, false);
        }
        let started = start_daemon(home, daemon_exe)?;
        let mut last = None;
        for _ in 0..200 {
            match UnixStream::connect(home.socket()) {
                Ok(s) => return Client::handshake(home, s, started),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(anyhow!(
            "the rpm2 daemon did not answer on {} ({}): see {}",
            home.socket().display(),
            last.map(|e| e.to_string()).unwrap_or_default(),
            home.daemon_log().display()
        ))
    }

    fn handshake(home: &Home, stream: UnixStream, started: bool) -> Result<Client> {
        let writer = stream.try_clone().context("cannot clone the socket")?;
        let _ = writer.set_write_timeout(Some(deadline::query_timeout()));
        let mut c = Client {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            home_root: home.root().to_path_buf(),
            socket: home.socket(),
            pending: Vec::new(),
            timeout: std::cell::Cell::new(None),
            events: None,
            daemon_version: String::new(),
            started_daemon: started,
        };
        let hello = c.call("hello", json!({"protocol": PROTOCOL_VERSION, "version": crate::VERSION}))?;
        c.daemon_version = hello.get("version").and_then(|v| v.as_str()).unwrap_or("").to_string();
        Ok(c)
    }

    fn send(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request { id, method: method.into(), params })?;
        line.push(b'\n');
        if let Err(e) = self.writer.write_all(&line) {
            if is_timeout(&e) {
                return Err(deadline::not_answering(&self.home_root, method, deadline::query_timeout()).into());
            }
            return Err(anyhow::Error::new(e).context("lost the connection to the rpm2 daemon"));
        }
        Ok(id)
    }

    /// Reads one reply or event line. A read timeout (set on the socket) is an `io::Error` of kind
    /// `WouldBlock`/`TimedOut`; the partial line is kept for the next read.
    fn read_line<R: DeserializeOwned>(&mut self) -> std::io::Result<Option<Response<R>>> {
        let n = self.reader.read_until(b'\n', &mut self.pending)?;
        let line = std::mem::take(&mut self.pending);
        if n == 0 && line.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&line).map(Some).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the daemon sent an unreadable reply: {}", String::from_utf8_lossy(&line).trim()),
            )
        })
    }

    fn read(&mut self) -> Result<Response> {
        match self.read_line() {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(anyhow!("the rpm2 daemon closed the connection (see its log for why)")),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(anyhow!("{e}")),
            Err(e) => Err(anyhow::Error::new(e).context("lost the connection to the rpm2 daemon")),
        }
    }

    /// Waits for the reply `id` to `method` within its deadline: the caller's timeout when set, else
    /// [`deadline::query_timeout`] for a query, else as long as the daemon answers liveness checks
    /// (up to [`deadline::operation_timeout`]).
    fn read_reply<R: DeserializeOwned>(&mut self, id: u64, method: &str) -> Result<Response<R>> {
        let slice = deadline::query_timeout();
        let (slice, cap, probe) = match self.timeout.get() {
            Some(t) => (t, t, false),
            None if deadline::is_query(method) => (Some(slice), Some(slice), false),
            None => (Some(slice), deadline::operation_timeout(), true),
        };
        let began = Instant::now();
        let _ = self.reader.get_ref().set_read_timeout(slice);
        loop {
            match self.read_line() {
                Ok(Some(r)) if r.id == id || r.id == 0 && r.event.is_none() => return Ok(r),
                Ok(Some(r)) => self.pass_event(r.event),
                Ok(None) => return Err(anyhow!("the rpm2 daemon closed the connection (see its log for why)")),
                Err(e) if is_timeout(&e) => {
                    let waited = began.elapsed();
                    let over = cap.is_some_and(|c| waited >= c);
                    if over || !probe || !deadline::answers(&self.socket, deadline::query_timeout()) {
                        return Err(deadline::not_answering(&self.home_root, method, waited).into());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(anyhow!("{e}")),
                Err(e) => return Err(anyhow::Error::new(e).context("lost the connection to the rpm2 daemon")),
            }
        }
    }

    /// Calls `method` and waits for its result, within its deadline (see [`deadline`]). A daemon
    /// error becomes an [`RpcError`]; no answer in time a [`deadline::NotAnswering`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.call_as(method, params)
    }

    /// [`Client::call`], with the result as the JSON text the daemon wrote (checked to be JSON,
    /// not parsed into a tree): for printing it (`rpm2 jlist`) or reading it into a typed value.
    pub fn call_raw(&mut self, method: &str, params: Value) -> Result<Box<RawValue>> {
        self.call_as(method, params)
    }

    /// [`Client::call`] with the result read as `R` (`null` when the reply has none).
    fn call_as<R: DeserializeOwned + Default>(&mut self, method: &str, params: Value) -> Result<R> {
        let id = self.send(method, params)?;
        let r: Response<R> = self.read_reply(id, method)?;
        if let Some(e) = r.error {
            return Err(RpcError { code: e.code, message: e.message }.into());
        }
        Ok(r.result.unwrap_or_default())
    }

    /// Subscribes to bus events (`topics`, empty for all; `targets` limits to some processes).
    /// Returns an iterator that yields `(topic, data)` until the daemon goes away.
    /// The subscription has no deadline unless [`Client::set_timeout`] set one.
    pub fn subscribe(mut self, topics: &[&str], targets: &[String]) -> Result<Subscription> {
        self.call("subscribe", json!({"topics": topics, "targets": targets}))?;
        let _ = self.writer.set_read_timeout(self.timeout.get().flatten());
        Ok(Subscription { client: self })
    }

    /// Passes the bus events of `topics` that arrive on this connection to `sink`, from now on and
    /// while a later call waits for its reply (nothing reads the connection between calls: see
    /// [`Client::pump_events`]). The request is sent without waiting for its answer; the daemon
    /// subscribes before it reads the next request, so no event of a request sent after this is
    /// missed. Replaces an earlier sink.
    pub fn watch_events(&mut self, topics: &[&str], sink: EventSink) -> Result<()> {
        self.send("subscribe", json!({"topics": topics, "targets": []}))?;
        self.events = Some(sink);
        Ok(())
    }

    /// Reads the events that arrive within `time` and passes them to the sink of
    /// [`Client::watch_events`] (for the last steps of a command, sent just after its reply).
    /// Returns at once when there is no sink; an error ends it early.
    pub fn pump_events(&mut self, time: Duration) {
        if self.events.is_none() {
            return;
        }
        let end = Instant::now() + time;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || self.reader.get_ref().set_read_timeout(Some(left)).is_err() {
                return;
            }
            match self.read_line::<serde::de::IgnoredAny>() {
                Ok(Some(r)) => self.pass_event(r.event),
                _ => return,
            }
        }
    }

    /// Stops passing events to the sink of [`Client::watch_events`] (the daemon keeps sending
    /// them on this connection; they are skipped).
    pub fn unwatch_events(&mut self) {
        self.events = None;
    }

    fn pass_event(&mut self, event: Option<Value>) {
        if let (Some(ev), Some(sink)) = (event, self.events.as_mut()) {
            let (topic, data) = event_parts(&ev);
            sink(topic, data);
        }
    }

    /// Sets the read timeout (None for none) of every later call and of a subscription, in place of
    /// the per-method deadlines.
    pub fn set_timeout(&self, t: Option<Duration>) {
        self.timeout.set(Some(t));
        let _ = self.writer.set_read_timeout(t);
    }

    /// Closes the connection.
    pub fn close(self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }

    /// A handle that can shut the connection down from another thread (ends a subscription).
    pub fn shutdown_handle(&self) -> Result<UnixStream> {
        Ok(self.writer.try_clone()?)
    }
}

/// A live event subscription.
pub struct Subscription {
    client: Client,
}

impl Subscription {
    /// A handle that can shut the connection down from another thread (ends the iteration).
    pub fn shutdown_handle(&self) -> Result<UnixStream> {
        self.client.shutdown_handle()
    }
}

impl Iterator for Subscription {
    type Item = (String, Value);
    fn next(&mut self) -> Option<(String, Value)> {
        loop {
            let r = self.client.read().ok()?;
            if let Some(ev) = r.event {
                let (topic, data) = event_parts(&ev);
                return Some((topic.to_string(), data.clone()));
            }
        }
    }
}

/// An event line's `{topic, data}` (`""` and `null` where missing).
fn event_parts(ev: &Value) -> (&str, &Value) {
    (ev.get("topic").and_then(|v| v.as_str()).unwrap_or(""), ev.get("data").unwrap_or(&Value::Null))
}

/// Runs `daemon_exe --daemon` and waits until it says the daemon is ready (or why it is not).
/// Returns whether this call started it (false when another client's daemon won the race).
pub fn start_daemon(home: &Home, daemon_exe: &Path) -> Result<bool> {
    home.ensure()?;
    let out = std::process::Command::new(daemon_exe)
        .arg("--daemon")
        .env("RPM2_HOME", home.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(|| format!("cannot run the rpm2 daemon {}", daemon_exe.display()))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(anyhow!(
            "the rpm2 daemon could not start: {} (log: {})",
            if msg.is_empty() { "no reason given".to_string() } else { msg },
            home.daemon_log().display()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim() != "running")
}

/// Whether a daemon answers on this home's socket.
pub fn is_running(home: &Home) -> bool {
    UnixStream::connect(home.socket()).is_ok()
}

/// Stops every app and the daemon of `home`, then waits (up to 5 s) until the daemon's process and
/// socket are gone, so that the next client starts a fresh one. Returns how many processes were
/// stopped, or None when no daemon was running. A daemon error is an [`RpcError`].
///
/// A daemon that does not answer (frozen, SIGSTOPped) is stopped by signals instead
/// ([`deadline::force_kill`]): SIGCONT, SIGTERM, SIGKILL, then its apps from the app table.
pub fn kill_daemon(home: &Home) -> Result<Option<u64>> {
    if !is_running(home) {
        return Ok(None);
    }
    let asked = Client::connect(home).and_then(|mut c| {
        let pid = c.call("info", json!({}))?.get("pid").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        let r = c.call("kill", json!({}))?;
        Ok((pid, r))
    });
    let (pid, r) = match asked {
        Ok(x) => x,
        Err(e) => match e.downcast_ref::<deadline::NotAnswering>() {
            Some(na) => {
                let pid = if na.pid > 0 { na.pid } else { deadline::daemon_pid(home.root()).unwrap_or(0) };
                return Ok(Some(deadline::force_kill(home, pid)));
            }
            None => return Err(e),
        },
    };
    let n = r.get("stopped").and_then(|v| v.as_u64()).unwrap_or(0);
    for _ in 0..500 {
        if (pid == 0 || !crate::base::procinfo::is_alive(pid)) && !home.socket().exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Some(n))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}
