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

mod app;
mod bind;
mod listener;
mod probe;
mod round_robin;
pub use self::app::ClusterApp;
pub use self::bind::server_key;
use self::bind::*;
use self::listener::*;
pub use self::probe::{connect_to_worker, ProbeRoute};
pub use self::round_robin::WorkerHook;
use self::round_robin::*;

#[cfg(test)]
mod tests;

pub use crate::config::spec::Balance;

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
