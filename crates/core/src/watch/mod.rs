//! `watch`: restart an app when files under its watched paths change.
//!
//! One watcher serves the whole daemon, on its own thread (directory walks and watch set-up never
//! block the daemon's runtime). Native events (inotify on Linux, FSEvents/kqueue elsewhere, through
//! `notify`) are used per directory, so ignored trees (`node_modules`, `.git`, ...) are never walked nor
//! watched, and a quiet tree of any size costs nothing: the thread sleeps in a blocking receive. When
//! native events are unavailable (no inotify, or the `fs.inotify.max_user_watches` limit is reached),
//! the directories concerned are polled instead, and the daemon log says so; `watch_options:
//! {usePolling: true, interval: ms}` (chokidar's names) or `RPM2_WATCH_POLL=1` in the daemon's
//! environment ask for polling explicitly (network file systems).
//!
//! What triggers a restart: a file or directory created, removed, renamed, written, or whose
//! metadata changed (`touch`), under a watched path and not ignored. Reads do not count.
//!
//! Ignore rules ([`IgnoreRules`]): always `node_modules`, `.git`, every dot-file and dot-directory
//! (below the watched path), the app's own log and pid files (and rotated logs), the daemon's home;
//! the app's `ignore_watch` entries **extend** these defaults (PM2 replaces them; see the README).
//! An entry is a plain name
//! (`logs`: any file or directory of that name, at any depth), a glob without a slash (`*.log`:
//! matched against every path component), a relative path or glob with a slash (`src/gen`,
//! `data/**/*.csv`: relative to the app's cwd or to the watched path; a match on a directory ignores
//! everything below it), or an absolute path or glob.
//!
//! Debounce ([`Debounce`]): a burst of changes (a `git checkout` of 500 files) gives one restart: the
//! restart happens once no change has been seen for [`QUIET`], but no earlier than `watch_delay` after
//! the first change and no later than `watch_delay` + [`MAX_WAIT`]. Changes seen while the restart
//! runs give one more restart after it, unless they all came before the new process was spawned (the
//! tail of the same burst: the new process already sees them).
//!
//! Loop breaker ([`LoopBreaker`]): an app restarted by file changes more than [`LOOP_MAX`] times within
//! [`LOOP_WINDOW`] (typically one that writes into its own watched tree) has its watching paused; the
//! app is left running, the daemon log and `rpm2 show` say why, and `rpm2 restart <app>` (or turning
//! watch off and on) resumes it.

use crate::base::dlog;
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc as smpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod debounce;
mod engine;
mod hub;
pub use self::debounce::{Debounce, LoopBreaker};
use self::engine::*;
use self::hub::*;
pub use self::hub::{Hub, WatchFire, WatchSpec};

#[cfg(test)]
mod tests;

/// A burst of changes ends after this much silence.
pub const QUIET: Duration = Duration::from_millis(100);
/// Longest wait (after `watch_delay`) for a burst to end: a tree that never stops changing still
/// restarts the app.
pub const MAX_WAIT: Duration = Duration::from_millis(1000);
/// Restarts by file changes allowed within [`LOOP_WINDOW`] before watching is paused.
pub const LOOP_MAX: usize = 10;
/// The loop breaker's window.
pub const LOOP_WINDOW: Duration = Duration::from_secs(60);
pub use crate::config::watch_options::{IgnoreRules, DEFAULT_POLL};
