//! The tokio task that drives one channel: commands, readiness, the close linger.

use super::*;

/// The channel task.
pub(super) async fn run(
    mut st: Task,
    fd: OwnedFd,
    mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    events_tx: mpsc::Sender<ChannelEvent>,
) {
    match register(fd) {
        Ok(afd) => {
            drive(&mut st, &afd, &mut cmd_rx, &events_tx).await;
            let _ = nix::sys::socket::shutdown(afd.as_raw_fd(), nix::sys::socket::Shutdown::Both);
            drop(afd);
        }
        Err(e) => st.fault(format_args!("cannot set up the channel: {e}")),
    }
    st.shared.closed.store(true, Ordering::Release);
    cmd_rx.close();
    // Commands sent before the close took effect are dropped, reported handles told about.
    st.done = true;
    while let Ok(cmd) = cmd_rx.try_recv() {
        st.on_cmd(cmd);
    }
    st.report_unsent();
    if let Some(h) = st.hook.as_mut() {
        h.on_closed();
    }
    let events = std::mem::take(&mut st.events);
    let deliver = !st.events_closed;
    drop(st); // closes every fd still held (pending, parked, in flight)
    if deliver {
        for ev in events {
            if events_tx.send(ev).await.is_err() {
                return;
            }
        }
        let _ = events_tx.send(ChannelEvent::Closed).await;
    }
}

thread_local! {
    /// The read buffer of every channel driven on this thread (see `drive`).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK]);
}

/// The event loop: returns when the channel must shut down.
pub(super) async fn drive(
    st: &mut Task,
    afd: &AsyncFd<OwnedFd>,
    cmd_rx: &mut mpsc::UnboundedReceiver<Cmd>,
    events_tx: &mpsc::Sender<ChannelEvent>,
) {
    let mut cmd_open = true;
    let mut deadline: Option<Instant> = None;
    loop {
        if let Some(h) = st.hook.as_mut() {
            h.on_activity();
        }
        if st.done || (st.events_closed && !cmd_open) {
            return;
        }
        if st.closing {
            if st.write_idle() {
                return;
            }
            if deadline.is_none() {
                deadline = Some(Instant::now() + CLOSE_LINGER);
            }
        }
        let want_event = !st.events.is_empty();
        let want_read = !want_event && st.wq_bytes < MAX_QUEUED;
        let want_write = !st.wq.is_empty();
        // Lazy: the timer is only created (and the time driver only needed) once close() was called.
        let linger = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            permit = events_tx.reserve(), if want_event => match permit {
                Ok(permit) => {
                    if let Some(ev) = st.events.pop_front() {
                        permit.send(ev);
                    }
                    while !st.events.is_empty() {
                        let Ok(permit) = events_tx.try_reserve() else { break };
                        if let Some(ev) = st.events.pop_front() {
                            permit.send(ev);
                        }
                    }
                }
                Err(_) => {
                    st.events_closed = true;
                    st.events.clear();
                }
            },
            guard = afd.writable(), if want_write => match guard {
                Ok(_) => st.do_write(afd),
                Err(e) => st.io_error("poll", e),
            },
            guard = afd.readable(), if want_read => match guard {
                Ok(mut guard) => {
                    // One read buffer per thread, borrowed only for this synchronous read: an
                    // idle channel holds none (16 KiB less per app). Should a read ever nest in
                    // another on the same thread, it gets a buffer of its own.
                    SCRATCH.with(|s| match s.try_borrow_mut() {
                        Ok(mut buf) => st.do_read(&mut guard, &mut buf),
                        Err(_) => st.do_read(&mut guard, &mut vec![0u8; READ_CHUNK]),
                    });
                    drop(guard);
                    if !st.wq.is_empty() {
                        // ACKs to write, or messages released by the child's ACK.
                        st.do_write(afd);
                    }
                }
                Err(e) => st.io_error("poll", e),
            },
            () = events_tx.closed(), if !st.events_closed => {
                // Nobody listens any more: events are dropped (fds closed) from now on.
                st.events_closed = true;
                st.events.clear();
            },
            cmd = cmd_rx.recv(), if cmd_open => match cmd {
                Some(cmd) => {
                    st.on_cmd(cmd);
                    // Take every command already queued, then write at once.
                    while let Ok(cmd) = cmd_rx.try_recv() {
                        st.on_cmd(cmd);
                    }
                    if !st.wq.is_empty() {
                        st.do_write(afd);
                    }
                }
                None => cmd_open = false,
            },
            () = linger, if deadline.is_some() => {
                st.fault(format_args!(
                    "closed with {} bytes still unsent after {} ms",
                    st.shared.queued.load(Ordering::Acquire),
                    CLOSE_LINGER.as_millis()
                ));
                return;
            },
            else => return,
        }
    }
}
