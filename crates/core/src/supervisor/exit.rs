//! Exits: an exit nobody asked for goes through the restart policy; a requested stop retires the
//! child (message or SIGINT, SIGKILL after kill_timeout, then the descendants).

use super::policy::{self, Decision};
use super::{signal_name, Actor, Running, Status, Wait};
use crate::base::dlog;
use crate::base::fmt::now_ms;
use crate::config::spec::ExecMode;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use tokio::time::{Duration, Instant};

impl Actor {
    /// An exit nobody asked for: apply the restart policy.
    pub(super) async fn on_crash(&mut self, code: Option<i32>, signal: Option<i32>) {
        if let Some(r) = self.running.take() {
            if let (Some(c), true) = (&self.ctx.cluster, r.wid != 0) {
                c.worker_gone(r.wid);
            }
        }
        let _ = std::fs::remove_file(&self.paths.pid);
        self.st.pid = None;
        self.st.axm_monitor = None;
        self.st.exit_code = code;
        self.st.exit_signal = signal.map(signal_name);
        let how = how_it_ended(code, self.st.exit_signal.as_deref());
        dlog(format!("App {} {how}", self.label()));
        self.event("exit", false);
        self.after_exit(code, how).await;
    }

    /// After an exit nobody asked for (or a liveness failure): the restart policy decides; a restart
    /// records `reason`.
    pub(super) async fn after_exit(&mut self, code: Option<i32>, reason: String) {
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
                self.st.restart_reason = Some(reason);
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
    pub(super) async fn stop_running(&mut self) {
        let Some(r) = self.running.take() else { return };
        self.st.status = Status::Stopping;
        self.publish();
        self.retire(r, false).await;
        self.st.pid = None;
        self.st.axm_monitor = None;
        let _ = std::fs::remove_file(&self.paths.pid);
        // PM2 publishes `exit` for every exit, requested ones included.
        self.event("exit", true);
    }

    /// Retires one child. `graceful` (reload): stop routing to it, send cluster `disconnect` and
    /// `'shutdown'`, wait the grace period, then SIGINT. Otherwise: `'shutdown'` (when
    /// shutdown_with_message) or SIGINT at once. Then SIGKILL after kill_timeout.
    pub(super) async fn retire(&mut self, r: Running, graceful: bool) {
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
                if self.spec.exec_mode == ExecMode::Cluster {
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
            if let Some(tx) = &r.ipc {
                tx.close();
            }
        }
        let (code, signal) = exit.unwrap_or((None, None));
        self.st.exit_code = code;
        self.st.exit_signal = signal.map(signal_name);
        dlog(format!("App {label} stopped ({})", how_it_ended(code, self.st.exit_signal.as_deref())));
    }

    /// Waits for the retiring child's exit until the deadline. A current child that exits meanwhile
    /// is remembered for the main loop.
    async fn wait_retired(&mut self, deadline: Instant) -> Option<(Option<i32>, Option<i32>)> {
        loop {
            match self.next_event(deadline, false).await {
                Wait::RetiredExited(c, s) => return Some((c, s)),
                Wait::Timeout => return None,
                Wait::Exited(c, s) => self.pending_exit = Some((c, s)),
                Wait::Readiness(v) => self.on_readiness(v),
                Wait::Ready | Wait::Listening | Wait::Interrupted => {}
            }
        }
    }
}

/// How a process ended, for people: `exited with code 1`, `killed by SIGINT`, or `exited`.
pub(crate) fn how_it_ended(code: Option<i32>, signal: Option<&str>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by {s}"),
        _ => "exited".into(),
    }
}
