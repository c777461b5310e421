//! One actor (a tokio task) per managed process. The actor owns the child: it spawns it (own process
//! group, pipes for stdout/stderr, an IPC channel for Node apps), learns of its exit from a waiter task
//! (pidfd-based `wait`, never `ps` polling), applies the restart policy, and stops it (message or SIGINT
//! to the group, SIGKILL after `kill_timeout`). Its state is published on a `watch` channel that `list`
//! reads without locks; what happens is published on the daemon's event bus.

//!
//! Files: [`handle`] (the daemon's side: one method per operation), `actor` (the control loop and its
//! waits), `child` (spawning), `preload` (the metrics preload Node apps load), `messages` (IPC from
//! the child), `exit` (exits, stopping), `reload`, `pump` (output to the log files).

mod actor;
mod child;
mod exit;
pub mod handle;
mod messages;
pub mod policy;
mod preload;
mod probe;
mod pump;
mod reload;
#[cfg(test)]
mod tests;
pub mod triggers;

pub use handle::{Handle, Op, ENDED};

use crate::base::fmt::now_ms;
use crate::base::paths::Home;
use crate::cluster::ClusterApp;
use crate::config::spec::AppSpec;
use crate::ipc::{ChannelEvent, ChannelTx};
use crate::logs::{proc_paths, LogFiles, ProcPaths};
use handle::Envelope;
use nix::sys::signal::Signal;
use policy::Counters;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::time::Instant;

/// PM2's status strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Spawned, waiting for `ready` (with `wait_ready`).
    Launching,
    /// Running.
    Online,
    /// Being stopped.
    Stopping,
    /// Not running, by request or policy.
    Stopped,
    /// Exited; an automatic restart is scheduled.
    #[serde(rename = "waiting restart")]
    WaitingRestart,
    /// Too many unstable restarts, or could not be spawned.
    Errored,
}

impl Status {
    /// PM2's string for this status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Launching => "launching",
            Status::Online => "online",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::WaitingRestart => "waiting restart",
            Status::Errored => "errored",
        }
    }
}

/// The observable state of one managed process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcState {
    /// Current status.
    pub status: Status,
    /// The running child's pid.
    pub pid: Option<u32>,
    /// Restarts (automatic and requested) since creation or reset.
    pub restart_time: u32,
    /// Fast exits counted by the crash-loop rule.
    pub unstable_restarts: u32,
    /// When the app was created (or last restarted by request), epoch ms.
    pub created_at: u64,
    /// When the current child was started, epoch ms.
    pub pm_uptime: u64,
    /// Exit code of the last exit.
    pub exit_code: Option<i32>,
    /// Signal name of the last exit, when killed by a signal.
    pub exit_signal: Option<String>,
    /// Why the app was last restarted.
    pub restart_reason: Option<String>,
    /// The code metrics of the running child (`axm:monitor`): the preload's built-in ones and the
    /// app's own, merged by name as PM2 does (`Object.assign`); None until the child sends some, and
    /// again from its exit.
    pub axm_monitor: Option<Value>,
    /// The last back-off delay (ms).
    pub prev_restart_delay: u64,
    /// Actions the running child declared with `axm:action` (tx2/@pm2/io), in PM2's shape
    /// (`{action_name, action_type, arity, opts}`); emptied when a new child starts.
    #[serde(default)]
    pub axm_actions: Vec<Value>,
    /// `monitor`/`unmonitor`: PM2's `_km_monitored` flag; None until either was asked.
    #[serde(default)]
    pub km_monitored: Option<bool>,
    /// The readiness probe's verdict on the running child: None when the app declares no readiness
    /// probe (or nothing runs), false until it passes.
    #[serde(default)]
    pub ready: Option<bool>,
}

impl ProcState {
    /// The state of a new, never started process.
    pub fn new() -> ProcState {
        ProcState {
            status: Status::Stopped,
            pid: None,
            restart_time: 0,
            unstable_restarts: 0,
            created_at: now_ms(),
            pm_uptime: 0,
            exit_code: None,
            exit_signal: None,
            restart_reason: None,
            axm_monitor: None,
            prev_restart_delay: 0,
            axm_actions: Vec::new(),
            km_monitored: None,
            ready: None,
        }
    }
}

impl Default for ProcState {
    fn default() -> Self {
        ProcState::new()
    }
}

/// An event for `launchBus` subscribers: a topic and its payload (PM2's shapes).
#[derive(Debug, Clone)]
pub struct BusEvent {
    /// `process:event`, `process:msg`, `log:out`, `log:err`, or a custom type.
    pub topic: String,
    /// The payload.
    pub data: Value,
}

/// What reaches an actor's inbox: requests, and news from its children's waiter and IPC tasks.
enum Msg {
    Ctl(Envelope),
    Exited { gen: u64, code: Option<i32>, signal: Option<i32> },
    Ipc { gen: u64, ev: ChannelEvent },
    Probe { gen: u64, kind: probe::Kind, verdict: probe::Verdict },
}

/// What an actor needs from the daemon.
#[derive(Clone)]
pub struct ProcCtx {
    /// The process's pm_id.
    pub pm_id: u32,
    /// Its instance index (`NODE_APP_INSTANCE`).
    pub instance: u32,
    /// The start batch's id.
    pub unique_id: String,
    /// `RPM2_HOME`.
    pub home: Home,
    /// The daemon's event bus.
    pub bus: broadcast::Sender<BusEvent>,
    /// Notified on every state change (persistence).
    pub changed: Arc<Notify>,
    /// The app's cluster primary (cluster mode only).
    pub cluster: Option<Arc<ClusterApp>>,
}

/// Starts the actor for one process. With `start` it spawns the child at once.
pub fn spawn(spec: Arc<AppSpec>, ctx: ProcCtx, initial: ProcState, start: bool) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(initial.clone());
    let paths = proc_paths(&ctx.home, &spec, ctx.pm_id);
    let (spec_tx, spec_rx) = watch::channel((spec.clone(), paths.clone()));
    let logs = Arc::new(Mutex::new(LogFiles::for_app(&spec, ctx.pm_id, paths.clone())));
    let actor = Actor {
        spec,
        paths,
        ctx,
        st: initial,
        counters: Counters::default(),
        inbox: rx,
        self_tx: tx.clone(),
        state_tx,
        spec_tx,
        gen: 0,
        running: None,
        retiring: None,
        restart_at: None,
        deferred: VecDeque::new(),
        pending_exit: None,
        pending_probe: None,
        logs,
    };
    tokio::spawn(actor.run(start));
    Handle { tx, state: state_rx, spec: spec_rx }
}

/// A spawned child the actor is responsible for.
struct Running {
    gen: u64,
    pid: u32,
    ipc: Option<ChannelTx>,
    /// Cluster worker id (`NODE_UNIQUE_ID`), 0 in fork mode.
    wid: u64,
    /// The worker has reported a listening server (cluster `listening`).
    listened: bool,
    /// Lines for the child's stdin (`send`, `attach`); None when the pipe could not be made.
    stdin: Option<mpsc::UnboundedSender<String>>,
    /// When the child last said anything on its IPC channel (epoch ms; its spawn before that): what
    /// an `event_loop` probe reads.
    heartbeat: Arc<std::sync::atomic::AtomicU64>,
    /// The child's probe tasks, aborted with it.
    probes: Vec<tokio::task::AbortHandle>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for p in &self.probes {
            p.abort();
        }
    }
}

/// The next cluster worker id (`NODE_UNIQUE_ID`), unique in the daemon.
static WORKER_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What an IPC message meant for the actor's waits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sig {
    None,
    Ready,
    Listening,
    /// Not an IPC message: what a wait wants when the readiness probe decides (see `wait_current`).
    Readiness,
}

/// The actor's state: owned by its task, changed only by it (see `actor.rs` for the loop).
struct Actor {
    spec: Arc<AppSpec>,
    paths: ProcPaths,
    ctx: ProcCtx,
    st: ProcState,
    counters: Counters,
    inbox: mpsc::UnboundedReceiver<Msg>,
    self_tx: mpsc::UnboundedSender<Msg>,
    state_tx: watch::Sender<ProcState>,
    spec_tx: watch::Sender<(Arc<AppSpec>, ProcPaths)>,
    gen: u64,
    running: Option<Running>,
    /// A process being stopped or replaced (its IPC traffic is still served).
    retiring: Option<Running>,
    restart_at: Option<Instant>,
    deferred: VecDeque<Envelope>,
    pending_exit: Option<(Option<i32>, Option<i32>)>,
    /// A liveness verdict that came during an operation, handled after it.
    pending_probe: Option<(u64, probe::Kind, probe::Verdict)>,
    logs: Arc<Mutex<LogFiles>>,
}

/// A signal's name (`SIGTERM`), or `SIG<n>` for a number nix does not know.
fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| format!("SIG{sig}"))
}
/// How a wait of an operation in progress ended (see [`Actor::next_event`]).
enum Wait {
    /// A `stop` or `delete` request arrived (it is deferred, and runs next).
    Interrupted,
    Ready,
    Listening,
    /// The readiness probe of the current child changed its verdict.
    Readiness(probe::Verdict),
    Timeout,
    Exited(Option<i32>, Option<i32>),
    RetiredExited(Option<i32>, Option<i32>),
}
