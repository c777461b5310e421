//! The actor's control loop: requests are carried out one at a time, in order; exits of the child
//! and its IPC traffic are handled between them, and while an operation waits (for `ready`, for an
//! exit) through [`Actor::next_event`].

use super::handle::Envelope;
use super::policy::Counters;
use super::{Actor, BusEvent, Msg, Op, Sig, Status, Wait};
use crate::base::dlog;
use crate::base::fmt::now_ms;
use crate::config::spec::{AppSpec, ExecMode};
use crate::logs::{proc_paths, LogFiles};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::time::{sleep_until, Instant};

impl Actor {
    /// `[name:pm_id]`, as the daemon log names the app.
    pub(super) fn label(&self) -> String {
        format!("[{}:{}]", self.spec.name, self.ctx.pm_id)
    }

    /// The `process` object of bus events (PM2's shape).
    pub(super) fn process_json(&self) -> Value {
        json!({"pm_id": self.ctx.pm_id, "name": self.spec.name, "namespace": self.spec.namespace, "rev": null})
    }

    /// Publishes on the daemon's bus (nothing is built when nobody listens).
    pub(super) fn emit(&self, topic: &str, data: Value) {
        if self.ctx.bus.receiver_count() > 0 {
            let _ = self.ctx.bus.send(BusEvent { topic: topic.to_string(), data });
        }
    }

    /// Publishes a `process:event` (`online`, `exit`, `stop`, ...) with the current state.
    pub(super) fn event(&self, event: &str, manually: bool) {
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

    /// Publishes the state to `list` readers and asks the daemon to persist it.
    pub(super) fn publish(&mut self) {
        self.state_tx.send_replace(self.st.clone());
        self.ctx.changed.notify_one();
    }

    /// Sets the status and publishes the state.
    pub(super) fn set_status(&mut self, s: Status) {
        self.st.status = s;
        self.publish();
    }

    /// The control loop, until `delete`: a pending exit first, then deferred requests in order, then
    /// the inbox and the automatic-restart timer. With `start` the child is spawned first.
    pub(super) async fn run(mut self, start: bool) {
        if start {
            let _ = self.start_now(false).await;
        }
        loop {
            if let Some((code, signal)) = self.pending_exit.take() {
                self.on_crash(code, signal).await;
                continue;
            }
            if let Some((gen, kind, verdict)) = self.pending_probe.take() {
                self.on_probe(gen, kind, verdict).await;
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
                Msg::Probe { gen, kind, verdict } => self.on_probe(gen, kind, verdict).await,
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
            Op::WriteStdin(text) => self.write_stdin(text),
            Op::SetMonitored(on) => {
                self.st.km_monitored = Some(on);
                self.publish();
                Ok(())
            }
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

    /// Stops the child and publishes the final state (stopped, no pid): a reader that still holds
    /// the handle after the actor ended sees that, not the `stopping` of the stop in progress.
    async fn op_delete(&mut self) {
        self.restart_at = None;
        self.stop_running().await;
        self.st.pid = None;
        self.set_status(Status::Stopped);
        self.event("delete", true);
        let _ = std::fs::remove_file(&self.paths.pid);
    }

    async fn op_trigger(&mut self, reason: String, graceful: bool) -> Result<(), String> {
        // A reload only helps a worker that serves (listens, or says ready); one that does not
        // would only wait listen_timeout. A reload that fails becomes a restart: the cause (new
        // code, memory) must take effect.
        let cluster = self.spec.exec_mode == ExecMode::Cluster;
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
    pub(super) async fn restart(&mut self, reason: String) -> Result<(), String> {
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

    pub(super) fn report_log_errors(&self) {
        let errs = match self.logs.lock() {
            Ok(mut l) => std::mem::take(&mut l.errors),
            Err(_) => vec![],
        };
        for e in errs {
            dlog(format!("App {}: {e}", self.label()));
        }
    }

    /// Whether `gen` is the running child's generation.
    pub(super) fn is_current(&self, gen: u64) -> bool {
        self.running.as_ref().map(|r| r.gen == gen).unwrap_or(false)
    }

    /// Whether `gen` is the retiring child's generation.
    pub(super) fn is_retiring(&self, gen: u64) -> bool {
        self.retiring.as_ref().map(|r| r.gen == gen).unwrap_or(false)
    }

    /// Waits for the next event that matters to an operation in progress: the current or retiring
    /// child's exit, the current child's `ready`/`listening`, or the deadline. IPC traffic of both is
    /// served meanwhile; control requests are deferred until the operation ends.
    /// With `interruptible`, a `stop` or `delete` (arrived now or already deferred) ends the wait with
    /// [`Wait::Interrupted`]; it stays queued, behind the requests that came before it.
    pub(super) async fn next_event(&mut self, deadline: Instant, interruptible: bool) -> Wait {
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
                    Some(Msg::Probe { gen, kind, verdict }) if self.is_current(gen) => {
                        if kind == super::probe::Kind::Readiness {
                            self.st.ready = Some(verdict.is_ok());
                            return Wait::Readiness(verdict);
                        }
                        self.pending_probe = Some((gen, kind, verdict));
                    }
                    Some(Msg::Probe { .. }) => {}
                    Some(Msg::Ipc { gen, ev }) => {
                        let sig = self.on_ipc(gen, ev);
                        if self.is_current(gen) {
                            match sig {
                                Sig::Ready => return Wait::Ready,
                                Sig::Listening => return Wait::Listening,
                                Sig::None | Sig::Readiness => {}
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
    /// satisfies; `Readiness`: any verdict of its readiness probe, the others only recorded), exits, or the deadline passes, or a stop request cuts in. The retiring child's exit
    /// is noted, not returned.
    pub(super) async fn wait_current(&mut self, deadline: Instant, want: Sig) -> Wait {
        loop {
            match self.next_event(deadline, true).await {
                Wait::Listening if want != Sig::Listening => {}
                Wait::Ready if want == Sig::Readiness => {}
                Wait::Readiness(_) if want != Sig::Readiness => {}
                Wait::RetiredExited(code, signal) => {
                    self.retiring = None;
                    let signal = signal.map(super::signal_name);
                    dlog(format!(
                        "App {} previous process {}",
                        self.label(),
                        super::exit::how_it_ended(code, signal.as_deref())
                    ));
                }
                w => return w,
            }
        }
    }
}
