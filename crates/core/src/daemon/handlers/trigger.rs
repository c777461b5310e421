//! `trigger`: runs an action an app declared with tx2/@pm2/io (`axm:action`) and collects the
//! `axm:reply` answers, as PM2's `trigger`.

use super::{herr, HResult};
use crate::daemon::state::{handles, Daemon};
use crate::protocol::request::TriggerParams;
use crate::protocol::ErrorCode;
use crate::supervisor::{Handle, Status};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tokio::time::{timeout_at, Duration, Instant};

/// Default wait for the replies (ms).
const DEFAULT_WAIT_MS: u64 = 10_000;
/// Longest wait a client may ask for (ms).
const MAX_WAIT_MS: u64 = 600_000;

/// Whether process `h` declared `action`.
fn declares(h: &Handle, action: &str) -> bool {
    h.state.borrow().axm_actions.iter().any(|a| a.get("action_name").and_then(|n| n.as_str()) == Some(action))
}

fn is_up(h: &Handle) -> bool {
    matches!(h.state.borrow().status, Status::Online | Status::Launching)
}

/// The processes the message goes to. A number: that process, which must exist, have declared the
/// action and be online (each a distinct error, PM2's words). Otherwise every online process whose
/// name, namespace or script file name is the target (or any, for `all`) and that declared it.
fn receivers(d: &Daemon, target: &str, action: &str) -> Result<Vec<(u32, Handle)>, super::HandlerError> {
    let all = handles(d);
    if let Ok(id) = target.parse::<u32>() {
        let (_, h) = all
            .into_iter()
            .find(|(i, _)| *i == id)
            .ok_or_else(|| herr(ErrorCode::NotFound, format!("{id} id unknown: run `rpm2 list` to see the ids")))?;
        if !declares(&h, action) {
            let name = h.spec.borrow().0.name.clone();
            return Err(herr(ErrorCode::NotFound, format!("Action doesn't exist {action} for {name}")));
        }
        if !is_up(&h) {
            return Err(herr(ErrorCode::Failed, format!("{id} : id offline")));
        }
        return Ok(vec![(id, h)]);
    }
    Ok(all
        .into_iter()
        .filter(|(_, h)| {
            let s = h.spec.borrow().0.clone();
            let base = s.script.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let named = target == "all" || s.name == target || s.namespace == target || base == target;
            named && is_up(h) && declares(h, action)
        })
        .collect())
}

/// `trigger {target, action, params, timeout}`: sends the action (the bare name, or
/// `{msg, opts}` with params) to each receiver and waits until each answered with `axm:reply` or the
/// timeout passed. Answers `{process_count, replies: [{process, data, at}], missing: [pm_id]}`; no
/// receiver at all is `not_found` ("Not any process has received a command").
pub(super) async fn handle(d: &Daemon, p: TriggerParams) -> HResult {
    if p.action.is_empty() || p.target.is_empty() {
        return Err(herr(ErrorCode::BadRequest, "trigger needs a target and an action name"));
    }
    let to = receivers(d, &p.target, &p.action)?;
    if to.is_empty() {
        return Err(herr(
            ErrorCode::NotFound,
            format!(
                "Not any process has received a command (offline or unexistent): no online process of '{}' declares the action '{}' (see `rpm2 show`)",
                p.target, p.action
            ),
        ));
    }
    let msg =
        if p.params.is_null() { Value::String(p.action.clone()) } else { json!({"msg": p.action, "opts": p.params}) };
    // Subscribed before sending, so that no reply is missed.
    let mut bus = d.bus.subscribe();
    let mut waiting: BTreeSet<u32> = BTreeSet::new();
    for (id, h) in &to {
        if h.send(msg.clone()).await.is_ok() {
            waiting.insert(*id);
        }
    }
    let count = waiting.len();
    let wait = Duration::from_millis(p.timeout.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS));
    let deadline = Instant::now() + wait;
    let mut replies = Vec::new();
    while !waiting.is_empty() {
        let ev = match timeout_at(deadline, bus.recv()).await {
            Ok(Ok(ev)) => ev,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(_)) | Err(_) => break,
        };
        if ev.topic != "axm:reply" {
            continue;
        }
        let Some(id) = ev.data["process"]["pm_id"].as_u64().and_then(|i| u32::try_from(i).ok()) else { continue };
        let same_action = ev.data["data"]["action_name"].as_str().map(|a| a == p.action).unwrap_or(true);
        if same_action && waiting.remove(&id) {
            replies.push(ev.data);
        }
    }
    Ok(json!({"process_count": count, "replies": replies, "missing": waiting.into_iter().collect::<Vec<_>>()}))
}
