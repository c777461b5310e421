//! Framing and socket calls: one JSON line per message, `sendmsg`/`recvmsg` with `SCM_RIGHTS`.

use super::*;

/// Serializes `msg` as one JSON line. serde_json escapes control characters, so the line has no raw
/// newline inside, and a `Value` cannot hold NaN/Infinity.
pub(super) fn encode(msg: &Value) -> Option<Vec<u8>> {
    let mut bytes = serde_json::to_vec(msg).ok()?;
    bytes.push(b'\n');
    Some(bytes)
}

/// The handshake `cmd` of `msg`, if it is one.
pub(super) fn reserved_cmd(msg: &Value) -> Option<&'static str> {
    match msg.get("cmd").and_then(Value::as_str) {
        Some(CMD_HANDLE) => Some(CMD_HANDLE),
        Some(CMD_ACK) => Some(CMD_ACK),
        Some(CMD_NACK) => Some(CMD_NACK),
        _ => None,
    }
}

/// Sends the front of the queue: the front line alone with its fd, or up to `MAX_IOV` fd-less lines.
pub(super) fn send_front(raw: RawFd, wq: &VecDeque<WriteItem>) -> io::Result<usize> {
    let Some(front) = wq.front() else {
        return Ok(0);
    };
    let flags = crate::base::platform::SEND_FLAGS;
    if let Some(fd) = &front.fd {
        let iov = [IoSlice::new(&front.bytes[front.off..])];
        let fds = [fd.as_raw_fd()];
        let cmsgs = [ControlMessage::ScmRights(&fds)];
        return sendmsg::<()>(raw, &iov, &cmsgs, flags, None).map_err(io::Error::from);
    }
    let mut iov = [IoSlice::new(&[]); MAX_IOV];
    let mut count = 0;
    for item in wq.iter().take(MAX_IOV) {
        if item.fd.is_some() {
            break;
        }
        iov[count] = IoSlice::new(&item.bytes[item.off..]);
        count += 1;
    }
    sendmsg::<()>(raw, &iov[..count], &[], flags, None).map_err(io::Error::from)
}

/// `recvmsg(MSG_CMSG_CLOEXEC)` (or its fallback, see `base::platform`) into `buf`, returning the byte count, every fd received (owned, so
/// none can leak, including those that arrived with a truncated control buffer) and whether the control
/// data was truncated.
pub(super) fn recv_with_fds(raw: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    // u64 array: cmsghdr alignment.
    let mut cbuf = [0u64; CMSG_BUF_LEN.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: an all-zero msghdr is valid; we then point it at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at `iov`/`buf` and `cbuf`, which outlive the call.
    let n = unsafe { libc::recvmsg(raw, &mut msg, crate::base::platform::RECV_FLAGS) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `cbuf` with msg_controllen bytes of well-formed cmsgs; the CMSG_*
    // macros stay within it, and each SCM_RIGHTS fd is a new fd installed in our process for us to own.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let len = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                for i in 0..len / std::mem::size_of::<libc::c_int>() {
                    let raw_fd = std::ptr::read_unaligned(data.add(i));
                    if raw_fd >= 0 {
                        crate::base::platform::after_recv_fd(raw_fd);
                        fds.push(OwnedFd::from_raw_fd(raw_fd));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, fds, msg.msg_flags & libc::MSG_CTRUNC != 0))
}

pub(super) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

pub(super) fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    set_nonblocking(&fd)?;
    // `with_interest` is deprecated in recent tokio for lack of I/O safety; an OwnedFd is I/O-safe,
    // and this form compiles on every tokio 1.x.
    #[allow(deprecated)]
    AsyncFd::with_interest(fd, Interest::READABLE | Interest::WRITABLE)
}
