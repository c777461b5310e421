//! The child's end of the channel: the socketpair, fd 3 in the forked child, and the environment
//! that tells Node to open it.

use super::*;

/// Creates a connected `AF_UNIX` `SOCK_STREAM` socketpair, both ends close-on-exec (so no other child
/// inherits them) and both numbered 3 or above (so setting up a child's stdio cannot clobber them).
/// Returns the daemon's end (give it to [`spawn`]) and the child's end (install it with
/// [`install_child_fd`], then drop it in the daemon right after spawning, or the daemon never sees EOF).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = crate::base::platform::socketpair_cloexec()?;
    Ok((above_stdio(a)?, above_stdio(b)?))
}

/// Moves `fd` to a number >= 3 (keeping CLOEXEC) when it is 0, 1 or 2.
pub(super) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // std duplicates with F_DUPFD_CLOEXEC from 3 (never onto stdio); the low-numbered original closes.
    fd.try_clone()
}

/// For use inside `Command::pre_exec` only (it runs between fork and exec and is async-signal-safe: no
/// allocation, only `dup2`/`fcntl`): makes `fd` appear as fd 3 ([`CHILD_CHANNEL_FD`]) in the child
/// without `FD_CLOEXEC`, so the exec'd program inherits it. When `fd` already is 3, its `FD_CLOEXEC` flag
/// is cleared instead. The original `fd` (close-on-exec) disappears at exec.
///
/// Do not call it in the daemon itself: it would replace whatever the daemon has on fd 3.
pub fn install_child_fd(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscalls on fd numbers; called in the forked child before exec.
    unsafe {
        if fd == CHILD_CHANNEL_FD {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        } else {
            loop {
                if libc::dup2(fd, CHILD_CHANNEL_FD) >= 0 {
                    break;
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// Environment variables a child needs to open the channel on fd 3:
/// `NODE_CHANNEL_FD=3` and `NODE_CHANNEL_SERIALIZATION_MODE=json` (the only mode this module speaks).
/// Node deletes both from `process.env` at startup, so grandchildren do not see them.
pub fn child_env() -> [(&'static str, String); 2] {
    [("NODE_CHANNEL_FD", CHILD_CHANNEL_FD.to_string()), ("NODE_CHANNEL_SERIALIZATION_MODE", "json".to_string())]
}
