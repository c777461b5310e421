//! `inspect`: restarts processes with Node's inspector on (`--inspect` added to their node args).

use super::{herr, HResult};
use crate::daemon::jlist::summary;
use crate::daemon::state::{handle_of, resolve_targets, Daemon};
use crate::protocol::request::InspectParams;
use crate::protocol::ErrorCode;
use std::sync::Arc;

/// `inspect {targets}`: each target process restarts with `--inspect` in its node args (`--inspect=0`,
/// a free port each, when the app has several processes, so they do not fight over 9229); a process
/// already inspected restarts as it is. Node prints the inspector's URL in the app's error log. Not
/// Node apps are refused. Answers the summary.
pub(super) async fn handle(d: &Daemon, p: InspectParams) -> HResult {
    let ids = resolve_targets(d, &p.targets)?;
    let mut plans = Vec::new();
    for &id in &ids {
        let Some(h) = handle_of(d, id) else { continue };
        let spec = h.spec.borrow().0.clone();
        if !spec.is_node() {
            return Err(herr(
                ErrorCode::BadRequest,
                format!("process {id} ({}) is not a Node.js app: the inspector needs node", spec.name),
            ));
        }
        let mut s = spec.as_ref().clone();
        if !s.node_args.iter().any(|a| a.starts_with("--inspect")) {
            s.node_args.push(if s.instances > 1 { "--inspect=0".into() } else { "--inspect".into() });
        }
        plans.push((h, Arc::new(s)));
    }
    let mut set = tokio::task::JoinSet::new();
    for (h, s) in plans {
        set.spawn(h.restart(Some(s), "inspect".into()));
    }
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            return Err(herr(ErrorCode::Failed, e));
        }
    }
    Ok(summary(d, &ids))
}
