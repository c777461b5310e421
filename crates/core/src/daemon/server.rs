//! The control socket: binding, the accept loop with the daemon's signals, one task per connection
//! (the hello, then each request on its own task), and event subscriptions.

use super::error::{Answer, HandlerError};
use super::handlers;
use super::persist::{persister, restore, stop_all_keep};
use super::sampler::sampler_task;
use super::state::{handles, resolve_targets, Daemon};
use super::triggers::{sync_triggers, trigger_task};
use crate::base::dlog;
use crate::base::paths::Home;
use crate::protocol::request::{HelloParams, SubscribeParams};
use crate::protocol::{ErrorCode, Method, Request, Response, MAX_LINE, PROTOCOL_VERSION};
use crate::supervisor::BusEvent;
use anyhow::{Context, Result};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{broadcast, mpsc, Notify};

/// Binds the socket, restores the app table, starts the background tasks, says `ok` on `ready`,
/// then serves until `kill`/`shutdown` or SIGTERM/SIGINT (which stop every app, keeping the table).
pub(crate) async fn serve(home: Home, ready: Option<std::fs::File>) -> Result<()> {
    let sock = home.socket();
    let _ = std::fs::remove_file(&sock); // stale socket of a dead daemon: we hold the lock
    let listener = match bind(&home) {
        Ok(l) => l,
        Err(e) => {
            if let Some(mut r) = ready {
                use std::io::Write;
                let _ = writeln!(r, "{e:#}");
            }
            return Err(e);
        }
    };
    std::fs::write(home.pid_file(), std::process::id().to_string()).ok();
    let (d, fires) = Daemon::new(home.clone());
    dlog(format!(
        "--- rpm2d {} started (pid {}, home {}) ---",
        crate::VERSION,
        std::process::id(),
        home.root().display()
    ));
    restore(&d).await;
    sync_triggers(&d);
    tokio::spawn(trigger_task(d.clone(), fires));
    tokio::spawn(persister(d.clone()));
    tokio::spawn(sampler_task(d.clone()));
    if let Some(mut r) = ready {
        use std::io::Write;
        let _ = r.write_all(b"ok\n");
    }
    let mut term = signal(SignalKind::terminate()).context("signal handler")?;
    let mut int = signal(SignalKind::interrupt()).context("signal handler")?;
    let mut hup = signal(SignalKind::hangup()).context("signal handler")?;
    let mut usr2 = signal(SignalKind::user_defined2()).context("signal handler")?;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => { tokio::spawn(connection(d.clone(), stream)); }
                Err(e) => { dlog(format!("accept failed: {e}")); tokio::time::sleep(Duration::from_millis(50)).await; }
            },
            _ = d.shutdown.notified() => break,
            _ = term.recv() => { dlog("SIGTERM: stopping every app, keeping the app table"); stop_all_keep(&d).await; break; }
            _ = int.recv() => { dlog("SIGINT: stopping every app, keeping the app table"); stop_all_keep(&d).await; break; }
            _ = hup.recv() => {}
            _ = usr2.recv() => { for (_, h) in handles(&d) { h.reload_logs(); } }
        }
    }
    dlog("rpm2d stopped");
    Ok(())
}

/// Listens on the home's socket, reachable by its owner only (0600).
fn bind(home: &Home) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let sock = home.socket();
    // Create the socket with a restrictive umask so it is never reachable by others, even briefly.
    // SAFETY: umask is process-wide but we are single-threaded at this point of start-up.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(&sock);
    unsafe { libc::umask(old) };
    let l = l.with_context(|| format!("cannot listen on {}", sock.display()))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).ok();
    Ok(l)
}

/// Bytes of events queued per subscriber connection before new ones are dropped (and counted).
const EVENT_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// The event side of a connection: an unbounded channel whose queued bytes are counted, so a
/// subscriber that stops reading loses events instead of growing the daemon past the limit.
#[derive(Clone)]
struct EventOut {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

enum Sent {
    Ok,
    Full,
    Closed,
}

impl EventOut {
    fn send(&self, line: Vec<u8>) -> Sent {
        if self.queued.load(Ordering::Relaxed) + line.len() > EVENT_QUEUE_BYTES {
            return Sent::Full;
        }
        self.queued.fetch_add(line.len(), Ordering::Relaxed);
        let n = line.len();
        if self.tx.send(line).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return Sent::Closed;
        }
        Sent::Ok
    }
}

/// The writer task of a connection: replies first, then events (whose queued bytes it counts down).
/// Ends when both senders are gone or the client stops reading.
fn spawn_writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut ev_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    ev_queued: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (line, event) = tokio::select! {
                biased;
                l = rx.recv() => (l, false),
                l = ev_rx.recv() => (l, true),
            };
            let Some(line) = line else { break };
            let ok = wr.write_all(&line).await.is_ok();
            if event {
                ev_queued.fetch_sub(line.len(), Ordering::Relaxed);
            }
            if !ok {
                break;
            }
        }
    })
}

/// Serves one client: requests are answered concurrently, each on its own task.
async fn connection(d: Arc<Daemon>, stream: UnixStream) {
    // Only the daemon's own user may talk to it.
    match crate::base::platform::peer_uid(&stream) {
        Some(uid) if uid == nix::unistd::getuid().as_raw() => {}
        _ => {
            dlog("refused a connection from another user");
            return;
        }
    }
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    // Subscription events go through a bounded queue: a client that stops reading loses events
    // (and is told how many) instead of growing the daemon's memory.
    let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let ev_queued = Arc::new(AtomicUsize::new(0));
    let ev_out = EventOut { tx: ev_tx, queued: ev_queued.clone() };
    let writer = spawn_writer(wr, rx, ev_rx, ev_queued);
    let mut reader = BufReader::new(rd);
    let mut buf = Vec::new();
    let mut hello = false;
    let closed = Arc::new(Notify::new());
    loop {
        buf.clear();
        let n = match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if n > MAX_LINE {
            let _ = tx.send(Response::err(0, ErrorCode::BadRequest, "request line too long").to_line());
            break;
        }
        let req: Request = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("malformed request: {e}");
                let _ = tx.send(Response::err(0, ErrorCode::BadRequest, msg).to_line());
                continue;
            }
        };
        let id = req.id;
        let method = req.typed();
        if let Ok(Method::Hello(p)) = &method {
            let (reply, ok) = hello_reply(&d, id, p);
            let _ = tx.send(reply.to_line());
            if !ok {
                break;
            }
            hello = true;
            continue;
        }
        if !hello {
            let _ = tx.send(Response::err(id, ErrorCode::BadRequest, "send hello first").to_line());
            break;
        }
        let (d, tx, ev_out, closed) = (d.clone(), tx.clone(), ev_out.clone(), closed.clone());
        if let Ok(Method::Subscribe(p)) = method {
            // On the bus before the next request is read: a client may send `subscribe` and its
            // command together and still see every event of the command.
            // Both made here, so that neither an event nor the connection's end can be missed.
            let bus = d.bus.subscribe();
            let ended = closed.notified_owned();
            tokio::spawn(subscribe(d, id, p, bus, tx, ev_out, ended));
            continue;
        }
        tokio::spawn(async move {
            let resp = match method {
                Ok(m) => {
                    let read_only = m.is_read_only();
                    let r = handlers::handle(&d, m).await;
                    if !read_only {
                        sync_triggers(&d);
                    }
                    r
                }
                Err((code, message)) => {
                    sync_triggers(&d);
                    Err(HandlerError { code, message })
                }
            };
            let line = match resp {
                Ok(Answer::Value(v)) => Response::ok(id, v).to_line(),
                Ok(Answer::Json(raw)) => Response::ok_line_raw(id, &raw),
                Err(e) => Response::err(id, e.code, e.message).to_line(),
            };
            let _ = tx.send(line);
        });
    }
    closed.notify_waiters();
    drop(tx);
    let _ = writer.await;
    trim_heap_soon();
}

/// A client's requests and replies (a `jlist` of many apps is hundreds of small allocations) are
/// freed when it disconnects: give their pages back rather than keep them in the daemon's RSS. Once
/// a second at most, a second after a client left, so a burst of commands (a deploy script, the
/// bench) pays for one trim, not one per command.
fn trim_heap_soon() {
    static PENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        PENDING.store(false, Ordering::Release);
        crate::base::platform::trim_heap();
    });
}

/// The reply to `hello`, and whether the connection may go on (the protocol versions match).
fn hello_reply(d: &Daemon, id: u64, p: &HelloParams) -> (Response, bool) {
    let theirs = p.protocol;
    if theirs != PROTOCOL_VERSION as u64 {
        let msg = format!("the running daemon speaks protocol {PROTOCOL_VERSION} but this client speaks {theirs}: run `rpm2 update` to restart the daemon with the installed version");
        return (Response::err(id, ErrorCode::VersionMismatch, msg), false);
    }
    let info = json!({"protocol": PROTOCOL_VERSION, "version": crate::VERSION, "pid": std::process::id(), "home": d.home.root()});
    (Response::ok(id, info), true)
}

/// Whether a subscription to `topics` (empty: all) receives `topic`: `*`, the exact topic, or a
/// `prefix:*` pattern.
fn topic_matches(topics: &[String], topic: &str) -> bool {
    topics.is_empty()
        || topics.iter().any(|t| t == "*" || t == topic || (t.ends_with(":*") && topic.starts_with(&t[..t.len() - 1])))
}

/// Streams bus events to the connection until it closes. A subscriber that falls behind loses events
/// and is told how many with an `rpm2:lagged` event.
async fn subscribe(
    d: Arc<Daemon>,
    req_id: u64,
    p: SubscribeParams,
    mut rx: broadcast::Receiver<BusEvent>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    ev_tx: EventOut,
    ended: OwnedNotified,
) {
    let ids: Option<Vec<u32>> = if p.targets.is_empty() {
        None
    } else {
        match resolve_targets(&d, &p.targets) {
            Ok(ids) => Some(ids),
            Err(e) => {
                let _ = tx.send(Response::err(req_id, e.code, e.message).to_line());
                return;
            }
        }
    };
    let _ = tx.send(Response::ok(req_id, json!({"subscribed": true})).to_line());
    let mut ended = std::pin::pin!(ended);
    let mut dropped: u64 = 0;
    loop {
        tokio::select! {
            _ = &mut ended => break,
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if !topic_matches(&p.topics, &ev.topic) { continue; }
                    if let Some(ids) = &ids {
                        let id = ev.data.get("process").and_then(|p| p.get("pm_id")).and_then(|v| v.as_u64());
                        if !id.map(|i| ids.contains(&(i as u32))).unwrap_or(false) { continue; }
                    }
                    if dropped > 0 {
                        let note = Response::event(req_id, json!({"topic": "rpm2:lagged", "data": {"dropped": dropped}})).to_line();
                        if matches!(ev_tx.send(note), Sent::Ok) { dropped = 0; }
                    }
                    match ev_tx.send(Response::event(req_id, json!({"topic": ev.topic, "data": ev.data})).to_line()) {
                        Sent::Ok => {}
                        Sent::Full => dropped += 1,
                        Sent::Closed => break,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => dropped += n,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One connection carries a subscription and later requests at once: `subscribe` sent with the
    /// next request (no wait for its answer) is on the bus once that request is answered, and its
    /// events come on the same connection beside the replies (what `rpm2 start`'s progress uses).
    #[test]
    fn a_subscription_and_requests_share_a_connection() {
        let t = crate::base::paths::TempHome::new("server-sub");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let d = Daemon::new(t.0.clone()).0;
            let before = d.bus.receiver_count();
            let (ours, theirs) = UnixStream::pair().unwrap();
            tokio::spawn(connection(d.clone(), theirs));
            let (rd, mut wr) = ours.into_split();
            let hello = json!({"id": 1, "method": "hello", "params": {"protocol": PROTOCOL_VERSION}});
            let sub = json!({"id": 2, "method": "subscribe", "params": {"topics": ["process:event"]}});
            let ping = json!({"id": 3, "method": "ping"});
            wr.write_all(format!("{hello}\n{sub}\n{ping}\n").as_bytes()).await.unwrap();
            let mut lines = BufReader::new(rd).lines();
            let mut next = async || -> serde_json::Value {
                let l = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
                serde_json::from_str(&l.unwrap().unwrap().unwrap()).unwrap()
            };
            let mut ids = Vec::new();
            while !ids.contains(&3) {
                ids.push(next().await["id"].as_u64().unwrap());
            }
            assert!(ids.contains(&1), "{ids:?}");
            // Answered after the subscribe line was read: the subscription is on the bus now.
            let data = json!({"event": "online", "process": {"name": "api", "pm_id": 0}});
            d.bus.send(BusEvent { topic: "log:out".into(), data: json!({}) }).unwrap();
            d.bus.send(BusEvent { topic: "process:event".into(), data: data.clone() }).unwrap();
            let mut ev = next().await;
            if ev["id"] == 2 && ev.get("event").is_none() {
                ev = next().await;
            }
            assert_eq!(ev["id"], 2);
            assert_eq!(ev["event"], json!({"topic": "process:event", "data": data}));
            // The subscription ends with its connection, with no event needed to notice it.
            drop((lines, wr));
            let gone = async {
                while d.bus.receiver_count() > before {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            assert!(
                tokio::time::timeout(Duration::from_secs(5), gone).await.is_ok(),
                "the subscription outlived its connection"
            );
        });
    }

    #[test]
    fn topics_match_exact_prefix_and_all() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(topic_matches(&[], "log:out"));
        assert!(topic_matches(&t(&["*"]), "process:event"));
        assert!(topic_matches(&t(&["log:out"]), "log:out"));
        assert!(!topic_matches(&t(&["log:out"]), "log:err"));
        assert!(topic_matches(&t(&["log:*"]), "log:err"));
        assert!(!topic_matches(&t(&["log:*"]), "process:event"));
    }
}
