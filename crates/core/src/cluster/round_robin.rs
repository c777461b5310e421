//! The round-robin hand-off: the per-server routing state, the task that accepts and hands each
//! connection to the next free worker, and the channel hook that takes the workers' replies.

use super::*;

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

/// State of one round-robin server (pure; driven by [`round_robin`]). Exposed to unit tests.
///
/// Workers in `order` are routable; each may have up to `limit` connections in flight (1 as in Node,
/// more while the [`crate::cluster::pacer`] batches). A worker that is removed while alive (reload, `close`)
/// keeps its connections in flight until it answers, so a refusal still goes to another worker;
/// a dead worker's are released at once.
pub(super) struct RrState<C> {
    pub(super) order: Vec<u64>,
    pub(super) cursor: usize,
    pub(super) busy: HashMap<u64, usize>,
    pub(super) paused: HashSet<u64>,
    pub(super) queue: VecDeque<C>,
    pub(super) inflight: HashMap<u64, (u64, C)>,
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
    pub(super) fn add_worker(&mut self, wid: u64) {
        if !self.order.contains(&wid) {
            self.order.push(wid);
        }
        self.paused.remove(&wid);
    }
    /// Stops routing to a worker. `dead`: it can no longer answer, so the connections it had not
    /// acknowledged are returned (to be closed); otherwise they stay in flight until it answers.
    pub(super) fn remove_worker(&mut self, wid: u64, dead: bool) -> Vec<(u64, C)> {
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
    pub(super) fn sent(&mut self, seq: u64, wid: u64, conn: C) {
        *self.busy.entry(wid).or_insert(0) += 1;
        self.inflight.insert(seq, (wid, conn));
    }
    /// A worker answered. On a refusal the connection goes back to the front of the queue and the
    /// worker is paused; returns `(worker, accepted)` when the worker is still routable.
    pub(super) fn reply(&mut self, seq: u64, accepted: bool) -> Option<(u64, bool)> {
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
    pub(super) fn free_again(&mut self, wid: u64) {
        self.paused.remove(&wid);
    }
    /// The next (worker, connection) pair to hand off, if any: workers in turn, skipping the paused
    /// ones and those with `limit` connections in flight.
    pub(super) fn next(&mut self, limit: usize) -> Option<(u64, C)> {
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
pub(super) fn newconn_seq(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"\n").unwrap_or(line).strip_suffix(b"}}")?;
    let at = body.windows(6).rposition(|w| w == br#""seq":"#)?;
    std::str::from_utf8(&body[at + 6..]).ok()?.parse().ok()
}

/// The [`ChannelHook`] of a cluster worker's channel: its `newconn` replies go straight to the
/// round-robin servers from the channel task, and a hand-off the channel had to drop counts as a
/// refusal (the connection goes to another worker).
pub struct WorkerHook {
    pub(super) app: Arc<ClusterApp>,
    pub(super) wid: u64,
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
pub(super) fn forget(pending: &Mutex<HashMap<u64, mpsc::UnboundedSender<RrMsg>>>, lost: Vec<(u64, Arc<OwnedFd>)>) {
    if let Ok(mut p) = pending.lock() {
        for (seq, _conn) in lost {
            p.remove(&seq);
        }
    }
}

/// What the server does with one message; false to stop.
pub(super) fn on_rr_msg(
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

pub(super) async fn round_robin(
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
                    dlog(format!("accept on {} failed: {e}", super::bind::key_display(&key)));
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
