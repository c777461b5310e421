//! Node's IPC channel (`json` serialization mode), daemon side.
//!
//! A child started with [`child_env`] and its end of a [`socketpair`] installed as fd 3
//! ([`install_child_fd`]) gets `process.send` / `process.on('message')` before any user code runs.
//! The daemon's end is driven by [`spawn`], which runs one tokio task per channel.
//!
//! Wire format (see `reference/node-ipc-cluster.md` §1): every message is `JSON.stringify(value) + "\n"`.
//! A file descriptor travels as `SCM_RIGHTS` on the `sendmsg()` that writes a
//! `{"cmd":"NODE_HANDLE","type":..,"msg":..}` line, and the receiver answers `{"cmd":"NODE_HANDLE_ACK"}`
//! (fd received) or `{"cmd":"NODE_HANDLE_NACK"}` (no fd). This module implements that handshake on both
//! directions: it ACKs/NACKs the child's handles itself, keeps one of its own handles in flight, and
//! parks every later outgoing message until the child's ACK/NACK arrives, as Node does. The one
//! exception is opt-in: handles sent as *pipelined* ([`ChannelTx::send_handle_line`], the cluster's
//! batched hand-offs) may have several in flight under conditions that keep Node's receiver correct.
//!
//! Safety properties the daemon relies on:
//! - nothing the child sends can make this module panic or grow memory without bound
//!   (lines are capped at [`MAX_LINE`], the write backlog at [`MAX_QUEUED`], events are backpressured);
//! - only well-formed JSON lines are ever written, and an ACK/NACK is only written in answer to a
//!   `NODE_HANDLE` line actually received (an unsolicited ACK would crash the child);
//! - every fd received is either handed to the daemon in a [`ChannelEvent::Handle`] or closed.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::{Map, Value};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The fd number children receive the channel on (3, as Node's own `fork()`).
pub const CHILD_CHANNEL_FD: i32 = 3;

/// Longest incoming line (bytes, newline excluded) the channel accepts. A longer line is reported as a
/// [`ChannelEvent::Fault`] and closes the channel, so a child can never make the daemon buffer more than
/// this (plus one read) per channel.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// Most bytes of outgoing messages kept in memory per channel (written or waiting to be written).
/// Messages that would exceed it are dropped: the `send*` call returns false and the channel reports one
/// [`ChannelEvent::Fault`] per overflow episode (the episode ends when the backlog falls below half).
pub const MAX_QUEUED: usize = 16 * 1024 * 1024;

/// How many times a handle the child NACKs is sent again before it is dropped with a
/// [`ChannelEvent::Fault`] (Node's `MAX_HANDLE_RETRANSMISSIONS`).
pub const MAX_HANDLE_RETRANSMISSIONS: u32 = 3;

/// Most pipelined handles in flight at once on one channel (see [`ChannelTx::send_handle_line`]).
pub const MAX_PIPELINED: usize = 16;

/// Most bytes a pipelined handle's line may end beyond what the child has certainly read (see
/// [`ChannelTx::send_handle_line`]); Node reads 64 KiB at a time.
pub const PIPELINE_WINDOW: usize = 8 * 1024;

/// After [`ChannelTx::close`], how long the channel keeps trying to write what was sent before the close
/// (including messages parked behind an unacknowledged handle) before it shuts the socket down anyway.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Bytes read per `recvmsg` (also the per-channel read buffer, kept small for the daemon's RSS).
const READ_CHUNK: usize = 16 * 1024;
/// Room for this many fds per `recvmsg` (libuv uses 64; Node sends one per message).
const MAX_RECV_FDS: usize = 32;
/// Control buffer size for `MAX_RECV_FDS` fds.
// SAFETY: CMSG_SPACE is pure arithmetic on its argument.
const CMSG_BUF_LEN: usize =
    unsafe { libc::CMSG_SPACE((MAX_RECV_FDS * std::mem::size_of::<libc::c_int>()) as u32) } as usize;
/// Most iovecs gathered into one `sendmsg`.
const MAX_IOV: usize = 64;
/// Events buffered between the channel task and the daemon before reading pauses.
const EVENT_CAPACITY: usize = 256;
/// Longest excerpt of a bad line quoted in a fault.
const FAULT_EXCERPT: usize = 120;

const ACK_LINE: &[u8] = b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n";
const NACK_LINE: &[u8] = b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n";
const CMD_HANDLE: &str = "NODE_HANDLE";
/// Every handshake line as Node writes it starts with this (`NODE_HANDLE`, `_ACK`, `_NACK`).
const HANDLE_PREFIX: &[u8] = b"{\"cmd\":\"NODE_HANDLE";
const CMD_ACK: &str = "NODE_HANDLE_ACK";
const CMD_NACK: &str = "NODE_HANDLE_NACK";

/// Creates a connected `AF_UNIX` `SOCK_STREAM` socketpair, both ends close-on-exec (so no other child
/// inherits them) and both numbered 3 or above (so setting up a child's stdio cannot clobber them).
/// Returns the daemon's end (give it to [`spawn`]) and the child's end (install it with
/// [`install_child_fd`], then drop it in the daemon right after spawning, or the daemon never sees EOF).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    let (a, b) = nix::sys::socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((above_stdio(a)?, above_stdio(b)?))
}

/// Moves `fd` to a number >= 3 (keeping CLOEXEC) when it is 0, 1 or 2.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl on an fd we own; the result is a new fd we then own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a freshly duplicated, open fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// For use inside `Command::pre_exec` only (it runs between fork and exec and is async-signal-safe: no
/// allocation, only `dup2`/`fcntl`): makes `fd` appear as fd 3 ([`CHILD_CHANNEL_FD`]) in the child
/// without `FD_CLOEXEC`, so the exec'd program inherits it. When `fd` already is 3, its `FD_CLOEXEC` flag
/// is cleared instead. The original `fd` (close-on-exec) disappears at exec.
///
/// Do not call it in the daemon itself: it would replace whatever the daemon has on fd 3.
pub fn install_child_fd(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscalls on fd numbers; called in the forked child before exec.
    unsafe {
        if fd == CHILD_CHANNEL_FD {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        } else {
            loop {
                if libc::dup2(fd, CHILD_CHANNEL_FD) >= 0 {
                    break;
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// Environment variables a child needs to open the channel on fd 3:
/// `NODE_CHANNEL_FD=3` and `NODE_CHANNEL_SERIALIZATION_MODE=json` (the only mode this module speaks).
/// Node deletes both from `process.env` at startup, so grandchildren do not see them.
pub fn child_env() -> [(&'static str, String); 2] {
    [("NODE_CHANNEL_FD", CHILD_CHANNEL_FD.to_string()), ("NODE_CHANNEL_SERIALIZATION_MODE", "json".to_string())]
}

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
        envelope: Value,
        /// The file descriptor that came with it.
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
enum Cmd {
    Send(Vec<u8>),
    SendHandle(Vec<u8>, Arc<OwnedFd>, HandleOpts),
    Close,
    Overflow,
}

/// State shared by every [`ChannelTx`] clone and the channel task.
#[derive(Debug, Default)]
struct Shared {
    /// Set by `close()` and when the task ends: senders refuse new messages.
    closed: AtomicBool,
    /// Bytes accepted for writing and not yet written or dropped.
    queued: AtomicUsize,
    /// An overflow fault was reported and the backlog has not drained below half since.
    overflowed: AtomicBool,
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
    cmd: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Shared>,
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

    fn enqueue(&self, bytes: Vec<u8>, fd: Option<Arc<OwnedFd>>) -> bool {
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
    fn enqueue_cmd(&self, len: usize, make: impl FnOnce(Vec<u8>) -> Cmd, bytes: Vec<u8>) -> bool {
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

/// Serializes `msg` as one JSON line. serde_json escapes control characters, so the line has no raw
/// newline inside, and a `Value` cannot hold NaN/Infinity.
fn encode(msg: &Value) -> Option<Vec<u8>> {
    let mut bytes = serde_json::to_vec(msg).ok()?;
    bytes.push(b'\n');
    Some(bytes)
}

/// The handshake `cmd` of `msg`, if it is one.
fn reserved_cmd(msg: &Value) -> Option<&'static str> {
    match msg.get("cmd").and_then(Value::as_str) {
        Some(CMD_HANDLE) => Some(CMD_HANDLE),
        Some(CMD_ACK) => Some(CMD_ACK),
        Some(CMD_NACK) => Some(CMD_NACK),
        _ => None,
    }
}

/// A received fd (or, `None`, fds lost to `MSG_CTRUNC`) waiting for its `NODE_HANDLE` line. `end` is the
/// stream offset just past the bytes of the read that carried it: the kernel attaches fds to the first
/// byte of the message they were sent with, so only a line starting before `end` can own it.
struct RecvFd {
    fd: Option<OwnedFd>,
    end: u64,
}

/// One line queued for writing. `fd` is attached to the first `sendmsg` of the line only.
struct WriteItem {
    bytes: Vec<u8>,
    off: usize,
    fd: Option<Arc<OwnedFd>>,
    /// This is the line of the handle in flight (its fd going out marks the handle as sent).
    handle_line: bool,
}

/// An outgoing message not yet in the write queue.
enum Outgoing {
    Plain(Vec<u8>),
    Handle(Vec<u8>, Arc<OwnedFd>, HandleOpts),
}

/// How a handle is sent.
#[derive(Clone, Copy, Debug, Default)]
struct HandleOpts {
    /// May be in flight together with other pipelined handles.
    pipelined: bool,
    /// Sent with [`ChannelTx::send_handle_line`]: if it never reaches the app, the hook is told.
    report: bool,
}

/// A handle sent (or being sent) and not yet ACKed/NACKed. Several only when pipelined.
struct Inflight {
    bytes: Vec<u8>,
    fd: Arc<OwnedFd>,
    retransmissions: u32,
    /// The fd has been handed to the kernel (so an ACK/NACK for it can be legitimate).
    sent: bool,
    pipelined: bool,
    report: bool,
    /// The line went out in the same `sendmsg` as its fd (so it arrives in one read with it).
    whole: bool,
    /// Stream offset just past the line, once it is completely written.
    end: Option<u64>,
}

/// The channel task's state, apart from the fd and the channels (kept separate for borrowing).
struct Task {
    label: String,
    shared: Arc<Shared>,
    /// Received bytes not yet consumed: at most one partial line after processing.
    rbuf: Vec<u8>,
    /// Bytes at the start of `rbuf` already known to hold no newline.
    scanned: usize,
    /// Total bytes received.
    stream_pos: u64,
    rfds: VecDeque<RecvFd>,
    wq: VecDeque<WriteItem>,
    /// Unwritten bytes in `wq` (reading pauses above `MAX_QUEUED`, so ACK replies stay bounded).
    wq_bytes: usize,
    parked: VecDeque<Outgoing>,
    inflight: VecDeque<Inflight>,
    events: VecDeque<ChannelEvent>,
    events_closed: bool,
    closing: bool,
    done: bool,
    hook: Option<Box<dyn ChannelHook>>,
    /// Bytes the kernel has accepted on this socket so far.
    written: u64,
    /// Stream offset up to which the child has certainly read: the end of the last handle line it ACKed.
    acked_upto: u64,
}

impl Task {
    fn new(label: String, shared: Arc<Shared>) -> Task {
        Task {
            label,
            shared,
            rbuf: Vec::new(),
            scanned: 0,
            stream_pos: 0,
            rfds: VecDeque::new(),
            wq: VecDeque::new(),
            wq_bytes: 0,
            parked: VecDeque::new(),
            inflight: VecDeque::new(),
            events: VecDeque::new(),
            events_closed: false,
            closing: false,
            done: false,
            hook: None,
            written: 0,
            acked_upto: 0,
        }
    }

    fn emit(&mut self, ev: ChannelEvent) {
        if !self.events_closed {
            self.events.push_back(ev);
        }
    }

    fn fault(&mut self, what: impl std::fmt::Display) {
        let text = format!("ipc[{}]: {}", self.label, what);
        self.emit(ChannelEvent::Fault(text));
    }

    // ----- outgoing -----

    fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Send(bytes) => self.submit_or_drop(Outgoing::Plain(bytes)),
            Cmd::SendHandle(bytes, fd, o) => self.submit_or_drop(Outgoing::Handle(bytes, fd, o)),
            Cmd::Close => self.closing = true,
            Cmd::Overflow => self.fault(format_args!(
                "more than {MAX_QUEUED} bytes waiting to be written (the child is not reading); dropping new messages"
            )),
        }
    }

    fn submit_or_drop(&mut self, out: Outgoing) {
        if self.closing || self.done {
            // Raced with close(): the sender saw the channel open.
            let len = match &out {
                Outgoing::Plain(b) | Outgoing::Handle(b, _, _) => b.len(),
            };
            self.release(len);
            if let (Outgoing::Handle(bytes, _, o), Some(h)) = (&out, self.hook.as_mut()) {
                if o.report {
                    h.on_handle_dropped(bytes);
                }
            }
        } else {
            self.submit(out);
        }
    }

    /// Queues `out` for writing, or parks it while a handle is in flight (unless both are pipelined
    /// handles and [`Task::may_pipeline`] allows it). Its bytes are already counted.
    fn submit(&mut self, out: Outgoing) {
        // Nothing overtakes a parked message.
        let go = self.parked.is_empty() && self.may_go(&out);
        self.submit_if(out, go);
    }

    /// Whether `out`, first in line, may be written now.
    fn may_go(&self, out: &Outgoing) -> bool {
        match out {
            _ if self.inflight.is_empty() => true,
            Outgoing::Handle(bytes, _, o) if o.pipelined => self.may_pipeline(bytes.len()),
            _ => false,
        }
    }

    fn submit_if(&mut self, out: Outgoing, go: bool) {
        if !go {
            self.parked.push_back(out);
            return;
        }
        match out {
            Outgoing::Plain(bytes) => self.push_write(bytes, None, false),
            Outgoing::Handle(bytes, fd, o) => {
                self.push_write(bytes.clone(), Some(fd.clone()), true);
                let inf = Inflight {
                    bytes,
                    fd,
                    retransmissions: 0,
                    sent: false,
                    pipelined: o.pipelined,
                    report: o.report,
                    whole: false,
                    end: None,
                };
                self.inflight.push_back(inf);
            }
        }
    }

    /// Whether a pipelined handle line of `len` bytes may be written now, with handles still in flight:
    /// they are all pipelined, went out whole, fewer than [`MAX_PIPELINED`], and everything the child
    /// may not have read yet, this line included, fits in [`PIPELINE_WINDOW`].
    fn may_pipeline(&self, len: usize) -> bool {
        let unread = (self.written + self.wq_bytes as u64).saturating_sub(self.acked_upto) + len as u64;
        self.inflight.len() < MAX_PIPELINED
            && unread <= PIPELINE_WINDOW as u64
            && self.inflight.iter().all(|i| i.pipelined && i.sent && i.whole)
    }

    /// Queues a line the channel itself writes (ACK/NACK, retransmission), counting its bytes.
    fn push_internal(&mut self, bytes: Vec<u8>, fd: Option<Arc<OwnedFd>>, handle_line: bool) {
        self.shared.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        self.push_write(bytes, fd, handle_line);
    }

    fn push_write(&mut self, bytes: Vec<u8>, fd: Option<Arc<OwnedFd>>, handle_line: bool) {
        self.wq_bytes += bytes.len();
        self.wq.push_back(WriteItem { bytes, off: 0, fd, handle_line });
    }

    /// `n` counted bytes were written or dropped.
    fn release(&mut self, n: usize) {
        let before = self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) <= MAX_QUEUED / 2 {
            self.shared.overflowed.store(false, Ordering::Release);
        }
    }

    /// Moves parked messages to the write queue, in order, while they may go.
    fn release_parked(&mut self) {
        while let Some(out) = self.parked.front() {
            if !self.may_go(out) {
                break;
            }
            if let Some(out) = self.parked.pop_front() {
                self.submit_if(out, true);
            }
        }
    }

    /// The child answered our oldest handle in flight (`nack` = it got the line without the fd).
    fn on_handle_reply(&mut self, nack: bool) {
        let (bytes, fd, tries) = match self.inflight.front_mut() {
            Some(inf) if inf.sent => {
                if !nack || inf.pipelined || inf.retransmissions >= MAX_HANDLE_RETRANSMISSIONS {
                    (None, None, inf.retransmissions)
                } else {
                    // Only a lone handle is sent again (a retransmission behind pipelined ones
                    // could pair with the wrong fd).
                    inf.retransmissions += 1;
                    inf.sent = false;
                    inf.whole = false;
                    inf.end = None;
                    (Some(inf.bytes.clone()), Some(inf.fd.clone()), 0)
                }
            }
            _ => {
                let which = if nack { CMD_NACK } else { CMD_ACK };
                self.fault(format_args!("{which} received but no handle is waiting for one; ignored"));
                return;
            }
        };
        if let Some(bytes) = bytes {
            self.push_internal(bytes, fd, true);
            return;
        }
        let Some(done) = self.inflight.pop_front() else { return };
        if let Some(end) = done.end {
            // The child parsed that line, so it has read everything before its end.
            self.acked_upto = self.acked_upto.max(end);
        }
        if nack {
            self.fault(format_args!("child NACKed a handle {} times; dropped it", tries + 1));
            if done.report {
                if let Some(h) = self.hook.as_mut() {
                    h.on_handle_dropped(&done.bytes);
                }
            }
        }
        self.release_parked();
    }

    /// Bytes were accepted by the kernel: advance the write queue.
    fn advance(&mut self, mut n: usize) {
        self.wq_bytes -= n.min(self.wq_bytes);
        self.release(n);
        let start = self.written;
        self.written += n as u64;
        let mut newly_sent = false;
        if let Some(front) = self.wq.front_mut() {
            if front.fd.take().is_some() && front.handle_line {
                // The first handle in flight not yet sent is this line's (handle lines are queued in
                // the order they go in flight).
                let whole = n >= front.bytes.len() - front.off;
                if let Some(inf) = self.inflight.iter_mut().find(|i| !i.sent) {
                    inf.sent = true;
                    inf.whole = whole;
                    newly_sent = true;
                }
            }
        }
        let mut pos = start;
        while n > 0 {
            let Some(front) = self.wq.front_mut() else {
                break;
            };
            let left = front.bytes.len() - front.off;
            if n >= left {
                n -= left;
                pos += left as u64;
                if front.handle_line {
                    if let Some(inf) = self.inflight.iter_mut().find(|i| i.sent && i.end.is_none()) {
                        inf.end = Some(pos);
                    }
                }
                self.wq.pop_front();
            } else {
                front.off += n;
                n = 0;
            }
        }
        if newly_sent && !self.parked.is_empty() {
            // A pipelined handle may follow the one that just went out.
            self.release_parked();
        }
    }

    /// The `sendmsg` carrying the front line's fd failed (nothing was sent): drop that message.
    fn drop_front_handle(&mut self, err: &io::Error) {
        if let Some(item) = self.wq.pop_front() {
            let left = item.bytes.len() - item.off;
            self.wq_bytes -= left.min(self.wq_bytes);
            self.release(left);
            self.fault(format_args!("could not send a handle ({err}); dropped it"));
            if item.handle_line {
                // The handle whose fd was going out: the first one not yet sent.
                if let Some(i) = self.inflight.iter().position(|i| !i.sent) {
                    if let Some(dropped) = self.inflight.remove(i) {
                        if dropped.report {
                            if let Some(h) = self.hook.as_mut() {
                                h.on_handle_dropped(&dropped.bytes);
                            }
                        }
                    }
                }
                self.release_parked();
            }
        }
    }

    /// The channel is closing: tells the hook about every reported handle whose fd never went out
    /// (parked, or in flight and not yet written), so the caller can send it elsewhere.
    fn report_unsent(&mut self) {
        let Some(h) = self.hook.as_mut() else { return };
        for inf in self.inflight.iter().filter(|i| i.report && !i.sent) {
            h.on_handle_dropped(&inf.bytes);
        }
        for out in &self.parked {
            if let Outgoing::Handle(bytes, _, o) = out {
                if o.report {
                    h.on_handle_dropped(bytes);
                }
            }
        }
        self.inflight.retain(|i| !i.report || i.sent);
        self.parked.retain(|o| !matches!(o, Outgoing::Handle(_, _, o) if o.report));
    }

    /// Nothing left to write for a graceful close.
    fn write_idle(&self) -> bool {
        self.wq.is_empty() && self.inflight.is_empty() && self.parked.is_empty()
    }

    // ----- incoming -----

    /// Takes one read's bytes and fds, and handles every complete line.
    fn ingest(&mut self, data: &[u8], fds: Vec<OwnedFd>, ctrunc: bool) {
        self.stream_pos += data.len() as u64;
        let end = self.stream_pos;
        for fd in fds {
            self.rfds.push_back(RecvFd { fd: Some(fd), end });
        }
        if ctrunc {
            self.rfds.push_back(RecvFd { fd: None, end });
            self.fault("control data truncated (MSG_CTRUNC): file descriptors were lost");
        }
        self.rbuf.extend_from_slice(data);
        self.process_lines();
    }

    fn process_lines(&mut self) {
        let mut buf = std::mem::take(&mut self.rbuf);
        let base = self.stream_pos - buf.len() as u64;
        let mut start = 0;
        let mut scan = self.scanned.min(buf.len());
        while let Some(i) = buf[scan..].iter().position(|&b| b == b'\n') {
            let nl = scan + i;
            if nl - start > MAX_LINE {
                self.too_long();
                return;
            }
            self.on_line(&buf[start..nl], base + start as u64);
            start = nl + 1;
            scan = start;
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            self.too_long();
            return;
        }
        if buf.capacity() > 4 * READ_CHUNK && buf.len() <= READ_CHUNK {
            // Give back the memory of a big message once it has been parsed.
            buf.shrink_to(READ_CHUNK);
        }
        self.scanned = buf.len();
        self.rbuf = buf;
        self.drop_stale_fds(self.stream_pos - self.rbuf.len() as u64);
    }

    fn too_long(&mut self) {
        self.fault(format_args!("line longer than {MAX_LINE} bytes; closing the channel"));
        self.rbuf = Vec::new();
        self.scanned = 0;
        self.done = true;
    }

    /// Closes received fds that no line starting at `pos` or later can own.
    fn drop_stale_fds(&mut self, pos: u64) {
        let mut closed = 0;
        while self.rfds.front().is_some_and(|r| r.end <= pos) {
            if let Some(r) = self.rfds.pop_front() {
                if r.fd.is_some() {
                    closed += 1;
                }
            }
        }
        if closed > 0 {
            self.fault(format_args!("closed {closed} received fd(s) not attached to a NODE_HANDLE message"));
        }
    }

    fn on_line(&mut self, line: &[u8], start: u64) {
        self.drop_stale_fds(start);
        // Fast paths: the ACK as Node writes it, and lines the hook consumes, need no JSON parse.
        if line == &ACK_LINE[..ACK_LINE.len() - 1] {
            return self.on_handle_reply(false);
        }
        if !line.starts_with(HANDLE_PREFIX) {
            if let Some(h) = self.hook.as_mut() {
                if h.on_line(line) {
                    return;
                }
            }
        }
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                let cut = line.len().min(FAULT_EXCERPT);
                let excerpt = String::from_utf8_lossy(&line[..cut]);
                let more = if cut < line.len() { "..." } else { "" };
                self.fault(format_args!("malformed JSON line skipped ({e}): {excerpt}{more}"));
                return;
            }
        };
        match reserved_cmd(&value) {
            Some(CMD_ACK) => self.on_handle_reply(false),
            Some(CMD_NACK) => self.on_handle_reply(true),
            Some(_) => {
                let fd = self.rfds.pop_front().and_then(|r| r.fd);
                match fd {
                    Some(fd) => {
                        self.push_internal(ACK_LINE.to_vec(), None, false);
                        let msg = value.get("msg").cloned().unwrap_or(Value::Null);
                        self.emit(ChannelEvent::Handle { msg, envelope: value, fd });
                    }
                    None => {
                        self.push_internal(NACK_LINE.to_vec(), None, false);
                        self.fault("NODE_HANDLE message without a file descriptor; NACKed");
                    }
                }
            }
            None => self.emit(ChannelEvent::Message(value)),
        }
    }

    fn on_eof(&mut self) {
        if !self.rbuf.is_empty() {
            self.fault(format_args!("EOF after an incomplete line ({} bytes dropped)", self.rbuf.len()));
        }
        self.drop_stale_fds(u64::MAX);
        self.done = true;
    }

    fn io_error(&mut self, what: &str, err: io::Error) {
        match err.raw_os_error() {
            Some(libc::EPIPE) | Some(libc::ECONNRESET) => {}
            _ => self.fault(format_args!("{what} failed: {err}; closing the channel")),
        }
        self.done = true;
    }

    /// One `recvmsg` on a readable socket.
    fn do_read(&mut self, guard: &mut AsyncFdReadyGuard<'_, OwnedFd>, scratch: &mut [u8]) {
        match guard.try_io(|afd| recv_with_fds(afd.as_raw_fd(), scratch)) {
            Err(_would_block) => {}
            Ok(Ok((0, fds, _))) => {
                drop(fds);
                self.on_eof();
            }
            Ok(Ok((n, fds, ctrunc))) => {
                // A short read without fds means the socket was drained (the kernel stops a read early
                // only after an fd-carrying segment): skip the recvmsg that would just say EAGAIN. Data
                // arriving later raises a new readiness event.
                if n < scratch.len() && fds.is_empty() && !ctrunc {
                    guard.clear_ready();
                }
                self.ingest(&scratch[..n], fds, ctrunc)
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => self.io_error("recvmsg", e),
        }
    }

    /// Writes as much of the queue as the socket takes (until it would block: the event loop then waits
    /// for writability). Called right after new messages are queued, too, so a send costs no extra
    /// trip through the event loop.
    fn do_write(&mut self, afd: &AsyncFd<OwnedFd>) {
        while !self.wq.is_empty() && !self.done {
            let wq = &self.wq;
            let front_has_fd = wq.front().is_some_and(|i| i.fd.is_some());
            match afd.try_io(Interest::WRITABLE, |fd| send_front(fd.as_raw_fd(), wq)) {
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::EPIPE) | Some(libc::ECONNRESET) => self.done = true,
                    _ if front_has_fd => self.drop_front_handle(&e),
                    _ => self.io_error("sendmsg", e),
                },
            }
        }
    }
}

/// Sends the front of the queue: the front line alone with its fd, or up to `MAX_IOV` fd-less lines.
fn send_front(raw: RawFd, wq: &VecDeque<WriteItem>) -> io::Result<usize> {
    let Some(front) = wq.front() else {
        return Ok(0);
    };
    let flags = MsgFlags::MSG_NOSIGNAL;
    if let Some(fd) = &front.fd {
        let iov = [IoSlice::new(&front.bytes[front.off..])];
        let fds = [fd.as_raw_fd()];
        let cmsgs = [ControlMessage::ScmRights(&fds)];
        return sendmsg::<()>(raw, &iov, &cmsgs, flags, None).map_err(io::Error::from);
    }
    let mut iov = [IoSlice::new(&[]); MAX_IOV];
    let mut count = 0;
    for item in wq.iter().take(MAX_IOV) {
        if item.fd.is_some() {
            break;
        }
        iov[count] = IoSlice::new(&item.bytes[item.off..]);
        count += 1;
    }
    sendmsg::<()>(raw, &iov[..count], &[], flags, None).map_err(io::Error::from)
}

/// `recvmsg(MSG_CMSG_CLOEXEC)` into `buf`, returning the byte count, every fd received (owned, so
/// none can leak, including those that arrived with a truncated control buffer) and whether the control
/// data was truncated.
fn recv_with_fds(raw: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    // u64 array: cmsghdr alignment.
    let mut cbuf = [0u64; CMSG_BUF_LEN.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: an all-zero msghdr is valid; we then point it at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at `iov`/`buf` and `cbuf`, which outlive the call.
    let n = unsafe { libc::recvmsg(raw, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `cbuf` with msg_controllen bytes of well-formed cmsgs; the CMSG_*
    // macros stay within it, and each SCM_RIGHTS fd is a new fd installed in our process for us to own.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let len = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                for i in 0..len / std::mem::size_of::<libc::c_int>() {
                    let raw_fd = std::ptr::read_unaligned(data.add(i));
                    if raw_fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(raw_fd));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, fds, msg.msg_flags & libc::MSG_CTRUNC != 0))
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    set_nonblocking(&fd)?;
    // `with_interest` is deprecated in recent tokio for lack of I/O safety; an OwnedFd is I/O-safe,
    // and this form compiles on every tokio 1.x.
    #[allow(deprecated)]
    AsyncFd::with_interest(fd, Interest::READABLE | Interest::WRITABLE)
}

/// The channel task.
async fn run(
    mut st: Task,
    fd: OwnedFd,
    mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    events_tx: mpsc::Sender<ChannelEvent>,
) {
    match register(fd) {
        Ok(afd) => {
            drive(&mut st, &afd, &mut cmd_rx, &events_tx).await;
            let _ = nix::sys::socket::shutdown(afd.as_raw_fd(), nix::sys::socket::Shutdown::Both);
            drop(afd);
        }
        Err(e) => st.fault(format_args!("cannot set up the channel: {e}")),
    }
    st.shared.closed.store(true, Ordering::Release);
    cmd_rx.close();
    // Commands sent before the close took effect are dropped, reported handles told about.
    st.done = true;
    while let Ok(cmd) = cmd_rx.try_recv() {
        st.on_cmd(cmd);
    }
    st.report_unsent();
    if let Some(h) = st.hook.as_mut() {
        h.on_closed();
    }
    let events = std::mem::take(&mut st.events);
    let deliver = !st.events_closed;
    drop(st); // closes every fd still held (pending, parked, in flight)
    if deliver {
        for ev in events {
            if events_tx.send(ev).await.is_err() {
                return;
            }
        }
        let _ = events_tx.send(ChannelEvent::Closed).await;
    }
}

/// The event loop: returns when the channel must shut down.
async fn drive(
    st: &mut Task,
    afd: &AsyncFd<OwnedFd>,
    cmd_rx: &mut mpsc::UnboundedReceiver<Cmd>,
    events_tx: &mpsc::Sender<ChannelEvent>,
) {
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut cmd_open = true;
    let mut deadline: Option<Instant> = None;
    loop {
        if let Some(h) = st.hook.as_mut() {
            h.on_activity();
        }
        if st.done || (st.events_closed && !cmd_open) {
            return;
        }
        if st.closing {
            if st.write_idle() {
                return;
            }
            if deadline.is_none() {
                deadline = Some(Instant::now() + CLOSE_LINGER);
            }
        }
        let want_event = !st.events.is_empty();
        let want_read = !want_event && st.wq_bytes < MAX_QUEUED;
        let want_write = !st.wq.is_empty();
        // Lazy: the timer is only created (and the time driver only needed) once close() was called.
        let linger = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            permit = events_tx.reserve(), if want_event => match permit {
                Ok(permit) => {
                    if let Some(ev) = st.events.pop_front() {
                        permit.send(ev);
                    }
                    while !st.events.is_empty() {
                        let Ok(permit) = events_tx.try_reserve() else { break };
                        if let Some(ev) = st.events.pop_front() {
                            permit.send(ev);
                        }
                    }
                }
                Err(_) => {
                    st.events_closed = true;
                    st.events.clear();
                }
            },
            guard = afd.writable(), if want_write => match guard {
                Ok(_) => st.do_write(afd),
                Err(e) => st.io_error("poll", e),
            },
            guard = afd.readable(), if want_read => match guard {
                Ok(mut guard) => {
                    st.do_read(&mut guard, &mut scratch);
                    drop(guard);
                    if !st.wq.is_empty() {
                        // ACKs to write, or messages released by the child's ACK.
                        st.do_write(afd);
                    }
                }
                Err(e) => st.io_error("poll", e),
            },
            () = events_tx.closed(), if !st.events_closed => {
                // Nobody listens any more: events are dropped (fds closed) from now on.
                st.events_closed = true;
                st.events.clear();
            },
            cmd = cmd_rx.recv(), if cmd_open => match cmd {
                Some(cmd) => {
                    st.on_cmd(cmd);
                    // Take every command already queued, then write at once.
                    while let Ok(cmd) = cmd_rx.try_recv() {
                        st.on_cmd(cmd);
                    }
                    if !st.wq.is_empty() {
                        st.do_write(afd);
                    }
                }
                None => cmd_open = false,
            },
            () = linger, if deadline.is_some() => {
                st.fault(format_args!(
                    "closed with {} bytes still unsent after {:?}",
                    st.shared.queued.load(Ordering::Acquire),
                    CLOSE_LINGER
                ));
                return;
            },
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use serde_json::json;
    use std::io::IoSliceMut;
    use std::os::unix::process::CommandExt;

    const T: Duration = Duration::from_secs(10);

    fn pair() -> (OwnedFd, OwnedFd) {
        let (daemon, child) = socketpair().expect("socketpair");
        set_nonblocking(&child).expect("nonblock");
        (daemon, child)
    }

    async fn next(rx: &mut mpsc::Receiver<ChannelEvent>) -> ChannelEvent {
        tokio::time::timeout(T, rx.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("event channel ended without Closed")
    }

    async fn expect_msg(rx: &mut mpsc::Receiver<ChannelEvent>, want: Value) {
        match next(rx).await {
            ChannelEvent::Message(v) => assert_eq!(v, want),
            other => panic!("expected Message({want}), got {other:?}"),
        }
    }

    async fn expect_fault(rx: &mut mpsc::Receiver<ChannelEvent>, needle: &str) {
        match next(rx).await {
            ChannelEvent::Fault(s) => assert!(s.contains(needle), "fault {s:?} lacks {needle:?}"),
            other => panic!("expected Fault({needle}), got {other:?}"),
        }
    }

    async fn expect_closed(rx: &mut mpsc::Receiver<ChannelEvent>) {
        match next(rx).await {
            ChannelEvent::Closed => {}
            other => panic!("expected Closed, got {other:?}"),
        }
        assert!(rx.recv().await.is_none(), "events after Closed");
    }

    /// Writes all of `data` on the raw (non-blocking) child end, attaching `fd` to the first chunk.
    async fn raw_write(sock: &OwnedFd, data: &[u8], fd: Option<RawFd>) {
        let mut off = 0;
        let mut fd = fd;
        while off < data.len() {
            let iov = [IoSlice::new(&data[off..])];
            let fds: Vec<RawFd> = fd.into_iter().collect();
            let cmsgs: Vec<ControlMessage> =
                if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(&fds)] };
            match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(n) => {
                    off += n;
                    fd = None;
                }
                Err(nix::errno::Errno::EAGAIN) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(e) => panic!("raw write: {e}"),
            }
        }
    }

    /// One non-blocking recvmsg on the raw end (None = nothing available).
    fn raw_try_recv(sock: &OwnedFd) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
        let mut buf = vec![0u8; 65536];
        let mut cmsg = nix::cmsg_space!([RawFd; 8]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(cmsg.as_mut_slice()), MsgFlags::MSG_CMSG_CLOEXEC);
        match r {
            Ok(m) => {
                let mut fds = Vec::new();
                for c in m.cmsgs().expect("cmsgs") {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: fds just received, owned by nobody else.
                        fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                    }
                }
                let n = m.bytes;
                buf.truncate(n);
                Some((buf, fds))
            }
            Err(nix::errno::Errno::EAGAIN) => None,
            Err(e) => panic!("raw recv: {e}"),
        }
    }

    /// Reads from the raw end until `acc` holds a full line; returns it and the fds that came with it.
    async fn raw_line(sock: &OwnedFd, acc: &mut Vec<u8>) -> (String, Vec<OwnedFd>) {
        let mut fds = Vec::new();
        let deadline = Instant::now() + T;
        loop {
            if let Some(i) = acc.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = acc.drain(..=i).collect();
                return (String::from_utf8(line[..i].to_vec()).expect("utf8"), fds);
            }
            assert!(Instant::now() < deadline, "timed out reading the raw end");
            match raw_try_recv(sock) {
                Some((data, more)) => {
                    assert!(!data.is_empty(), "raw end got EOF");
                    acc.extend_from_slice(&data);
                    fds.extend(more);
                }
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    /// Asserts nothing arrives on the raw end for a while (letting the channel task run meanwhile).
    async fn raw_quiet(sock: &OwnedFd) {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some((data, _)) = raw_try_recv(sock) {
                panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&data));
            }
        }
    }

    fn test_task() -> Task {
        Task::new("t".into(), Arc::new(Shared::default()))
    }

    fn drain_events(t: &mut Task) -> Vec<String> {
        t.events
            .drain(..)
            .map(|e| match e {
                ChannelEvent::Message(v) => format!("msg {v}"),
                ChannelEvent::Handle { msg, .. } => format!("handle {msg}"),
                ChannelEvent::Fault(f) => format!("fault {f}"),
                ChannelEvent::Closed => "closed".into(),
            })
            .collect()
    }

    // ----- codec (pure, deterministic) -----

    #[test]
    fn codec_partial_lines_and_split_utf8() {
        let mut t = test_task();
        let line = "{\"a\":\"é€😀\"}\n".as_bytes();
        // Split at every byte position, including inside each multi-byte character.
        for cut in 1..line.len() {
            t.ingest(&line[..cut], vec![], false);
            assert!(t.events.is_empty(), "event before the newline (cut {cut})");
            t.ingest(&line[cut..], vec![], false);
            assert_eq!(drain_events(&mut t), vec![r#"msg {"a":"é€😀"}"#]);
        }
        assert!(t.rbuf.is_empty());
    }

    #[test]
    fn codec_several_messages_in_one_read_and_any_json_value() {
        let mut t = test_task();
        t.ingest(
            b"\"ready\"\n1\nnull\n[1,{\"b\":true}]\n{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\n{\"x\"",
            vec![],
            false,
        );
        assert_eq!(
            drain_events(&mut t),
            vec![
                r#"msg "ready""#,
                "msg 1",
                "msg null",
                r#"msg [1,{"b":true}]"#,
                r#"msg {"cmd":"NODE_CLUSTER","act":"online","seq":0}"#,
            ]
        );
        t.ingest(b":2}\n", vec![], false);
        assert_eq!(drain_events(&mut t), vec![r#"msg {"x":2}"#]);
    }

    #[test]
    fn codec_malformed_line_is_a_fault_then_continues() {
        let mut t = test_task();
        t.ingest(b"{\"a\":1}\n{nope\n\n\"ok\"\n", vec![], false);
        let ev = drain_events(&mut t);
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert_eq!(ev[0], r#"msg {"a":1}"#);
        assert!(ev[1].starts_with("fault ipc[t]: malformed JSON") && ev[1].contains("{nope"));
        assert!(ev[2].starts_with("fault ipc[t]: malformed JSON"));
        assert_eq!(ev[3], r#"msg "ok""#);
        assert!(!t.done);
    }

    #[test]
    fn codec_over_long_line_is_fatal_and_bounded() {
        // Without a newline: fatal as soon as the buffer passes MAX_LINE.
        let mut t = test_task();
        let chunk = vec![b'x'; READ_CHUNK];
        let mut fed = 0;
        while !t.done {
            t.ingest(&chunk, vec![], false);
            fed += chunk.len();
            assert!(t.rbuf.len() <= MAX_LINE, "buffer grew past MAX_LINE");
            assert!(fed <= MAX_LINE + READ_CHUNK, "never closed");
        }
        let ev = drain_events(&mut t);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].contains("longer than"), "{ev:?}");

        // A complete line that is too long, arriving in one read.
        let mut t = test_task();
        let mut big = vec![b'"'; 1];
        big.extend(std::iter::repeat_n(b'y', MAX_LINE));
        big.extend_from_slice(b"\"\n\"after\"\n");
        t.ingest(&big, vec![], false);
        assert!(t.done);
        let ev = drain_events(&mut t);
        assert_eq!(ev.len(), 1, "nothing after a fatal fault: {ev:?}");

        // Exactly MAX_LINE is fine.
        let mut t = test_task();
        let mut ok = vec![b'"'];
        ok.extend(std::iter::repeat_n(b'z', MAX_LINE - 2));
        ok.extend_from_slice(b"\"\n");
        t.ingest(&ok, vec![], false);
        assert!(!t.done);
        assert!(
            matches!(t.events.pop_front(), Some(ChannelEvent::Message(Value::String(s))) if s.len() == MAX_LINE - 2)
        );
    }

    #[test]
    fn stray_fds_are_closed_and_reported() {
        let mut t = test_task();
        let (a, b) = socketpair().expect("socketpair");
        // An fd stuck to a plain message that ends in the same read: nobody can claim it.
        t.ingest(b"\"plain\"\n", vec![a, b], false);
        let ev = drain_events(&mut t);
        assert_eq!(ev[0], r#"msg "plain""#);
        assert!(ev[1].contains("closed 2 received fd(s)"), "{ev:?}");
        assert!(t.rfds.is_empty());
        // An fd whose NODE_HANDLE line is still partial is kept for it.
        let (c, _d) = socketpair().expect("socketpair");
        t.ingest(b"{\"cmd\":\"NODE_HAN", vec![c], false);
        assert_eq!(t.rfds.len(), 1);
        t.ingest(b"DLE\",\"type\":\"net.Native\",\"msg\":7}\n", vec![], false);
        assert_eq!(drain_events(&mut t), vec!["handle 7"]);
        // MSG_CTRUNC: the lost fd makes the next NODE_HANDLE a NACK.
        t.ingest(b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":8}\n", vec![], true);
        let ev = drain_events(&mut t);
        assert!(ev[0].contains("MSG_CTRUNC") && ev[1].contains("NACKed"), "{ev:?}");
        let lines: Vec<&[u8]> = t.wq.iter().map(|i| i.bytes.as_slice()).collect();
        assert_eq!(lines, vec![ACK_LINE, NACK_LINE]);
    }

    // ----- over a real socketpair, the raw end acting as the child -----

    #[tokio::test(flavor = "current_thread")]
    async fn socket_codec_split_reads_and_eof() {
        let (daemon, raw) = pair();
        let (_tx, mut rx) = spawn(daemon, "codec".into());
        let all = "\"ready\"\n{\"a\":\"é\"}\n{bad\n[1,2]\n".as_bytes();
        // Cut inside the "é" (2 bytes) and inside the first line.
        let e_at = all.iter().position(|&b| b == 0xC3).expect("é");
        for part in [&all[..3], &all[3..e_at + 1], &all[e_at + 1..]] {
            raw_write(&raw, part, None).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        expect_msg(&mut rx, json!("ready")).await;
        expect_msg(&mut rx, json!({"a": "é"})).await;
        expect_fault(&mut rx, "malformed JSON").await;
        expect_msg(&mut rx, json!([1, 2])).await;
        drop(raw);
        expect_closed(&mut rx).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn socket_over_long_line_closes_channel() {
        let (daemon, raw) = pair();
        let (tx, mut rx) = spawn(daemon, "long".into());
        let big = vec![b'x'; MAX_LINE + 2 * READ_CHUNK];
        let writer = async {
            let mut off = 0;
            while off < big.len() {
                match nix::sys::socket::send(raw.as_raw_fd(), &big[off..], MsgFlags::MSG_NOSIGNAL) {
                    Ok(n) => off += n,
                    Err(nix::errno::Errno::EAGAIN) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(_) => break, // channel closed on us: expected
                }
            }
        };
        let reader = async {
            expect_fault(&mut rx, "longer than").await;
            expect_closed(&mut rx).await;
        };
        tokio::join!(writer, reader);
        assert!(tx.is_closed());
        assert!(!tx.send(json!(1)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn handle_parks_later_messages_until_ack() {
        let (daemon, raw) = pair();
        let (tx, mut rx) = spawn(daemon, "h".into());
        let (passed, keep) = socketpair().expect("socketpair");
        let mut acc = Vec::new();
        assert!(tx.send(json!("before")));
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, "\"before\"");
        assert!(fds.is_empty());
        assert!(tx.send_handle("net.Native", json!({"cmd": "NODE_CLUSTER", "ack": 1}), passed));
        assert!(tx.send(json!("after")));
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","ack":1}}"#);
        assert_eq!(fds.len(), 1, "the handle line carries exactly one fd");
        // The passed fd is the other end of `keep`: prove it by writing through it.
        nix::unistd::write(&fds[0], b"z").expect("write via passed fd");
        let mut one = [0u8; 1];
        nix::unistd::read(&keep, &mut one).expect("read");
        assert_eq!(&one, b"z");
        // "after" is parked until the ACK.
        assert!(acc.is_empty());
        raw_quiet(&raw).await;
        raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n", None).await;
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, "\"after\"");
        assert!(fds.is_empty());
        // A second ACK is unsolicited: Fault, channel keeps going.
        raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n\"still here\"\n", None).await;
        expect_fault(&mut rx, "no handle is waiting").await;
        expect_msg(&mut rx, json!("still here")).await;
        // Graceful close: what was sent before close() is still written, then EOF.
        assert!(tx.send(json!("last")));
        tx.close();
        assert!(!tx.send(json!("refused")));
        let (l, _) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, "\"last\"");
        expect_closed(&mut rx).await;
        let (data, _) = raw_try_recv(&raw).expect("EOF is readable");
        assert!(data.is_empty(), "child sees EOF");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn handle_nack_retransmits_then_drops() {
        let (daemon, raw) = pair();
        let (tx, mut rx) = spawn(daemon, "nack".into());
        let (passed, _keep) = socketpair().expect("socketpair");
        assert!(tx.send_outbound(Outbound {
            msg: json!({"cmd": "NODE_HANDLE", "type": "dgram.Socket", "msg": "s", "dgramType": "udp4"}),
            fd: Some(passed),
        }));
        assert!(tx.send(json!("queued")));
        let mut acc = Vec::new();
        for attempt in 0..=MAX_HANDLE_RETRANSMISSIONS {
            let (l, fds) = raw_line(&raw, &mut acc).await;
            assert!(l.contains("\"dgramType\":\"udp4\""), "attempt {attempt}: {l}");
            assert_eq!(fds.len(), 1, "attempt {attempt} carries the fd again");
            raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n", None).await;
        }
        expect_fault(&mut rx, "NACKed a handle 4 times").await;
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, "\"queued\"");
        assert!(fds.is_empty());
        // Handshake messages and malformed envelopes are refused at the API.
        assert!(!tx.send(json!({"cmd": "NODE_HANDLE_ACK"})));
        assert!(!tx.send(json!({"cmd": "NODE_HANDLE", "type": "net.Native"})));
        let (fd, _other) = socketpair().expect("socketpair");
        assert!(!tx.send_outbound(Outbound { msg: json!({"type": "x"}), fd: Some(fd) }));
    }

    /// Records what a [`ChannelHook`] is told.
    #[derive(Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

    impl ChannelHook for Recorder {
        fn on_line(&mut self, line: &[u8]) -> bool {
            let consumed = line.starts_with(b"{\"hot\"");
            if consumed {
                self.0.lock().expect("lock").push(format!("line {}", String::from_utf8_lossy(line)));
            }
            consumed
        }
        fn on_handle_dropped(&mut self, line: &[u8]) {
            self.0.lock().expect("lock").push(format!("dropped {}", String::from_utf8_lossy(line).trim_end()));
        }
        fn on_closed(&mut self) {
            self.0.lock().expect("lock").push("closed".into());
        }
    }

    fn handle_line(id: usize) -> Vec<u8> {
        format!("{{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{{\"id\":{id}}}}}\n").into_bytes()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pipelined_handles_go_out_without_waiting_acks_are_fifo_and_bounded() {
        let (daemon, raw) = pair();
        let (tx, _rx) = spawn(daemon, "pipe".into());
        let mut keep = Vec::new();
        for id in 0..MAX_PIPELINED + 2 {
            let (give, k) = socketpair().expect("socketpair");
            keep.push(k);
            assert!(tx.send_handle_line(handle_line(id), Arc::new(give), true));
        }
        assert!(tx.send(json!("after")));
        // MAX_PIPELINED lines arrive before any ACK, each with exactly its own fd.
        let mut acc = Vec::new();
        for (id, ours) in keep.iter().enumerate().take(MAX_PIPELINED) {
            let (l, fds) = raw_line(&raw, &mut acc).await;
            assert_eq!(format!("{l}\n").into_bytes(), handle_line(id));
            assert_eq!(fds.len(), 1, "line {id} carries one fd");
            // It is the fd we passed with that line: write through it, read at our end.
            nix::unistd::write(&fds[0], b"k").expect("write");
            let mut one = [0u8; 1];
            nix::unistd::read(ours, &mut one).expect("read");
        }
        raw_quiet(&raw).await;
        // Each ACK lets one more handle go; the plain message waits for the last ACK.
        for id in MAX_PIPELINED..MAX_PIPELINED + 2 {
            raw_write(&raw, ACK_LINE, None).await;
            let (l, fds) = raw_line(&raw, &mut acc).await;
            assert_eq!(format!("{l}\n").into_bytes(), handle_line(id));
            assert_eq!(fds.len(), 1);
        }
        // 18 handles: 2 ACKed so far; 15 more, then the last one releases "after".
        for _ in 0..MAX_PIPELINED - 1 {
            raw_write(&raw, ACK_LINE, None).await;
        }
        raw_quiet(&raw).await;
        raw_write(&raw, ACK_LINE, None).await;
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, "\"after\"");
        assert!(fds.is_empty());
        // A plain handle (not pipelined) waits for the one before it, as in Node.
        let (a, _ka) = socketpair().expect("socketpair");
        let (b, _kb) = socketpair().expect("socketpair");
        assert!(tx.send_handle_line(handle_line(100), Arc::new(a), false));
        assert!(tx.send_handle_line(handle_line(101), Arc::new(b), true));
        let (l, _) = raw_line(&raw, &mut acc).await;
        assert!(l.contains("100"));
        raw_quiet(&raw).await;
        raw_write(&raw, ACK_LINE, None).await;
        let (l, _) = raw_line(&raw, &mut acc).await;
        assert!(l.contains("101"));
        // Malformed lines are refused at the API.
        let (c, _kc) = socketpair().expect("socketpair");
        assert!(!tx.send_handle_line(b"{\"cmd\":\"x\"}\n".to_vec(), Arc::new(c), true));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pipelining_waits_when_unread_bytes_exceed_the_window() {
        let (daemon, raw) = pair();
        let (tx, _rx) = spawn(daemon, "window".into());
        let (a, _ka) = socketpair().expect("socketpair");
        assert!(tx.send_handle_line(handle_line(1), Arc::new(a), true));
        let mut acc = Vec::new();
        let (l, _) = raw_line(&raw, &mut acc).await;
        assert!(l.contains("\"id\":1"));
        // A big message goes out before the next handle (after the first ACK), so the child may
        // not have read PIPELINE_WINDOW bytes: the following handles wait for ACKs.
        raw_write(&raw, ACK_LINE, None).await;
        let big = "x".repeat(PIPELINE_WINDOW);
        assert!(tx.send(json!(big)));
        let (b, _kb) = socketpair().expect("socketpair");
        let (c, _kc) = socketpair().expect("socketpair");
        assert!(tx.send_handle_line(handle_line(2), Arc::new(b), true));
        assert!(tx.send_handle_line(handle_line(3), Arc::new(c), true));
        let (l, fds_big) = raw_line(&raw, &mut acc).await;
        assert_eq!(l.len(), PIPELINE_WINDOW + 2);
        let (l, fds) = raw_line(&raw, &mut acc).await;
        // (One read may bring both lines, so the fd can come back with the first of them.)
        assert!(l.contains("\"id\":2") && fds_big.len() + fds.len() == 1, "{l}");
        raw_quiet(&raw).await;
        raw_write(&raw, ACK_LINE, None).await;
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert!(l.contains("\"id\":3") && fds.len() == 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hook_consumes_hot_lines_hears_dropped_pipelined_handles_and_the_close() {
        let (daemon, raw) = pair();
        let rec = Recorder::default();
        let (tx, mut rx) = spawn_hooked(daemon, "hook".into(), Some(Box::new(rec.clone())));
        raw_write(&raw, b"{\"hot\":1}\n\"cold\"\n", None).await;
        expect_msg(&mut rx, json!("cold")).await;
        let (a, _ka) = socketpair().expect("socketpair");
        let (b, _kb) = socketpair().expect("socketpair");
        assert!(tx.send_handle_line(handle_line(1), Arc::new(a), true));
        assert!(tx.send_handle_line(handle_line(2), Arc::new(b), true));
        let mut acc = Vec::new();
        raw_line(&raw, &mut acc).await;
        raw_line(&raw, &mut acc).await;
        // The first is NACKed: dropped (reported, not sent again); the second is ACKed.
        raw_write(&raw, NACK_LINE, None).await;
        raw_write(&raw, ACK_LINE, None).await;
        expect_fault(&mut rx, "NACKed").await;
        raw_quiet(&raw).await;
        drop(raw);
        expect_closed(&mut rx).await;
        let seen = rec.0.lock().expect("lock").clone();
        let want = vec![
            "line {\"hot\":1}".to_string(),
            format!("dropped {}", String::from_utf8_lossy(&handle_line(1)).trim_end()),
            "closed".to_string(),
        ];
        assert_eq!(seen, want);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hook_hears_a_lone_handle_dropped_after_retransmissions_and_unsent_ones_at_close() {
        let (daemon, raw) = pair();
        let rec = Recorder::default();
        let (tx, mut rx) = spawn_hooked(daemon, "drops".into(), Some(Box::new(rec.clone())));
        let (a, _ka) = socketpair().expect("socketpair");
        assert!(tx.send_handle_line(handle_line(1), Arc::new(a), false));
        let mut acc = Vec::new();
        for _ in 0..=MAX_HANDLE_RETRANSMISSIONS {
            let (l, fds) = raw_line(&raw, &mut acc).await;
            assert!(l.contains("\"id\":1") && fds.len() == 1);
            raw_write(&raw, NACK_LINE, None).await;
        }
        expect_fault(&mut rx, "NACKed a handle 4 times").await;
        // Now fill the pipeline and park some: at close, only the handles whose fd never left are
        // reported (the sent ones may have reached the child).
        let mut keep = Vec::new();
        for id in 10..10 + MAX_PIPELINED + 2 {
            let (g, k) = socketpair().expect("socketpair");
            keep.push(k);
            assert!(tx.send_handle_line(handle_line(id), Arc::new(g), true));
        }
        for _ in 0..MAX_PIPELINED {
            raw_line(&raw, &mut acc).await;
        }
        drop(raw);
        expect_closed(&mut rx).await;
        let seen = rec.0.lock().expect("lock").clone();
        let mut want = vec![format!("dropped {}", String::from_utf8_lossy(&handle_line(1)).trim_end())];
        for id in 10 + MAX_PIPELINED..10 + MAX_PIPELINED + 2 {
            want.push(format!("dropped {}", String::from_utf8_lossy(&handle_line(id)).trim_end()));
        }
        want.push("closed".into());
        assert_eq!(seen, want);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn node_pairs_each_pipelined_handle_with_its_own_message() {
        // The child writes each message's id through the handle that came with it.
        let script = r#"
            process.on('message', (m, h) => {
              if (m && m.id !== undefined) h.end(String(m.id));
              if (m === 'bye') process.disconnect();
            });
            process.send('ready');
        "#;
        let (mut child, daemon) = node_child(script);
        let (tx, mut rx) = spawn(daemon, "node-pipe".into());
        expect_msg(&mut rx, json!("ready")).await;
        let n = 3 * MAX_PIPELINED;
        let mut keep = Vec::new();
        for id in 0..n {
            let (give, k) = socketpair().expect("socketpair");
            set_nonblocking(&k).expect("nonblock");
            keep.push(k);
            let line = format!("{{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{{\"id\":{id}}}}}\n");
            assert!(tx.send_handle_line(line.into_bytes(), Arc::new(give), true));
        }
        for (id, k) in keep.iter().enumerate() {
            let mut got = Vec::new();
            let deadline = Instant::now() + T;
            loop {
                match raw_try_recv(k) {
                    Some((d, _)) if d.is_empty() => break,
                    Some((d, _)) => got.extend(d),
                    None => {
                        assert!(Instant::now() < deadline, "handle {id}: nothing written through it");
                        tokio::time::sleep(Duration::from_millis(2)).await
                    }
                }
            }
            assert_eq!(String::from_utf8_lossy(&got), id.to_string(), "handle {id} came with message {id}");
        }
        drop(keep); // lets the child's sockets finish
        assert!(tx.send(json!("bye")));
        expect_closed(&mut rx).await;
        let st = wait_exit(&mut child, Duration::from_secs(10)).await;
        assert_eq!(st.code(), Some(0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn incoming_handle_ack_nack_and_unsolicited_ack() {
        let (daemon, raw) = pair();
        let (_tx, mut rx) = spawn(daemon, "in".into());
        let (give, keep) = socketpair().expect("socketpair");
        raw_write(
            &raw,
            b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"x\":1},\"key\":\"k\"}\n",
            Some(give.as_raw_fd()),
        )
        .await;
        drop(give);
        match next(&mut rx).await {
            ChannelEvent::Handle { msg, envelope, fd } => {
                assert_eq!(msg, json!({"x": 1}));
                assert_eq!(envelope["type"], "net.Socket");
                assert_eq!(envelope["key"], "k");
                // SAFETY: F_GETFD on an fd we own.
                let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
                assert!(fl & libc::FD_CLOEXEC != 0, "received fds are CLOEXEC");
                nix::unistd::write(&fd, b"q").expect("write via received fd");
                let mut one = [0u8; 1];
                nix::unistd::read(&keep, &mut one).expect("read");
                assert_eq!(&one, b"q");
            }
            other => panic!("expected Handle, got {other:?}"),
        }
        let mut acc = Vec::new();
        let (l, _) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, r#"{"cmd":"NODE_HANDLE_ACK"}"#);

        // NODE_HANDLE without an fd: NACK + Fault.
        raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":2}\n", None).await;
        expect_fault(&mut rx, "without a file descriptor").await;
        let (l, _) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, r#"{"cmd":"NODE_HANDLE_NACK"}"#);

        // Unsolicited ACK and NACK: Faults, nothing written back, channel alive.
        raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n{\"cmd\":\"NODE_HANDLE_NACK\"}\n3\n", None).await;
        expect_fault(&mut rx, "NODE_HANDLE_ACK received").await;
        expect_fault(&mut rx, "NODE_HANDLE_NACK received").await;
        expect_msg(&mut rx, json!(3)).await;
        raw_quiet(&raw).await;

        // An fd stuck to a plain message: closed and reported.
        let (stray, _peer) = socketpair().expect("socketpair");
        raw_write(&raw, b"\"plain\"\n", Some(stray.as_raw_fd())).await;
        expect_msg(&mut rx, json!("plain")).await;
        expect_fault(&mut rx, "not attached to a NODE_HANDLE").await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropping_sender_and_receiver_closes_the_channel() {
        let (daemon, raw) = pair();
        let (tx, rx) = spawn(daemon, "drop".into());
        let tx2 = tx.clone();
        drop(tx);
        drop(rx);
        // A clone still alive keeps the channel writable.
        assert!(tx2.send(json!("still")));
        let mut acc = Vec::new();
        let (l, _) = raw_line(&raw, &mut acc).await;
        assert_eq!(l, "\"still\"");
        drop(tx2);
        let deadline = Instant::now() + T;
        loop {
            match raw_try_recv(&raw) {
                Some((d, _)) if d.is_empty() => break,
                Some((d, _)) => panic!("unexpected {d:?}"),
                None => {
                    assert!(Instant::now() < deadline, "no EOF");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn write_backlog_is_bounded() {
        let (daemon, raw) = pair();
        let (tx, mut rx) = spawn(daemon, "full".into());
        let big = json!("w".repeat(1024 * 1024));
        let mut accepted = 0;
        let mut refused = 0;
        for _ in 0..40 {
            if tx.send(big.clone()) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        assert!(accepted <= MAX_QUEUED / (1024 * 1024), "accepted {accepted}");
        assert!(refused > 0);
        expect_fault(&mut rx, "not reading").await;
        // Only one fault per episode.
        assert!(!tx.send(big.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "a second overflow fault");
        drop(raw);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn install_child_fd_dup2_and_already_fd3() {
        for already_three in [false, true] {
            let (daemon, child_end) = socketpair().expect("socketpair");
            set_nonblocking(&daemon).expect("nonblock");
            let raw = child_end.as_raw_fd();
            assert!(raw > 2, "socketpair keeps clear of stdio");
            let mut cmd = std::process::Command::new("sh");
            cmd.arg("-c").arg("echo hi >&3");
            // SAFETY: only async-signal-safe calls (dup3, fcntl) in the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if already_three {
                        // Put the channel on fd 3 *with* CLOEXEC, to exercise the fcntl path.
                        if raw != CHILD_CHANNEL_FD && libc::dup3(raw, CHILD_CHANNEL_FD, libc::O_CLOEXEC) < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        install_child_fd(CHILD_CHANNEL_FD)
                    } else {
                        install_child_fd(raw)
                    }
                });
            }
            let mut child = cmd.spawn().expect("spawn sh");
            drop(child_end);
            let st = wait_exit(&mut child, Duration::from_secs(5)).await;
            assert!(st.success(), "fd 3 not inherited (already_three={already_three})");
            let mut acc = Vec::new();
            let (line, _) = raw_line(&daemon, &mut acc).await;
            assert_eq!(line, "hi");
        }
        let env = child_env();
        assert_eq!(env[0], ("NODE_CHANNEL_FD", "3".to_string()));
        assert_eq!(env[1], ("NODE_CHANNEL_SERIALIZATION_MODE", "json".to_string()));
    }

    // ----- real Node -----

    fn node_child(script: &str) -> (std::process::Child, OwnedFd) {
        let (daemon, child_end) = socketpair().expect("socketpair");
        let raw = child_end.as_raw_fd();
        let mut cmd = std::process::Command::new("node");
        cmd.arg("-e")
            .arg(script)
            .envs(child_env())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // SAFETY: install_child_fd is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || install_child_fd(raw));
        }
        let child = cmd.spawn().expect("spawn node");
        drop(child_end);
        (child, daemon)
    }

    async fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node child did not exit within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn node_echo_roundtrip() {
        let script = "process.on('message', m => { process.send({echo: m}); \
                      if (m === 'bye') process.disconnect() }); process.send('ready')";
        let (mut child, daemon) = node_child(script);
        let (tx, mut rx) = spawn(daemon, "node".into());
        expect_msg(&mut rx, json!("ready")).await;
        assert!(tx.send(json!({"a": "é"})));
        expect_msg(&mut rx, json!({"echo": {"a": "é"}})).await;
        assert!(tx.send(json!("shutdown")));
        expect_msg(&mut rx, json!({"echo": "shutdown"})).await;
        assert!(tx.send(json!("bye")));
        loop {
            match next(&mut rx).await {
                ChannelEvent::Closed => break,
                ChannelEvent::Message(v) => assert_eq!(v, json!({"echo": "bye"})),
                other => panic!("unexpected {other:?}"),
            }
        }
        let st = wait_exit(&mut child, Duration::from_secs(10)).await;
        assert_eq!(st.code(), Some(0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn node_without_listener_exits_while_channel_open() {
        let (mut child, daemon) = node_child("console.log('no listener here')");
        let (tx, mut rx) = spawn(daemon, "plain".into());
        let st = wait_exit(&mut child, Duration::from_secs(5)).await;
        assert_eq!(st.code(), Some(0));
        expect_closed(&mut rx).await;
        assert!(tx.is_closed());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn node_handles_both_ways() {
        // The child receives a net.Socket from us and writes through it, then sends us a net.Server;
        // its next process.send only arrives because the channel ACKed the server.
        let script = r#"
            const net = require('net');
            process.on('message', (m, h) => {
              if (m && m.sock) {
                h.end('hello from child');
                const srv = net.createServer();
                srv.listen(0, '127.0.0.1', () => {
                  process.send({srv: srv.address().port}, srv);
                  process.send('after-handle');
                });
                process.once('message', () => { srv.close(); process.disconnect(); });
              }
            });
            process.send('ready');
        "#;
        let (mut child, daemon) = node_child(script);
        let (tx, mut rx) = spawn(daemon, "node-h".into());
        expect_msg(&mut rx, json!("ready")).await;
        let (give, keep) = socketpair().expect("socketpair");
        assert!(tx.send_handle("net.Socket", json!({"sock": 1}), give));
        // Read what the child writes through the passed socket.
        set_nonblocking(&keep).expect("nonblock");
        let mut got = Vec::new();
        loop {
            match raw_try_recv(&keep) {
                Some((d, _)) if d.is_empty() => break,
                Some((d, _)) => got.extend(d),
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        assert_eq!(got, b"hello from child");
        drop(keep); // lets the child's socket finish
        let port = match next(&mut rx).await {
            ChannelEvent::Handle { msg, envelope, fd } => {
                assert_eq!(envelope["type"], "net.Server");
                let addr = std::net::TcpListener::from(fd).local_addr().expect("local_addr");
                assert_eq!(Some(addr.port() as u64), msg["srv"].as_u64());
                addr.port()
            }
            other => panic!("expected Handle, got {other:?}"),
        };
        assert!(port > 0);
        expect_msg(&mut rx, json!("after-handle")).await;
        assert!(tx.send(json!("done")));
        expect_closed(&mut rx).await;
        let st = wait_exit(&mut child, Duration::from_secs(10)).await;
        assert_eq!(st.code(), Some(0));
    }
}
