//! Debounce and loop breaker: the pure logic deciding when a burst of changes restarts an app.

use super::*;

/// Collects one app's changes until the burst is over (see the module doc).
#[derive(Debug, Default)]
pub struct Debounce {
    pub(super) first: Option<Instant>,
    pub(super) last: Option<Instant>,
    pub(super) path: Option<PathBuf>,
    pub(super) files: HashSet<PathBuf>,
}

/// Distinct paths remembered per burst (only their count is reported).
pub(super) const MAX_TRACKED: usize = 100_000;

impl Debounce {
    /// Notes a change of `path` at `now`.
    pub fn note(&mut self, now: Instant, path: &Path) {
        if self.first.is_none() {
            self.first = Some(now);
            self.path = Some(path.to_path_buf());
        }
        self.last = Some(now);
        if self.files.len() < MAX_TRACKED {
            self.files.insert(path.to_path_buf());
        }
    }

    #[cfg(test)]
    /// Whether changes are waiting.
    pub fn pending(&self) -> bool {
        self.first.is_some()
    }

    /// When the pending changes should restart the app, given `watch_delay`.
    pub fn due(&self, delay: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        let quiet_end = (last + QUIET).min(first + delay + MAX_WAIT);
        Some(quiet_end.max(first + delay))
    }

    /// Forgets the pending changes if all of them happened before `t` (a restart that spawned the new
    /// process at `t` already covers them).
    pub fn forget_before(&mut self, t: Instant) {
        if self.last.map(|l| l < t).unwrap_or(false) {
            *self = Debounce::default();
        }
    }

    /// Takes the burst: the first path changed and how many distinct paths changed in all.
    pub fn take(&mut self) -> Option<(PathBuf, usize)> {
        self.first?;
        let path = self.path.take()?;
        let n = self.files.len().max(1);
        *self = Debounce::default();
        Some((path, n))
    }
}

/// Counts restarts caused by file changes in a sliding window.
#[derive(Debug)]
pub struct LoopBreaker {
    pub(super) times: VecDeque<Instant>,
    pub(super) max: usize,
    pub(super) window: Duration,
}

impl LoopBreaker {
    /// At most `max` restarts within `window`.
    pub fn new(max: usize, window: Duration) -> LoopBreaker {
        LoopBreaker { times: VecDeque::new(), max, window }
    }

    /// Whether one more restart at `now` is allowed; it is recorded when it is.
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(t) = self.times.front() {
            if now.duration_since(*t) > self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        if self.times.len() >= self.max {
            return false;
        }
        self.times.push_back(now);
        true
    }

    /// Forgets the history (after the user resumed watching).
    pub fn reset(&mut self) {
        self.times.clear();
    }
}
