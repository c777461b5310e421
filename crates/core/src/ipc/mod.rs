//! Node's IPC channel (`json` serialization mode), daemon side.
//!
//! A child started with [`child_env`] and its end of a [`socketpair`] installed as fd 3
//! ([`install_child_fd`]) gets `process.send` / `process.on('message')` before any user code runs.
//! The daemon's end is driven by [`spawn`], which runs one tokio task per channel.
//!
//! Wire format (Node's `child_process` IPC channel): every message is `JSON.stringify(value) + "\n"`.
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

use nix::sys::socket::{sendmsg, ControlMessage};
use serde_json::{Map, Value};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::time::Instant;

mod child;
mod driver;
mod incoming;
mod task;
mod tx;
mod wire;
pub use self::child::{child_env, install_child_fd, socketpair};
use self::driver::*;
use self::task::*;
use self::tx::*;
pub use self::tx::{spawn_hooked, ChannelEvent, ChannelHook, ChannelTx};
use self::wire::*;

#[cfg(test)]
mod tests;

/// Feeds `chunks` to a channel's incoming side as if a child had written them (no fds) and returns
/// the events it produced (messages and faults). Used by the fuzz target (`fuzz/`) and tests: whatever
/// the bytes, it never panics and buffers at most [`MAX_LINE`] plus one chunk; a too long line ends
/// the channel (later chunks are ignored).
pub fn decode_child_bytes(chunks: &[&[u8]]) -> Vec<ChannelEvent> {
    let mut task = Task::new("fuzz".into(), std::sync::Arc::new(Shared::default()));
    for c in chunks {
        if task.done {
            break;
        }
        task.ingest(c, Vec::new(), false);
    }
    if !task.done {
        task.on_eof();
    }
    task.events.drain(..).collect()
}

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

#[cfg(test)]
mod decode_tests {
    use super::*;

    /// What the fuzz target feeds: garbage, invalid UTF-8, a handle line without an fd, a line split
    /// across reads, and a line over [`MAX_LINE`] (which ends the channel with one fault).
    #[test]
    fn decoding_child_bytes_never_panics_and_stays_bounded() {
        let ev = decode_child_bytes(&[b"{\"a\":", b"1}\n\xff\xfe\nnot json\n{\"cmd\":\"NODE_HANDLE\",\"msg\":{}}\n"]);
        let messages = ev.iter().filter(|e| matches!(e, ChannelEvent::Message(_))).count();
        let faults = ev.iter().filter(|e| matches!(e, ChannelEvent::Fault(_))).count();
        assert_eq!(messages, 1);
        assert_eq!(faults, 3, "{ev:?}");
        let big = vec![b'x'; MAX_LINE + 2];
        let ev = decode_child_bytes(&[&big, b"\n{\"late\":1}\n"]);
        assert!(matches!(ev.as_slice(), [ChannelEvent::Fault(f)] if f.contains("longer than")), "{ev:?}");
    }
}
