//! Read-only methods: `ping`, `version`, `info`, `list`, `describe`.

use super::HandlerError;
use crate::base::fmt::iso_utc;
use crate::daemon::jlist::{list_json, EnvView};
use crate::daemon::state::{all_ids, resolve_targets, Daemon};
use crate::protocol::request::{DescribeParams, ListParams};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// `ping`: `{"msg":"pong"}`.
pub(super) fn ping() -> Value {
    json!({"msg": "pong"})
}

/// `version`: the daemon's version string.
pub(super) fn version() -> Value {
    json!(crate::VERSION)
}

/// `info`: version, pid, home and start time of the daemon.
pub(super) fn info(d: &Daemon) -> Value {
    json!({"version": crate::VERSION, "pid": std::process::id(), "home": d.home.root(), "started_at": d.started_at, "started_at_iso": iso_utc(d.started_at)})
}

/// `list`: every process as a `jlist` object.
pub(super) fn list(d: &Daemon, p: ListParams) -> Box<RawValue> {
    let view = if p.no_env { EnvView::Omitted } else { EnvView::shown_if(p.env) };
    list_json(d, &all_ids(d), view)
}

/// `describe`: the targets' processes as `jlist` objects (no target: none).
pub(super) fn describe(d: &Daemon, p: DescribeParams) -> Result<Box<RawValue>, HandlerError> {
    let ids = resolve_targets(d, &p.targets)?;
    Ok(list_json(d, &ids, EnvView::shown_if(p.env)))
}
