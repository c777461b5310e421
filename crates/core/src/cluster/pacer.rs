//! Wake-up batching for round-robin cluster traffic ("interrupt moderation" for the daemon).
//!
//! In round-robin mode every new connection costs rpm2d a few events: the listener becomes readable,
//! the worker ACKs the handle and answers `newconn`. At a low rate each event wakes the daemon, which
//! is what gives the lowest latency. Under a flood of short connections those wake-ups dominate the
//! daemon's CPU (a blocking wake-up costs ~13 us of system time on a small VM, more than the
//! `accept4` + `sendmsg` + `close` of the connection itself).
//!
//! So while the accept rate of all round-robin servers stays above [`ON_PER_S`] connections per
//! second, a pacer task makes the daemon's thread work in cycles: it sleeps for the batch interval
//! (default [`DEFAULT_INTERVAL`]) without looking at events, then lets every task run until the work
//! that piled up is done, and sleeps again. Each cycle then accepts, hands off and closes a batch of
//! connections for one wake-up, and round-robin servers let each worker have up to
//! [`BATCH_IN_FLIGHT`] connections in flight (pipelined handles, see
//! [`crate::ipc::ChannelTx::send_handle_line`]) so the workers are never starved between cycles.
//! A new connection then waits at most one interval before its hand-off. Batching stops once the
//! rate stays below [`OFF_PER_S`] for two windows.
//!
//! `RPM2_CLUSTER_BATCH` (read by the daemon once) selects the mode: `auto` (default), `off` (never
//! batch: every event is handled as it comes, one connection in flight per worker as in Node), or
//! `on` (always batch; used by the tests to exercise pipelining at a low rate).
//! `RPM2_CLUSTER_BATCH_US` sets the interval (50..=5000 microseconds).
//!
//! All state is per thread: rpm2d runs its event loop on one thread (a `current_thread` runtime), and
//! the pacer's sleep blocks exactly that loop, which is the point.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Accept rate (connections per second, all round-robin servers) above which batching starts.
pub const ON_PER_S: u64 = 2000;
/// Accept rate below which batching stops (after two windows in a row).
pub const OFF_PER_S: u64 = 1000;
/// Length of the windows the rate is measured over.
pub const WINDOW: Duration = Duration::from_millis(50);
/// Default batch interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_micros(500);
/// Connections each worker may have in flight while batching (1 otherwise, as Node).
pub const BATCH_IN_FLIGHT: usize = 8;
/// Most rounds of "let the woken tasks run" per cycle before sleeping again, so a steady stream of
/// events cannot turn the cycle into a busy loop.
const MAX_SETTLE_ROUNDS: u32 = 4;

/// Batching mode, from `RPM2_CLUSTER_BATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch while the accept rate is high (the default).
    Auto,
    /// Never batch.
    Off,
    /// Always batch.
    On,
}

impl Mode {
    /// Parses the variable's value; `None` for anything but `auto`, `off`, `on` (any case).
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(Mode::Auto),
            "off" | "0" | "false" => Some(Mode::Off),
            "on" | "1" | "true" => Some(Mode::On),
            _ => None,
        }
    }
}

/// Counts steps of the tasks that take part in a cycle (round-robin servers and IPC channels), so the
/// pacer can tell when the work of a cycle is done.
static ACTIVITY: AtomicU64 = AtomicU64::new(0);

/// Records one step of work (cheap: one relaxed atomic add).
pub fn note_activity() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
}

/// The on/off decision from the accept rate (pure; unit-tested).
#[derive(Debug)]
pub struct Rate {
    mode: Mode,
    window_start: Instant,
    count: u64,
    quiet_windows: u32,
    on: bool,
}

impl Rate {
    /// A decision in `mode`, starting at `now`.
    pub fn new(mode: Mode, now: Instant) -> Rate {
        Rate { mode, window_start: now, count: 0, quiet_windows: 0, on: mode == Mode::On }
    }

    /// Whether batching is on.
    pub fn on(&self) -> bool {
        self.on
    }

    fn per_window(per_s: u64) -> u64 {
        (per_s * WINDOW.as_millis() as u64 / 1000).max(1)
    }

    /// Closes the windows that ended by `now`.
    fn roll(&mut self, now: Instant) {
        while now.duration_since(self.window_start) >= WINDOW {
            if self.count < Self::per_window(OFF_PER_S) {
                self.quiet_windows += 1;
            } else {
                self.quiet_windows = 0;
            }
            if self.mode == Mode::Auto && self.on && self.quiet_windows >= 2 {
                self.on = false;
            }
            self.count = 0;
            self.window_start += WINDOW;
            if now.duration_since(self.window_start) >= 4 * WINDOW {
                // Long idle: skip the empty windows at once.
                self.window_start = now;
                self.quiet_windows = self.quiet_windows.max(2);
                if self.mode == Mode::Auto {
                    self.on = false;
                }
            }
        }
    }

    /// `n` connections were accepted at `now`; returns true when this turns batching on.
    pub fn accepted(&mut self, n: u64, now: Instant) -> bool {
        self.roll(now);
        self.count += n;
        if self.mode == Mode::Auto && !self.on && self.count >= Self::per_window(ON_PER_S) {
            self.on = true;
            self.quiet_windows = 0;
            return true;
        }
        false
    }

    /// Called once per cycle; returns whether batching is still on.
    pub fn tick(&mut self, now: Instant) -> bool {
        self.roll(now);
        self.on
    }
}

struct Pacer {
    rate: RefCell<Rate>,
    interval: Duration,
    started: Cell<bool>,
    wake: Arc<Notify>,
}

thread_local! {
    static PACER: Pacer = Pacer {
        rate: RefCell::new(Rate::new(mode_from_env(), Instant::now())),
        interval: interval_from_env(),
        started: Cell::new(false),
        wake: Arc::new(Notify::new()),
    };
}

fn mode_from_env() -> Mode {
    std::env::var("RPM2_CLUSTER_BATCH").ok().and_then(|v| Mode::parse(&v)).unwrap_or(Mode::Auto)
}

fn interval_from_env() -> Duration {
    std::env::var("RPM2_CLUSTER_BATCH_US")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| Duration::from_micros(us.clamp(50, 5000)))
        .unwrap_or(DEFAULT_INTERVAL)
}

/// Starts this thread's pacer task (once per thread; later calls do nothing). Call from inside the
/// daemon's `current_thread` tokio runtime: the task blocks the thread it runs on, and reads the state
/// of that thread.
pub fn start() {
    let (first, mode, interval) = PACER.with(|p| (!p.started.replace(true), p.rate.borrow().mode, p.interval));
    if first {
        if mode != Mode::Auto {
            crate::base::dlog(format!(
                "round-robin hand-off batching is {} (RPM2_CLUSTER_BATCH), interval {}us",
                if mode == Mode::On { "always on" } else { "off" },
                interval.as_micros()
            ));
        }
        tokio::spawn(run());
    }
}

/// Whether round-robin servers should batch now (pipelined hand-offs, several per worker).
pub fn batching() -> bool {
    PACER.with(|p| p.rate.borrow().on())
}

/// A round-robin server accepted `n` connections: may switch batching on.
pub fn accepted(n: usize) {
    PACER.with(|p| {
        if p.rate.borrow_mut().accepted(n as u64, Instant::now()) {
            crate::base::dlog(format!(
                "over {ON_PER_S} new connections/s: batching round-robin hand-offs every {}us",
                p.interval.as_micros()
            ));
            p.wake.notify_one();
        }
    });
}

/// The pacer task. It never holds a `RefCell` borrow across an await.
async fn run() {
    loop {
        let (on, interval, wake) = PACER.with(|p| (p.rate.borrow().on(), p.interval, p.wake.clone()));
        if !on {
            wake.notified().await;
            continue;
        }
        // Deliberately blocking: no events are looked at while the daemon sleeps, so the ones that
        // arrive pile up and are handled together afterwards.
        std::thread::sleep(interval);
        // Let every task the piled-up events wake run, and the tasks they wake in turn.
        for _ in 0..MAX_SETTLE_ROUNDS {
            let before = ACTIVITY.load(Ordering::Relaxed);
            tokio::task::yield_now().await;
            if ACTIVITY.load(Ordering::Relaxed) == before {
                break;
            }
        }
        let still = PACER.with(|p| p.rate.borrow_mut().tick(Instant::now()));
        if !still {
            crate::base::dlog(format!("under {OFF_PER_S} new connections/s: round-robin hand-offs unbatched again"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("AUTO"), Some(Mode::Auto));
        assert_eq!(Mode::parse(" off "), Some(Mode::Off));
        assert_eq!(Mode::parse("on"), Some(Mode::On));
        assert_eq!(Mode::parse("sometimes"), None);
    }

    #[test]
    fn auto_turns_on_with_a_flood_and_off_when_it_stops() {
        let t0 = Instant::now();
        let mut r = Rate::new(Mode::Auto, t0);
        // 1500/s: stays off.
        let mut t = t0;
        for _ in 0..40 {
            t += Duration::from_millis(10);
            assert!(!r.accepted(15, t));
        }
        assert!(!r.on());
        // 4000/s: on within one window.
        let mut turned = false;
        for _ in 0..10 {
            t += Duration::from_millis(5);
            turned |= r.accepted(20, t);
        }
        assert!(turned && r.on());
        // One quiet window is not enough to stop...
        t += WINDOW;
        assert!(r.tick(t));
        // ...two are.
        t += WINDOW;
        r.tick(t);
        t += WINDOW;
        assert!(!r.tick(t));
        // A long pause after a flood also ends it.
        for _ in 0..10 {
            t += Duration::from_millis(5);
            r.accepted(20, t);
        }
        assert!(r.on());
        assert!(!r.tick(t + Duration::from_secs(2)));
    }

    #[test]
    fn forced_modes_never_change() {
        let t0 = Instant::now();
        let mut on = Rate::new(Mode::On, t0);
        let mut off = Rate::new(Mode::Off, t0);
        assert!(on.on() && !off.on());
        assert!(!off.accepted(1_000_000, t0 + Duration::from_millis(1)));
        assert!(on.tick(t0 + Duration::from_secs(5)));
        assert!(!off.on());
    }
}
