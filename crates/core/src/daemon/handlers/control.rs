//! `stop`, `restart`, `reload`, `delete`, `reset`: one control applied to the targets' processes.

use super::{herr, on_each, HResult};
use crate::config::spec::AppSpec;
use crate::daemon::clusters::{prune_listeners_later, release_clusters};
use crate::daemon::jlist::summary;
use crate::daemon::state::{handle_of, resolve_targets, Daemon};
use crate::daemon::triggers::watch_controls;
use crate::protocol::request::ControlParams;
use crate::protocol::ErrorCode;
use crate::supervisor::Op as SupOp;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Stop,
    Restart,
    Reload,
    Delete,
    Reset,
}

impl Op {
    /// The method's wire name.
    fn name(self) -> &'static str {
        match self {
            Op::Stop => "stop",
            Op::Restart => "restart",
            Op::Reload => "reload",
            Op::Delete => "delete",
            Op::Reset => "reset",
        }
    }
}

/// The declaration each process gets: a new one (ecosystem file), the stored one with the shell env
/// merged over it (`--update-env`), or none (unchanged).
struct NewSpec {
    spec: Option<Arc<AppSpec>>,
    env: Option<BTreeMap<String, String>>,
    /// Fields of the declaration to replace (the client's start options on a restart).
    patch: Option<serde_json::Map<String, Value>>,
}

impl NewSpec {
    fn changed(&self) -> bool {
        self.spec.is_some() || self.env.is_some() || self.patch.is_some()
    }

    fn for_process(&self, d: &Daemon, id: u32) -> Option<Arc<AppSpec>> {
        if let Some(s) = &self.spec {
            return Some(s.clone());
        }
        if !self.changed() {
            return None;
        }
        let h = handle_of(d, id)?;
        let mut s = h.spec.borrow().0.as_ref().clone();
        // The new shell env wins over the stored one, as PM2's --update-env.
        for (k, v) in self.env.iter().flatten() {
            s.env.insert(k.clone(), v.clone());
        }
        if let Some(patch) = &self.patch {
            // A field that does not fit the declaration leaves it as it was.
            if let Ok(Value::Object(mut o)) = serde_json::to_value(&s) {
                for (k, v) in patch {
                    if o.contains_key(k) || k == "interpreter" {
                        o.insert(k.clone(), v.clone());
                    }
                }
                if let Ok(patched) = serde_json::from_value::<AppSpec>(Value::Object(o)) {
                    s = patched;
                }
            }
        }
        Some(Arc::new(s))
    }
}

/// Applies `op` to the processes of `p.targets`; answers their summaries (for `delete`, as they are
/// now: stopped, no pid).
pub(super) async fn handle(d: &Arc<Daemon>, op: Op, p: ControlParams) -> HResult {
    if p.targets.is_empty() {
        return Err(herr(
            ErrorCode::BadRequest,
            format!("{} needs a target: an id, a name, a namespace or all", op.name()),
        ));
    }
    let ids = resolve_targets(d, &p.targets)?;
    if ids.is_empty() {
        return Err(herr(ErrorCode::NotFound, "no process found: nothing to do"));
    }
    let env = if p.update_env { p.env } else { None };
    let spec = match p.spec {
        Some(v) => Some(Arc::new(
            serde_json::from_value(v).map_err(|e| herr(ErrorCode::BadRequest, format!("malformed app: {e}")))?,
        )),
        None => None,
    };
    let patch = match p.patch {
        Some(Value::Object(o)) if !o.is_empty() => Some(o),
        _ => None,
    };
    let new = NewSpec { spec, env, patch };
    watch_controls(d, op.name(), p.watch, &ids).await;
    let before = summary(d, &ids);
    if op == Op::Reload {
        return reload(d, &ids, &new).await;
    }
    on_each(d, &ids, |id| {
        Some(match op {
            Op::Stop => SupOp::Stop,
            Op::Delete => SupOp::Delete,
            Op::Reset => SupOp::Reset,
            Op::Restart | Op::Reload => {
                SupOp::Restart { spec: new.for_process(d, id), reason: format!("{} requested", op.name()) }
            }
        })
    })
    .await?;
    match op {
        Op::Stop => release_clusters(d),
        Op::Restart if new.changed() => prune_listeners_later(d, &ids),
        Op::Delete => return Ok(forget(d, &ids, before)),
        _ => {}
    }
    Ok(summary(d, &ids))
}

/// One instance at a time; the rollout stops at the first instance that fails, so the app never
/// ends with fewer healthy processes than it had.
async fn reload(d: &Arc<Daemon>, ids: &[u32], new: &NewSpec) -> HResult {
    for id in ids {
        if let Some(h) = handle_of(d, *id) {
            let spec = new.for_process(d, *id);
            if let Err(e) = h.reload(spec).await {
                return Err(herr(ErrorCode::ReloadFailed, format!("{e} (rollout stopped at id {id})")));
            }
        }
    }
    if new.changed() {
        prune_listeners_later(d, ids);
    }
    Ok(summary(d, ids))
}

/// Removes deleted processes from the registry (ids start again at 0 once it is empty); answers
/// their summaries taken `before`, as stopped with no pid.
fn forget(d: &Daemon, ids: &[u32], before: Value) -> Value {
    if let Ok(mut r) = d.registry.lock() {
        for id in ids {
            r.procs.remove(id);
        }
        if r.procs.is_empty() {
            r.next_id = 0;
        }
    }
    d.changed.notify_one();
    release_clusters(d);
    let mut gone = before;
    for p in gone.as_array_mut().into_iter().flatten() {
        p["status"] = json!("stopped");
        p["pid"] = json!(0);
    }
    gone
}
