//! Temporary stand-in for the IPC module while it is written.
use std::os::fd::{OwnedFd, RawFd};
pub const CHILD_CHANNEL_FD: i32 = 3;
pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair as sp, AddressFamily, SockFlag, SockType};
    sp(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}
pub fn install_child_fd(fd: RawFd) -> std::io::Result<()> {
    unsafe {
        if fd == 3 {
            let fl = libc::fcntl(3, libc::F_GETFD);
            libc::fcntl(3, libc::F_SETFD, fl & !libc::FD_CLOEXEC);
        } else if libc::dup2(fd, 3) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
pub fn child_env() -> [(&'static str, String); 2] {
    [
        ("NODE_CHANNEL_FD", "3".into()),
        ("NODE_CHANNEL_SERIALIZATION_MODE", "json".into()),
    ]
}
pub enum ChannelEvent {
    Message(serde_json::Value),
    Handle {
        msg: serde_json::Value,
        envelope: serde_json::Value,
        fd: OwnedFd,
    },
    Fault(String),
    Closed,
}
#[derive(Clone)]
pub struct ChannelTx(tokio::sync::mpsc::UnboundedSender<serde_json::Value>);
impl ChannelTx {
    pub fn send(&self, msg: serde_json::Value) -> bool {
        self.0.send(msg).is_ok()
    }
    pub fn close(&self) {}
}
pub fn spawn(
    fd: OwnedFd,
    _label: String,
) -> (ChannelTx, tokio::sync::mpsc::Receiver<ChannelEvent>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let (etx, erx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let std = std::os::unix::net::UnixStream::from(fd);
        let _ = std.set_nonblocking(true);
        let Ok(s) = tokio::net::UnixStream::from_std(std) else {
            return;
        };
        let (r, mut w) = s.into_split();
        let etx2 = etx.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let ev = match serde_json::from_str(&l) {
                    Ok(v) => ChannelEvent::Message(v),
                    Err(e) => ChannelEvent::Fault(e.to_string()),
                };
                if etx2.send(ev).await.is_err() {
                    break;
                }
            }
            let _ = etx2.send(ChannelEvent::Closed).await;
        });
        use tokio::io::AsyncWriteExt;
        while let Some(m) = rx.recv().await {
            let mut b = serde_json::to_vec(&m).unwrap_or_default();
            b.push(b'\n');
            if w.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    (ChannelTx(tx), erx)
}
