//! The one place for calls that only Linux has, each with its fallback for other Unix systems
//! (macOS, the BSDs), so that a build for another Unix is a compile away, not a port.
//!
//! | what | Linux | other Unix (fallback) |
//! |---|---|---|
//! | process figures ([`process`], [`processes`]) | `/proc/<pid>/stat` | `ps -A -o pid,ppid,state,time,rss,lstart` (one fork per sample; CPU time in 1/100 s) |
//! | child exit | tokio's pidfd reaper | tokio's SIGCHLD reaper (rpm2d is a pure Rust process: no libuv handler to fight with) |
//! | orphan reaping in `rpm2-runtime` ([`become_subreaper`]) | `prctl(PR_SET_CHILD_SUBREAPER)` | none: orphans go to init/launchd; the runtime still reaps its own children |
//! | peer uid of a client ([`peer_uid`]) | `SO_PEERCRED` | `getpeereid` (both through tokio's `peer_cred`) |
//! | signal wait with a timeout ([`wait_signal`]) | `sigtimedwait` | `sigpending` polled every 20 ms, then `sigwait` |
//! | close-on-exec socketpair, fds received close-on-exec, no SIGPIPE on send ([`socketpair_cloexec`], [`RECV_FLAGS`], [`after_recv_fd`], [`SEND_FLAGS`]) | `SOCK_CLOEXEC`, `MSG_CMSG_CLOEXEC`, `MSG_NOSIGNAL` | `FD_CLOEXEC` set right after, `SO_NOSIGPIPE` on the socket |
//! | open descriptors ([`open_fds`]), the file behind a descriptor ([`fd_path`]) | `/proc/self/fd` | `/dev/fd`; `fd_path` gives None (the daemon log then uses `RPM2_HOME`'s path) |
//! | system figures of the web API ([`proc_text`], [`loadavg`]) | `/proc/{uptime,meminfo,cpuinfo,stat}`, `/proc/loadavg` | None (zeros in the payload); `getloadavg` |
//! | native file watching | inotify (through notify); [`native_watch_limit`] reads `fs.inotify.max_user_watches` | notify's FSEvents (macOS) or kqueue (BSD) backend; no limit to report |
//!
//! Nothing here panics; every fallback returns an empty or default value rather than an error.

use std::os::fd::OwnedFd;
use std::time::Duration;
/// One process's figures, or None when it does not exist (or cannot be read).
pub fn process(pid: u32) -> Option<Stat> {
    imp::process(pid)
}

/// Every process on the machine that can be read.
pub fn processes() -> Vec<Stat> {
    imp::processes()
}

/// Makes this process the reaper of its orphaned descendants. Returns false where the system has no
/// such notion (then orphans go to init, and only direct children are reaped by us).
pub fn become_subreaper() -> bool {
    imp::become_subreaper()
}

/// The uid of the process at the other end of a Unix socket, or None when it cannot be told.
pub fn peer_uid(stream: &tokio::net::UnixStream) -> Option<u32> {
    stream.peer_cred().ok().map(|c| c.uid())
}

/// Waits up to `timeout` for one of the signals in `set` (which must be blocked in every thread) and
/// takes it; None on timeout.
pub fn wait_signal(set: &nix::sys::signal::SigSet, timeout: Duration) -> Option<nix::sys::signal::Signal> {
    imp::wait_signal(set, timeout)
}

/// A connected `AF_UNIX` stream socketpair, both ends close-on-exec (and, where `MSG_NOSIGNAL` does
/// not exist, with `SO_NOSIGPIPE`).
pub fn socketpair_cloexec() -> std::io::Result<(OwnedFd, OwnedFd)> {
    imp::socketpair_cloexec()
}

/// Flags for `sendmsg` on rpm2's sockets: no SIGPIPE when the peer is gone (EPIPE instead).
pub const SEND_FLAGS: nix::sys::socket::MsgFlags = imp::SEND_FLAGS;

/// Flags for `recvmsg` with `SCM_RIGHTS`: received descriptors close-on-exec where the kernel can
/// do it atomically; [`after_recv_fd`] does it otherwise.
pub const RECV_FLAGS: libc::c_int = imp::RECV_FLAGS;

/// Called on each descriptor received with [`RECV_FLAGS`]: sets close-on-exec where the receive
/// could not.
pub fn after_recv_fd(fd: libc::c_int) {
    imp::after_recv_fd(fd)
}

/// The descriptors open in this process (may include the one used to list them, already closed).
pub fn open_fds() -> Vec<i32> {
    let dir = if cfg!(target_os = "linux") { "/proc/self/fd" } else { "/dev/fd" };
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => vec![],
    }
}

/// The path of the file open on descriptor `fd`, where the system tells it.
pub fn fd_path(fd: i32) -> Option<std::path::PathBuf> {
    if cfg!(target_os = "linux") {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
    } else {
        None
    }
}

/// The text of `/proc/<name>` (`uptime`, `meminfo`, `cpuinfo`, `stat`) on Linux; None elsewhere.
pub fn proc_text(name: &str) -> Option<String> {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string(format!("/proc/{name}")).ok()
    } else {
        None
    }
}

/// The 1, 5 and 15 minute load averages (zeros when unknown).
pub fn loadavg() -> [f64; 3] {
    let mut v = [0.0f64; 3];
    // SAFETY: getloadavg writes at most 3 doubles into the array we own.
    let n = unsafe { libc::getloadavg(v.as_mut_ptr(), 3) };
    if n == 3 {
        v
    } else {
        [0.0; 3]
    }
}

/// The system's limit on native file watches, for the message when it is reached (inotify's
/// `fs.inotify.max_user_watches` on Linux; None elsewhere).
pub fn native_watch_limit() -> Option<String> {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches").ok().map(|s| s.trim().to_string())
    } else {
        None
    }
}

/// Limits glibc's malloc to one arena (a daemon that is single-threaded on its hot path would
/// otherwise keep megabytes per thread); nothing elsewhere (musl and macOS have no arenas to limit).
/// Call before any thread exists.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; the caller runs before the runtime's threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the allocator's free pages back to the system (glibc keeps them otherwise, so one large
/// reply would stay in the daemon's RSS); nothing elsewhere. Costs a walk of the free lists.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `[[dd-]hh:]mm:ss[.cc]` (POSIX `ps -o time`, and macOS's `m:ss.cc`) in 1/100 s.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn parse_cputime(s: &str) -> Option<u64> {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let mut secs = 0f64;
    for part in rest.split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(((days as f64 * 86400.0 + secs) * 100.0) as u64)
}

/// One line of `ps -o pid=,ppid=,state=,time=,rss=,lstart=`; the start time is a hash of `lstart`
/// (stable for the life of the process, which is all it is used for).
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn parse_ps_line(line: &str) -> Option<Stat> {
    let mut f = line.split_whitespace();
    let pid = f.next()?.parse().ok()?;
    let ppid = f.next()?.parse().ok()?;
    let state = f.next()?.chars().next()?;
    let ticks = parse_cputime(f.next()?)?;
    let rss = f.next()?.parse::<u64>().ok()?.saturating_mul(1024);
    let lstart: Vec<&str> = f.collect();
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    lstart.hash(&mut h);
    Some(Stat { pid, ppid, state, ticks, rss, start_time: h.finish() })
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use nix::sys::signal::{SigSet, Signal};

    fn page_size() -> u64 {
        match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
            Ok(Some(v)) if v > 0 => v as u64,
            _ => 4096,
        }
    }

    pub(super) fn process(pid: u32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        super::parse_stat(&text, page_size())
    }

    pub(super) fn processes() -> Vec<Stat> {
        let page = page_size();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().map(|s| s.bytes().all(|b| b.is_ascii_digit())).unwrap_or(false))
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter_map(|t| super::parse_stat(&t, page))
            .collect()
    }

    pub(super) fn become_subreaper() -> bool {
        nix::sys::prctl::set_child_subreaper(true).is_ok()
    }

    pub(super) fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
        let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as _ };
        // SAFETY: sigtimedwait reads the set and the timespec we own; a null siginfo pointer is allowed.
        let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
        if r > 0 {
            Signal::try_from(r).ok()
        } else {
            None
        }
    }

    pub(super) fn socketpair_cloexec() -> std::io::Result<(OwnedFd, OwnedFd)> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType};
        Ok(nix::sys::socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)?)
    }

    pub(super) const SEND_FLAGS: nix::sys::socket::MsgFlags = nix::sys::socket::MsgFlags::MSG_NOSIGNAL;
    pub(super) const RECV_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;

    pub(super) fn after_recv_fd(_fd: libc::c_int) {}
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;
    use nix::sys::signal::{SigSet, Signal};
    use std::os::fd::AsRawFd;

    fn ps(args: &[&str]) -> Vec<Stat> {
        let out = std::process::Command::new("ps")
            .args(args)
            .args(["-o", "pid=,ppid=,state=,time=,rss=,lstart="])
            .env("LC_ALL", "C")
            .stderr(std::process::Stdio::null())
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).lines().filter_map(super::parse_ps_line).collect(),
            Err(_) => vec![],
        }
    }

    pub(super) fn process(pid: u32) -> Option<Stat> {
        ps(&["-p", &pid.to_string()]).into_iter().find(|s| s.pid == pid)
    }

    pub(super) fn processes() -> Vec<Stat> {
        ps(&["-A"])
    }

    pub(super) fn become_subreaper() -> bool {
        false
    }

    pub(super) fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            // SAFETY: sigpending fills the zeroed set we own; it is a valid sigset_t afterwards.
            let pending = unsafe {
                let mut raw: libc::sigset_t = std::mem::zeroed();
                (libc::sigpending(&mut raw) == 0).then(|| SigSet::from_sigset_t_unchecked(raw))
            };
            if pending.is_some_and(|p| Signal::iterator().any(|s| set.contains(s) && p.contains(s))) {
                return set.wait().ok();
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
        }
    }

    fn set_cloexec(fd: libc::c_int) {
        // SAFETY: fcntl on a descriptor we own; failure leaves it as it was.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFD);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFD, fl | libc::FD_CLOEXEC);
            }
        }
    }

    pub(super) fn socketpair_cloexec() -> std::io::Result<(OwnedFd, OwnedFd)> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType};
        let (a, b) = nix::sys::socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::empty())?;
        for fd in [&a, &b] {
            set_cloexec(fd.as_raw_fd());
            #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
            // SAFETY: setsockopt reads the int we own, on a socket we own.
            unsafe {
                let on: libc::c_int = 1;
                let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_NOSIGPIPE,
                    (&on as *const libc::c_int).cast(),
                    len,
                );
            }
        }
        Ok((a, b))
    }

    pub(super) const SEND_FLAGS: nix::sys::socket::MsgFlags = nix::sys::socket::MsgFlags::empty();
    pub(super) const RECV_FLAGS: libc::c_int = 0;

    pub(super) fn after_recv_fd(fd: libc::c_int) {
        set_cloexec(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process_and_fds() {
        let me = std::process::id();
        let s = process(me).expect("own process readable");
        assert_eq!(s.pid, me);
        assert!(s.rss > 0);
        assert!(processes().iter().any(|p| p.pid == me));
        assert!(open_fds().contains(&2));
        assert!(loadavg().iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn parses_ps_output_of_the_fallback() {
        assert_eq!(parse_cputime("00:01:02"), Some(6200));
        assert_eq!(parse_cputime("1:02.50"), Some(6250));
        assert_eq!(parse_cputime("2-00:00:01"), Some(2 * 8_640_000 + 100));
        assert_eq!(parse_cputime("x"), None);
        let s = parse_ps_line("  412     1 Ss    0:00.05   2048 Mon Dec  7 03:14:26 2026").expect("a ps line");
        assert_eq!((s.pid, s.ppid, s.state, s.ticks, s.rss), (412, 1, 'S', 5, 2048 * 1024));
        let again = parse_ps_line("412 1 S 0:00.09 4096 Mon Dec  7 03:14:26 2026").expect("a ps line");
        assert_eq!(s.start_time, again.start_time, "the start time identifies the process");
        assert!(parse_ps_line("PID PPID").is_none());
    }
}

/// One process's figures (from `/proc/<pid>/stat` on Linux).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// User + system CPU time, in clock ticks.
    pub ticks: u64,
    /// Resident set size, in bytes.
    pub rss: u64,
    /// Start time since boot, in clock ticks (identifies a pid across reuse).
    pub start_time: u64,
}

/// Parses the text of `/proc/<pid>/stat`. Returns None on anything unexpected (never panics).
pub fn parse_stat(text: &str, page: u64) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    // rest[0] is field 3 (state).
    let f = |n: usize| rest.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    Some(Stat {
        pid,
        state: rest.first()?.chars().next()?,
        ppid: f(4)? as u32,
        ticks: f(14)?.saturating_add(f(15)?),
        start_time: f(22)?,
        rss: f(24)?.saturating_mul(page),
    })
}
