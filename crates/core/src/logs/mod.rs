//! App log files: where they are, writing what children print (appended, nothing lost, nothing split),
//! date prefixes and JSON lines, built-in size rotation (with retention and gzip), flush and reopen,
//! the daemon's own log, and reading the last lines of a file without reading all of it.
//!
//! How a child's output reaches the files (see `supervisor::pump`):
//! - the pump reads the pipe (64 KiB at a time) and feeds a [`LineAssembler`]: whole lines go on at
//!   once, a trailing partial line is held until its end arrives, it grows past [`MAX_PARTIAL`], or
//!   [`PARTIAL_FLUSH`] passes;
//! - [`LogFiles::write`] formats (raw, `<date>: ` prefix, or one JSON object per line) and appends to
//!   the out/err file and the combined file. A partial line written early is *continued* by the next
//!   write of the same source (no second prefix), so a prefix never splits a line; another source
//!   writing meanwhile first ends the dangling line with `\n`;
//! - rotation happens only at a line boundary: rename to `<stem>__YYYY-MM-DD_HH-mm-ss<ext>`, reopen,
//!   then prune (and gzip) in the background. Nothing is copied, so no line is lost or duplicated;
//! - write errors (full disk, unwritable path) are reported once per outage in `errors`, the data of
//!   that file is dropped meanwhile, and the file is reopened every [`RETRY_EVERY`] until it works.
//!
//! The pump reads only as fast as the files take the data: a child that writes faster than the disk
//! blocks in `write()` (back-pressure), and memory stays bounded.

use crate::base::fmt;
use crate::base::paths::{sanitize_name, Home};
use crate::config::spec::{AppSpec, LogTarget};
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::config::log_options::{LogOptions, Rotation};

mod assembler;
mod daemon_log;
mod rotation;
mod tail;
mod writer;
pub use self::assembler::LineAssembler;
pub use self::daemon_log::install_daemon_logger;
pub use self::rotation::rotated_path;
use self::rotation::*;
pub use self::tail::tail_lines;
pub use self::writer::LogFiles;
use self::writer::*;

#[cfg(test)]
mod tests;

/// How long a partial line (no newline yet) is held before it is written anyway.
pub const PARTIAL_FLUSH: Duration = Duration::from_millis(100);
/// A partial line longer than this is written at once (and continued later).
pub const MAX_PARTIAL: usize = 64 * 1024;
/// How often a file that could not be opened or written is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How often an open file's path is checked for an external rename/removal (then reopened).
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// The date in rotated file names.
const ROTATE_DATE: &str = "YYYY-MM-DD_HH-mm-ss";
/// Length of a formatted [`ROTATE_DATE`].
const ROTATE_DATE_LEN: usize = 19;

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout (`log:out`).
    Out,
    /// stderr (`log:err`).
    Err,
}

impl Stream {
    fn idx(self) -> usize {
        match self {
            Stream::Out => 0,
            Stream::Err => 1,
        }
    }
    /// `out` or `err` (the JSON `type`).
    pub fn name(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

/// A fresh id for one writer of a [`LogFiles`] (one pipe of one child): partial lines are continued
/// only by the source that started them.
pub fn next_source() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The resolved log and pid paths of one process (`None` = discarded).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcPaths {
    /// stdout file.
    pub out: Option<PathBuf>,
    /// stderr file.
    pub err: Option<PathBuf>,
    /// combined file.
    pub combined: Option<PathBuf>,
    /// pid file.
    pub pid: PathBuf,
}

fn with_id(p: &Path, id: u32) -> PathBuf {
    let file = p.file_name().and_then(|s| s.to_str()).unwrap_or("log");
    let name = match file.rfind('.') {
        Some(i) if i > 0 => format!("{}-{}{}", &file[..i], id, &file[i..]),
        _ => format!("{file}-{id}"),
    };
    p.with_file_name(name)
}

/// Computes a process's paths as PM2 does: defaults under `RPM2_HOME/logs` and `RPM2_HOME/pids`,
/// `-<pm_id>` inserted unless `merge_logs` (always for pid files).
pub fn proc_paths(home: &Home, spec: &AppSpec, pm_id: u32) -> ProcPaths {
    let base = sanitize_name(&spec.name);
    let resolve = |t: &LogTarget, default: String| -> Option<PathBuf> {
        let p = match t {
            LogTarget::Null => return None,
            LogTarget::Default => home.logs_dir().join(default),
            LogTarget::File(p) => p.clone(),
        };
        Some(if spec.merge_logs { p } else { with_id(&p, pm_id) })
    };
    ProcPaths {
        out: resolve(&spec.out_file, format!("{base}-out.log")),
        err: resolve(&spec.error_file, format!("{base}-error.log")),
        combined: spec.log_file.as_ref().and_then(|t| resolve(t, format!("{base}.log"))),
        pid: match &spec.pid_file {
            Some(p) => with_id(p, pm_id),
            None => home.pids_dir().join(format!("{base}-{pm_id}.pid")),
        },
    }
}
