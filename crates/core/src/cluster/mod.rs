//! The cluster primary, in Rust: rpm2d answers Node's cluster protocol for the workers of an app
//! (`queryServer`, `newconn`, `close`, `exitedAfterDisconnect`), so an unmodified app that calls
//! `listen(port)` runs on N workers sharing one port.
//!
//! Two balancing models, chosen per app (`cluster_lb`): round-robin (default: rpm2d accepts and hands
//! each connection to the next free worker) and shared (`shared`: every worker gets the listening
//! socket and the kernel distributes; always used for UDP, as Node does). Round-robin hands off one
//! connection per worker at a time, as Node, except under a flood of connections, when the
//! [`crate::cluster::pacer`] batches the daemon's wake-ups and each worker may have several in flight.
//!
//! Listening sockets are **held** while the app exists: a worker that crashes, restarts or is reloaded
//! does not close them, so connections wait in the backlog (shared) or in rpm2d's queue (round-robin)
//! instead of being refused. They are closed by [`ClusterApp::close_all`] on stop/delete.

pub mod pacer;

use crate::base::dlog;
use crate::ipc::{ChannelHook, ChannelTx};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How connections are spread over workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// rpm2d accepts and hands each connection to the next free worker (Node's default on Linux).
    RoundRobin,
    /// Every worker accepts on the shared socket; the kernel distributes.
    Shared,
}

impl Balance {
    /// Parses `cluster_lb` (`rr`/`round-robin`/`roundrobin` or `shared`); None when unknown.
    pub fn parse(s: &str) -> Option<Balance> {
        match s.to_ascii_lowercase().as_str() {
            "rr" | "round-robin" | "roundrobin" | "round_robin" => Some(Balance::RoundRobin),
            "shared" | "none" | "kernel" => Some(Balance::Shared),
            _ => None,
        }
    }
}

/// Most connections rpm2d queues for an app's round-robin server before it stops accepting (the
/// kernel backlog then holds the rest).
pub const MAX_QUEUED_CONNECTIONS: usize = 4096;

static SEQ: AtomicU64 = AtomicU64::new(1);

/// The next `seq` for a message rpm2d sends to a worker.
pub fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

enum RrMsg {
    AddWorker(u64, ChannelTx),
    /// Stop routing to a worker; `dead`: it cannot answer any more.
    RemoveWorker {
        wid: u64,
        dead: bool,
    },
    Reply {
        seq: u64,
        accepted: bool,
    },
    Free(u64),
    Close,
}

enum Server {
    RoundRobin { tx: mpsc::UnboundedSender<RrMsg>, data: Value, sockname: Value, workers: HashSet<u64> },
    Shared { sock: OwnedFd, kind: &'static str, data: Value, workers: HashSet<u64> },
}

/// The primary of one app: its servers (by Node's key) and the round-robin replies in flight.
/// Its mutexes guard plain maps and are never held across an await.
pub struct ClusterApp {
    name: String,
    balance: Balance,
    servers: Mutex<HashMap<String, Server>>,
    pending: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<RrMsg>>>>,
    /// Workers on probation (waiting for `ready`): their round-robin servers, not yet routed to.
    held: Mutex<HashMap<u64, Vec<(String, ChannelTx)>>>,
}

/// `undefined`/`null`/value as JavaScript's template strings print them.
fn js_str(v: Option<&Value>) -> String {
    match v {
        None => "undefined".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// Node's key for a `queryServer`: `${address}:${port}:${addressType}:${fd}:${index}`.
pub fn server_key(q: &Value) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        js_str(q.get("address")),
        js_str(q.get("port")),
        js_str(q.get("addressType")),
        js_str(q.get("fd")),
        js_str(q.get("index"))
    )
}

fn neg_errno(e: &std::io::Error) -> i64 {
    -(e.raw_os_error().unwrap_or(libc::EINVAL) as i64)
}

enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
    Udp(std::net::UdpSocket),
}

/// Binds what a `queryServer` asks for, the way Node's `_createServerHandle` does.
fn bind(q: &Value) -> std::io::Result<Bound> {
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    if let Some(fd) = q.get("fd").and_then(|v| v.as_i64()) {
        if fd >= 0 {
            return Err(einval());
        }
    }
    let address = q.get("address").and_then(|v| v.as_str());
    let port = q.get("port").and_then(|v| v.as_i64()).unwrap_or(0);
    match q.get("addressType") {
        Some(Value::String(t)) if t == "udp4" || t == "udp6" => {
            let host = address.unwrap_or(if t == "udp6" { "::" } else { "0.0.0.0" });
            let addr = format!("{}:{}", if host.contains(':') { format!("[{host}]") } else { host.to_string() }, port);
            Ok(Bound::Udp(std::net::UdpSocket::bind(addr)?))
        }
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => {
            let path = address.ok_or_else(einval)?;
            Ok(Bound::Unix(std::os::unix::net::UnixListener::bind(path)?))
        }
        _ => {
            if !(0..=65535).contains(&port) {
                return Err(einval());
            }
            let l = match address {
                None => std::net::TcpListener::bind(format!("[::]:{port}"))
                    .or_else(|_| std::net::TcpListener::bind(format!("0.0.0.0:{port}")))?,
                Some(h) if h.contains(':') => std::net::TcpListener::bind(format!("[{h}]:{port}"))?,
                Some(h) => std::net::TcpListener::bind(format!("{h}:{port}"))?,
            };
            Ok(Bound::Tcp(l))
        }
    }
}

fn sockname(l: &std::net::TcpListener) -> Value {
    match l.local_addr() {
        Ok(a) => json!({
            "address": a.ip().to_string(),
            "family": if a.is_ipv6() { "IPv6" } else { "IPv4" },
            "port": a.port(),
        }),
        Err(_) => Value::Null,
    }
}

impl ClusterApp {
    /// A primary for the app `name` with the given balancing model.
    pub fn new(name: &str, balance: Balance) -> Arc<ClusterApp> {
        Arc::new(ClusterApp {
            name: name.to_string(),
            balance,
            servers: Mutex::new(HashMap::new()),
            pending: Arc::new(Mutex::new(HashMap::new())),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Answers a worker's `queryServer` (always: a reply, or an error reply with a negative errno).
    pub fn query_server(&self, wid: u64, tx: &ChannelTx, q: &Value) {
        let key = server_key(q);
        let ack = q.get("seq").cloned().unwrap_or(Value::Null);
        let Ok(mut servers) = self.servers.lock() else { return };
        if !servers.contains_key(&key) {
            let data = q.get("data").cloned().unwrap_or(Value::Null);
            match bind(q) {
                Err(e) => {
                    dlog(format!("app {}: cannot listen for {key}: {e}", self.name));
                    let err = neg_errno(&e);
                    tx.send(json!({"cmd": "NODE_CLUSTER", "errno": err, "key": key, "ack": ack, "data": data, "seq": next_seq()}));
                    return;
                }
                Ok(Bound::Udp(s)) => {
                    let kind = "dgram.Native";
                    servers.insert(key.clone(), Server::Shared { sock: s.into(), kind, data, workers: HashSet::new() });
                }
                Ok(Bound::Tcp(l)) if self.balance == Balance::Shared => {
                    servers.insert(
                        key.clone(),
                        Server::Shared { sock: l.into(), kind: "net.Native", data, workers: HashSet::new() },
                    );
                }
                Ok(Bound::Unix(l)) if self.balance == Balance::Shared => {
                    servers.insert(
                        key.clone(),
                        Server::Shared { sock: l.into(), kind: "net.Native", data, workers: HashSet::new() },
                    );
                }
                Ok(b) => {
                    let (sockname, listener) = match b {
                        Bound::Tcp(l) => {
                            let sn = sockname(&l);
                            if l.set_nonblocking(true).is_err() {
                                return;
                            }
                            match watch_fd(l) {
                                Ok(t) => (sn, Listener::Tcp(t)),
                                Err(e) => {
                                    dlog(format!("app {}: cannot watch listener {key}: {e}", self.name));
                                    return;
                                }
                            }
                        }
                        Bound::Unix(l) => {
                            if l.set_nonblocking(true).is_err() {
                                return;
                            }
                            match watch_fd(l) {
                                Ok(u) => (Value::Null, Listener::Unix(u)),
                                Err(e) => {
                                    dlog(format!("app {}: cannot watch listener {key}: {e}", self.name));
                                    return;
                                }
                            }
                        }
                        Bound::Udp(_) => return,
                    };
                    dlog(format!("app {}: listening on {key} (round-robin)", self.name));
                    let (stx, srx) = mpsc::unbounded_channel();
                    tokio::spawn(round_robin(listener, key.clone(), stx.clone(), srx, self.pending.clone()));
                    pacer::start();
                    servers
                        .insert(key.clone(), Server::RoundRobin { tx: stx, data, sockname, workers: HashSet::new() });
                }
            }
        }
        match servers.get_mut(&key) {
            Some(Server::RoundRobin { tx: stx, data, sockname, workers }) => {
                workers.insert(wid);
                let held = match self.held.lock() {
                    Ok(mut h) => match h.get_mut(&wid) {
                        Some(list) => {
                            list.push((key.clone(), tx.clone()));
                            true
                        }
                        None => false,
                    },
                    Err(_) => false,
                };
                if !held {
                    let _ = stx.send(RrMsg::AddWorker(wid, tx.clone()));
                }
                let mut reply = json!({"cmd": "NODE_CLUSTER", "errno": null, "key": key, "ack": ack, "data": data, "seq": next_seq()});
                if !sockname.is_null() {
                    reply["sockname"] = sockname.clone();
                }
                tx.send(reply);
            }
            Some(Server::Shared { sock, kind, data, workers }) => {
                let dup = match sock.as_fd().try_clone_to_owned() {
                    Ok(d) => d,
                    Err(e) => {
                        tx.send(json!({"cmd": "NODE_CLUSTER", "errno": neg_errno(&e), "key": key, "ack": ack, "data": data, "seq": next_seq()}));
                        return;
                    }
                };
                workers.insert(wid);
                let msg =
                    json!({"cmd": "NODE_CLUSTER", "errno": 0, "key": key, "ack": ack, "data": data, "seq": next_seq()});
                tx.send_handle(kind, msg, dup);
            }
            None => {}
        }
    }

    /// Puts a worker on probation: its round-robin servers get no connections until [`Self::admit`]
    /// (a `wait_ready` worker is routed to only once it said `ready`).
    pub fn hold(&self, wid: u64) {
        if let Ok(mut h) = self.held.lock() {
            h.entry(wid).or_default();
        }
    }

    /// Ends a worker's probation: it starts getting connections on every server it listens on.
    pub fn admit(&self, wid: u64) {
        let list = self.held.lock().ok().and_then(|mut h| h.remove(&wid)).unwrap_or_default();
        if let Ok(servers) = self.servers.lock() {
            for (key, tx) in list {
                if let Some(Server::RoundRobin { tx: stx, .. }) = servers.get(&key) {
                    let _ = stx.send(RrMsg::AddWorker(wid, tx));
                }
            }
        }
    }

    /// A worker closed one of its servers: stop routing that server's connections to it. The socket
    /// itself is held.
    pub fn worker_close(&self, wid: u64, key: &str) {
        if let Ok(mut servers) = self.servers.lock() {
            match servers.get_mut(key) {
                Some(Server::RoundRobin { tx, workers, .. }) => {
                    workers.remove(&wid);
                    let _ = tx.send(RrMsg::RemoveWorker { wid, dead: false });
                }
                Some(Server::Shared { workers, .. }) => {
                    workers.remove(&wid);
                }
                None => {}
            }
        }
    }

    /// A worker is leaving (disconnect, exit or reload): no more connections go to it. Connections
    /// handed to it and not answered yet stay in flight until it answers (a refusal goes to another
    /// worker) or its channel closes ([`ClusterApp::worker_dead`]).
    pub fn worker_gone(&self, wid: u64) {
        self.remove_everywhere(wid, false);
    }

    /// A worker's channel closed: it cannot answer any more, so the connections handed to it and not
    /// answered are closed (resending them is unsafe: it may have read from them).
    pub fn worker_dead(&self, wid: u64) {
        self.remove_everywhere(wid, true);
    }

    fn remove_everywhere(&self, wid: u64, dead: bool) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(&wid);
        }
        if let Ok(mut servers) = self.servers.lock() {
            for s in servers.values_mut() {
                match s {
                    Server::RoundRobin { tx, workers, .. } => {
                        workers.remove(&wid);
                        let _ = tx.send(RrMsg::RemoveWorker { wid, dead });
                    }
                    Server::Shared { workers, .. } => {
                        workers.remove(&wid);
                    }
                }
            }
        }
    }

    /// A worker's reply to `newconn` (`{ack, accepted}`). Returns false when no hand-off had that seq.
    pub fn on_ack(&self, ack: u64, accepted: bool) -> bool {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&ack));
        match tx {
            Some(tx) => tx.send(RrMsg::Reply { seq: ack, accepted }).is_ok(),
            None => false,
        }
    }

    /// Closes every listening socket and queued connection (the app was stopped or deleted).
    pub fn close_all(&self) {
        if let Ok(mut servers) = self.servers.lock() {
            for (key, s) in servers.drain() {
                dlog(format!("app {}: closing {key}", self.name));
                if let Server::RoundRobin { tx, .. } = s {
                    let _ = tx.send(RrMsg::Close);
                }
            }
        }
    }

    /// Closes the servers no worker uses any more (after the app moved to other ports).
    pub fn prune_unused(&self) {
        if let Ok(mut servers) = self.servers.lock() {
            let unused: Vec<String> = servers
                .iter()
                .filter(|(_, s)| match s {
                    Server::RoundRobin { workers, .. } | Server::Shared { workers, .. } => workers.is_empty(),
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in unused {
                dlog(format!("app {}: no worker listens on {key} any more: closing it", self.name));
                if let Some(Server::RoundRobin { tx, .. }) = servers.remove(&key) {
                    let _ = tx.send(RrMsg::Close);
                }
            }
        }
    }

    /// Number of servers held (for tests and `show`).
    pub fn server_count(&self) -> usize {
        self.servers.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// A round-robin listener. Connections are accepted with plain `accept4` calls in a batch per
/// readiness event and never registered with the event loop: rpm2d only passes them on, so this saves
/// the epoll registration and removal each connection would otherwise cost.
enum Listener {
    Tcp(tokio::io::unix::AsyncFd<std::net::TcpListener>),
    Unix(tokio::io::unix::AsyncFd<std::os::unix::net::UnixListener>),
}

/// Reads a worker's reply to `newconn` exactly as Node's cluster child writes it,
/// `{"cmd":"NODE_CLUSTER","ack":N,"accepted":true|false,"seq":M}`, without building a JSON value:
/// `Some((ack, accepted))`, or `None` for any other line (which then takes the general path).
pub fn parse_newconn_reply(line: &[u8]) -> Option<(u64, bool)> {
    let rest = line.strip_prefix(br#"{"cmd":"NODE_CLUSTER","ack":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let ack: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(br#","accepted":"#)?;
    let (accepted, rest) =
        if let Some(r) = rest.strip_prefix(b"true") { (true, r) } else { (false, rest.strip_prefix(b"false")?) };
    let rest = rest.strip_prefix(br#","seq":"#)?;
    let tail = rest.strip_suffix(b"}")?;
    (!tail.is_empty() && tail.iter().all(u8::is_ascii_digit)).then_some((ack, accepted))
}

/// Registers a listener with the event loop. (`AsyncFd::new` is deprecated in recent tokio for types
/// that do not prove fd ownership; std listeners own their fd, so it is sound here, as in `ipc`.)
#[allow(deprecated)]
fn watch_fd<T: std::os::fd::AsRawFd>(l: T) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    tokio::io::unix::AsyncFd::new(l)
}

/// Most connections taken per readiness event before the other work of the server runs.
const ACCEPT_BATCH: usize = 64;

impl Listener {
    /// Waits until the listener is readable, then accepts up to `max` connections into `out`.
    async fn accept_batch(&self, out: &mut VecDeque<Arc<OwnedFd>>, max: usize) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => drain(l, out, max, |l| l.accept().map(|(s, _)| s.into())).await,
            Listener::Unix(l) => drain(l, out, max, |l| l.accept().map(|(s, _)| s.into())).await,
        }
    }
}

/// One readiness event's worth of `accept` calls on `l` (at most `max`); an error after at least one
/// connection ends the batch quietly (the next call reports it again).
async fn drain<L: std::os::fd::AsRawFd>(
    l: &tokio::io::unix::AsyncFd<L>,
    out: &mut VecDeque<Arc<OwnedFd>>,
    max: usize,
    accept: impl Fn(&L) -> std::io::Result<OwnedFd>,
) -> std::io::Result<()> {
    let mut guard = l.readable().await?;
    let mut n = 0;
    while n < max {
        match accept(guard.get_inner()) {
            Ok(fd) => {
                out.push_back(Arc::new(fd));
                n += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                guard.clear_ready();
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// State of one round-robin server (pure; driven by [`round_robin`]). Exposed to unit tests.
///
/// Workers in `order` are routable; each may have up to `limit` connections in flight (1 as in Node,
/// more while the [`crate::cluster::pacer`] batches). A worker that is removed while alive (reload, `close`)
/// keeps its connections in flight until it answers, so a refusal still goes to another worker;
/// a dead worker's are released at once.
struct RrState<C> {
    order: Vec<u64>,
    cursor: usize,
    busy: HashMap<u64, usize>,
    paused: HashSet<u64>,
    queue: VecDeque<C>,
    inflight: HashMap<u64, (u64, C)>,
}

impl<C> Default for RrState<C> {
    fn default() -> Self {
        RrState {
            order: Vec::new(),
            cursor: 0,
            busy: HashMap::new(),
            paused: HashSet::new(),
            queue: VecDeque::new(),
            inflight: HashMap::new(),
        }
    }
}

impl<C> RrState<C> {
    fn add_worker(&mut self, wid: u64) {
        if !self.order.contains(&wid) {
            self.order.push(wid);
        }
        self.paused.remove(&wid);
    }
    /// Stops routing to a worker. `dead`: it can no longer answer, so the connections it had not
    /// acknowledged are returned (to be closed); otherwise they stay in flight until it answers.
    fn remove_worker(&mut self, wid: u64, dead: bool) -> Vec<(u64, C)> {
        self.order.retain(|w| *w != wid);
        self.paused.remove(&wid);
        if !dead {
            return Vec::new();
        }
        self.busy.remove(&wid);
        let seqs: Vec<u64> = self.inflight.iter().filter(|(_, (w, _))| *w == wid).map(|(s, _)| *s).collect();
        seqs.into_iter().filter_map(|s| self.inflight.remove(&s).map(|(_, c)| (s, c))).collect()
    }
    /// Records a hand-off.
    fn sent(&mut self, seq: u64, wid: u64, conn: C) {
        *self.busy.entry(wid).or_insert(0) += 1;
        self.inflight.insert(seq, (wid, conn));
    }
    /// A worker answered. On a refusal the connection goes back to the front of the queue and the
    /// worker is paused; returns `(worker, accepted)` when the worker is still routable.
    fn reply(&mut self, seq: u64, accepted: bool) -> Option<(u64, bool)> {
        let (wid, conn) = self.inflight.remove(&seq)?;
        if let Some(b) = self.busy.get_mut(&wid) {
            *b = b.saturating_sub(1);
        }
        if !accepted {
            self.queue.push_front(conn);
        }
        if self.order.contains(&wid) {
            if !accepted {
                self.paused.insert(wid);
            }
            Some((wid, accepted))
        } else {
            None
        }
    }
    /// Ends a refusal's pause.
    fn free_again(&mut self, wid: u64) {
        self.paused.remove(&wid);
    }
    /// The next (worker, connection) pair to hand off, if any: workers in turn, skipping the paused
    /// ones and those with `limit` connections in flight.
    fn next(&mut self, limit: usize) -> Option<(u64, C)> {
        if self.queue.is_empty() || self.order.is_empty() {
            return None;
        }
        let n = self.order.len();
        for i in 0..n {
            let idx = (self.cursor + i) % n;
            let wid = self.order[idx];
            if self.paused.contains(&wid) || self.busy.get(&wid).copied().unwrap_or(0) >= limit {
                continue;
            }
            let c = self.queue.pop_front()?;
            self.cursor = (idx + 1) % n;
            return Some((wid, c));
        }
        None
    }
}

/// The seq of a `newconn` hand-off line rpm2d wrote.
fn newconn_seq(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"\n").unwrap_or(line).strip_suffix(b"}}")?;
    let at = body.windows(6).rposition(|w| w == br#""seq":"#)?;
    std::str::from_utf8(&body[at + 6..]).ok()?.parse().ok()
}

/// The [`ChannelHook`] of a cluster worker's channel: its `newconn` replies go straight to the
/// round-robin servers from the channel task, and a hand-off the channel had to drop counts as a
/// refusal (the connection goes to another worker).
pub struct WorkerHook {
    app: Arc<ClusterApp>,
    wid: u64,
}

impl WorkerHook {
    /// The hook for worker `wid` of `app`.
    pub fn new(app: Arc<ClusterApp>, wid: u64) -> WorkerHook {
        WorkerHook { app, wid }
    }
}

impl ChannelHook for WorkerHook {
    fn on_line(&mut self, line: &[u8]) -> bool {
        match parse_newconn_reply(line) {
            Some((ack, accepted)) => {
                self.app.on_ack(ack, accepted);
                true
            }
            None => false,
        }
    }
    fn on_handle_dropped(&mut self, line: &[u8]) {
        if let Some(seq) = newconn_seq(line) {
            self.app.on_ack(seq, false);
        }
    }
    fn on_closed(&mut self) {
        self.app.worker_dead(self.wid);
    }
    fn on_activity(&mut self) {
        pacer::note_activity();
    }
}

/// Forgets the hand-offs of a dead worker; their connections close as they drop.
fn forget(pending: &Mutex<HashMap<u64, mpsc::UnboundedSender<RrMsg>>>, lost: Vec<(u64, Arc<OwnedFd>)>) {
    if let Ok(mut p) = pending.lock() {
        for (seq, _conn) in lost {
            p.remove(&seq);
        }
    }
}

/// What the server does with one message; false to stop.
fn on_rr_msg(
    m: Option<RrMsg>,
    st: &mut RrState<Arc<OwnedFd>>,
    txs: &mut HashMap<u64, ChannelTx>,
    self_tx: &mpsc::UnboundedSender<RrMsg>,
    pending: &Mutex<HashMap<u64, mpsc::UnboundedSender<RrMsg>>>,
) -> bool {
    match m {
        None | Some(RrMsg::Close) => return false,
        Some(RrMsg::AddWorker(wid, tx)) => {
            txs.insert(wid, tx);
            st.add_worker(wid);
        }
        Some(RrMsg::RemoveWorker { wid, dead }) => {
            txs.remove(&wid);
            forget(pending, st.remove_worker(wid, dead));
        }
        Some(RrMsg::Reply { seq, accepted }) => {
            if let Some((wid, false)) = st.reply(seq, accepted) {
                // A refusal: give that worker a moment before offering it more.
                let t = self_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = t.send(RrMsg::Free(wid));
                });
            }
        }
        Some(RrMsg::Free(wid)) => st.free_again(wid),
    }
    true
}

async fn round_robin(
    listener: Listener,
    key: String,
    self_tx: mpsc::UnboundedSender<RrMsg>,
    mut rx: mpsc::UnboundedReceiver<RrMsg>,
    pending: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<RrMsg>>>>,
) {
    let mut st: RrState<Arc<OwnedFd>> = RrState::default();
    let mut txs: HashMap<u64, ChannelTx> = HashMap::new();
    // The newconn envelope up to its seq, serialized once (the key needs JSON escaping).
    let key_json = serde_json::to_string(&key).unwrap_or_else(|_| "\"\"".into());
    let prefix = format!(
        r#"{{"cmd":"NODE_HANDLE","type":"net.Native","msg":{{"cmd":"NODE_CLUSTER","act":"newconn","key":{key_json},"seq":"#
    );
    loop {
        pacer::note_activity();
        let room = ACCEPT_BATCH.min(MAX_QUEUED_CONNECTIONS.saturating_sub(st.queue.len()));
        let before = st.queue.len();
        tokio::select! {
            r = listener.accept_batch(&mut st.queue, room), if room > 0 => match r {
                Ok(()) => pacer::accepted(st.queue.len() - before),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    dlog(format!("accept on {key} failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            m = rx.recv() => {
                if !on_rr_msg(m, &mut st, &mut txs, &self_tx, &pending) {
                    break;
                }
                // Everything else already queued (a batch of replies) before handing off.
                let mut open = true;
                while let Ok(m) = rx.try_recv() {
                    if !on_rr_msg(Some(m), &mut st, &mut txs, &self_tx, &pending) {
                        open = false;
                        break;
                    }
                }
                if !open {
                    break;
                }
            },
        }
        let batching = pacer::batching();
        let limit = if batching { pacer::BATCH_IN_FLIGHT } else { 1 };
        while let Some((wid, conn)) = st.next(limit) {
            let Some(tx) = txs.get(&wid) else {
                st.queue.push_front(conn);
                forget(&pending, st.remove_worker(wid, true));
                continue;
            };
            let seq = next_seq();
            if let Ok(mut p) = pending.lock() {
                p.insert(seq, self_tx.clone());
            }
            // The channel and this server share the fd (no dup): the channel lets go at the worker's
            // ACK, this server at its `accepted` reply (or hands it to another worker on a refusal).
            let mut line = Vec::with_capacity(prefix.len() + 24);
            line.extend_from_slice(prefix.as_bytes());
            line.extend_from_slice(seq.to_string().as_bytes());
            line.extend_from_slice(b"}}\n");
            if tx.send_handle_line(line, conn.clone(), batching) {
                st.sent(seq, wid, conn);
                continue;
            }
            if let Ok(mut p) = pending.lock() {
                p.remove(&seq);
            }
            st.queue.push_front(conn);
            if tx.is_closed() {
                txs.remove(&wid);
                forget(&pending, st.remove_worker(wid, true));
            } else {
                // Its channel's backlog is full (the worker is not reading): pause it for a moment.
                st.paused.insert(wid);
                let t = self_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = t.send(RrMsg::Free(wid));
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_node() {
        let q = json!({"act":"queryServer","index":0,"data":null,"address":null,"port":8123,"addressType":4,"backlog":0,"seq":1});
        assert_eq!(server_key(&q), "null:8123:4:undefined:0");
        let q = json!({"address":"0.0.0.0","port":8126,"addressType":"udp4","fd":-1,"flags":0, "index": 0});
        assert_eq!(server_key(&q), "0.0.0.0:8126:udp4:-1:0");
        let q = json!({"address":"/tmp/x.sock","port":-1,"addressType":-1,"index":1});
        assert_eq!(server_key(&q), "/tmp/x.sock:-1:-1:undefined:1");
    }

    #[test]
    fn round_robin_alternates_and_waits_for_acks() {
        let mut st: RrState<u32> = RrState::default();
        st.add_worker(1);
        st.add_worker(2);
        for c in 0..4 {
            st.queue.push_back(c);
        }
        let (w1, c1) = st.next(1).unwrap();
        st.sent(100, w1, c1);
        let (w2, c2) = st.next(1).unwrap();
        st.sent(101, w2, c2);
        assert_eq!((w1, w2), (1, 2));
        // Both busy until they answer (one in flight each, as Node).
        assert!(st.next(1).is_none());
        st.reply(100, true);
        let (w, c) = st.next(1).unwrap();
        assert_eq!((w, c), (1, 2));
        st.sent(102, w, c);
        // A refusal puts the connection back at the front and the worker is not free at once.
        assert_eq!(st.reply(101, false), Some((2, false)));
        assert_eq!(st.queue.front(), Some(&1));
        assert!(st.next(1).is_none());
        st.free_again(2);
        assert_eq!(st.next(1), Some((2, 1)));
    }

    #[test]
    fn batching_pipelines_up_to_the_limit_evenly() {
        let mut st: RrState<u32> = RrState::default();
        for w in [1, 2, 3] {
            st.add_worker(w);
        }
        for c in 0..10 {
            st.queue.push_back(c);
        }
        let mut got = Vec::new();
        let mut seq = 0;
        while let Some((w, c)) = st.next(3) {
            seq += 1;
            st.sent(seq, w, c);
            got.push(w);
        }
        // Three each, in turn; the tenth waits for an answer.
        assert_eq!(got, vec![1, 2, 3, 1, 2, 3, 1, 2, 3]);
        assert_eq!(st.queue.len(), 1);
        st.reply(5, true); // worker 2
        assert_eq!(st.next(3), Some((2, 9)));
    }

    #[test]
    fn a_leaving_worker_still_answers_and_refusals_go_elsewhere() {
        let mut st: RrState<u32> = RrState::default();
        st.add_worker(1);
        st.add_worker(2);
        st.queue.push_back(10);
        let (w, c) = st.next(1).unwrap();
        assert_eq!(w, 1);
        st.sent(1, w, c);
        // Worker 1 is being reloaded: no more routing, but its hand-off stays in flight.
        assert!(st.remove_worker(1, false).is_empty());
        assert!(st.inflight.contains_key(&1));
        // It refuses (its server closed meanwhile): the connection goes to worker 2.
        assert_eq!(st.reply(1, false), None);
        assert_eq!(st.next(1), Some((2, 10)));
    }

    #[test]
    fn newconn_replies_parse_without_json() {
        let ok = br#"{"cmd":"NODE_CLUSTER","ack":17,"accepted":true,"seq":3}"#;
        assert_eq!(parse_newconn_reply(ok), Some((17, true)));
        let no = br#"{"cmd":"NODE_CLUSTER","ack":18446744073709551615,"accepted":false,"seq":0}"#;
        assert_eq!(parse_newconn_reply(no), Some((u64::MAX, false)));
        // Anything else takes the general (JSON) path.
        for other in [
            &br#"{"cmd":"NODE_CLUSTER","ack":1,"seq":2}"#[..],
            br#"{"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":2,"x":1}"#,
            br#"{"cmd":"NODE_CLUSTER","ack":,"accepted":true,"seq":2}"#,
            br#"{"cmd":"NODE_CLUSTER","ack":99999999999999999999,"accepted":true,"seq":2}"#,
            br#"{"cmd":"NODE_CLUSTER","ack":1,"accepted":truex,"seq":2}"#,
            br#"{"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":}"#,
            br#"{"cmd":"NODE_CLUSTER","act":"listening","seq":2}"#,
            b"",
        ] {
            assert_eq!(parse_newconn_reply(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn newconn_seq_reads_back_the_lines_rpm2d_writes() {
        let line = br#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"null:80:4:undefined:0","seq":42}}"#;
        assert_eq!(newconn_seq(line), Some(42));
        let mut nl = line.to_vec();
        nl.push(b'\n');
        assert_eq!(newconn_seq(&nl), Some(42));
        assert_eq!(newconn_seq(br#"{"cmd":"NODE_HANDLE","msg":{}}"#), None);
    }

    #[test]
    fn dead_worker_releases_unacked_connections() {
        let mut st: RrState<u32> = RrState::default();
        st.add_worker(7);
        st.queue.push_back(42);
        let (w, c) = st.next(1).unwrap();
        st.sent(5, w, c);
        let lost = st.remove_worker(7, true);
        assert_eq!(lost, vec![(5, 42)]);
        assert!(st.reply(5, true).is_none());
        assert!(st.next(1).is_none());
    }

    #[test]
    fn balance_names() {
        assert_eq!(Balance::parse("shared"), Some(Balance::Shared));
        assert_eq!(Balance::parse("rr"), Some(Balance::RoundRobin));
        assert_eq!(Balance::parse("x"), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bind_errors_are_negative_errnos() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let q = json!({"address": "127.0.0.1", "port": port, "addressType": 4, "index": 0});
        let e = bind(&q).err().unwrap();
        assert_eq!(neg_errno(&e), -98);
        let q = json!({"address": null, "port": 0, "addressType": 4, "fd": 5, "index": 0});
        assert_eq!(neg_errno(&bind(&q).err().unwrap()), -22);
    }
}
