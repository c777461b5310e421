//! Round-robin listeners: connections accepted in batches per readiness event, never registered
//! with the event loop.

use super::*;

/// A round-robin listener. Connections are accepted with plain `accept4` calls in a batch per
/// readiness event and never registered with the event loop: rpm2d only passes them on, so this saves
/// the epoll registration and removal each connection would otherwise cost.
pub(super) enum Listener {
    Tcp(tokio::io::unix::AsyncFd<std::net::TcpListener>),
    Unix(tokio::io::unix::AsyncFd<std::os::unix::net::UnixListener>),
}

/// Registers a listener with the event loop. (`AsyncFd::new` is deprecated in recent tokio for types
/// that do not prove fd ownership; std listeners own their fd, so it is sound here, as in `ipc`.)
#[allow(deprecated)]
pub(super) fn watch_fd<T: std::os::fd::AsRawFd>(l: T) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    tokio::io::unix::AsyncFd::new(l)
}

/// Most connections taken per readiness event before the other work of the server runs.
pub(super) const ACCEPT_BATCH: usize = 64;

impl Listener {
    /// Waits until the listener is readable, then accepts up to `max` connections into `out`.
    pub(super) async fn accept_batch(&self, out: &mut VecDeque<Arc<OwnedFd>>, max: usize) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => drain(l, out, max, |l| l.accept().map(|(s, _)| s.into())).await,
            Listener::Unix(l) => drain(l, out, max, |l| l.accept().map(|(s, _)| s.into())).await,
        }
    }
}

/// One readiness event's worth of `accept` calls on `l` (at most `max`); an error after at least one
/// connection ends the batch quietly (the next call reports it again).
pub(super) async fn drain<L: std::os::fd::AsRawFd>(
    l: &tokio::io::unix::AsyncFd<L>,
    out: &mut VecDeque<Arc<OwnedFd>>,
    max: usize,
    accept: impl Fn(&L) -> std::io::Result<OwnedFd>,
) -> std::io::Result<()> {
    let mut guard = l.readable().await?;
    let mut n = 0;
    while n < max {
        match accept(guard.get_inner()) {
            Ok(fd) => {
                out.push_back(Arc::new(fd));
                n += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                guard.clear_ready();
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
