//! Output pumps: a child's stdout and stderr to its log files and the bus.

use super::BusEvent;
use crate::base::dlog;
use crate::base::fmt::now_ms;
use crate::logs::{LogFiles, Stream};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio::time::{sleep_until, Duration};

/// A child's stdout or stderr, read by readiness (see [`pump`]).
pub(super) struct Pipe(tokio::net::unix::pipe::Receiver);

impl Pipe {
    pub(super) fn from_fd(fd: std::os::fd::OwnedFd) -> std::io::Result<Pipe> {
        tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map(Pipe)
    }
}

/// A read smaller than this is followed by [`COALESCE_WAIT`] before the next one.
const COALESCE_BELOW: usize = 4 * 1024;
/// How long output may gather in a pipe after a small read (bounds the added log latency).
const COALESCE_WAIT: Duration = Duration::from_millis(1);

thread_local! {
    /// One read buffer for every pump of the (single-threaded) daemon: an idle app costs no buffer.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
}

/// Copies a child's pipe to its log files and the bus until EOF, line by line: whole lines go on at
/// once, a partial line is held until its end arrives (or `PARTIAL_FLUSH` passes), so prefixes and
/// bus events never split a line. Reading only as fast as the files take the data is the
/// back-pressure: a child that writes faster than the disk blocks in write(), memory stays bounded.
pub(super) async fn pump(
    pipe: Pipe,
    stream: Stream,
    logs: Arc<Mutex<LogFiles>>,
    bus: broadcast::Sender<BusEvent>,
    process: Value,
) {
    let src = crate::logs::next_source();
    let label = format!("[{}:{}]", process["name"].as_str().unwrap_or(""), process["pm_id"]);
    let mut lines = crate::logs::LineAssembler::new();
    let topic = if stream == Stream::Out { "log:out" } else { "log:err" };
    let emit = |data: &[u8]| {
        if data.is_empty() {
            return;
        }
        let (written, errors) = match logs.lock() {
            Ok(mut l) => {
                let w = l.write(src, stream, data);
                let w = if bus.receiver_count() > 0 && !w.is_empty() {
                    Some(String::from_utf8_lossy(&w).into_owned())
                } else {
                    None
                };
                (w, std::mem::take(&mut l.errors))
            }
            Err(_) => (None, vec![]),
        };
        for e in errors {
            dlog(format!("App {label}: {e}"));
        }
        if let Some(data) = written {
            let _ = bus.send(BusEvent {
                topic: topic.into(),
                data: json!({"process": process, "at": now_ms(), "data": data}),
            });
        }
    };
    loop {
        let deadline = lines.deadline();
        let ready = tokio::select! {
            r = pipe.0.readable() => r,
            _ = async { match deadline { Some(t) => sleep_until(t.into()).await, None => std::future::pending().await } } => {
                emit(&lines.take());
                continue;
            }
        };
        if ready.is_err() {
            break;
        }
        // Read and hand on synchronously (no await while the shared buffer is borrowed).
        let (eof, got) = READ_BUF.with(|b| {
            let mut b = b.borrow_mut();
            match pipe.0.try_read(&mut b) {
                Ok(0) => (true, 0),
                Ok(n) => {
                    let ready = lines.push(&b[..n]);
                    emit(&ready);
                    (false, n)
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => (false, 0),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => (false, 0),
                Err(_) => (true, 0),
            }
        });
        if eof {
            break;
        }
        // A chatty app writes line by line: after a partial read, let a millisecond of output gather
        // in the pipe (64 KiB holds it) so a burst costs a few large reads instead of one per line.
        if got > 0 && got < COALESCE_BELOW {
            tokio::time::sleep(COALESCE_WAIT).await;
        }
    }
    emit(&lines.take());
}
