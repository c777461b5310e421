//! The daemon's side of an actor: [`Handle`], one method per [`Op`]. A request travels as an
//! [`Envelope`] (the operation, and where its outcome goes when the sender waits for it).

use super::{Msg, ProcState};
use crate::config::spec::AppSpec;
use crate::logs::ProcPaths;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Result of a control request: Ok, or a message for people.
type Reply = oneshot::Sender<Result<(), String>>;

/// The error every request gets once the actor has ended (after `delete`, or when the daemon is
/// shutting down).
pub const ENDED: &str = "the process supervisor has ended";

/// The operations an actor carries out, one at a time, in the order they arrive. See the methods of
/// [`Handle`] for what each guarantees.
#[derive(Debug)]
pub enum Op {
    /// Start if not running.
    Start,
    /// Stop (graceful, then SIGKILL after kill_timeout).
    Stop,
    /// Stop if running, then start; an optional new spec is applied first.
    Restart {
        /// A new declaration to run from now on; `None` keeps the current one.
        spec: Option<Arc<AppSpec>>,
        /// Why (shown in the daemon log and the restart event).
        reason: String,
    },
    /// Stop and end the actor.
    Delete,
    /// Send a signal to the main process.
    Signal(Signal),
    /// Send a message on the IPC channel, written as one JSON line.
    Send(Value),
    /// Zero the restart counters.
    Reset,
    /// Reopen the log files.
    ReloadLogs,
    /// Zero-downtime replacement (cluster mode): start the new worker, wait until it listens (or is
    /// ready), then retire the old one. Fork mode: a graceful restart. An optional new spec (e.g.
    /// `--update-env`, an ecosystem file) is applied to the new process.
    Reload {
        /// A new declaration for the new process; `None` keeps the current one.
        spec: Option<Arc<AppSpec>>,
    },
    /// An automatic restart (file change, cron, memory limit; see [`crate::supervisor::triggers`]): a
    /// reload when `graceful` and the process is an online cluster worker, else a restart (which
    /// starts a stopped process). `reason` becomes the restart reason.
    Trigger {
        /// The restart reason.
        reason: String,
        /// Whether an online cluster worker is reloaded rather than restarted.
        graceful: bool,
    },
    /// Turns `watch` on or off in the spec, without restarting.
    SetWatch(bool),
    /// Writes text (a line with its separator) to the child's stdin.
    WriteStdin(String),
    /// Sets PM2's `_km_monitored` flag (`monitor`/`unmonitor`).
    SetMonitored(bool),
}

impl Op {
    /// Whether this operation cuts into a wait for `ready`/`listening` instead of waiting behind it.
    pub(super) fn cuts_in(&self) -> bool {
        matches!(self, Op::Stop | Op::Delete)
    }
}

/// One request to an actor: the operation and, when the sender waits for it, where the outcome goes.
#[derive(Debug)]
pub(super) struct Envelope {
    pub(super) op: Op,
    pub(super) reply: Option<Reply>,
}

/// The daemon's handle on one actor.
#[derive(Clone)]
pub struct Handle {
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    /// Latest state.
    pub state: watch::Receiver<ProcState>,
    /// Current spec and paths.
    pub spec: watch::Receiver<(Arc<AppSpec>, ProcPaths)>,
}

impl Handle {
    /// Queues `op` at once (before the returned future is first polled) and resolves with its outcome
    /// when the actor has carried it out, or with [`ENDED`] when the actor is gone (or ends before it
    /// answers). Dropping the future does not cancel the operation.
    pub fn call(&self, op: Op) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Msg::Ctl(Envelope { op, reply: Some(tx) })).is_ok();
        async move {
            if !sent {
                return Err(ENDED.to_string());
            }
            rx.await.unwrap_or_else(|_| Err(ENDED.to_string()))
        }
    }

    /// Queues `op` without waiting for it; nothing is reported, not even that the actor is gone.
    pub fn tell(&self, op: Op) {
        let _ = self.tx.send(Msg::Ctl(Envelope { op, reply: None }));
    }

    /// Starts the process if it is not running (a running one is left alone: Ok). Resolves when it is
    /// online: spawned, and with `wait_ready` once it sent `ready` or listen_timeout passed; an error
    /// says why it could not be spawned (the app is then `errored`) or that it exited while launching.
    /// Counters of unstable restarts are reset. Waits behind an operation in progress.
    pub fn start(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Start)
    }

    /// Stops the process: `'shutdown'` message or SIGINT to its group, SIGKILL after kill_timeout.
    /// Resolves when the process is gone and the status is `stopped` (a scheduled automatic restart is
    /// cancelled); never fails while the actor lives. Waits behind the operation in progress, except
    /// that it cuts into a wait for `ready`/`listening` (a start with `wait_ready`, a restart, a
    /// reload's new worker): that wait ends at once, the operation it belonged to fails ("stopped
    /// before it was ready"; a reload is rolled back) and the stop follows.
    pub fn stop(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Stop)
    }

    /// Stops the process if it runs (a stopped one is left stopped), applies `spec` when given, and
    /// starts it again with `reason` as the restart reason. Resolves as [`Handle::start`] does. Waits
    /// behind an operation in progress.
    pub fn restart(
        &self,
        spec: Option<Arc<AppSpec>>,
        reason: String,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Restart { spec, reason })
    }

    #[cfg(test)]
    /// Stops the process as [`Handle::stop`] does (cutting in the same way), removes its pid file and
    /// ends the actor. Resolves once the process is gone; every later request gets [`ENDED`].
    pub fn delete(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Delete)
    }

    #[cfg(test)]
    /// Sends `signal` to the main process (not its group). Resolves once sent; fails when the app is
    /// not running or kill(2) failed. Waits behind an operation in progress.
    pub fn signal(&self, signal: Signal) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Signal(signal))
    }

    /// Writes `msg` on the running process's IPC channel. Resolves once queued on the channel (not when
    /// the app read it); fails when there is no open channel. Waits behind an operation in progress.
    pub fn send(&self, msg: Value) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Send(msg))
    }

    #[cfg(test)]
    /// Zeroes the restart counters. Resolves when done; never fails while the actor lives.
    pub fn reset(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Reset)
    }

    /// Asks the actor to reopen its log files (after rotation by an outside tool). Does not wait;
    /// failures go to the daemon log.
    pub fn reload_logs(&self) {
        self.tell(Op::ReloadLogs)
    }

    /// Reloads the process (see [`Op::Reload`]), with `spec` when given. Resolves when the new process
    /// is online and the old one retired; on failure (the new worker exited or was not ready within
    /// listen_timeout) the old worker keeps serving and the error says why. Waits behind an
    /// operation in progress; a `stop` or `delete` cuts into its wait for the new process.
    pub fn reload(
        &self,
        spec: Option<Arc<AppSpec>>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Reload { spec })
    }

    /// An automatic restart (see [`Op::Trigger`]). Resolves as [`Handle::reload`] or
    /// [`Handle::restart`] does; a failed reload falls back to a restart, unless a stop is queued.
    pub fn trigger(
        &self,
        reason: String,
        graceful: bool,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Trigger { reason, graceful })
    }

    /// Sets `watch` in the spec without restarting. Resolves when the new spec is published.
    pub fn set_watch(&self, on: bool) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::SetWatch(on))
    }

    /// Queues `text` for the running child's stdin (written as is: the caller adds the line
    /// separator). Resolves once queued; fails when the app is not running or closed its stdin.
    pub fn write_stdin(&self, text: String) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::WriteStdin(text))
    }
}
