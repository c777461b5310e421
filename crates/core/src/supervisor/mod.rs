//! One actor (a tokio task) per managed process. The actor owns the child: it spawns it (own process
//! group, pipes for stdout/stderr, an IPC channel for Node apps), learns of its exit from a waiter task
//! (pidfd-based `wait`, never `ps` polling), applies the restart policy, and stops it (message or SIGINT
//! to the group, SIGKILL after `kill_timeout`). Its state is published on a `watch` channel that `list`
//! reads without locks; what happens is published on the daemon's event bus.

pub mod policy;
pub mod triggers;

use crate::base::dlog;
use crate::base::fmt::now_ms;
use crate::base::paths::Home;
use crate::cluster::ClusterApp;
use crate::config::spec::AppSpec;
use crate::ipc::{self, ChannelEvent, ChannelTx};
use crate::logs::{proc_paths, LogFiles, ProcPaths, Stream};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use policy::{Counters, Decision};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify};
use tokio::time::{sleep_until, Duration, Instant};

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
    /// Custom metrics pushed with `axm:monitor`.
    pub axm_monitor: Option<Value>,
    /// The last back-off delay (ms).
    pub prev_restart_delay: u64,
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
}

impl Op {
    /// Whether this operation cuts into a wait for `ready`/`listening` instead of waiting behind it.
    fn cuts_in(&self) -> bool {
        matches!(self, Op::Stop | Op::Delete)
    }
}

/// One request to an actor: the operation and, when the sender waits for it, where the outcome goes.
#[derive(Debug)]
struct Envelope {
    op: Op,
    reply: Option<Reply>,
}

enum Msg {
    Ctl(Envelope),
    Exited { gen: u64, code: Option<i32>, signal: Option<i32> },
    Ipc { gen: u64, ev: ChannelEvent },
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

/// The daemon's handle on one actor.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
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

    /// Stops the process as [`Handle::stop`] does (cutting in the same way), removes its pid file and
    /// ends the actor. Resolves once the process is gone; every later request gets [`ENDED`].
    pub fn delete(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.call(Op::Delete)
    }

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
        logs,
    };
    tokio::spawn(actor.run(start));
    Handle { tx, state: state_rx, spec: spec_rx }
}

struct Running {
    gen: u64,
    pid: u32,
    ipc: Option<ChannelTx>,
    /// Cluster worker id (`NODE_UNIQUE_ID`), 0 in fork mode.
    wid: u64,
    /// The worker has reported a listening server (cluster `listening`).
    listened: bool,
}

static WORKER_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What an IPC message meant for the actor's waits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sig {
    None,
    Ready,
    Listening,
}

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
    logs: Arc<Mutex<LogFiles>>,
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| format!("SIG{sig}"))
}

impl Actor {
    fn label(&self) -> String {
        format!("[{}:{}]", self.spec.name, self.ctx.pm_id)
    }

    fn process_json(&self) -> Value {
        json!({"pm_id": self.ctx.pm_id, "name": self.spec.name, "namespace": self.spec.namespace, "rev": null})
    }

    fn emit(&self, topic: &str, data: Value) {
        if self.ctx.bus.receiver_count() > 0 {
            let _ = self.ctx.bus.send(BusEvent { topic: topic.to_string(), data });
        }
    }

    fn event(&self, event: &str, manually: bool) {
        let mut process = json!({
            "name": self.spec.name, "namespace": self.spec.namespace, "pm_id": self.ctx.pm_id,
            "status": self.st.status.as_str(), "restart_time": self.st.restart_time,
            "pm_uptime": self.st.pm_uptime, "exec_mode": self.spec.exec_mode.pm2_name(),
            "pm_exec_path": self.spec.script, "unstable_restarts": self.st.unstable_restarts,
        });
        if event == "exit" {
            process["exit_code"] = json!(self.st.exit_code);
            process["exit_signal"] = json!(self.st.exit_signal);
        }
        self.emit("process:event", json!({"event": event, "manually": manually, "process": process, "at": now_ms()}));
    }

    fn publish(&mut self) {
        self.state_tx.send_replace(self.st.clone());
        self.ctx.changed.notify_one();
    }

    fn set_status(&mut self, s: Status) {
        self.st.status = s;
        self.publish();
    }

    async fn run(mut self, start: bool) {
        if start {
            let _ = self.start_now(false).await;
        }
        loop {
            if let Some((code, signal)) = self.pending_exit.take() {
                self.on_crash(code, signal).await;
                continue;
            }
            let msg = if let Some(c) = self.deferred.pop_front() {
                Msg::Ctl(c)
            } else {
                let timer = self.restart_at;
                tokio::select! {
                    m = self.inbox.recv() => match m { Some(m) => m, None => break },
                    _ = async { match timer { Some(t) => sleep_until(t).await, None => std::future::pending().await } } => {
                        self.restart_at = None;
                        self.st.restart_time = self.st.restart_time.saturating_add(1);
                        let _ = self.start_now(false).await;
                        continue;
                    }
                }
            };
            match msg {
                Msg::Ctl(c) => {
                    if !self.control(c).await {
                        break;
                    }
                }
                Msg::Exited { gen, code, signal } if self.is_current(gen) => self.on_crash(code, signal).await,
                Msg::Exited { .. } => {}
                Msg::Ipc { gen, ev } => {
                    self.on_ipc(gen, ev);
                }
            }
        }
    }

    /// Carries out one request and answers it; false ends the actor.
    async fn control(&mut self, env: Envelope) -> bool {
        let Envelope { op, reply } = env;
        let mut go_on = true;
        let r = match op {
            Op::Start => self.op_start().await,
            Op::Stop => {
                self.op_stop().await;
                Ok(())
            }
            Op::Restart { spec, reason } => {
                if let Some(s) = spec {
                    self.apply_spec(s);
                }
                self.restart(reason).await
            }
            Op::Trigger { reason, graceful } => self.op_trigger(reason, graceful).await,
            Op::SetWatch(on) => {
                self.op_set_watch(on);
                Ok(())
            }
            Op::Delete => {
                self.op_delete().await;
                go_on = false;
                Ok(())
            }
            Op::Signal(signal) => self.op_signal(signal),
            Op::Send(msg) => self.op_send(msg),
            Op::Reset => {
                self.op_reset();
                Ok(())
            }
            Op::Reload { spec } => {
                if let Some(s) = spec {
                    self.apply_spec(s);
                }
                self.reload().await
            }
            Op::ReloadLogs => {
                if let Ok(mut l) = self.logs.lock() {
                    l.reopen();
                }
                self.report_log_errors();
                Ok(())
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(r);
        }
        go_on
    }

    async fn op_start(&mut self) -> Result<(), String> {
        if self.running.is_some() {
            return Ok(());
        }
        self.restart_at = None;
        self.st.created_at = now_ms();
        self.st.unstable_restarts = 0;
        self.counters = Counters::default();
        self.event("start", true);
        self.start_now(true).await
    }

    async fn op_stop(&mut self) {
        self.restart_at = None;
        self.stop_running().await;
        self.set_status(Status::Stopped);
        self.event("stop", true);
    }

    async fn op_delete(&mut self) {
        self.restart_at = None;
        self.stop_running().await;
        self.st.status = Status::Stopped;
        self.event("delete", true);
        let _ = std::fs::remove_file(&self.paths.pid);
    }

    async fn op_trigger(&mut self, reason: String, graceful: bool) -> Result<(), String> {
        // A reload only helps a worker that serves (listens, or says ready); one that does not
        // would only wait listen_timeout. A reload that fails becomes a restart: the cause (new
        // code, memory) must take effect.
        let cluster = self.spec.exec_mode == crate::config::spec::ExecMode::Cluster;
        let serves = self.spec.wait_ready || self.ctx.cluster.as_ref().map(|c| c.server_count() > 0).unwrap_or(false);
        if !(graceful && cluster && serves && self.running.is_some() && self.st.status == Status::Online) {
            return self.restart(reason).await;
        }
        dlog(format!("App {} reloading ({reason})", self.label()));
        match self.reload().await {
            Ok(()) => {
                self.st.restart_reason = Some(reason);
                self.publish();
                Ok(())
            }
            Err(e) if self.stop_pending() => Err(e),
            Err(e) => {
                dlog(format!("App {}: {e}; restarting instead", self.label()));
                self.restart(reason).await
            }
        }
    }

    fn op_set_watch(&mut self, on: bool) {
        if self.spec.watch != on {
            let mut s = self.spec.as_ref().clone();
            s.watch = on;
            self.spec = Arc::new(s);
            self.spec_tx.send_replace((self.spec.clone(), self.paths.clone()));
            self.publish();
        }
    }

    fn op_signal(&self, signal: Signal) -> Result<(), String> {
        match &self.running {
            Some(r) => kill(Pid::from_raw(r.pid as i32), signal)
                .map_err(|e| format!("cannot send {signal} to {} (pid {}): {e}", self.label(), r.pid)),
            None => Err(format!("app {} is not running", self.label())),
        }
    }

    fn op_send(&self, msg: Value) -> Result<(), String> {
        match self.running.as_ref().and_then(|r| r.ipc.as_ref()) {
            Some(tx) if tx.send(msg) => Ok(()),
            _ => Err(format!("app {} has no open IPC channel (is it a running Node.js app?)", self.label())),
        }
    }

    fn op_reset(&mut self) {
        self.st.restart_time = 0;
        self.st.unstable_restarts = 0;
        self.st.created_at = now_ms();
        self.counters = Counters::default();
        self.publish();
    }

    /// Stops the child if it runs, then starts it again, recording `reason`.
    async fn restart(&mut self, reason: String) -> Result<(), String> {
        self.restart_at = None;
        let was_running = self.running.is_some();
        self.stop_running().await;
        if was_running || self.st.status == Status::WaitingRestart {
            self.st.restart_time = self.st.restart_time.saturating_add(1);
        }
        self.st.created_at = now_ms();
        self.st.unstable_restarts = 0;
        self.counters = Counters::default();
        self.st.restart_reason = Some(reason.clone());
        dlog(format!("App {} restarting ({reason})", self.label()));
        self.event("restart", true);
        self.start_now(true).await
    }

    fn apply_spec(&mut self, s: Arc<AppSpec>) {
        self.paths = proc_paths(&self.ctx.home, &s, self.ctx.pm_id);
        self.logs = Arc::new(Mutex::new(LogFiles::for_app(&s, self.ctx.pm_id, self.paths.clone())));
        self.spec = s;
        self.spec_tx.send_replace((self.spec.clone(), self.paths.clone()));
        self.report_log_errors();
    }

    fn report_log_errors(&self) {
        let errs = match self.logs.lock() {
            Ok(mut l) => std::mem::take(&mut l.errors),
            Err(_) => vec![],
        };
        for e in errs {
            dlog(format!("App {}: {e}", self.label()));
        }
    }

    fn child_env(&self) -> Vec<(String, String)> {
        let s = &self.spec;
        let mut env: Vec<(String, String)> = s
            .env
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "NODE_CHANNEL_FD" | "NODE_CHANNEL_SERIALIZATION_MODE" | "NODE_UNIQUE_ID")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let path_str = |p: &Option<std::path::PathBuf>| {
            p.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "/dev/null".into())
        };
        let mut instance_value = self.ctx.instance.to_string();
        if let Some(var) = &s.increment_var {
            // checked: the base comes from the user's env; on overflow the variable keeps its value.
            if let Some(v) =
                s.env.get(var).and_then(|v| v.parse::<i64>().ok()).and_then(|b| b.checked_add(self.ctx.instance.into()))
            {
                env.push((var.clone(), v.to_string()));
            }
        }
        if s.instance_var != "NODE_APP_INSTANCE" {
            env.push((s.instance_var.clone(), std::mem::take(&mut instance_value)));
            instance_value = self.ctx.instance.to_string();
        }
        env.extend([
            ("pm_id".to_string(), self.ctx.pm_id.to_string()),
            ("name".into(), s.name.clone()),
            ("namespace".into(), s.namespace.clone()),
            ("NODE_APP_INSTANCE".into(), instance_value),
            ("pm_exec_path".into(), s.script.display().to_string()),
            ("pm_cwd".into(), s.cwd.display().to_string()),
            ("pm_out_log_path".into(), path_str(&self.paths.out)),
            ("pm_err_log_path".into(), path_str(&self.paths.err)),
            ("pm_pid_path".into(), self.paths.pid.display().to_string()),
            ("exec_mode".into(), s.exec_mode.pm2_name().into()),
            ("exec_interpreter".into(), s.interpreter.clone().unwrap_or_else(|| "none".into())),
            ("instances".into(), s.instances.to_string()),
            ("restart_time".into(), self.st.restart_time.to_string()),
            ("unstable_restarts".into(), self.st.unstable_restarts.to_string()),
            ("created_at".into(), self.st.created_at.to_string()),
            ("pm_uptime".into(), self.st.pm_uptime.to_string()),
            ("status".into(), "launching".into()),
            ("unique_id".into(), self.ctx.unique_id.clone()),
            ("RPM2_HOME".into(), self.ctx.home.root().display().to_string()),
            ("RPM2_USAGE".into(), "CLI".into()),
        ]);
        env
    }

    /// Spawns the child. On failure the app is `errored` and the reason returned.
    fn spawn_child(&mut self) -> Result<(), String> {
        let s = self.spec.clone();
        let mut cmd = match &s.interpreter {
            Some(i) => {
                let mut c = std::process::Command::new(i);
                c.args(&s.node_args).arg(&s.script);
                c
            }
            None => std::process::Command::new(&s.script),
        };
        cmd.args(&s.args)
            .current_dir(&s.cwd)
            .env_clear()
            .envs(self.child_env())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // Own process group: stop signals reach the whole tree, and the app is not hit by signals
        // sent to the daemon's group.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut channel = None;
        let cluster = s.exec_mode == crate::config::spec::ExecMode::Cluster && self.ctx.cluster.is_some();
        let wid = if cluster { WORKER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) } else { 0 };
        if cluster {
            cmd.env("NODE_UNIQUE_ID", wid.to_string());
        }
        if s.is_node() {
            match ipc::socketpair() {
                Ok((ours, theirs)) => {
                    let raw = theirs.as_raw_fd();
                    for (k, v) in ipc::child_env() {
                        cmd.env(k, v);
                    }
                    // SAFETY: install_child_fd only calls dup2/fcntl (async-signal-safe).
                    unsafe {
                        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || ipc::install_child_fd(raw));
                    }
                    channel = Some((ours, theirs));
                }
                Err(e) => dlog(format!("App {}: cannot create IPC channel: {e}; starting without it", self.label())),
            }
        }
        let mut tcmd = tokio::process::Command::from(cmd);
        tcmd.kill_on_drop(false);
        let spawned = tcmd.spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let what = s.interpreter.clone().unwrap_or_else(|| s.script.display().to_string());
                return Err(format!("cannot start {} ({what}): {e}", self.label()));
            }
        };
        let pid = child.id().unwrap_or(0);
        self.gen += 1;
        let gen = self.gen;
        let ipc_tx = channel.map(|(ours, theirs)| {
            drop(theirs); // our copy of the child's end: closed so that EOF is seen when the child dies
                          // A cluster worker's replies to `newconn` (one per connection) go straight to the
                          // round-robin servers from the channel task, without a JSON parse or a hop through here.
            let hook: Option<Box<dyn ipc::ChannelHook>> = match (&self.ctx.cluster, wid) {
                (Some(c), w) if w != 0 => Some(Box::new(crate::cluster::WorkerHook::new(c.clone(), w))),
                _ => None,
            };
            let (tx, mut rx) = ipc::spawn_hooked(ours, self.label(), hook);
            let inbox = self.self_tx.clone();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    let closed = matches!(ev, ChannelEvent::Closed);
                    if inbox.send(Msg::Ipc { gen, ev }).is_err() || closed {
                        break;
                    }
                }
            });
            tx
        });
        for (stream, pipe) in [
            (Stream::Out, child.stdout.take().and_then(|p| p.into_owned_fd().ok()).and_then(|f| Pipe::from_fd(f).ok())),
            (Stream::Err, child.stderr.take().and_then(|p| p.into_owned_fd().ok()).and_then(|f| Pipe::from_fd(f).ok())),
        ] {
            if let Some(pipe) = pipe {
                let logs = self.logs.clone();
                let bus = self.ctx.bus.clone();
                let proc_json = self.process_json();
                tokio::spawn(pump(pipe, stream, logs, bus, proc_json));
            }
        }
        let inbox = self.self_tx.clone();
        tokio::spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let (code, signal) = match child.wait().await {
                Ok(st) => (st.code(), st.signal()),
                Err(_) => (None, None),
            };
            let _ = inbox.send(Msg::Exited { gen, code, signal });
        });
        if let Some(dir) = self.paths.pid.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&self.paths.pid, pid.to_string()) {
            dlog(format!("App {}: cannot write pid file {}: {e}", self.label(), self.paths.pid.display()));
        }
        if let (Some(c), true) = (&self.ctx.cluster, wid != 0 && s.wait_ready) {
            // Routed to only once it said 'ready' (see start_now / reload).
            c.hold(wid);
        }
        self.running = Some(Running { gen, pid, ipc: ipc_tx, wid, listened: false });
        self.st.pid = Some(pid);
        self.st.pm_uptime = now_ms();
        self.st.exit_code = None;
        self.st.exit_signal = None;
        self.report_log_errors();
        Ok(())
    }

    /// Spawns and, with `wait_ready`, waits for `ready` (bounded by listen_timeout).
    async fn start_now(&mut self, manually: bool) -> Result<(), String> {
        dlog(format!("App {} starting in -{} mode-", self.label(), self.spec.exec_mode.short()));
        if let Err(e) = self.spawn_child() {
            dlog(&e);
            self.st.pid = None;
            self.set_status(Status::Errored);
            self.event("errored", manually);
            return Err(e);
        }
        if self.spec.wait_ready && self.running.as_ref().map(|r| r.ipc.is_some()).unwrap_or(false) {
            self.set_status(Status::Launching);
            let deadline = Instant::now() + Duration::from_millis(self.spec.listen_timeout);
            match self.wait_current(deadline, Sig::Ready).await {
                Wait::Ready | Wait::Listening => {}
                Wait::Timeout => {
                    dlog(format!(
                        "App {} did not send 'ready' within listen_timeout ({} ms); marking online",
                        self.label(),
                        self.spec.listen_timeout
                    ));
                }
                Wait::Exited(code, signal) => {
                    self.pending_exit = Some((code, signal));
                    return Err(format!("app {} exited while launching (code {:?})", self.label(), code));
                }
                Wait::Interrupted => {
                    // Still `launching`: the stop request queued behind this one stops it next.
                    dlog(format!("App {} stopped by request before it sent 'ready'", self.label()));
                    return Err(format!("app {} was stopped before it was ready", self.label()));
                }
                Wait::RetiredExited(..) => {}
            }
        }
        self.admit_current();
        self.set_status(Status::Online);
        dlog(format!("App {} online", self.label()));
        self.event("online", manually);
        Ok(())
    }

    /// Lets the current worker receive connections (ends a wait_ready probation).
    fn admit_current(&self) {
        if let (Some(c), Some(r)) = (&self.ctx.cluster, &self.running) {
            if r.wid != 0 {
                c.admit(r.wid);
            }
        }
    }

    fn is_current(&self, gen: u64) -> bool {
        self.running.as_ref().map(|r| r.gen == gen).unwrap_or(false)
    }

    fn is_retiring(&self, gen: u64) -> bool {
        self.retiring.as_ref().map(|r| r.gen == gen).unwrap_or(false)
    }

    /// Waits for the next event that matters to an operation in progress: the current or retiring
    /// child's exit, the current child's `ready`/`listening`, or the deadline. IPC traffic of both is
    /// served meanwhile; control requests are deferred until the operation ends.
    /// With `interruptible`, a `stop` or `delete` (arrived now or already deferred) ends the wait with
    /// [`Wait::Interrupted`]; it stays queued, behind the requests that came before it.
    async fn next_event(&mut self, deadline: Instant, interruptible: bool) -> Wait {
        if interruptible && self.stop_pending() {
            return Wait::Interrupted;
        }
        loop {
            tokio::select! {
                m = self.inbox.recv() => match m {
                    None => return Wait::Timeout,
                    Some(Msg::Ctl(c)) => {
                        let cut = interruptible && c.op.cuts_in();
                        self.deferred.push_back(c);
                        if cut {
                            return Wait::Interrupted;
                        }
                    }
                    Some(Msg::Exited { gen, code, signal }) if self.is_current(gen) => return Wait::Exited(code, signal),
                    Some(Msg::Exited { gen, code, signal }) if self.is_retiring(gen) => return Wait::RetiredExited(code, signal),
                    Some(Msg::Exited { .. }) => {}
                    Some(Msg::Ipc { gen, ev }) => {
                        let sig = self.on_ipc(gen, ev);
                        if self.is_current(gen) {
                            match sig {
                                Sig::Ready => return Wait::Ready,
                                Sig::Listening => return Wait::Listening,
                                Sig::None => {}
                            }
                        }
                    }
                },
                _ = sleep_until(deadline) => return Wait::Timeout,
            }
        }
    }

    /// Whether a deferred request will stop the process (so waiting for it to be ready is pointless).
    fn stop_pending(&self) -> bool {
        self.deferred.iter().any(|e| e.op.cuts_in())
    }

    /// Waits until the current child signals `want` (`Ready`, or `Listening` which `Ready` also
    /// satisfies), exits, or the deadline passes, or a stop request cuts in. The retiring child's exit
    /// is noted, not returned.
    async fn wait_current(&mut self, deadline: Instant, want: Sig) -> Wait {
        loop {
            match self.next_event(deadline, true).await {
                Wait::Listening if want == Sig::Ready => {}
                Wait::RetiredExited(code, signal) => {
                    self.retiring = None;
                    dlog(format!(
                        "App {} previous process exited (code {:?}, signal {:?})",
                        self.label(),
                        code,
                        signal
                    ));
                }
                w => return w,
            }
        }
    }

    /// Handles one IPC event of the child of generation `gen`.
    fn on_ipc(&mut self, gen: u64, ev: ChannelEvent) -> Sig {
        let who = if self.is_current(gen) {
            self.running.as_ref()
        } else if self.is_retiring(gen) {
            self.retiring.as_ref()
        } else {
            return Sig::None;
        };
        let (wid, tx) = match who {
            Some(r) => (r.wid, r.ipc.clone()),
            None => return Sig::None,
        };
        let sig = match ev {
            ChannelEvent::Message(v) => self.on_message(wid, tx.as_ref(), v),
            ChannelEvent::Handle { msg, .. } => {
                // A handle the app sent us (e.g. process.send(m, server)): ACKed by the channel and
                // closed here (the fd drops); the message itself is delivered.
                self.on_message(wid, tx.as_ref(), msg)
            }
            ChannelEvent::Fault(f) => {
                dlog(format!("App {} IPC: {f}", self.label()));
                Sig::None
            }
            ChannelEvent::Closed => {
                if let Some(c) = &self.ctx.cluster {
                    if wid != 0 {
                        c.worker_gone(wid);
                    }
                }
                for r in [self.running.as_mut(), self.retiring.as_mut()].into_iter().flatten() {
                    if r.gen == gen {
                        r.ipc = None;
                    }
                }
                Sig::None
            }
        };
        if sig == Sig::Listening {
            for r in [self.running.as_mut(), self.retiring.as_mut()].into_iter().flatten() {
                if r.gen == gen {
                    r.listened = true;
                }
            }
        }
        sig
    }

    fn on_cluster(&mut self, wid: u64, tx: Option<&ChannelTx>, o: &serde_json::Map<String, Value>) -> Sig {
        let Some(cluster) = self.ctx.cluster.clone() else { return Sig::None };
        if let Some(ack) = o.get("ack").and_then(|v| v.as_u64()) {
            let accepted = o.get("accepted").and_then(|v| v.as_bool()).unwrap_or(false);
            cluster.on_ack(ack, accepted);
            return Sig::None;
        }
        match o.get("act").and_then(|v| v.as_str()) {
            Some("queryServer") => {
                if let Some(tx) = tx {
                    cluster.query_server(wid, tx, &Value::Object(o.clone()));
                }
                Sig::None
            }
            Some("listening") => Sig::Listening,
            Some("close") => {
                if let Some(k) = o.get("key").and_then(|v| v.as_str()) {
                    cluster.worker_close(wid, k);
                }
                Sig::None
            }
            Some("exitedAfterDisconnect") => {
                if let (Some(tx), Some(seq)) = (tx, o.get("seq")) {
                    tx.send(json!({"cmd": "NODE_CLUSTER", "ack": seq, "seq": crate::cluster::next_seq()}));
                }
                cluster.worker_gone(wid);
                Sig::None
            }
            _ => Sig::None,
        }
    }

    fn on_message(&mut self, wid: u64, tx: Option<&ChannelTx>, v: Value) -> Sig {
        if let Some(o) = v.as_object() {
            if o.get("cmd").and_then(|c| c.as_str()) == Some("NODE_CLUSTER") {
                return self.on_cluster(wid, tx, o);
            }
        }
        let at = now_ms();
        let process = self.process_json();
        if v.as_str() == Some("ready") {
            self.emit("process:msg", json!({"at": at, "raw": "ready", "process": process}));
            return Sig::Ready;
        }
        if let Some(o) = v.as_object() {
            let truthy = |x: Option<&Value>| !matches!(x, None | Some(Value::Null) | Some(Value::Bool(false)));
            if let (Some(Value::String(t)), true) = (o.get("type"), truthy(o.get("data"))) {
                if t == "axm:monitor" {
                    self.st.axm_monitor = o.get("data").cloned();
                    self.publish();
                }
                self.emit(t, json!({"at": at, "data": o.get("data"), "process": process}));
                return Sig::None;
            }
            if o.contains_key("node_version") {
                return Sig::None;
            }
        }
        self.emit("process:msg", json!({"at": at, "raw": v, "process": process}));
        Sig::None
    }

    /// An exit nobody asked for: apply the restart policy.
    async fn on_crash(&mut self, code: Option<i32>, signal: Option<i32>) {
        if let Some(r) = self.running.take() {
            if let (Some(c), true) = (&self.ctx.cluster, r.wid != 0) {
                c.worker_gone(r.wid);
            }
        }
        let _ = std::fs::remove_file(&self.paths.pid);
        self.st.pid = None;
        self.st.exit_code = code;
        self.st.exit_signal = signal.map(signal_name);
        dlog(format!(
            "App {} exited with code [{}] via signal [{}]",
            self.label(),
            code.map(|c| c.to_string()).unwrap_or_else(|| "null".into()),
            self.st.exit_signal.clone().unwrap_or_else(|| "none".into())
        ));
        self.event("exit", false);
        let now = now_ms();
        self.counters.unstable_restarts = self.st.unstable_restarts;
        let d = policy::on_exit(&self.spec, &mut self.counters, code, now, self.st.created_at, self.st.pm_uptime);
        self.st.unstable_restarts = self.counters.unstable_restarts;
        self.st.prev_restart_delay = self.counters.prev_restart_delay;
        match d {
            Decision::Stop => self.set_status(Status::Stopped),
            Decision::Errored => {
                dlog(format!(
                    "Script {} had too many unstable restarts ({}). Stopped. \"errored\"",
                    self.spec.script.display(),
                    self.spec.max_restarts
                ));
                self.st.unstable_restarts = 0;
                self.set_status(Status::Errored);
                self.event("restart overlimit", false);
                self.event("errored", false);
            }
            Decision::Restart { delay_ms } => {
                self.st.restart_reason = Some(match (code, &self.st.exit_signal) {
                    (Some(c), _) => format!("exited with code {c}"),
                    (None, Some(s)) => format!("killed by {s}"),
                    _ => "exited".into(),
                });
                if delay_ms == 0 {
                    self.st.restart_time = self.st.restart_time.saturating_add(1);
                    let _ = self.start_now(false).await;
                } else {
                    dlog(format!("App {} will restart in {delay_ms}ms", self.label()));
                    self.restart_at = Some(Instant::now() + Duration::from_millis(delay_ms));
                    self.set_status(Status::WaitingRestart);
                }
            }
        }
    }

    /// Grace period of a graceful retirement: the app's `PM2_GRACEFUL_TIMEOUT` env, else kill_timeout.
    fn grace_ms(&self) -> u64 {
        self.spec.env.get("PM2_GRACEFUL_TIMEOUT").and_then(|v| v.trim().parse().ok()).unwrap_or(self.spec.kill_timeout)
    }

    /// Stops the running child, if any: `'shutdown'` message or SIGINT to the group, SIGKILL after
    /// kill_timeout; descendants left after the main process is gone are killed too.
    async fn stop_running(&mut self) {
        let Some(r) = self.running.take() else { return };
        self.st.status = Status::Stopping;
        self.publish();
        self.retire(r, false).await;
        self.st.pid = None;
        let _ = std::fs::remove_file(&self.paths.pid);
        // PM2 publishes `exit` for every exit, requested ones included.
        self.event("exit", true);
    }

    /// Retires one child. `graceful` (reload): stop routing to it, send cluster `disconnect` and
    /// `'shutdown'`, wait the grace period, then SIGINT. Otherwise: `'shutdown'` (when
    /// shutdown_with_message) or SIGINT at once. Then SIGKILL after kill_timeout.
    async fn retire(&mut self, r: Running, graceful: bool) {
        let pid = r.pid as i32;
        let label = self.label();
        if let (Some(c), true) = (&self.ctx.cluster, r.wid != 0) {
            c.worker_gone(r.wid);
        }
        let target = if self.spec.treekill { Pid::from_raw(-pid) } else { Pid::from_raw(pid) };
        let ipc = r.ipc.clone();
        self.retiring = Some(r);
        let mut exit = None;
        if graceful {
            if let Some(tx) = &ipc {
                if self.spec.exec_mode == crate::config::spec::ExecMode::Cluster {
                    tx.send(json!({"cmd": "NODE_CLUSTER", "act": "disconnect", "seq": crate::cluster::next_seq()}));
                }
                tx.send(json!("shutdown"));
            }
            let grace = Instant::now() + Duration::from_millis(self.grace_ms());
            exit = self.wait_retired(grace).await;
        }
        if exit.is_none() {
            let by_message = !graceful
                && self.spec.shutdown_with_message
                && ipc.as_ref().map(|t| t.send(json!("shutdown"))).unwrap_or(false);
            if !by_message {
                let _ = kill(target, Signal::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_millis(self.spec.kill_timeout);
            exit = self.wait_retired(deadline).await;
            if exit.is_none() {
                dlog(format!("App {label} still alive after {}ms, sending SIGKILL", self.spec.kill_timeout));
                let _ = kill(target, Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                exit = self.wait_retired(Instant::now() + Duration::from_secs(10)).await;
            }
        }
        if self.spec.treekill {
            // Descendants that outlived the main process: a short grace, then SIGKILL.
            let deadline = Instant::now() + Duration::from_millis(self.spec.kill_timeout.min(1000));
            while kill(Pid::from_raw(-pid), None).is_ok() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        }
        if let Some(r) = self.retiring.take() {
            if let Some(tx) = r.ipc {
                tx.close();
            }
        }
        let (code, signal) = exit.unwrap_or((None, None));
        self.st.exit_code = code;
        self.st.exit_signal = signal.map(signal_name);
        dlog(format!("App {label} stopped (code {:?}, signal {:?})", code, self.st.exit_signal));
    }

    /// Waits for the retiring child's exit until the deadline. A current child that exits meanwhile
    /// is remembered for the main loop.
    async fn wait_retired(&mut self, deadline: Instant) -> Option<(Option<i32>, Option<i32>)> {
        loop {
            match self.next_event(deadline, false).await {
                Wait::RetiredExited(c, s) => return Some((c, s)),
                Wait::Timeout => return None,
                Wait::Exited(c, s) => self.pending_exit = Some((c, s)),
                Wait::Ready | Wait::Listening | Wait::Interrupted => {}
            }
        }
    }

    /// Zero-downtime reload of a cluster worker; a graceful restart otherwise (fork mode, or not running).
    async fn reload(&mut self) -> Result<(), String> {
        let cluster = self.spec.exec_mode == crate::config::spec::ExecMode::Cluster && self.ctx.cluster.is_some();
        if !cluster || self.running.is_none() || self.st.status != Status::Online {
            self.restart_at = None;
            let was_running = self.running.is_some();
            self.stop_running().await;
            if was_running {
                self.st.restart_time = self.st.restart_time.saturating_add(1);
            }
            self.st.restart_reason = Some("reload requested".into());
            self.event("reload", true);
            return self.start_now(true).await;
        }
        let Some(old) = self.running.take() else { return Ok(()) };
        let old_uptime = self.st.pm_uptime;
        // The old worker keeps serving (it is "retiring" but still routed) while the new one starts.
        self.retiring = Some(old);
        if let Err(e) = self.spawn_child() {
            self.running = self.retiring.take();
            return Err(format!("reload of {} failed: {e}; the old process keeps serving", self.label()));
        }
        let old_listened = self.retiring.as_ref().map(|r| r.listened).unwrap_or(false);
        let want = if self.spec.wait_ready { Sig::Ready } else { Sig::Listening };
        let outcome = if want == Sig::Listening && !old_listened {
            // The app never listened (a worker without a server): the new process is ready when it
            // is still alive after a short settling time, bounded by listen_timeout.
            let settle =
                Instant::now() + Duration::from_millis(self.spec.listen_timeout.min(self.spec.min_uptime).max(100));
            match self.wait_current(settle, Sig::Ready).await {
                Wait::Timeout => Wait::Listening,
                other => other,
            }
        } else {
            let deadline = Instant::now() + Duration::from_millis(self.spec.listen_timeout);
            self.wait_current(deadline, want).await
        };
        let ok = matches!(outcome, Wait::Ready | Wait::Listening);
        if !ok {
            // Roll back: kill the new worker, keep the old one serving.
            let reason = match outcome {
                Wait::Exited(c, _) => format!("the new process exited (code {c:?}) before it was ready"),
                Wait::Interrupted => "a stop or delete request came before the new process was ready".to_string(),
                _ => format!(
                    "the new process was not {} within listen_timeout ({} ms)",
                    if want == Sig::Ready { "ready" } else { "listening" },
                    self.spec.listen_timeout
                ),
            };
            if let Some(newr) = self.running.take() {
                if let Some(c) = &self.ctx.cluster {
                    c.worker_gone(newr.wid);
                }
                let _ = kill(Pid::from_raw(-(newr.pid as i32)), Signal::SIGKILL);
                if !matches!(outcome, Wait::Exited(..)) {
                    // Reap it so its exit does not count as a crash of the old one.
                    let gen = newr.gen;
                    self.retiring_extra_wait(gen).await;
                }
            }
            self.running = self.retiring.take();
            self.pending_exit = None;
            if let Some(r) = &self.running {
                self.st.pid = Some(r.pid);
            }
            self.st.pm_uptime = old_uptime;
            self.publish();
            let msg = format!(
                "reload of {} rolled back: {reason}; the old process (pid {}) keeps serving",
                self.label(),
                self.st.pid.unwrap_or(0)
            );
            dlog(&msg);
            return Err(msg);
        }
        self.admit_current();
        self.st.restart_time = self.st.restart_time.saturating_add(1);
        self.st.restart_reason = Some("reload requested".into());
        self.set_status(Status::Online);
        self.event("reload", true);
        if let Some(old) = self.retiring.take() {
            self.retire(old, true).await;
        }
        if let Some(r) = &self.running {
            self.st.pid = Some(r.pid);
        }
        self.publish();
        Ok(())
    }

    /// Waits (briefly) for the exit of a killed generation that is neither current nor retiring.
    async fn retiring_extra_wait(&mut self, gen: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::select! {
                m = self.inbox.recv() => match m {
                    None => return,
                    Some(Msg::Ctl(c)) => self.deferred.push_back(c),
                    Some(Msg::Exited { gen: g, .. }) if g == gen => return,
                    Some(Msg::Exited { .. }) => {}
                    Some(Msg::Ipc { gen: g, ev }) => { self.on_ipc(g, ev); }
                },
                _ = sleep_until(deadline) => return,
            }
        }
    }
}

enum Wait {
    /// A `stop` or `delete` request arrived (it is deferred, and runs next).
    Interrupted,
    Ready,
    Listening,
    Timeout,
    Exited(Option<i32>, Option<i32>),
    RetiredExited(Option<i32>, Option<i32>),
}

/// A child's stdout or stderr, read by readiness (see [`pump`]).
struct Pipe(tokio::net::unix::pipe::Receiver);

impl Pipe {
    fn from_fd(fd: std::os::fd::OwnedFd) -> std::io::Result<Pipe> {
        tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map(Pipe)
    }
}

/// A read smaller than this is followed by [`COALESCE_WAIT`] before the next one.
const COALESCE_BELOW: usize = 4 * 1024;
/// How long output may gather in a pipe after a small read (bounds the added log latency).
const COALESCE_WAIT: Duration = Duration::from_millis(1);

thread_local! {
    /// One read buffer for every pump of the (single-threaded) daemon: an idle app costs no buffer.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
}

/// Copies a child's pipe to its log files and the bus until EOF, line by line: whole lines go on at
/// once, a partial line is held until its end arrives (or `PARTIAL_FLUSH` passes), so prefixes and
/// bus events never split a line. Reading only as fast as the files take the data is the
/// back-pressure: a child that writes faster than the disk blocks in write(), memory stays bounded.
async fn pump(
    pipe: Pipe,
    stream: Stream,
    logs: Arc<Mutex<LogFiles>>,
    bus: broadcast::Sender<BusEvent>,
    process: Value,
) {
    let src = crate::logs::next_source();
    let label = format!("[{}:{}]", process["name"].as_str().unwrap_or(""), process["pm_id"]);
    let mut lines = crate::logs::LineAssembler::new();
    let topic = if stream == Stream::Out { "log:out" } else { "log:err" };
    let emit = |data: &[u8]| {
        if data.is_empty() {
            return;
        }
        let (written, errors) = match logs.lock() {
            Ok(mut l) => {
                let w = l.write(src, stream, data);
                let w = if bus.receiver_count() > 0 && !w.is_empty() {
                    Some(String::from_utf8_lossy(&w).into_owned())
                } else {
                    None
                };
                (w, std::mem::take(&mut l.errors))
            }
            Err(_) => (None, vec![]),
        };
        for e in errors {
            dlog(format!("App {label}: {e}"));
        }
        if let Some(data) = written {
            let _ = bus.send(BusEvent {
                topic: topic.into(),
                data: json!({"process": process, "at": now_ms(), "data": data}),
            });
        }
    };
    loop {
        let deadline = lines.deadline();
        let ready = tokio::select! {
            r = pipe.0.readable() => r,
            _ = async { match deadline { Some(t) => sleep_until(t.into()).await, None => std::future::pending().await } } => {
                emit(&lines.take());
                continue;
            }
        };
        if ready.is_err() {
            break;
        }
        // Read and hand on synchronously (no await while the shared buffer is borrowed).
        let (eof, got) = READ_BUF.with(|b| {
            let mut b = b.borrow_mut();
            match pipe.0.try_read(&mut b) {
                Ok(0) => (true, 0),
                Ok(n) => {
                    let ready = lines.push(&b[..n]);
                    emit(&ready);
                    (false, n)
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => (false, 0),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => (false, 0),
                Err(_) => (true, 0),
            }
        });
        if eof {
            break;
        }
        // A chatty app writes line by line: after a partial read, let a millisecond of output gather
        // in the pipe (64 KiB holds it) so a burst costs a few large reads instead of one per line.
        if got > 0 && got < COALESCE_BELOW {
            tokio::time::sleep(COALESCE_WAIT).await;
        }
    }
    emit(&lines.take());
}
