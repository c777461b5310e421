//! Reaching one given worker for a health probe: the daemon owns the round-robin hand-off, so a
//! probe of worker N opens a private loopback connection and hands its accepted side to worker N
//! exactly as a round-robin connection (`newconn`), whatever the balancer would have picked.

use super::app::Server;
use super::*;
use tokio::net::{TcpListener, TcpStream};

/// Where a probe of a worker's port goes.
pub enum ProbeRoute {
    /// The worker gets the connection through the hand-off to its round-robin server `key`.
    HandOff(String),
    /// The app's server on that port is shared (the kernel balances): connect to the port itself.
    Direct,
    /// The worker does not listen on that port (yet).
    NotListening,
}

impl ClusterApp {
    /// How a probe of worker `wid` on TCP `port` reaches it (see [`ProbeRoute`]).
    pub fn probe_route(&self, wid: u64, port: u16) -> ProbeRoute {
        let Ok(servers) = self.servers.lock() else { return ProbeRoute::NotListening };
        for (key, s) in servers.iter() {
            match s {
                Server::RoundRobin { sockname, workers, .. }
                    if workers.contains(&wid) && sockname.get("port").and_then(Value::as_u64) == Some(port.into()) =>
                {
                    return ProbeRoute::HandOff(key.clone());
                }
                Server::Shared { sock, workers, .. } if workers.contains(&wid) => {
                    let bound = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(
                        std::os::fd::AsRawFd::as_raw_fd(sock),
                    )
                    .ok()
                    .and_then(|a| {
                        a.as_sockaddr_in().map(|s| s.port()).or_else(|| a.as_sockaddr_in6().map(|s| s.port()))
                    });
                    if bound == Some(port) {
                        return ProbeRoute::Direct;
                    }
                }
                _ => {}
            }
        }
        ProbeRoute::NotListening
    }
}

/// Opens a loopback TCP connection whose other end is handed to the worker behind `tx` as a
/// connection of its server `key` (Node's `newconn`); returns our end. The worker's answer to the
/// hand-off is taken by its channel hook like any other (no hand-off is pending under that seq).
pub async fn connect_to_worker(tx: &ChannelTx, key: &str) -> std::io::Result<TcpStream> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (ours, theirs) = tokio::try_join!(TcpStream::connect(addr), async { listener.accept().await.map(|(s, _)| s) })?;
    drop(listener);
    let fd: OwnedFd = theirs.into_std()?.into();
    let key_json = serde_json::to_string(key).unwrap_or_else(|_| "\"\"".into());
    let line = format!(
        r#"{{"cmd":"NODE_HANDLE","type":"net.Native","msg":{{"cmd":"NODE_CLUSTER","act":"newconn","key":{key_json},"seq":{}}}}}"#,
        next_seq()
    );
    let mut line = line.into_bytes();
    line.push(b'\n');
    if !tx.send_handle_line(line, Arc::new(fd), false) {
        return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the worker's IPC channel is closed"));
    }
    Ok(ours)
}

impl ClusterApp {
    /// Takes worker `wid` (whose channel is `tx`) off the round-robin rotation of every server it
    /// listens on, as on probation: [`ClusterApp::admit`] routes to it again. Connections already
    /// handed to it stay with it.
    pub fn suspend(&self, wid: u64, tx: &ChannelTx) {
        let Ok(servers) = self.servers.lock() else { return };
        let mut keys = Vec::new();
        for (key, s) in servers.iter() {
            if let Server::RoundRobin { tx: stx, workers, .. } = s {
                if workers.contains(&wid) {
                    let _ = stx.send(RrMsg::RemoveWorker { wid, dead: false });
                    keys.push((key.clone(), tx.clone()));
                }
            }
        }
        drop(servers);
        if let Ok(mut h) = self.held.lock() {
            h.entry(wid).or_default().extend(keys);
        }
    }
}
