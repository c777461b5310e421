//! Starting the child: its command line, environment, process group, IPC channel, output pumps and
//! exit waiter; then, with `wait_ready`, the wait for `ready`.

use super::preload;
use super::pump::{pump, Pipe};
use super::{Actor, Msg, Running, Sig, Status, Wait, WORKER_ID};
use crate::base::dlog;
use crate::base::fmt::now_ms;
use crate::config::spec::ExecMode;
use crate::ipc::{self, ChannelEvent, ChannelTx};
use crate::logs::Stream;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::time::{Duration, Instant};

impl Actor {
    /// The child's environment: the spec's env (without Node's channel variables), then PM2's
    /// variables (pm_id, name, NODE_APP_INSTANCE or instance_var, increment_var, log paths, ...).
    pub(super) fn child_env(&self) -> Vec<(String, String)> {
        let s = &self.spec;
        let mut env: Vec<(String, String)> = s
            .env
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "NODE_CHANNEL_FD" | "NODE_CHANNEL_SERIALIZATION_MODE" | "NODE_UNIQUE_ID" | preload::ENV_FLAG
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let path_str = |p: &Option<std::path::PathBuf>| {
            p.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "/dev/null".into())
        };
        let instance_value = self.ctx.instance.to_string();
        if let Some(var) = &s.increment_var {
            // checked: the base comes from the user's env; on overflow the variable keeps its value.
            if let Some(v) =
                s.env.get(var).and_then(|v| v.parse::<i64>().ok()).and_then(|b| b.checked_add(self.ctx.instance.into()))
            {
                env.push((var.clone(), v.to_string()));
            }
        }
        // Only the named variable carries the instance number (`instance_var`), as PM2.
        env.push((s.instance_var.clone(), instance_value));
        env.extend([
            ("pm_id".to_string(), self.ctx.pm_id.to_string()),
            ("name".into(), s.name.clone()),
            ("namespace".into(), s.namespace.clone()),
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

    /// Spawns the child (the caller marks the app `errored` when this fails, with the reason returned).
    pub(super) fn spawn_child(&mut self) -> Result<(), String> {
        let s = self.spec.clone();
        let mut cmd = self.command();
        let cluster = s.exec_mode == ExecMode::Cluster && self.ctx.cluster.is_some();
        let wid = if cluster { WORKER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) } else { 0 };
        if cluster {
            cmd.env("NODE_UNIQUE_ID", wid.to_string());
        }
        let channel = if s.is_node() { self.open_channel(&mut cmd) } else { None };
        let mut tcmd = tokio::process::Command::from(cmd);
        tcmd.kill_on_drop(false);
        let mut child = match tcmd.spawn() {
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
            self.attach_channel(ours, wid, gen)
        });
        self.attach_pumps(&mut child);
        let stdin = child.stdin.take().map(stdin_writer);
        let inbox = self.self_tx.clone();
        tokio::spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let (code, signal) = match child.wait().await {
                Ok(st) => (st.code(), st.signal()),
                Err(_) => (None, None),
            };
            let _ = inbox.send(Msg::Exited { gen, code, signal });
        });
        self.write_pid_file(pid);
        let readiness = s.probes.readiness.is_some();
        if let (Some(c), true) = (&self.ctx.cluster, wid != 0 && (s.wait_ready || readiness)) {
            // Routed to only once it said 'ready' and passed its readiness probe (see start_now / reload).
            c.hold(wid);
        }
        let heartbeat = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(now_ms()));
        let probes = self.start_probes(gen, wid, ipc_tx.as_ref(), &heartbeat);
        self.running = Some(Running { gen, pid, ipc: ipc_tx, wid, listened: false, stdin, heartbeat, probes });
        self.st.ready = readiness.then_some(false);
        self.st.axm_actions.clear();
        self.st.axm_monitor = None;
        self.st.pid = Some(pid);
        self.st.pm_uptime = now_ms();
        self.st.exit_code = None;
        self.st.exit_signal = None;
        self.report_log_errors();
        Ok(())
    }

    /// The child's command: interpreter, node args, script and args, cwd, a clean environment, stdin,
    /// stdout and stderr piped (stdin stays open for `send`/`attach`, as PM2), its own process group.
    /// A Node app also gets the metrics preload (`--require <home>/metrics-preload.cjs` before its own
    /// node args, and `RPM2_METRICS=1`), unless `pmx: false`.
    fn command(&self) -> std::process::Command {
        let s = &self.spec;
        let preload = self.metrics_preload();
        let mut cmd = match &s.interpreter {
            Some(i) => {
                let mut c = std::process::Command::new(i);
                if let Some(p) = &preload {
                    c.arg("--require").arg(p);
                }
                c.args(&s.node_args).arg(&s.script);
                c
            }
            None => std::process::Command::new(&s.script),
        };
        cmd.args(&s.args)
            .current_dir(&s.cwd)
            .env_clear()
            .envs(self.child_env())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if preload.is_some() {
            cmd.env(preload::ENV_FLAG, "1");
        }
        // Own process group: stop signals reach the whole tree, and the app is not hit by signals
        // sent to the daemon's group.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// The metrics preload's path when this app gets it (a Node app without `pmx: false`). When the
    /// file cannot be written the app starts without it (logged).
    fn metrics_preload(&self) -> Option<std::path::PathBuf> {
        if !preload::wanted(&self.spec) {
            return None;
        }
        match preload::ensure(&self.ctx.home) {
            Ok(p) => Some(p),
            Err(e) => {
                dlog(format!("App {}: no code metrics (cannot write the metrics preload: {e})", self.label()));
                None
            }
        }
    }

    /// Creates the IPC socket pair and sets `cmd` up to hand the child its end as Node's channel fd.
    /// None (the app starts without a channel) when the pair cannot be created.
    fn open_channel(&self, cmd: &mut std::process::Command) -> Option<(OwnedFd, OwnedFd)> {
        match ipc::socketpair() {
            Ok((ours, theirs)) => {
                let raw = theirs.as_raw_fd();
                for (k, v) in ipc::child_env() {
                    cmd.env(k, v);
                }
                // SAFETY: install_child_fd only calls dup2/fcntl (async-signal-safe).
                unsafe {
                    std::os::unix::process::CommandExt::pre_exec(cmd, move || ipc::install_child_fd(raw));
                }
                Some((ours, theirs))
            }
            Err(e) => {
                dlog(format!("App {}: cannot create IPC channel: {e}; starting without it", self.label()));
                None
            }
        }
    }

    /// Starts the channel task on our end of the pair; its events reach the inbox tagged with `gen`.
    fn attach_channel(&self, ours: OwnedFd, wid: u64, gen: u64) -> ChannelTx {
        // A cluster worker's replies to `newconn` (one per connection) go straight to the round-robin
        // servers from the channel task, without a JSON parse or a hop through here.
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
    }

    /// Starts one output pump per piped stream of `child`.
    fn attach_pumps(&self, child: &mut tokio::process::Child) {
        for (stream, pipe) in [
            (Stream::Out, child.stdout.take().and_then(|p| p.into_owned_fd().ok()).and_then(|f| Pipe::from_fd(f).ok())),
            (Stream::Err, child.stderr.take().and_then(|p| p.into_owned_fd().ok()).and_then(|f| Pipe::from_fd(f).ok())),
        ] {
            if let Some(pipe) = pipe {
                tokio::spawn(pump(pipe, stream, self.logs.clone(), self.ctx.bus.clone(), self.process_json()));
            }
        }
    }

    /// Writes a line to the running child's stdin (queued; written in order by its writer task).
    /// Fails when the app is not running or its stdin is closed.
    pub(super) fn write_stdin(&self, line: String) -> Result<(), String> {
        match self.running.as_ref().and_then(|r| r.stdin.as_ref()) {
            Some(tx) if tx.send(line).is_ok() => Ok(()),
            Some(_) => Err(format!("app {} has closed its standard input", self.label())),
            None => Err(format!("process {} is offline: start it first", self.label())),
        }
    }

    /// Writes the pid file (a failure is logged: the app runs without it).
    fn write_pid_file(&self, pid: u32) {
        if let Some(dir) = self.paths.pid.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&self.paths.pid, pid.to_string()) {
            dlog(format!("App {}: cannot write pid file {}: {e}", self.label(), self.paths.pid.display()));
        }
    }

    /// Spawns and, with `wait_ready`, waits for `ready` (bounded by listen_timeout).
    pub(super) async fn start_now(&mut self, manually: bool) -> Result<(), String> {
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
                    let how = super::exit::how_it_ended(code, signal.map(super::signal_name).as_deref());
                    return Err(format!("app {} {how} while launching", self.label()));
                }
                Wait::Interrupted => {
                    // Still `launching`: the stop request queued behind this one stops it next.
                    dlog(format!("App {} stopped by request before it sent 'ready'", self.label()));
                    return Err(format!("app {} was stopped before it was ready", self.label()));
                }
                Wait::RetiredExited(..) | Wait::Readiness(_) => {}
            }
        }
        if self.st.ready == Some(false) {
            // Online (and routed to) once its readiness probe passes: see on_readiness.
            self.set_status(Status::Launching);
            dlog(format!("App {} started, waiting for its readiness probe", self.label()));
            return Ok(());
        }
        self.admit_current();
        self.set_status(Status::Online);
        dlog(format!("App {} online", self.label()));
        self.event("online", manually);
        Ok(())
    }

    /// Lets the current worker receive connections (ends a wait_ready probation); a worker whose
    /// readiness probe has not passed stays on probation.
    pub(super) fn admit_current(&self) {
        if let (Some(c), Some(r)) = (&self.ctx.cluster, &self.running) {
            if r.wid != 0 && self.st.ready != Some(false) {
                c.admit(r.wid);
            }
        }
    }
}

/// Starts the task that writes queued lines to a child's stdin, in order. It ends (closing the pipe)
/// when the sender is dropped with the child's [`Running`](super::Running), or when a write fails
/// (the child closed its end).
fn stdin_writer(mut pipe: tokio::process::ChildStdin) -> tokio::sync::mpsc::UnboundedSender<String> {
    use tokio::io::AsyncWriteExt;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if pipe.write_all(line.as_bytes()).await.is_err() || pipe.flush().await.is_err() {
                break;
            }
        }
    });
    tx
}
