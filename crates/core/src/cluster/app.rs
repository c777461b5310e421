//! The primary of one app ([`ClusterApp`]): its servers by key, shared (every worker gets the socket)
//! or round-robin (a task per server), and the workers' lifecycle (probation, close, exit).

use super::*;

pub(super) enum Server {
    RoundRobin { tx: mpsc::UnboundedSender<RrMsg>, data: Value, sockname: Value, workers: HashSet<u64> },
    Shared { sock: OwnedFd, kind: &'static str, data: Value, workers: HashSet<u64> },
}

/// Workers on probation: worker id → the (server key, channel) pairs to route to once admitted.
pub(super) type Held = HashMap<u64, Vec<(String, ChannelTx)>>;

/// The primary of one app: its view of the server table (by Node's key) it may share with other
/// apps, and the round-robin replies in flight. Its mutexes guard plain maps and are never held
/// across an await.
///
/// Apps made with [`ClusterApp::sharing`] share one table, as Node's primary has one handle per
/// address for all its workers: two apps that listen on the same port share one listener, and its
/// connections go round-robin over the workers of both. A server is closed once no app that uses
/// it is left ([`ClusterApp::close_all`], [`ClusterApp::prune_unused`]).
pub struct ClusterApp {
    pub(super) name: String,
    pub(super) balance: Balance,
    pub(super) servers: Arc<Mutex<HashMap<String, Server>>>,
    pub(super) pending: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<RrMsg>>>>,
    /// Workers on probation (waiting for `ready`): their round-robin servers, not yet routed to.
    pub(super) held: Arc<Mutex<Held>>,
    /// Server key → the names of the apps that listen (or listened) on it.
    pub(super) owners: Arc<Mutex<HashMap<String, HashSet<String>>>>,
}

impl ClusterApp {
    /// A primary for the app `name` with the given balancing model, with a server table of its own.
    pub fn new(name: &str, balance: Balance) -> Arc<ClusterApp> {
        Arc::new(ClusterApp {
            name: name.to_string(),
            balance,
            servers: Arc::new(Mutex::new(HashMap::new())),
            pending: Arc::new(Mutex::new(HashMap::new())),
            held: Arc::new(Mutex::new(HashMap::new())),
            owners: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// A primary for the app `name` that shares `other`'s server table (see [`ClusterApp`]). The
    /// balancing model of a shared server is the one of the app that opened it.
    pub fn sharing(name: &str, balance: Balance, other: &ClusterApp) -> Arc<ClusterApp> {
        Arc::new(ClusterApp {
            name: name.to_string(),
            balance,
            servers: other.servers.clone(),
            pending: other.pending.clone(),
            held: other.held.clone(),
            owners: other.owners.clone(),
        })
    }

    /// Records that this app uses the server `key`.
    fn own(&self, key: &str) {
        if let Ok(mut o) = self.owners.lock() {
            o.entry(key.to_string()).or_default().insert(self.name.clone());
        }
    }

    /// Whether this app uses the server `key`.
    fn owns(&self, key: &str) -> bool {
        self.owners.lock().map(|o| o.get(key).map(|s| s.contains(&self.name)).unwrap_or(false)).unwrap_or(false)
    }

    /// This app stops using the server `key`; true when no app uses it any more (close it).
    fn disown(&self, key: &str) -> bool {
        let Ok(mut o) = self.owners.lock() else { return true };
        let last = match o.get_mut(key) {
            Some(set) => {
                set.remove(&self.name);
                set.is_empty()
            }
            None => true,
        };
        if last {
            o.remove(key);
        }
        last
    }

    /// Answers a worker's `queryServer` (always: a reply, or an error reply with a negative errno).
    pub fn query_server(&self, wid: u64, tx: &ChannelTx, q: &Value) {
        let key = server_key(q);
        let ack = q.get("seq").cloned().unwrap_or(Value::Null);
        let Ok(mut servers) = self.servers.lock() else { return };
        if !servers.contains_key(&key) {
            let Some(server) = self.open_server(&key, q, tx, &ack) else { return };
            servers.insert(key.clone(), server);
        }
        if let Some(server) = servers.get_mut(&key) {
            self.own(&key);
            self.join(server, wid, tx, key, ack);
        }
    }

    /// Binds the server a `queryServer` asks for. On a bind error the worker gets an error reply with a
    /// negative errno; None on any failure.
    pub(super) fn open_server(&self, key: &str, q: &Value, tx: &ChannelTx, ack: &Value) -> Option<Server> {
        let data = q.get("data").cloned().unwrap_or(Value::Null);
        match bind(q) {
            Err(e) => {
                dlog(format!("app {}: cannot listen on {}: {e}", self.name, key_display(key)));
                let err = neg_errno(&e);
                tx.send(json!({"cmd": "NODE_CLUSTER", "errno": err, "key": key, "ack": ack, "data": data, "seq": next_seq()}));
                None
            }
            Ok(Bound::Udp(s)) => {
                let kind = "dgram.Native";
                Some(Server::Shared { sock: s.into(), kind, data, workers: HashSet::new() })
            }
            Ok(Bound::Tcp(l)) if self.balance == Balance::Shared => {
                Some(Server::Shared { sock: l.into(), kind: "net.Native", data, workers: HashSet::new() })
            }
            Ok(Bound::Unix(l)) if self.balance == Balance::Shared => {
                Some(Server::Shared { sock: l.into(), kind: "net.Native", data, workers: HashSet::new() })
            }
            Ok(b) => self.open_round_robin(key, b, data),
        }
    }

    /// Starts the round-robin server task of a freshly bound TCP or Unix listener.
    pub(super) fn open_round_robin(&self, key: &str, b: Bound, data: Value) -> Option<Server> {
        let (sockname, listener) = match b {
            Bound::Tcp(l) => {
                let sn = sockname(&l);
                if l.set_nonblocking(true).is_err() {
                    return None;
                }
                match watch_fd(l) {
                    Ok(t) => (sn, Listener::Tcp(t)),
                    Err(e) => {
                        dlog(format!("app {}: cannot watch the listener on {}: {e}", self.name, key_display(key)));
                        return None;
                    }
                }
            }
            Bound::Unix(l) => {
                if l.set_nonblocking(true).is_err() {
                    return None;
                }
                match watch_fd(l) {
                    Ok(u) => (Value::Null, Listener::Unix(u)),
                    Err(e) => {
                        dlog(format!("app {}: cannot watch the listener on {}: {e}", self.name, key_display(key)));
                        return None;
                    }
                }
            }
            Bound::Udp(_) => return None,
        };
        dlog(format!("app {}: listening on {} (round-robin)", self.name, key_display(key)));
        let (stx, srx) = mpsc::unbounded_channel();
        tokio::spawn(round_robin(listener, key.to_string(), stx.clone(), srx, self.pending.clone()));
        pacer::start();
        Some(Server::RoundRobin { tx: stx, data, sockname, workers: HashSet::new() })
    }

    /// Adds worker `wid` to `server` and answers its `queryServer`: round-robin, the reply (the worker
    /// gets connections once admitted); shared, the reply with a duplicate of the listening socket.
    pub(super) fn join(&self, server: &mut Server, wid: u64, tx: &ChannelTx, key: String, ack: Value) {
        match server {
            Server::RoundRobin { tx: stx, data, sockname, workers } => {
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
            Server::Shared { sock, kind, data, workers } => {
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

    pub(super) fn remove_everywhere(&self, wid: u64, dead: bool) {
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

    /// Closes the listening sockets and queued connections of this app's servers (the app was stopped
    /// or deleted); a server another app still uses stays open for it.
    pub fn close_all(&self) {
        if let Ok(mut servers) = self.servers.lock() {
            let mine: Vec<String> = servers.keys().filter(|k| self.owns(k)).cloned().collect();
            for key in mine {
                if !self.disown(&key) {
                    continue;
                }
                dlog(format!("app {}: closing {}", self.name, key_display(&key)));
                if let Some(Server::RoundRobin { tx, .. }) = servers.remove(&key) {
                    let _ = tx.send(RrMsg::Close);
                }
            }
        }
    }

    /// Closes this app's servers no worker uses any more (after the app moved to other ports); one
    /// another app still uses stays open for it.
    pub fn prune_unused(&self) {
        if let Ok(mut servers) = self.servers.lock() {
            let unused: Vec<String> = servers
                .iter()
                .filter(|(k, s)| {
                    self.owns(k)
                        && match s {
                            Server::RoundRobin { workers, .. } | Server::Shared { workers, .. } => workers.is_empty(),
                        }
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in unused {
                if !self.disown(&key) {
                    continue;
                }
                dlog(format!("app {}: no worker listens on {} any more: closing it", self.name, key_display(&key)));
                if let Some(Server::RoundRobin { tx, .. }) = servers.remove(&key) {
                    let _ = tx.send(RrMsg::Close);
                }
            }
        }
    }

    /// Number of servers this app uses (for tests and `show`).
    pub fn server_count(&self) -> usize {
        self.servers.lock().map(|s| s.keys().filter(|k| self.owns(k)).count()).unwrap_or(0)
    }
}
