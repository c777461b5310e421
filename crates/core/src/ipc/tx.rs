//! The public sending side ([`ChannelTx`]), the events a channel delivers, and [`spawn`].

use super::*;

/// Something the child sent (or the channel noticed), delivered in order by the receiver of [`spawn`].
#[derive(Debug)]
pub enum ChannelEvent {
    /// A user or internal message (any JSON value) with no handle. Internal messages such as
    /// `{"cmd":"NODE_CLUSTER",..}` come through here too; only the handle handshake
    /// (`NODE_HANDLE`, `NODE_HANDLE_ACK`, `NODE_HANDLE_NACK`) is consumed by the channel.
    Message(Value),
    /// A `NODE_HANDLE` message: the inner `msg` (`null` if absent), the whole envelope
    /// (`cmd`, `type`, `msg`, and `key`/`dgramType` when the child sent them) and the received fd
    /// (close-on-exec). The channel has already ACKed it; dropping `fd` closes it.
    Handle {
        /// The message the child passed to `process.send(msg, handle)`.
        msg: Value,
        /// The full `{"cmd":"NODE_HANDLE",...}` object as received.
        #[allow(dead_code)] // for consumers that route handles; today the supervisor drops them
        envelope: Value,
        /// The file descriptor that came with it.
        #[allow(dead_code)] // dropping it closes the fd
        fd: OwnedFd,
    },
    /// The child sent something invalid (malformed JSON, an over-long line, an unexpected fd, an
    /// unsolicited ACK...) or the channel had to drop something (write backlog full, handle NACKed too
    /// often). The string says what, for the daemon log, prefixed with the channel's label.
    /// The channel stays open unless the fault is fatal (over-long line => [`ChannelEvent::Closed`] follows).
    Fault(String),
    /// The channel reached EOF or an error, or was closed: no more events follow.
    Closed,
}

#[cfg(test)]
/// A message to send to the child, optionally with a handle (fd) attached; see [`ChannelTx::send_outbound`].
#[derive(Debug)]
pub struct Outbound {
    /// Without `fd`: the message itself (any JSON value). With `fd`: the complete `NODE_HANDLE` envelope,
    /// an object `{"cmd":"NODE_HANDLE","type":T,"msg":..}` plus any extra fields (`key`, `dgramType`).
    pub msg: Value,
    /// The fd to pass with `SCM_RIGHTS`.
    pub fd: Option<OwnedFd>,
}

/// Commands from the senders to the channel task. Bytes are one complete, serialized line.
pub(super) enum Cmd {
    Send(Vec<u8>),
    SendHandle(Vec<u8>, Arc<OwnedFd>, HandleOpts),
    Close,
    Overflow,
}

/// State shared by every [`ChannelTx`] clone and the channel task.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Set by `close()` and when the task ends: senders refuse new messages.
    pub(super) closed: AtomicBool,
    /// Bytes accepted for writing and not yet written or dropped.
    pub(super) queued: AtomicUsize,
    /// An overflow fault was reported and the backlog has not drained below half since.
    pub(super) overflowed: AtomicBool,
}

/// Cloneable sender side of a running channel. Sending never blocks and never fails loudly: every
/// `send*` method returns true when the message was accepted for writing (it will be written in order,
/// unless the channel closes first) and false when it was not (channel closed or closing, message not
/// allowed, or write backlog over [`MAX_QUEUED`]); a refused handle's fd is closed.
///
/// Dropping every `ChannelTx` does not close the channel while the event receiver is alive (the child can
/// still send); the channel task ends when both are gone, on EOF/error, or after [`ChannelTx::close`].
#[derive(Clone, Debug)]
pub struct ChannelTx {
    pub(super) cmd: mpsc::UnboundedSender<Cmd>,
    pub(super) shared: Arc<Shared>,
}

impl ChannelTx {
    /// Sends `msg` (any JSON value) as one line; the child's `process.on('message')` receives it.
    /// Messages are written in the order sent, after any handle still awaiting the child's ACK.
    /// Refuses (returns false) objects whose `cmd` is `NODE_HANDLE`, `NODE_HANDLE_ACK` or
    /// `NODE_HANDLE_NACK`: the channel alone speaks that handshake (a stray ACK crashes the child).
    pub fn send(&self, msg: Value) -> bool {
        if reserved_cmd(&msg).is_some() {
            return false;
        }
        match encode(&msg) {
            Some(bytes) => self.enqueue(bytes, None),
            None => false,
        }
    }

    /// Sends `fd` with `msg` the way Node's `child.send(msg, handle)` does: as the line
    /// `{"cmd":"NODE_HANDLE","type":envelope_type,"msg":msg}` with the fd as `SCM_RIGHTS` on the first
    /// byte(s) of that line. `envelope_type` tells the child what to build from the fd: `"net.Native"` /
    /// `"dgram.Native"` (raw handles, what the cluster protocol uses), `"net.Socket"`, `"net.Server"`,
    /// `"dgram.Socket"` (the last one also needs `dgramType`: use [`ChannelTx::send_outbound`] for extra
    /// envelope fields). Later messages wait until the child ACKs; on NACK the handle is sent again up to
    /// [`MAX_HANDLE_RETRANSMISSIONS`] times. The channel closes its copy of `fd` once the child ACKed it
    /// (or it was dropped); keep your own duplicate if you need the fd afterwards.
    pub fn send_handle(&self, envelope_type: &str, msg: Value, fd: OwnedFd) -> bool {
        let mut env = Map::new();
        env.insert("cmd".into(), Value::from(CMD_HANDLE));
        env.insert("type".into(), Value::from(envelope_type));
        env.insert("msg".into(), msg);
        match encode(&Value::Object(env)) {
            Some(bytes) => self.enqueue(bytes, Some(Arc::new(fd))),
            None => false,
        }
    }

    /// Sends a handle whose envelope the caller has already serialized: `line` must be one complete
    /// `{"cmd":"NODE_HANDLE","type":..,"msg":..}` JSON object followed by a single `\n` (anything else is
    /// refused, returning false). `fd` is shared: the channel drops its reference once the child ACKed
    /// the handle (or it was dropped), so the caller can keep its own `Arc` without a `dup`. This is the
    /// cluster hot path (one call per connection).
    ///
    /// With `pipelined` false it behaves as [`ChannelTx::send_handle`]: one handle in flight, as Node.
    /// With `pipelined` true, up to [`MAX_PIPELINED`] such handles may be in flight at once. That is safe
    /// with Node's receiver because Linux ends a `recvmsg` right after the segment that carries fds and
    /// Node attaches a read's fd to the `NODE_HANDLE` line it completes; the channel therefore only
    /// pipelines a handle when every earlier one went out whole in a single `sendmsg`, and when the
    /// bytes the child may not have read yet stay under [`PIPELINE_WINDOW`] (far below the 64 KiB Node
    /// reads at once), so each line and its fd always arrive in the same read. Otherwise it falls back
    /// to waiting for the ACKs. A NACKed pipelined handle is not retransmitted: it is reported to the
    /// [`ChannelHook`] as dropped (the caller re-routes it).
    pub fn send_handle_line(&self, line: Vec<u8>, fd: Arc<OwnedFd>, pipelined: bool) -> bool {
        let body = line.strip_suffix(b"\n").unwrap_or(&[]);
        let ok = body.starts_with(b"{\"cmd\":\"NODE_HANDLE\",") && body.ends_with(b"}") && !body.contains(&b'\n');
        if !ok || self.is_closed() {
            return false;
        }
        let opts = HandleOpts { pipelined, report: true };
        self.enqueue_cmd(line.len(), |bytes| Cmd::SendHandle(bytes, fd, opts), line)
    }

    #[cfg(test)]
    /// Sends an [`Outbound`]. Without an fd it is [`ChannelTx::send`]. With an fd, `msg` must be the
    /// complete envelope: an object whose `cmd` is `"NODE_HANDLE"` and whose `type` is a string (other
    /// fields such as `msg`, `key`, `dgramType` are passed through); otherwise it is refused and the fd
    /// closed. The handle then behaves as with [`ChannelTx::send_handle`].
    pub fn send_outbound(&self, out: Outbound) -> bool {
        match out.fd {
            None => self.send(out.msg),
            Some(fd) => {
                let ok =
                    reserved_cmd(&out.msg) == Some(CMD_HANDLE) && out.msg.get("type").is_some_and(Value::is_string);
                if !ok {
                    return false;
                }
                match encode(&out.msg) {
                    Some(bytes) => self.enqueue(bytes, Some(Arc::new(fd))),
                    None => false,
                }
            }
        }
    }

    /// Shuts the channel down: new sends are refused at once; messages sent before keep being written
    /// (waiting for a pending handle ACK if needed) for at most [`CLOSE_LINGER`], then the socket is shut
    /// down and closed, so the child reads EOF (`'disconnect'`), and the receiver gets
    /// [`ChannelEvent::Closed`]. Calling it again, or on a closed channel, does nothing.
    pub fn close(&self) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            let _ = self.cmd.send(Cmd::Close);
        }
    }

    /// True once the channel refuses messages (after [`ChannelTx::close`], EOF or an error).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    pub(super) fn enqueue(&self, bytes: Vec<u8>, fd: Option<Arc<OwnedFd>>) -> bool {
        if self.is_closed() {
            return false;
        }
        let len = bytes.len();
        match fd {
            Some(fd) => self.enqueue_cmd(len, |b| Cmd::SendHandle(b, fd, HandleOpts::default()), bytes),
            None => self.enqueue_cmd(len, Cmd::Send, bytes),
        }
    }

    /// Counts `len` bytes against the backlog and hands the command to the channel task.
    pub(super) fn enqueue_cmd(&self, len: usize, make: impl FnOnce(Vec<u8>) -> Cmd, bytes: Vec<u8>) -> bool {
        let before = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > MAX_QUEUED {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            if !self.shared.overflowed.swap(true, Ordering::AcqRel) {
                let _ = self.cmd.send(Cmd::Overflow);
            }
            return false;
        }
        if self.cmd.send(make(bytes)).is_err() {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

#[cfg(test)]
/// Spawns the channel's I/O task on the current tokio runtime (works on a `current_thread` runtime;
/// panics like `tokio::spawn` when called outside a runtime; the runtime needs its I/O driver, and its
/// time driver for the [`CLOSE_LINGER`] timer), taking ownership of the daemon's end of
/// the socketpair (it is made non-blocking). Events arrive in order on the returned receiver; reading
/// from the child pauses while the receiver is full. The task ends, sending [`ChannelEvent::Closed`]
/// as its last event, at EOF or on an I/O error, after [`ChannelTx::close`], after a fatal fault, or when
/// every [`ChannelTx`] and the receiver have been dropped. `label` prefixes fault messages.
pub fn spawn(fd: OwnedFd, label: String) -> (ChannelTx, mpsc::Receiver<ChannelEvent>) {
    spawn_hooked(fd, label, None)
}

/// Hooks run on the channel task itself, for hot messages that must not pay for a JSON parse and a
/// hop through the event queue (the cluster's `newconn` hand-offs and their replies). They must be
/// cheap and must not block.
pub trait ChannelHook: Send {
    /// Sees each complete incoming line (newline excluded) before it is parsed; returns true to consume
    /// it (no event is emitted for it). Lines that start like a handshake line
    /// (`{"cmd":"NODE_HANDLE`...) are never shown, so a hook cannot break the fd bookkeeping.
    fn on_line(&mut self, line: &[u8]) -> bool;
    /// A handle sent with [`ChannelTx::send_handle_line`] was dropped without reaching the child's
    /// app: the child NACKed it (a pipelined one at once, others after the retransmissions), or its
    /// `sendmsg` failed. `line` is the line that was
    /// sent (the caller still holds its own reference to the fd, if it kept one).
    /// Also called, just before [`ChannelHook::on_closed`], for each such handle still waiting to be
    /// written when the channel closes (its fd never left, so it can safely go elsewhere).
    fn on_handle_dropped(&mut self, line: &[u8]);
    /// The channel has closed (EOF, error or [`ChannelTx::close`]): the child can answer nothing more.
    /// Called once, before [`ChannelEvent::Closed`] is delivered.
    fn on_closed(&mut self) {}
    /// The channel's task is about to take one step of work (read, write or command). Called often:
    /// it must cost no more than an atomic add (the cluster counts these to tell when the work of a
    /// batching cycle is done).
    fn on_activity(&mut self) {}
}

/// [`spawn`] with a [`ChannelHook`].
pub fn spawn_hooked(
    fd: OwnedFd,
    label: String,
    hook: Option<Box<dyn ChannelHook>>,
) -> (ChannelTx, mpsc::Receiver<ChannelEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_CAPACITY);
    let shared = Arc::new(Shared::default());
    let mut task = Task::new(label, shared.clone());
    task.hook = hook;
    tokio::spawn(run(task, fd, cmd_rx, ev_tx));
    (ChannelTx { cmd: cmd_tx, shared }, ev_rx)
}
