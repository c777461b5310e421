//! `start`: starts apps from their declarations.

use super::{herr, HandlerError};
use crate::config::spec::AppSpec;
use crate::daemon::jlist::{list_json, EnvView};
use crate::daemon::state::{handle_of, handles, new_unique_id, register, Daemon};
use crate::protocol::request::StartParams;
use crate::protocol::ErrorCode;
use crate::supervisor::{ProcState, Status};
use serde_json::value::RawValue;
use std::sync::Arc;
use tokio::task::JoinSet;

/// The outcome of one start or restart, as the supervisor answers it.
type Started = JoinSet<Result<(), String>>;

/// `start {apps, force, skip_existing}`. An app whose name already runs is refused unless `force`
/// (or skipped with `skip_existing`); one whose processes are all stopped is restarted with the new
/// declaration. Everything is checked before anything starts. Answers the `jlist` objects of the
/// processes started; fails with `start_failed` only when every one of them failed.
pub(super) async fn handle(d: &Arc<Daemon>, p: StartParams) -> Result<Box<RawValue>, HandlerError> {
    let specs: Vec<AppSpec> =
        serde_json::from_value(p.apps).map_err(|e| herr(ErrorCode::BadRequest, format!("malformed app list: {e}")))?;
    let plan = plan(d, specs, p.force, p.skip_existing)?;
    let mut started = Vec::new();
    let mut set = JoinSet::new();
    for (spec, existing) in plan {
        let spec = Arc::new(spec);
        if existing.is_empty() {
            launch_new(d, spec, &mut started, &mut set)?;
        } else {
            restart_stopped(d, spec, existing, &mut started, &mut set);
        }
    }
    // Save the table before any child runs (they spawn once this handler yields): a daemon killed
    // during the start is then replaced by one that knows every app, so none is lost.
    if d.persisting() {
        if let Err(e) = crate::daemon::persist::persist(d) {
            crate::base::dlog(format!("cannot save the app table: {e:#}"));
        }
    }
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            errors.push(e);
        }
    }
    if !errors.is_empty() && errors.len() == started.len() {
        return Err(herr(ErrorCode::StartFailed, errors.join("; ")));
    }
    Ok(list_json(d, &started, EnvView::Hidden))
}

/// Checks every app and pairs it with the ids of its existing (all stopped) processes, empty for a
/// new app. Fails with `already_running` when a process of the name runs and `force` is off.
fn plan(
    d: &Daemon,
    specs: Vec<AppSpec>,
    force: bool,
    skip_existing: bool,
) -> Result<Vec<(AppSpec, Vec<u32>)>, HandlerError> {
    let mut plan = Vec::new();
    for spec in specs {
        if let Some(why) = crate::config::names::name_problem(&spec.name) {
            return Err(herr(ErrorCode::BadRequest, why));
        }
        if skip_existing && handles(d).iter().any(|(_, h)| h.spec.borrow().0.name == spec.name) {
            continue;
        }
        let existing: Vec<(u32, Status)> = handles(d)
            .into_iter()
            .filter(|(_, h)| h.spec.borrow().0.name == spec.name)
            .map(|(id, h)| (id, h.state.borrow().status))
            .collect();
        if existing.is_empty() || force {
            plan.push((spec, vec![]));
            continue;
        }
        let running = existing.iter().filter(|(_, s)| !matches!(s, Status::Stopped | Status::Errored)).count();
        if running > 0 {
            let ids: Vec<String> = existing.iter().map(|(i, _)| i.to_string()).collect();
            return Err(herr(
                ErrorCode::AlreadyRunning,
                format!(
                    "app '{}' is already running (id {}): use `rpm2 restart {}`, or -f to start another copy",
                    spec.name,
                    ids.join(", "),
                    spec.name
                ),
            ));
        }
        plan.push((spec, existing.into_iter().map(|(i, _)| i).collect()));
    }
    Ok(plan)
}

/// Restarts the stopped processes `existing` of an app with its new declaration.
fn restart_stopped(d: &Daemon, spec: Arc<AppSpec>, existing: Vec<u32>, started: &mut Vec<u32>, set: &mut Started) {
    d.triggers.resume(&spec.name);
    for id in existing {
        if let Some(h) = handle_of(d, id) {
            let s = spec.clone();
            set.spawn(async move { h.restart(Some(s), "started again".into()).await });
            started.push(id);
        }
    }
}

/// Registers the instances of a new app (and starts them unless `autostart` is off).
fn launch_new(
    d: &Arc<Daemon>,
    spec: Arc<AppSpec>,
    started: &mut Vec<u32>,
    set: &mut Started,
) -> Result<(), HandlerError> {
    let unique_id = new_unique_id();
    for _ in 0..spec.instances.max(1) {
        let (pm_id, instance) = {
            let Ok(mut r) = d.registry.lock() else {
                return Err(herr(ErrorCode::Internal, "registry unavailable"));
            };
            r.reserve(&spec.name)
        };
        // Registered as launching (not stopped) so that a concurrent start of the same name sees
        // it as running and is refused.
        let mut state = ProcState::new();
        if spec.autostart {
            state.status = Status::Launching;
        }
        let h = register(d, pm_id, instance, unique_id.clone(), spec.clone(), state);
        started.push(pm_id);
        if spec.autostart {
            set.spawn(h.start());
        }
    }
    Ok(())
}
