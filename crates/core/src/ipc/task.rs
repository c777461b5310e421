//! The channel task's state and its outgoing side: queueing, parking behind a handle in flight,
//! pipelining, ACK/NACK bookkeeping and retransmission.

use super::*;

/// A received fd (or, `None`, fds lost to `MSG_CTRUNC`) waiting for its `NODE_HANDLE` line. `end` is the
/// stream offset just past the bytes of the read that carried it: the kernel attaches fds to the first
/// byte of the message they were sent with, so only a line starting before `end` can own it.
pub(super) struct RecvFd {
    pub(super) fd: Option<OwnedFd>,
    pub(super) end: u64,
}

/// One line queued for writing. `fd` is attached to the first `sendmsg` of the line only.
pub(super) struct WriteItem {
    pub(super) bytes: Vec<u8>,
    pub(super) off: usize,
    pub(super) fd: Option<Arc<OwnedFd>>,
    /// This is the line of the handle in flight (its fd going out marks the handle as sent).
    pub(super) handle_line: bool,
}

/// An outgoing message not yet in the write queue.
pub(super) enum Outgoing {
    Plain(Vec<u8>),
    Handle(Vec<u8>, Arc<OwnedFd>, HandleOpts),
}

/// How a handle is sent.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct HandleOpts {
    /// May be in flight together with other pipelined handles.
    pub(super) pipelined: bool,
    /// Sent with [`ChannelTx::send_handle_line`]: if it never reaches the app, the hook is told.
    pub(super) report: bool,
}

/// A handle sent (or being sent) and not yet ACKed/NACKed. Several only when pipelined.
pub(super) struct Inflight {
    pub(super) bytes: Vec<u8>,
    pub(super) fd: Arc<OwnedFd>,
    pub(super) retransmissions: u32,
    /// The fd has been handed to the kernel (so an ACK/NACK for it can be legitimate).
    pub(super) sent: bool,
    pub(super) pipelined: bool,
    pub(super) report: bool,
    /// The line went out in the same `sendmsg` as its fd (so it arrives in one read with it).
    pub(super) whole: bool,
    /// Stream offset just past the line, once it is completely written.
    pub(super) end: Option<u64>,
}

/// The channel task's state, apart from the fd and the channels (kept separate for borrowing).
pub(super) struct Task {
    pub(super) label: String,
    pub(super) shared: Arc<Shared>,
    /// Received bytes not yet consumed: at most one partial line after processing.
    pub(super) rbuf: Vec<u8>,
    /// Bytes at the start of `rbuf` already known to hold no newline.
    pub(super) scanned: usize,
    /// Total bytes received.
    pub(super) stream_pos: u64,
    pub(super) rfds: VecDeque<RecvFd>,
    pub(super) wq: VecDeque<WriteItem>,
    /// Unwritten bytes in `wq` (reading pauses above `MAX_QUEUED`, so ACK replies stay bounded).
    pub(super) wq_bytes: usize,
    pub(super) parked: VecDeque<Outgoing>,
    pub(super) inflight: VecDeque<Inflight>,
    pub(super) events: VecDeque<ChannelEvent>,
    pub(super) events_closed: bool,
    pub(super) closing: bool,
    pub(super) done: bool,
    pub(super) hook: Option<Box<dyn ChannelHook>>,
    /// Bytes the kernel has accepted on this socket so far.
    pub(super) written: u64,
    /// Stream offset up to which the child has certainly read: the end of the last handle line it ACKed.
    pub(super) acked_upto: u64,
}

impl Task {
    pub(super) fn new(label: String, shared: Arc<Shared>) -> Task {
        Task {
            label,
            shared,
            rbuf: Vec::new(),
            scanned: 0,
            stream_pos: 0,
            rfds: VecDeque::new(),
            wq: VecDeque::new(),
            wq_bytes: 0,
            parked: VecDeque::new(),
            inflight: VecDeque::new(),
            events: VecDeque::new(),
            events_closed: false,
            closing: false,
            done: false,
            hook: None,
            written: 0,
            acked_upto: 0,
        }
    }

    pub(super) fn emit(&mut self, ev: ChannelEvent) {
        if !self.events_closed {
            self.events.push_back(ev);
        }
    }

    pub(super) fn fault(&mut self, what: impl std::fmt::Display) {
        let text = format!("ipc[{}]: {}", self.label, what);
        self.emit(ChannelEvent::Fault(text));
    }

    // ----- outgoing -----

    pub(super) fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Send(bytes) => self.submit_or_drop(Outgoing::Plain(bytes)),
            Cmd::SendHandle(bytes, fd, o) => self.submit_or_drop(Outgoing::Handle(bytes, fd, o)),
            Cmd::Close => self.closing = true,
            Cmd::Overflow => self.fault(format_args!(
                "more than {MAX_QUEUED} bytes waiting to be written (the child is not reading); dropping new messages"
            )),
        }
    }

    pub(super) fn submit_or_drop(&mut self, out: Outgoing) {
        if self.closing || self.done {
            // Raced with close(): the sender saw the channel open.
            let len = match &out {
                Outgoing::Plain(b) | Outgoing::Handle(b, _, _) => b.len(),
            };
            self.release(len);
            if let (Outgoing::Handle(bytes, _, o), Some(h)) = (&out, self.hook.as_mut()) {
                if o.report {
                    h.on_handle_dropped(bytes);
                }
            }
        } else {
            self.submit(out);
        }
    }

    /// Queues `out` for writing, or parks it while a handle is in flight (unless both are pipelined
    /// handles and [`Task::may_pipeline`] allows it). Its bytes are already counted.
    pub(super) fn submit(&mut self, out: Outgoing) {
        // Nothing overtakes a parked message.
        let go = self.parked.is_empty() && self.may_go(&out);
        self.submit_if(out, go);
    }

    /// Whether `out`, first in line, may be written now.
    pub(super) fn may_go(&self, out: &Outgoing) -> bool {
        match out {
            _ if self.inflight.is_empty() => true,
            Outgoing::Handle(bytes, _, o) if o.pipelined => self.may_pipeline(bytes.len()),
            _ => false,
        }
    }

    pub(super) fn submit_if(&mut self, out: Outgoing, go: bool) {
        if !go {
            self.parked.push_back(out);
            return;
        }
        match out {
            Outgoing::Plain(bytes) => self.push_write(bytes, None, false),
            Outgoing::Handle(bytes, fd, o) => {
                self.push_write(bytes.clone(), Some(fd.clone()), true);
                let inf = Inflight {
                    bytes,
                    fd,
                    retransmissions: 0,
                    sent: false,
                    pipelined: o.pipelined,
                    report: o.report,
                    whole: false,
                    end: None,
                };
                self.inflight.push_back(inf);
            }
        }
    }

    /// Whether a pipelined handle line of `len` bytes may be written now, with handles still in flight:
    /// they are all pipelined, went out whole, fewer than [`MAX_PIPELINED`], and everything the child
    /// may not have read yet, this line included, fits in [`PIPELINE_WINDOW`].
    pub(super) fn may_pipeline(&self, len: usize) -> bool {
        let unread = (self.written + self.wq_bytes as u64).saturating_sub(self.acked_upto) + len as u64;
        self.inflight.len() < MAX_PIPELINED
            && unread <= PIPELINE_WINDOW as u64
            && self.inflight.iter().all(|i| i.pipelined && i.sent && i.whole)
    }

    /// Queues a line the channel itself writes (ACK/NACK, retransmission), counting its bytes.
    pub(super) fn push_internal(&mut self, bytes: Vec<u8>, fd: Option<Arc<OwnedFd>>, handle_line: bool) {
        self.shared.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        self.push_write(bytes, fd, handle_line);
    }

    pub(super) fn push_write(&mut self, bytes: Vec<u8>, fd: Option<Arc<OwnedFd>>, handle_line: bool) {
        self.wq_bytes += bytes.len();
        self.wq.push_back(WriteItem { bytes, off: 0, fd, handle_line });
    }

    /// `n` counted bytes were written or dropped.
    pub(super) fn release(&mut self, n: usize) {
        let before = self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) <= MAX_QUEUED / 2 {
            self.shared.overflowed.store(false, Ordering::Release);
        }
    }

    /// Moves parked messages to the write queue, in order, while they may go.
    pub(super) fn release_parked(&mut self) {
        while let Some(out) = self.parked.front() {
            if !self.may_go(out) {
                break;
            }
            if let Some(out) = self.parked.pop_front() {
                self.submit_if(out, true);
            }
        }
    }

    /// The child answered our oldest handle in flight (`nack` = it got the line without the fd).
    pub(super) fn on_handle_reply(&mut self, nack: bool) {
        let (bytes, fd, tries) = match self.inflight.front_mut() {
            Some(inf) if inf.sent => {
                if !nack || inf.pipelined || inf.retransmissions >= MAX_HANDLE_RETRANSMISSIONS {
                    (None, None, inf.retransmissions)
                } else {
                    // Only a lone handle is sent again (a retransmission behind pipelined ones
                    // could pair with the wrong fd).
                    inf.retransmissions += 1;
                    inf.sent = false;
                    inf.whole = false;
                    inf.end = None;
                    (Some(inf.bytes.clone()), Some(inf.fd.clone()), 0)
                }
            }
            _ => {
                let which = if nack { CMD_NACK } else { CMD_ACK };
                self.fault(format_args!("{which} received but no handle is waiting for one; ignored"));
                return;
            }
        };
        if let Some(bytes) = bytes {
            self.push_internal(bytes, fd, true);
            return;
        }
        let Some(done) = self.inflight.pop_front() else { return };
        if let Some(end) = done.end {
            // The child parsed that line, so it has read everything before its end.
            self.acked_upto = self.acked_upto.max(end);
        }
        if nack {
            self.fault(format_args!("child NACKed a handle {} times; dropped it", tries + 1));
            if done.report {
                if let Some(h) = self.hook.as_mut() {
                    h.on_handle_dropped(&done.bytes);
                }
            }
        }
        self.release_parked();
    }

    /// Bytes were accepted by the kernel: advance the write queue.
    pub(super) fn advance(&mut self, mut n: usize) {
        self.wq_bytes -= n.min(self.wq_bytes);
        self.release(n);
        let start = self.written;
        self.written += n as u64;
        let mut newly_sent = false;
        if let Some(front) = self.wq.front_mut() {
            if front.fd.take().is_some() && front.handle_line {
                // The first handle in flight not yet sent is this line's (handle lines are queued in
                // the order they go in flight).
                let whole = n >= front.bytes.len() - front.off;
                if let Some(inf) = self.inflight.iter_mut().find(|i| !i.sent) {
                    inf.sent = true;
                    inf.whole = whole;
                    newly_sent = true;
                }
            }
        }
        let mut pos = start;
        while n > 0 {
            let Some(front) = self.wq.front_mut() else {
                break;
            };
            let left = front.bytes.len() - front.off;
            if n >= left {
                n -= left;
                pos += left as u64;
                if front.handle_line {
                    if let Some(inf) = self.inflight.iter_mut().find(|i| i.sent && i.end.is_none()) {
                        inf.end = Some(pos);
                    }
                }
                self.wq.pop_front();
            } else {
                front.off += n;
                n = 0;
            }
        }
        if newly_sent && !self.parked.is_empty() {
            // A pipelined handle may follow the one that just went out.
            self.release_parked();
        }
    }

    /// The `sendmsg` carrying the front line's fd failed (nothing was sent): drop that message.
    pub(super) fn drop_front_handle(&mut self, err: &io::Error) {
        if let Some(item) = self.wq.pop_front() {
            let left = item.bytes.len() - item.off;
            self.wq_bytes -= left.min(self.wq_bytes);
            self.release(left);
            self.fault(format_args!("could not send a handle ({err}); dropped it"));
            if item.handle_line {
                // The handle whose fd was going out: the first one not yet sent.
                if let Some(i) = self.inflight.iter().position(|i| !i.sent) {
                    if let Some(dropped) = self.inflight.remove(i) {
                        if dropped.report {
                            if let Some(h) = self.hook.as_mut() {
                                h.on_handle_dropped(&dropped.bytes);
                            }
                        }
                    }
                }
                self.release_parked();
            }
        }
    }

    /// The channel is closing: tells the hook about every reported handle whose fd never went out
    /// (parked, or in flight and not yet written), so the caller can send it elsewhere.
    pub(super) fn report_unsent(&mut self) {
        let Some(h) = self.hook.as_mut() else { return };
        for inf in self.inflight.iter().filter(|i| i.report && !i.sent) {
            h.on_handle_dropped(&inf.bytes);
        }
        for out in &self.parked {
            if let Outgoing::Handle(bytes, _, o) = out {
                if o.report {
                    h.on_handle_dropped(bytes);
                }
            }
        }
        self.inflight.retain(|i| !i.report || i.sent);
        self.parked.retain(|o| !matches!(o, Outgoing::Handle(_, _, o) if o.report));
    }

    /// Nothing left to write for a graceful close.
    pub(super) fn write_idle(&self) -> bool {
        self.wq.is_empty() && self.inflight.is_empty() && self.parked.is_empty()
    }
}
