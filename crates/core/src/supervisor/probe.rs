//! Health probes of one child: a tokio task per declared probe (no thread, no blocking call) checks it
//! every period, each check bounded by its timeout, and tells the actor only when the verdict changes
//! (`failure_threshold` failures or `success_threshold` successes in a row). The actor acts on it:
//! liveness restarts the instance, readiness makes it online and routable. The tasks end with the
//! child (they are aborted when its [`Running`](super::Running) is dropped).

use super::{Actor, Msg, Status};
use crate::base::dlog;
use crate::base::fmt::now_ms;
use crate::cluster::{connect_to_worker, ClusterApp, ProbeRoute};
use crate::config::spec::{ExecMode, Probe, ProbeCheck};
use crate::ipc::ChannelTx;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, timeout, Duration, Instant};

/// Which probe spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Liveness,
    Readiness,
}

/// A probe's new verdict: passed (`None`) or failed, with what failed.
pub(super) type Verdict = Result<(), String>;

/// What a probe needs to reach its child.
#[derive(Clone)]
struct Target {
    /// The cluster primary and the worker's id and channel (cluster mode only).
    worker: Option<(Arc<ClusterApp>, u64, ChannelTx)>,
    /// When the child last proved its event loop turns (epoch ms): the spawn, then each `axm:monitor`.
    heartbeat: Arc<AtomicU64>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

impl Actor {
    /// Starts the probe tasks of the child just spawned (generation `gen`); returns their handles.
    pub(super) fn start_probes(
        &self,
        gen: u64,
        wid: u64,
        ipc: Option<&ChannelTx>,
        heartbeat: &Arc<AtomicU64>,
    ) -> Vec<tokio::task::AbortHandle> {
        let p = &self.spec.probes;
        if p.is_empty() {
            return Vec::new();
        }
        let worker = match (&self.ctx.cluster, ipc) {
            (Some(c), Some(tx)) if wid != 0 && self.spec.exec_mode == ExecMode::Cluster => {
                Some((c.clone(), wid, tx.clone()))
            }
            _ => None,
        };
        let target = Target { worker, heartbeat: heartbeat.clone(), cwd: self.spec.cwd.clone(), env: self.child_env() };
        let mut out = Vec::new();
        for (kind, probe) in [(Kind::Liveness, &p.liveness), (Kind::Readiness, &p.readiness)] {
            if let Some(probe) = probe {
                let task = run(probe.clone(), kind, gen, target.clone(), self.self_tx.clone());
                out.push(tokio::spawn(task).abort_handle());
            }
        }
        out
    }

    /// A probe's verdict on the child of generation `gen` (ignored for any other child).
    pub(super) async fn on_probe(&mut self, gen: u64, kind: Kind, verdict: Verdict) {
        if !self.is_current(gen) {
            return;
        }
        match (kind, verdict) {
            (Kind::Liveness, Ok(())) => {}
            (Kind::Liveness, Err(detail)) => self.on_liveness_failed(detail).await,
            (Kind::Readiness, v) => self.on_readiness(v),
        }
    }

    /// Records a readiness verdict: a launching instance that passes becomes online (and routable);
    /// an online one that fails stops getting connections until it passes again.
    pub(super) fn on_readiness(&mut self, v: Verdict) {
        let ready = v.is_ok();
        let was = self.st.ready;
        self.st.ready = Some(ready);
        let wid = self.running.as_ref().map(|r| r.wid).unwrap_or(0);
        match v {
            Ok(()) => {
                self.admit_current();
                if self.st.status == Status::Launching {
                    self.set_status(Status::Online);
                    dlog(format!("App {} ready (readiness probe passed): online", self.label()));
                    self.event("online", false);
                    return;
                }
                if was == Some(false) {
                    dlog(format!("App {} ready again (readiness probe passed)", self.label()));
                }
            }
            Err(detail) => {
                dlog(format!("App {} not ready: readiness probe failed: {detail}", self.label()));
                if let (Some(c), Some(r)) = (&self.ctx.cluster, &self.running) {
                    if let (true, Some(tx)) = (wid != 0, &r.ipc) {
                        c.suspend(wid, tx);
                    }
                }
                self.emit(
                    "process:event",
                    json!({"event": "not ready", "manually": false, "reason": format!("readiness probe failed: {detail}"),
                           "process": self.process_json(), "at": now_ms()}),
                );
            }
        }
        self.publish();
    }

    /// Liveness failed: the instance is stopped the normal graceful way, then the restart policy
    /// decides as for a crash (delays, back-off, max_restarts), with the probe's failure as reason.
    async fn on_liveness_failed(&mut self, detail: String) {
        let reason = format!("liveness probe failed: {detail}");
        dlog(format!("App {} {reason}; restarting it", self.label()));
        self.emit(
            "process:event",
            json!({"event": "liveness failed", "manually": false, "reason": reason, "process": self.process_json(), "at": now_ms()}),
        );
        self.st.restart_reason = Some(reason.clone());
        self.stop_running().await;
        self.after_exit(None, reason).await;
    }
}

/// The probe loop: after the initial delay, one check per period (each bounded by the timeout); a
/// message to the actor whenever the verdict changes. A liveness probe starts as passing, a readiness
/// probe as unknown.
async fn run(probe: Probe, kind: Kind, gen: u64, target: Target, inbox: mpsc::UnboundedSender<Msg>) {
    sleep(Duration::from_millis(probe.initial_delay_ms)).await;
    let (mut fails, mut oks) = (0u32, 0u32);
    let mut state: Option<bool> = (kind == Kind::Liveness).then_some(true);
    // What the last failure verdict said: a failing probe whose reason changes says so again (a
    // reload then names the latest reason, not the first).
    let mut said = String::new();
    loop {
        let started = Instant::now();
        let limit = Duration::from_millis(probe.timeout_ms);
        let r = match timeout(limit, check(&probe, &target)).await {
            Ok(r) => r,
            Err(_) => Err(format!("{} timed out after {} ms", probe.describe(), probe.timeout_ms)),
        };
        let change = match r {
            Ok(()) => {
                oks = oks.saturating_add(1);
                fails = 0;
                (oks >= probe.success_threshold && state != Some(true)).then_some(Ok(()))
            }
            Err(detail) => {
                fails = fails.saturating_add(1);
                oks = 0;
                (fails >= probe.failure_threshold && (state != Some(false) || said != detail)).then_some(Err(detail))
            }
        };
        if let Some(verdict) = change {
            state = Some(verdict.is_ok());
            if let Err(d) = &verdict {
                said.clone_from(d);
            }
            if inbox.send(Msg::Probe { gen, kind, verdict }).is_err() {
                return;
            }
        }
        sleep_until(started + Duration::from_millis(probe.period_ms)).await;
    }
}

/// One check: Ok, or what failed (`GET /healthz answered 500`).
async fn check(probe: &Probe, t: &Target) -> Result<(), String> {
    let what = probe.describe();
    match &probe.check {
        ProbeCheck::EventLoop => {
            let silent = now_ms().saturating_sub(t.heartbeat.load(Ordering::Relaxed));
            if silent <= probe.period_ms + probe.timeout_ms {
                Ok(())
            } else {
                Err(format!("the event loop did not answer for {silent} ms"))
            }
        }
        ProbeCheck::TcpSocket { host, port } => {
            connect(t, host, *port).await.map(drop).map_err(|e| format!("{what}: {e}"))
        }
        ProbeCheck::HttpGet { host, port, path, headers } => {
            let mut s = connect(t, host, *port).await.map_err(|e| format!("{what}: {e}"))?;
            let status = http_status(&mut s, host, *port, path, headers).await.map_err(|e| format!("{what}: {e}"))?;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("{what} answered {status}"))
            }
        }
        ProbeCheck::Exec { command } => {
            let mut cmd = tokio::process::Command::new(&command[0]);
            cmd.args(&command[1..])
                .current_dir(&t.cwd)
                .env_clear()
                .envs(t.env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            match cmd.status().await {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    let signal = s.signal().map(super::signal_name);
                    Err(format!("{what} {}", super::exit::how_it_ended(s.code(), signal.as_deref())))
                }
                Err(e) => Err(format!("{what}: cannot run it: {e}")),
            }
        }
    }
}

/// A TCP connection for a probe: a cluster worker gets it through the daemon's hand-off (it reaches
/// that worker and no other); anything else connects to `host:port`.
async fn connect(t: &Target, host: &str, port: u16) -> Result<TcpStream, String> {
    if let Some((app, wid, tx)) = &t.worker {
        match app.probe_route(*wid, port) {
            ProbeRoute::HandOff(key) => return connect_to_worker(tx, &key).await.map_err(|e| e.to_string()),
            ProbeRoute::NotListening => return Err(format!("worker does not listen on port {port}")),
            ProbeRoute::Direct => {}
        }
    }
    TcpStream::connect((host, port)).await.map_err(|e| format!("{e} ({host}:{port})"))
}

/// Sends `GET path` and reads the status code of the answer (only its status line is read).
async fn http_status(
    s: &mut TcpStream,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: rpm2-probe\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| format!("cannot send the request: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
    }
    parse_status(&buf).ok_or_else(|| {
        if buf.is_empty() {
            "the connection closed without an answer".to_string()
        } else {
            "the answer is not HTTP".to_string()
        }
    })
}

/// The status code of an HTTP/1.x status line.
fn parse_status(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok().filter(|c| (100..600).contains(c))
}

#[cfg(test)]
mod tests {
    use super::parse_status;
    use crate::base::paths::Home;
    use crate::config::{resolve_app, ResolveCtx};
    use crate::supervisor::{spawn, Handle, ProcCtx, ProcState, Status};
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::{broadcast, Notify};

    async fn wait_state(h: &Handle, what: &str, pred: impl Fn(&ProcState) -> bool) -> ProcState {
        let mut rx = h.state.clone();
        let r = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if pred(&rx.borrow_and_update()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let st = h.state.borrow().clone();
        assert!(r.is_ok() && pred(&st), "timed out waiting for {what}; state: {st:?}");
        st
    }

    #[tokio::test(flavor = "current_thread")]
    async fn readiness_gates_online_and_liveness_restarts_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("rpm2-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let home = Home::at(dir.join("home"));
        home.ensure().unwrap();
        let (flag, sick) = (dir.join("ready"), dir.join("sick"));
        let decl = json!({"script": "sleep", "args": ["30"], "name": "probed", "kill_timeout": 300,
            "readiness_probe": {"exec": {"command": ["test", "-f", flag]}, "period_seconds": 0.05},
            "liveness_probe": {"exec": {"command": ["test", "!", "-f", sick]}, "period_seconds": 0.05, "failure_threshold": 2}});
        let rctx = ResolveCtx { cwd: dir.clone(), env: Default::default(), env_name: None };
        let spec = Arc::new(resolve_app(&decl, &rctx).unwrap().spec);
        let ctx = ProcCtx {
            pm_id: 0,
            instance: 0,
            unique_id: "t".into(),
            home,
            bus: broadcast::channel(16).0,
            changed: Arc::new(Notify::new()),
            cluster: None,
        };
        let h = spawn(spec, ctx, ProcState::new(), false);
        h.start().await.unwrap();
        let st = h.state.borrow().clone();
        assert_eq!((st.status, st.ready), (Status::Launching, Some(false)), "not online before the probe passes");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.state.borrow().status, Status::Launching, "still not ready");
        std::fs::write(&flag, "").unwrap();
        let first = wait_state(&h, "online and ready", |s| s.status == Status::Online && s.ready == Some(true)).await;
        std::fs::write(&sick, "").unwrap();
        let st = wait_state(&h, "a liveness restart", |s| s.restart_time == 1).await;
        std::fs::remove_file(&sick).unwrap();
        assert_ne!(st.pid, first.pid);
        let reason = st.restart_reason.unwrap_or_default();
        assert!(
            reason.starts_with("liveness probe failed: exec test ! -f ") && reason.ends_with("exited with code 1"),
            "{reason}"
        );
        wait_state(&h, "online again", |s| s.status == Status::Online && s.ready == Some(true)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.state.borrow().restart_time, 1, "a passing probe leaves it alone");
        h.delete().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.0 200 OK\r\nx"), Some(200));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 99999 x\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }
}
