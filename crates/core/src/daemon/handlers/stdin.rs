//! `sendLine`: a line to a process's stdin (PM2's `sendLineToStdin`, used by `send` and `attach`).

use super::{herr, HResult};
use crate::config::spec::ExecMode;
use crate::daemon::state::{handle_of, Daemon};
use crate::protocol::request::SendLineParams;
use crate::protocol::ErrorCode;
use crate::supervisor::{Status, ENDED};
use serde_json::json;

/// `sendLine {id, line}`: queues `line` (as given: the client adds the separator) on the stdin of
/// process `id`. As PM2: an empty line or a missing id is a bad request, a cluster-mode process and an
/// offline one are refused. Answers `{pm_id, line}`.
pub(super) async fn send_line(d: &Daemon, p: SendLineParams) -> HResult {
    let Some(id) = p.id else {
        return Err(herr(ErrorCode::BadRequest, "pm_id or line field missing: give a numeric process id"));
    };
    if p.line.is_empty() {
        return Err(herr(ErrorCode::BadRequest, "pm_id or line field missing: give a line to send"));
    }
    let h = handle_of(d, id).ok_or_else(|| {
        herr(ErrorCode::NotFound, format!("Process with ID <{id}> unknown: run `rpm2 list` to see the ids"))
    })?;
    if h.spec.borrow().0.exec_mode == ExecMode::Cluster {
        return Err(herr(
            ErrorCode::Failed,
            format!("Cannot send line to processes in cluster mode (process {id}): use fork mode for stdin"),
        ));
    }
    let status = h.state.borrow().status;
    if !matches!(status, Status::Online | Status::Launching) {
        return Err(herr(ErrorCode::Failed, format!("Process with ID <{id}> offline: start it first")));
    }
    match h.write_stdin(p.line.clone()).await {
        Ok(()) => Ok(json!({"pm_id": id, "line": p.line})),
        Err(e) if e == ENDED => Err(herr(ErrorCode::NotFound, format!("Process with ID <{id}> unknown"))),
        Err(e) => Err(herr(ErrorCode::Failed, e)),
    }
}
