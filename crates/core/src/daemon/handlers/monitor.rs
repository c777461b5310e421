//! `monitor`: PM2's `monitor`/`unmonitor` (the `_km_monitored` flag of each process in jlist).

use super::{on_each, HResult};
use crate::daemon::jlist::summary;
use crate::daemon::state::{resolve_targets, Daemon};
use crate::protocol::request::MonitorParams;
use crate::supervisor::Op;

/// `monitor {targets, on}`: sets `_km_monitored` to `on` on every target's processes. rpm2 has no
/// cloud dashboard, so the flag changes nothing else (as PM2 without a link). Answers the summary.
pub(super) async fn handle(d: &Daemon, p: MonitorParams) -> HResult {
    let ids = resolve_targets(d, &p.targets)?;
    on_each(d, &ids, |_| Some(Op::SetMonitored(p.on))).await?;
    Ok(summary(d, &ids))
}
