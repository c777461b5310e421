//! Reload: a cluster worker is replaced without downtime (the new one serves before the old one is
//! retired, and a new one that fails is rolled back); anything else gets a graceful restart.

use super::{Actor, Msg, Sig, Status, Wait};
use crate::base::dlog;
use crate::config::spec::ExecMode;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::{sleep_until, Duration, Instant};

impl Actor {
    /// Zero-downtime reload of a cluster worker; a graceful restart otherwise (fork mode, or not running).
    pub(super) async fn reload(&mut self) -> Result<(), String> {
        let cluster = self.spec.exec_mode == ExecMode::Cluster && self.ctx.cluster.is_some();
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
        let old_ready = self.st.ready;
        // The old worker keeps serving (it is "retiring" but still routed) while the new one starts.
        self.retiring = Some(old);
        if let Err(e) = self.spawn_child() {
            self.running = self.retiring.take();
            return Err(format!("reload of {} failed: {e}; the old process keeps serving", self.label()));
        }
        let old_listened = self.retiring.as_ref().map(|r| r.listened).unwrap_or(false);
        let want = if self.spec.probes.readiness.is_some() {
            Sig::Readiness
        } else if self.spec.wait_ready {
            Sig::Ready
        } else {
            Sig::Listening
        };
        let mut unready = None;
        let outcome = if want == Sig::Readiness {
            // Retired only once its replacement passes the readiness probe (never routed to before).
            let deadline = Instant::now() + Duration::from_millis(self.readiness_budget_ms());
            loop {
                match self.wait_current(deadline, Sig::Readiness).await {
                    Wait::Readiness(Ok(())) => break Wait::Ready,
                    Wait::Readiness(Err(detail)) => unready = Some(detail),
                    other => break other,
                }
            }
        } else if want == Sig::Listening && !old_listened {
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
                Wait::Exited(c, s) => format!(
                    "the new process {} before it was ready",
                    super::exit::how_it_ended(c, s.map(super::signal_name).as_deref())
                ),
                Wait::Interrupted => "a stop or delete request came before the new process was ready".to_string(),
                _ if want == Sig::Readiness => {
                    let probe = self.spec.probes.readiness.as_ref().map(|p| p.describe()).unwrap_or_default();
                    let why = match unready {
                        Some(detail) => format!("readiness probe failed: {detail}"),
                        None => format!("readiness probe {probe}: no verdict yet"),
                    };
                    format!("the new process was not ready within {} ms ({why})", self.readiness_budget_ms())
                }
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
            self.st.ready = old_ready;
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

    /// How long a reload waits for a replacement to pass its readiness probe: listen_timeout, plus
    /// the probe's initial delay, one period per failure and success it may need, and one timeout.
    fn readiness_budget_ms(&self) -> u64 {
        let Some(p) = &self.spec.probes.readiness else { return self.spec.listen_timeout };
        let periods = u64::from(p.failure_threshold) + u64::from(p.success_threshold);
        self.spec
            .listen_timeout
            .saturating_add(p.initial_delay_ms)
            .saturating_add(p.period_ms.saturating_mul(periods))
            .saturating_add(p.timeout_ms)
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
                    Some(Msg::Probe { gen: g, kind, verdict }) => self.pending_probe = Some((g, kind, verdict)),
                    Some(Msg::Ipc { gen: g, ev }) => { self.on_ipc(g, ev); }
                },
                _ = sleep_until(deadline) => return,
            }
        }
    }
}
