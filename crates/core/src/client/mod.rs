//! The client side of the control socket, blocking (std only) so that the CLI starts in
//! milliseconds and the napi addon can run calls on libuv's thread pool. Starts the daemon when it is
//! not running.

pub mod conf;
pub mod env;
pub mod operate;
mod processes;
pub mod report;
pub(crate) mod shape;
pub mod start;

use crate::base::paths::Home;
use crate::protocol::{Request, Response, PROTOCOL_VERSION};
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

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

/// A connection to the daemon that has completed the hello.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
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
        Client::handshake(stream, false)
    }

    /// Connects, starting the daemon with `daemon_exe --daemon` when none is running.
    pub fn connect_or_start(home: &Home, daemon_exe: &Path) -> Result<Client> {
        if let Ok(s) = UnixStream::connect(home.socket()) {
            return Client::handshake(s, false);
        }
        let started = start_daemon(home, daemon_exe)?;
        let mut last = None;
        for _ in 0..200 {
            match UnixStream::connect(home.socket()) {
                Ok(s) => return Client::handshake(s, started),
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

    fn handshake(stream: UnixStream, started: bool) -> Result<Client> {
        let writer = stream.try_clone().context("cannot clone the socket")?;
        let mut c = Client {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
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
        self.writer.write_all(&line).context("lost the connection to the rpm2 daemon")?;
        Ok(id)
    }

    fn read(&mut self) -> Result<Response> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).context("lost the connection to the rpm2 daemon")?;
        if n == 0 {
            return Err(anyhow!("the rpm2 daemon closed the connection (see its log for why)"));
        }
        serde_json::from_str(&line).with_context(|| format!("the daemon sent an unreadable reply: {}", line.trim()))
    }

    /// Calls `method` and waits for its result. A daemon error becomes an [`RpcError`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.send(method, params)?;
        loop {
            let r = self.read()?;
            if r.id != id && r.id != 0 {
                continue;
            }
            if let Some(e) = r.error {
                return Err(RpcError { code: e.code, message: e.message }.into());
            }
            return Ok(r.result.unwrap_or(Value::Null));
        }
    }

    /// Subscribes to bus events (`topics`, empty for all; `targets` limits to some processes).
    /// Returns an iterator that yields `(topic, data)` until the daemon goes away.
    pub fn subscribe(mut self, topics: &[&str], targets: &[String]) -> Result<Subscription> {
        self.call("subscribe", json!({"topics": topics, "targets": targets}))?;
        Ok(Subscription { client: self })
    }

    /// Sets a read timeout (None for none) on the connection.
    pub fn set_timeout(&self, t: Option<Duration>) {
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
                let topic = ev.get("topic").and_then(|v| v.as_str()).unwrap_or("").to_string();
                let data = ev.get("data").cloned().unwrap_or(Value::Null);
                return Some((topic, data));
            }
        }
    }
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
pub fn kill_daemon(home: &Home) -> Result<Option<u64>> {
    if !is_running(home) {
        return Ok(None);
    }
    let mut c = Client::connect(home)?;
    let pid = c.call("info", json!({}))?.get("pid").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    let r = c.call("kill", json!({}))?;
    let n = r.get("stopped").and_then(|v| v.as_u64()).unwrap_or(0);
    for _ in 0..500 {
        if (pid == 0 || !crate::base::procinfo::is_alive(pid)) && !home.socket().exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Some(n))
}
