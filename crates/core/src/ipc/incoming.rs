//! The channel task's incoming side: line assembly, received fds matched to their `NODE_HANDLE`
//! lines, ACK/NACK answers, and the read/write steps the driver calls.

use super::*;

impl Task {
    /// Takes one read's bytes and fds, and handles every complete line.
    pub(super) fn ingest(&mut self, data: &[u8], fds: Vec<OwnedFd>, ctrunc: bool) {
        self.stream_pos += data.len() as u64;
        let end = self.stream_pos;
        for fd in fds {
            self.rfds.push_back(RecvFd { fd: Some(fd), end });
        }
        if ctrunc {
            self.rfds.push_back(RecvFd { fd: None, end });
            self.fault("control data truncated (MSG_CTRUNC): file descriptors were lost");
        }
        self.rbuf.extend_from_slice(data);
        self.process_lines();
    }

    pub(super) fn process_lines(&mut self) {
        let mut buf = std::mem::take(&mut self.rbuf);
        let base = self.stream_pos - buf.len() as u64;
        let mut start = 0;
        let mut scan = self.scanned.min(buf.len());
        while let Some(i) = buf[scan..].iter().position(|&b| b == b'\n') {
            let nl = scan + i;
            if nl - start > MAX_LINE {
                self.too_long();
                return;
            }
            self.on_line(&buf[start..nl], base + start as u64);
            start = nl + 1;
            scan = start;
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            self.too_long();
            return;
        }
        if buf.capacity() > 4 * READ_CHUNK && buf.len() <= READ_CHUNK {
            // Give back the memory of a big message once it has been parsed.
            buf.shrink_to(READ_CHUNK);
        }
        self.scanned = buf.len();
        self.rbuf = buf;
        self.drop_stale_fds(self.stream_pos - self.rbuf.len() as u64);
    }

    pub(super) fn too_long(&mut self) {
        self.fault(format_args!("line longer than {MAX_LINE} bytes; closing the channel"));
        self.rbuf = Vec::new();
        self.scanned = 0;
        self.done = true;
    }

    /// Closes received fds that no line starting at `pos` or later can own.
    pub(super) fn drop_stale_fds(&mut self, pos: u64) {
        let mut closed = 0;
        while self.rfds.front().is_some_and(|r| r.end <= pos) {
            if let Some(r) = self.rfds.pop_front() {
                if r.fd.is_some() {
                    closed += 1;
                }
            }
        }
        if closed > 0 {
            self.fault(format_args!("closed {closed} received fd(s) not attached to a NODE_HANDLE message"));
        }
    }

    pub(super) fn on_line(&mut self, line: &[u8], start: u64) {
        self.drop_stale_fds(start);
        // Fast paths: the ACK as Node writes it, and lines the hook consumes, need no JSON parse.
        if line == &ACK_LINE[..ACK_LINE.len() - 1] {
            return self.on_handle_reply(false);
        }
        if !line.starts_with(HANDLE_PREFIX) {
            if let Some(h) = self.hook.as_mut() {
                if h.on_line(line) {
                    return;
                }
            }
        }
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                let cut = line.len().min(FAULT_EXCERPT);
                let excerpt = String::from_utf8_lossy(&line[..cut]);
                let more = if cut < line.len() { "..." } else { "" };
                self.fault(format_args!("malformed JSON line skipped ({e}): {excerpt}{more}"));
                return;
            }
        };
        match reserved_cmd(&value) {
            Some(CMD_ACK) => self.on_handle_reply(false),
            Some(CMD_NACK) => self.on_handle_reply(true),
            Some(_) => {
                let fd = self.rfds.pop_front().and_then(|r| r.fd);
                match fd {
                    Some(fd) => {
                        self.push_internal(ACK_LINE.to_vec(), None, false);
                        let msg = value.get("msg").cloned().unwrap_or(Value::Null);
                        self.emit(ChannelEvent::Handle { msg, envelope: value, fd });
                    }
                    None => {
                        self.push_internal(NACK_LINE.to_vec(), None, false);
                        self.fault("NODE_HANDLE message without a file descriptor; NACKed");
                    }
                }
            }
            None => self.emit(ChannelEvent::Message(value)),
        }
    }

    pub(super) fn on_eof(&mut self) {
        if !self.rbuf.is_empty() {
            self.fault(format_args!("EOF after an incomplete line ({} bytes dropped)", self.rbuf.len()));
        }
        self.drop_stale_fds(u64::MAX);
        self.done = true;
    }

    pub(super) fn io_error(&mut self, what: &str, err: io::Error) {
        match err.raw_os_error() {
            Some(libc::EPIPE) | Some(libc::ECONNRESET) => {}
            _ => self.fault(format_args!("{what} failed: {err}; closing the channel")),
        }
        self.done = true;
    }

    /// One `recvmsg` on a readable socket.
    pub(super) fn do_read(&mut self, guard: &mut AsyncFdReadyGuard<'_, OwnedFd>, scratch: &mut [u8]) {
        match guard.try_io(|afd| recv_with_fds(afd.as_raw_fd(), scratch)) {
            Err(_would_block) => {}
            Ok(Ok((0, fds, _))) => {
                drop(fds);
                self.on_eof();
            }
            Ok(Ok((n, fds, ctrunc))) => {
                // A short read without fds means the socket was drained (the kernel stops a read early
                // only after an fd-carrying segment): skip the recvmsg that would just say EAGAIN. Data
                // arriving later raises a new readiness event.
                if n < scratch.len() && fds.is_empty() && !ctrunc {
                    guard.clear_ready();
                }
                self.ingest(&scratch[..n], fds, ctrunc)
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => self.io_error("recvmsg", e),
        }
    }

    /// Writes as much of the queue as the socket takes (until it would block: the event loop then waits
    /// for writability). Called right after new messages are queued, too, so a send costs no extra
    /// trip through the event loop.
    pub(super) fn do_write(&mut self, afd: &AsyncFd<OwnedFd>) {
        while !self.wq.is_empty() && !self.done {
            let wq = &self.wq;
            let front_has_fd = wq.front().is_some_and(|i| i.fd.is_some());
            match afd.try_io(Interest::WRITABLE, |fd| send_front(fd.as_raw_fd(), wq)) {
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::EPIPE) | Some(libc::ECONNRESET) => self.done = true,
                    _ if front_has_fd => self.drop_front_handle(&e),
                    _ => self.io_error("sendmsg", e),
                },
            }
        }
    }
}
