//! One handler per request (pueue's `message_handler` is the model): [`handle`] dispatches a typed
//! [`Method`] to the file that answers it. `hello` and `subscribe` belong to the connection and are
//! answered in `server.rs`.

mod control;
mod dump;
mod inspect;
mod lifecycle;
mod logs;
mod monitor;
mod query;
mod scale;
mod signal;
mod start;
mod stdin;
mod trigger;

use super::state::{handle_of, Daemon};
use crate::protocol::{ErrorCode, Method};
use crate::supervisor;
use control::Op;
use std::sync::Arc;

pub(crate) use super::error::{herr, AResult, Answer, HResult, HandlerError};

/// Answers one request. The process lists (`list`, `describe`, and what `start` and `scale`
/// answer) come as [`Answer::Json`], everything else as [`Answer::Value`].
pub(crate) async fn handle(d: &Arc<Daemon>, method: Method) -> AResult {
    match method {
        Method::List(p) => Ok(Answer::Json(query::list(d, p))),
        Method::Describe(p) => query::describe(d, p).map(Answer::Json),
        Method::Start(p) => start::handle(d, p).await.map(Answer::Json),
        Method::Scale(p) => scale::handle(d, p).await.map(Answer::Json),
        m => handle_value(d, m).await.map(Answer::Value),
    }
}

/// Answers the requests whose result is a [`serde_json::Value`].
async fn handle_value(d: &Arc<Daemon>, method: Method) -> HResult {
    match method {
        Method::Ping(_) => Ok(query::ping()),
        Method::Version(_) => Ok(query::version()),
        Method::Info(_) => Ok(query::info(d)),
        // Answered by `handle`.
        m @ (Method::List(_) | Method::Describe(_) | Method::Start(_) | Method::Scale(_)) => {
            Err(herr(ErrorCode::Internal, format!("'{}' is answered as a process list", m.name())))
        }
        Method::Stop(p) => control::handle(d, Op::Stop, p).await,
        Method::Restart(p) => control::handle(d, Op::Restart, p).await,
        Method::Reload(p) => control::handle(d, Op::Reload, p).await,
        Method::Delete(p) => control::handle(d, Op::Delete, p).await,
        Method::Reset(p) => control::handle(d, Op::Reset, p).await,
        Method::Signal(p) => signal::signal(d, p).await,
        Method::Send(p) => signal::send(d, p).await,
        Method::Flush(p) => logs::flush(d, p),
        Method::ReloadLogs(_) => Ok(logs::reload_logs(d)),
        Method::Kill(_) => Ok(lifecycle::kill(d).await),
        Method::Dump(p) => dump::handle(d, p),
        Method::Shutdown(_) => lifecycle::shutdown(d).await,
        Method::SendLine(p) => stdin::send_line(d, p).await,
        Method::Trigger(p) => trigger::handle(d, p).await,
        Method::Monitor(p) => monitor::handle(d, p).await,
        Method::Inspect(p) => inspect::handle(d, p).await,
        // Answered by the connection itself (server.rs) before dispatch.
        m @ (Method::Hello(_) | Method::Subscribe(_)) => {
            Err(herr(ErrorCode::Internal, format!("'{}' is answered by the connection", m.name())))
        }
    }
}

/// Sends the operation `make` builds to every process in `ids`, which run it concurrently; fails
/// with the first error (after all ran). A `delete` of a process whose supervisor has already ended
/// (another client deleted it meanwhile) succeeds: the process is gone, as asked, and the caller
/// still forgets every id (a failure here used to leave the others listed as `stopping` for ever).
pub(crate) async fn on_each(
    d: &Daemon,
    ids: &[u32],
    make: impl Fn(u32) -> Option<supervisor::Op>,
) -> Result<(), HandlerError> {
    let mut set = tokio::task::JoinSet::new();
    for &id in ids {
        let Some(h) = handle_of(d, id) else { continue };
        let Some(op) = make(id) else { continue };
        let delete = matches!(op, supervisor::Op::Delete);
        let done = h.call(op);
        set.spawn(async move {
            match done.await {
                Err(e) if e == supervisor::ENDED && delete => Ok(()),
                Err(e) if e == supervisor::ENDED => Err(format!("the supervisor of process {id} has ended")),
                r => r,
            }
        });
    }
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(herr(ErrorCode::Failed, e)),
        None => Ok(()),
    }
}
