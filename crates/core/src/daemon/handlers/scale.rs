//! `scale`: changes the number of instances of an app.

use super::{herr, on_each, HandlerError};
use crate::daemon::jlist::{list_json, EnvView};
use crate::daemon::state::{all_ids, handle_of, handles, new_unique_id, register, Daemon};
use crate::protocol::request::ScaleParams;
use crate::protocol::ErrorCode;
use crate::supervisor::{Op, ProcState};
use serde_json::value::RawValue;
use std::sync::Arc;

/// The instance count `number` asks for, given `cur` instances now: `N`, `+N` or `-N`.
pub(crate) fn target_count(cur: i64, number: &str) -> Result<i64, HandlerError> {
    let bad = || herr(ErrorCode::BadRequest, format!("'{number}' is not a number of instances: use N, +N or -N"));
    if let Some(n) = number.strip_prefix('+') {
        cur.checked_add(n.parse::<i64>().map_err(|_| bad())?).ok_or_else(bad)
    } else if number.starts_with('-') {
        cur.checked_add(number.parse::<i64>().map_err(|_| bad())?).ok_or_else(bad)
    } else {
        number.parse::<i64>().map_err(|_| bad())
    }
}

/// `scale {name, number}`: `N` sets the instance count, `+N`/`-N` changes it. New instances clone the
/// first one's declaration (and fill NODE_APP_INSTANCE gaps first); removal deletes the oldest ids, as PM2.
pub(super) async fn handle(d: &Arc<Daemon>, p: ScaleParams) -> Result<Box<RawValue>, HandlerError> {
    let name = p.name.ok_or_else(|| herr(ErrorCode::BadRequest, "scale needs an app name"))?;
    let number = p.number.ok_or_else(|| herr(ErrorCode::BadRequest, "scale needs a number: N, +N or -N"))?;
    let ids: Vec<u32> =
        handles(d).into_iter().filter(|(_, h)| h.spec.borrow().0.name == name).map(|(id, _)| id).collect();
    if ids.is_empty() {
        return Err(herr(ErrorCode::NotFound, format!("no app named '{name}': run `rpm2 list` to see the apps")));
    }
    let cur = ids.len() as i64;
    let target = target_count(cur, &number)?;
    if target < 1 {
        return Err(herr(
            ErrorCode::BadRequest,
            format!("cannot scale '{name}' below 1 instance: use `rpm2 delete {name}`"),
        ));
    }
    if target == cur {
        return Err(herr(ErrorCode::NothingToDo, format!("'{name}' already has {cur} instance(s): nothing to do")));
    }
    if target < cur {
        let remove: Vec<u32> = ids.iter().copied().take((cur - target) as usize).collect();
        on_each(d, &remove, |_| Some(Op::Delete)).await?;
        if let Ok(mut r) = d.registry.lock() {
            for id in &remove {
                r.procs.remove(id);
            }
        }
        d.changed.notify_one();
        return Ok(list_json(d, &all_ids(d), EnvView::Hidden));
    }
    let Some(first) = handle_of(d, ids[0]) else { return Err(herr(ErrorCode::Internal, "app vanished")) };
    let spec = first.spec.borrow().0.clone();
    let unique_id = new_unique_id();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..(target - cur) {
        let (pm_id, instance) = {
            let Ok(mut r) = d.registry.lock() else {
                return Err(herr(ErrorCode::Internal, "registry unavailable"));
            };
            r.reserve(&spec.name)
        };
        let h = register(d, pm_id, instance, unique_id.clone(), spec.clone(), ProcState::new());
        set.spawn(h.start());
    }
    while set.join_next().await.is_some() {}
    Ok(list_json(d, &all_ids(d), EnvView::Hidden))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_absolute_and_relative() {
        assert_eq!(target_count(2, "5").unwrap(), 5);
        assert_eq!(target_count(2, "+3").unwrap(), 5);
        assert_eq!(target_count(4, "-3").unwrap(), 1);
        let e = target_count(2, "many").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.message, "'many' is not a number of instances: use N, +N or -N");
        assert!(target_count(2, "+x").is_err());
        assert!(target_count(i64::MAX, "+1").is_err());
    }
}
