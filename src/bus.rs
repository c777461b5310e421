//! The event bus of `launchBus()`: one std thread per subscription, events handed to JS through a
//! threadsafe function.

use crate::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{json, Value};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct BusShared {
    closed: AtomicBool,
    stream: Mutex<Option<UnixStream>>,
}

impl BusShared {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(mut s) = self.stream.lock() {
            if let Some(s) = s.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// A live event subscription. `close()` ends it; the callback then gets no more events and the
/// Node event loop is no longer held by it.
#[napi]
pub struct BusHandle {
    shared: Arc<BusShared>,
}

#[napi]
impl BusHandle {
    /// Shuts the subscription's connection down (idempotent).
    #[napi]
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

type EventFn = ThreadsafeFunction<String, (), String, Status, false>;

/// Subscribes to the daemon's event bus (`topics` empty = every topic; `targets` limit to some
/// processes). `cb` receives one JSON string per notification:
/// `{"kind":"ready"}` once subscribed, `{"kind":"event","topic":...,"data":...}` per event,
/// `{"kind":"error","code":...,"message":...}` if the subscription could not be made, and
/// `{"kind":"end"}` last (after `close()` or when the daemon goes away).
#[napi(ts_args_type = "topics: string[], targets: string[], home: string | undefined | null, \
                        daemonExe: string | undefined | null, cb: (msg: string) => void")]
pub fn subscribe(
    topics: Vec<String>,
    targets: Vec<String>,
    home: Option<String>,
    daemon_exe: Option<String>,
    cb: EventFn,
) -> Result<BusHandle> {
    let shared = Arc::new(BusShared::default());
    let th = shared.clone();
    std::thread::Builder::new()
        .name("rpm2-bus".into())
        .spawn(move || bus_thread(th, topics, targets, home, daemon_exe, cb))
        .map_err(|e| Error::from_reason(format!("cannot start the bus thread: {e}")))?;
    Ok(BusHandle { shared })
}

fn bus_thread(
    shared: Arc<BusShared>,
    topics: Vec<String>,
    targets: Vec<String>,
    home: Option<String>,
    daemon_exe: Option<String>,
    cb: EventFn,
) {
    let send = |v: Value| {
        cb.call(v.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
    };
    let sub = (|| -> std::result::Result<Option<rpm2_core::client::Subscription>, Value> {
        let home = home_of(home.as_deref()).map_err(|m| plain_error("connection", m))?;
        let client = connect(&home, daemon_exe.as_deref())?;
        let handle = client.shutdown_handle().map_err(|e| error_body(&e, "connection"))?;
        {
            let mut slot = shared.stream.lock().map_err(|_| json!({"code": "internal", "message": "poisoned"}))?;
            if shared.closed.load(Ordering::SeqCst) {
                client.close();
                return Ok(None);
            }
            *slot = Some(handle);
        }
        let t: Vec<&str> = topics.iter().map(String::as_str).collect();
        client.subscribe(&t, &targets).map(Some).map_err(|e| error_body(&e, "connection"))
    })();
    match sub {
        Err(body) => {
            if !shared.closed.load(Ordering::SeqCst) {
                let mut m = json!({"kind": "error"});
                if let (Some(o), Some(b)) = (m.as_object_mut(), body.as_object()) {
                    o.extend(b.clone());
                }
                send(m);
            }
        }
        Ok(None) => {}
        Ok(Some(sub)) => {
            send(json!({"kind": "ready"}));
            for (topic, data) in sub {
                if shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                send(json!({"kind": "event", "topic": topic, "data": data}));
            }
        }
    }
    shared.close();
    send(json!({"kind": "end"}));
    // `cb` is dropped here: the threadsafe function is released and no longer holds the event loop.
}
