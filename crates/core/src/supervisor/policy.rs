//! Restart policy: what happens when a managed process exits on its own. Pure functions, so the maths
//! PM2 users rely on (min_uptime × max_restarts window, restart_delay, exponential back-off) is unit-tested.

use crate::config::spec::AppSpec;

/// Exponential back-off never waits longer than this (ms), as PM2.
pub const MAX_BACKOFF_MS: u64 = 15_000;
/// An app up longer than this (ms) has its back-off reset, as PM2's `EXP_BACKOFF_RESET_TIMER`.
pub const BACKOFF_RESET_MS: u64 = 30_000;

/// Counters the policy reads and updates, owned by the process's supervisor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Fast exits inside the crash-loop window.
    pub unstable_restarts: u32,
    /// The last back-off delay used (ms); 0 when none.
    pub prev_restart_delay: u64,
}

/// What to do after an unrequested exit.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Restart after this many ms.
    Restart {
        /// The delay before the new start, in ms.
        delay_ms: u64,
    },
    /// Do not restart: the app is `stopped` (autorestart off or an expected exit code).
    Stop,
    /// Do not restart: too many unstable restarts; the app is `errored`.
    Errored,
}

/// Decides what follows an exit that nobody asked for.
/// `now`, `created_at` and `started_at` are epoch ms; `code` is the exit code (None when killed by a signal).
pub fn on_exit(
    spec: &AppSpec,
    c: &mut Counters,
    code: Option<i32>,
    now: u64,
    created_at: u64,
    started_at: u64,
) -> Decision {
    if !spec.autorestart {
        return Decision::Stop;
    }
    if let Some(code) = code {
        if spec.stop_exit_codes.contains(&code) {
            return Decision::Stop;
        }
    }
    let uptime = now.saturating_sub(started_at);
    let window = spec.min_uptime.saturating_mul(spec.max_restarts as u64);
    if now.saturating_sub(created_at) < window && uptime < spec.min_uptime {
        c.unstable_restarts = c.unstable_restarts.saturating_add(1);
    }
    if c.unstable_restarts >= spec.max_restarts && spec.exp_backoff_restart_delay.is_none() {
        c.unstable_restarts = 0;
        return Decision::Errored;
    }
    if let Some(base) = spec.exp_backoff_restart_delay {
        if uptime > BACKOFF_RESET_MS {
            c.prev_restart_delay = 0;
        }
        let next = if c.prev_restart_delay == 0 { base } else { ((c.prev_restart_delay as f64) * 1.5).floor() as u64 };
        let next = next.min(MAX_BACKOFF_MS);
        c.prev_restart_delay = next;
        return Decision::Restart { delay_ms: next };
    }
    Decision::Restart { delay_ms: spec.restart_delay }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve_app, ResolveCtx};
    use serde_json::json;

    fn spec(extra: serde_json::Value) -> AppSpec {
        let d = std::env::temp_dir();
        let f = d.join(format!("rpm2-policy-{}.js", std::process::id()));
        std::fs::write(&f, "").unwrap();
        let mut o = json!({"script": f.to_str().unwrap()});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        resolve_app(&o, &ResolveCtx { cwd: d, env: Default::default(), env_name: None }).unwrap().spec
    }

    #[test]
    fn crash_loop_goes_errored_after_max_restarts() {
        let s = spec(json!({}));
        let mut c = Counters::default();
        let mut t = 0;
        let mut restarts = 0;
        loop {
            match on_exit(&s, &mut c, Some(1), t + 50, 0, t) {
                Decision::Restart { delay_ms } => {
                    assert_eq!(delay_ms, 0);
                    restarts += 1;
                    t += 60;
                }
                Decision::Errored => break,
                Decision::Stop => panic!("unexpected stop"),
            }
        }
        // 16 exits: 15 restarts then errored, as PM2 shows ↺ 15.
        assert_eq!(restarts, 15);
    }

    #[test]
    fn slow_crashes_restart_forever() {
        let s = spec(json!({}));
        let mut c = Counters::default();
        for i in 0..100 {
            let start = i * 5000;
            assert_eq!(on_exit(&s, &mut c, Some(1), start + 4000, 0, start), Decision::Restart { delay_ms: 0 });
        }
    }

    #[test]
    fn exp_backoff_sequence_matches_pm2() {
        let s = spec(json!({"exp_backoff_restart_delay": 100}));
        let mut c = Counters::default();
        let got: Vec<u64> = (0..10)
            .map(|_| match on_exit(&s, &mut c, Some(1), 10, 0, 0) {
                Decision::Restart { delay_ms } => delay_ms,
                d => panic!("{d:?}"),
            })
            .collect();
        assert_eq!(got, vec![100, 150, 225, 337, 505, 757, 1135, 1702, 2553, 3829]);
    }

    #[test]
    fn stop_codes_and_no_autorestart() {
        let s = spec(json!({"stop_exit_codes": [0, 3]}));
        let mut c = Counters::default();
        assert_eq!(on_exit(&s, &mut c, Some(3), 5000, 0, 0), Decision::Stop);
        assert_eq!(on_exit(&s, &mut c, Some(1), 5000, 0, 0), Decision::Restart { delay_ms: 0 });
        let s = spec(json!({"autorestart": false, "restart_delay": 200}));
        assert_eq!(on_exit(&s, &mut c, Some(1), 5000, 0, 0), Decision::Stop);
        let s = spec(json!({"restart_delay": 200}));
        assert_eq!(on_exit(&s, &mut c, None, 5000, 0, 0), Decision::Restart { delay_ms: 200 });
    }
}
