//! CPU/memory sampling of the running apps, and the memory-limit checks it feeds.

use super::state::{handles, Daemon};
use crate::base::procinfo::Usage;
use crate::supervisor::Status;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sampling period while someone looks (a `list` within [`LOOK_WINDOW`]).
const SAMPLE_BUSY: Duration = Duration::from_secs(1);
/// Sampling period when nobody looks: an idle daemon reads /proc this rarely.
const SAMPLE_IDLE: Duration = Duration::from_secs(10);
/// Sampling period while an app has a `max_memory_restart`.
const SAMPLE_LIMITS: Duration = Duration::from_secs(2);
/// How long after the last `list` the daemon keeps sampling every second.
const LOOK_WINDOW: Duration = Duration::from_secs(5);

/// Samples CPU/memory of every running app: every [`SAMPLE_BUSY`] while a client has looked at the
/// list within [`LOOK_WINDOW`], every [`SAMPLE_IDLE`] otherwise (an idle daemon costs next to nothing).
pub(crate) async fn sampler_task(d: Arc<Daemon>) {
    loop {
        let busy = d.metrics.lock().ok().and_then(|m| m.last_look).map(|t| t.elapsed() < LOOK_WINDOW).unwrap_or(false);
        let period = if busy { SAMPLE_BUSY } else { SAMPLE_IDLE };
        // max_memory_restart is checked at least every SAMPLE_LIMITS.
        let limits = handles(&d).iter().any(|(_, h)| h.spec.borrow().0.max_memory_restart.is_some());
        let period = if limits { period.min(SAMPLE_LIMITS) } else { period };
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = d.sampler_wake.notified() => continue,
        }
        let any_running = handles(&d).iter().any(|(_, h)| h.state.borrow().pid.is_some());
        if any_running {
            // A little under the period, so a `list` that just sampled does not make us skip a beat.
            sample(&d, period.mul_f32(0.9));
            if limits {
                check_memory(&d);
            }
        } else if let Ok(mut m) = d.metrics.lock() {
            m.usage.clear();
        }
    }
}

/// Records that a client is looking at the list: the sampler goes to one sample a second.
pub(crate) fn mark_look(d: &Daemon) {
    let was_idle = match d.metrics.lock() {
        Ok(mut m) => {
            let idle = m.last_look.map(|t| t.elapsed() >= LOOK_WINDOW).unwrap_or(true);
            m.last_look = Some(Instant::now());
            idle
        }
        Err(_) => false,
    };
    if was_idle {
        d.sampler_wake.notify_one();
    }
}

/// Refreshes the usage cache if it is older than `max_age`.
pub(crate) fn sample(d: &Daemon, max_age: Duration) {
    let pids: Vec<u32> = handles(d).iter().filter_map(|(_, h)| h.state.borrow().pid).collect();
    if let Ok(mut m) = d.metrics.lock() {
        let fresh = m.last.map(|t| t.elapsed() < max_age).unwrap_or(false);
        let missing = pids.iter().any(|p| !m.usage.contains_key(p));
        if fresh && !missing {
            return;
        }
        m.usage = m.sampler.sample(&pids);
        // A pid that vanished between the registry read and /proc (an exit between two samples)
        // reads as zero until its supervisor notices, instead of forcing a rescan on every call.
        for p in pids {
            m.usage.entry(p).or_default();
        }
        m.last = Some(Instant::now());
    }
}

/// The latest usage of OS process `pid` (zero when not sampled).
pub(crate) fn usage_of(d: &Daemon, pid: Option<u32>) -> Usage {
    pid.and_then(|p| d.metrics.lock().ok().and_then(|m| m.usage.get(&p).copied())).unwrap_or_default()
}

/// Over-the-limit check of every online process with a `max_memory_restart` (fresh sample).
fn check_memory(d: &Daemon) {
    let usage = match d.metrics.lock() {
        Ok(m) => m.usage.clone(),
        Err(_) => return,
    };
    for (id, h) in handles(d) {
        let spec = h.spec.borrow().0.clone();
        let (status, pid) = {
            let st = h.state.borrow();
            (st.status, st.pid)
        };
        if let (Some(_), Status::Online, Some(pid)) = (spec.max_memory_restart, status, pid) {
            if let Some(u) = usage.get(&pid).filter(|u| u.memory > 0) {
                d.triggers.memory(id, &spec, u.memory);
            }
        }
    }
}
