//! The daemon (`rpm2d --daemon`): one per `RPM2_HOME`, guarded by a lock; serves the control socket,
//! keeps the registry of apps (pm_id → supervisor handle), persists the app table atomically, samples
//! CPU/memory, and fans events out to subscribers. Handlers never hold a lock across an await.
//!
//! Layout: this file starts the daemon (lock, detach, runtime); `server` accepts connections and
//! streams subscriptions; `handlers/` answers each request; `state` is the shared [`state::Daemon`]
//! and its registry (read its rules there); `persist` saves and restores the app table; `sampler`
//! measures CPU/memory; `jlist` builds the PM2 process objects; `clusters` and `triggers` manage
//! cluster primaries and automatic restarts.

mod clusters;
mod error;
mod handlers;
mod jlist;
mod persist;
mod sampler;
mod server;
mod state;
#[cfg(test)]
mod tests;
mod triggers;

pub use persist::kill_orphans;

use crate::base::dlog;
use crate::base::paths::Home;
use anyhow::{bail, Context, Result};
use std::os::fd::AsRawFd;

/// Creates the home and takes its daemon lock (flock, held for the daemon's life). None when another
/// daemon holds it: there is exactly one daemon per home.
fn take_lock(home: &Home) -> Result<Option<std::fs::File>> {
    home.ensure()?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.lock_file())
        .with_context(|| format!("cannot open {}", home.lock_file().display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(None);
    }
    Ok(Some(lock))
}

/// Entry point of `rpm2d --daemon`: takes the home's lock (exiting quietly when another daemon holds
/// it), detaches into its own session, binds the socket and serves until killed. The parent process
/// exits 0 once the daemon is ready to accept connections, or 1 with the reason on stderr. Returns
/// whether this call started it (false: another daemon already owns the home).
pub fn start_detached(home: Home) -> Result<bool> {
    let Some(lock) = take_lock(&home)? else {
        // Another daemon owns this home (or is starting): nothing to do.
        return Ok(false);
    };
    let (rd, wr) = nix::unistd::pipe().context("cannot create a pipe")?;
    // SAFETY: no threads exist yet in this process (no runtime has been built), so fork is sound.
    match unsafe { nix::unistd::fork() }.context("cannot fork the daemon")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(wr);
            drop(lock);
            use std::io::Read;
            let mut f = std::fs::File::from(rd);
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            if s.starts_with("ok") {
                Ok(true)
            } else if s.is_empty() {
                bail!("the daemon exited before it was ready: see {}", home.daemon_log().display())
            } else {
                bail!("{}", s.trim())
            }
        }
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            redirect_stdio(&home);
            // Descriptors inherited from whoever ran the first command (a held flock, a pipe) must
            // not live on in the daemon and every app it starts.
            close_inherited_fds(&[lock.as_raw_fd(), wr.as_raw_fd()]);
            let ready = std::fs::File::from(wr);
            let code = match run(home, Some(ready), lock) {
                Ok(()) => 0,
                Err(e) => {
                    dlog(format!("daemon failed: {e:#}"));
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

/// Closes every descriptor above 2 except `keep` (single-threaded, right after the fork).
fn close_inherited_fds(keep: &[i32]) {
    for fd in crate::base::platform::open_fds() {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors this process does not use; the read_dir handle is gone.
            unsafe { libc::close(fd) };
        }
    }
}

/// Points stdin at /dev/null and stdout/stderr at the daemon log.
fn redirect_stdio(home: &Home) {
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(home.daemon_log());
    let null = std::fs::File::open("/dev/null");
    // SAFETY: dup2 onto the standard descriptors of this (single-threaded) process.
    unsafe {
        if let Ok(n) = &null {
            libc::dup2(n.as_raw_fd(), 0);
        }
        if let Ok(l) = &log {
            libc::dup2(l.as_raw_fd(), 1);
            libc::dup2(l.as_raw_fd(), 2);
        }
    }
}

/// Runs the daemon in the foreground (systemd `Type=simple`, containers): takes the home's lock,
/// fails when another daemon holds it, and serves until SIGTERM/SIGINT or `kill`.
pub fn run_foreground(home: Home) -> Result<()> {
    let Some(lock) = take_lock(&home)? else {
        bail!("another rpm2 daemon is already running for {}", home.root().display());
    };
    run(home, None, lock)
}

/// Runs the daemon in this process until `kill` or SIGTERM/SIGINT. `ready` receives `ok` once the
/// socket accepts connections (or the error). `lock` must hold the home's flock.
pub fn run(home: Home, ready: Option<std::fs::File>, lock: std::fs::File) -> Result<()> {
    // One malloc arena: the daemon is single-threaded on its hot path, and per-thread arenas (the
    // watcher, rotation and blocking threads) would each keep megabytes of RSS.
    crate::base::platform::limit_malloc_arenas();
    crate::logs::install_daemon_logger();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot build the runtime")?;
    let res = rt.block_on(server::serve(home.clone(), ready));
    let _ = std::fs::remove_file(home.socket());
    let _ = std::fs::remove_file(home.pid_file());
    drop(lock);
    res
}
