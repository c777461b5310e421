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

pub use crate::config::log_options::{LogOptions, Rotation, DEFAULT_MAX_SIZE, DEFAULT_RETAIN};
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

// ---------------------------------------------------------------------------------------------------
// Line assembly

/// Holds the end of a chunk that is not a whole line yet, so that formatting and the bus see lines.
#[derive(Debug, Default)]
pub struct LineAssembler {
    pending: Vec<u8>,
    since: Option<Instant>,
}

impl LineAssembler {
    /// A new, empty assembler.
    pub fn new() -> LineAssembler {
        LineAssembler::default()
    }

    /// Feeds a chunk read from the pipe; returns what can be written now: every whole line (with what
    /// was held before), or a long partial line (past [`MAX_PARTIAL`]). Empty when all is held.
    pub fn push<'a>(&mut self, data: &'a [u8]) -> Cow<'a, [u8]> {
        match data.iter().rposition(|&b| b == b'\n') {
            None => {
                if self.pending.is_empty() {
                    self.since = Some(Instant::now());
                }
                self.pending.extend_from_slice(data);
                if self.pending.len() >= MAX_PARTIAL {
                    Cow::Owned(self.take())
                } else {
                    Cow::Borrowed(&[])
                }
            }
            Some(i) => {
                let (head, tail) = data.split_at(i + 1);
                let out = if self.pending.is_empty() {
                    Cow::Borrowed(head)
                } else {
                    let mut v = std::mem::take(&mut self.pending);
                    v.extend_from_slice(head);
                    Cow::Owned(v)
                };
                self.pending.extend_from_slice(tail);
                self.since = if tail.is_empty() { None } else { Some(Instant::now()) };
                out
            }
        }
    }

    /// When the held partial line must be written ([`PARTIAL_FLUSH`] after it began), if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + PARTIAL_FLUSH)
    }

    /// Takes whatever is held (the flush timeout passed, or the pipe closed).
    pub fn take(&mut self) -> Vec<u8> {
        self.since = None;
        std::mem::take(&mut self.pending)
    }
}

// ---------------------------------------------------------------------------------------------------
// Writer

/// One open file (several streams may share it: out + combined, or `-o x -e x`).
#[derive(Debug)]
struct Slot {
    path: PathBuf,
    file: Option<File>,
    /// (dev, ino) of `file`.
    id: (u64, u64),
    /// Bytes in the file, as far as we know (re-read from the fd before rotating).
    size: u64,
    /// The source whose line is unfinished at the end of the file.
    mid: Option<u64>,
    /// An error was reported and not yet resolved.
    broken: bool,
    retry_at: Option<Instant>,
    checked_at: Instant,
}

/// A source id that matches no writer: a file that ended mid-line before we opened it.
const FOREIGN: u64 = 0;

/// The open files of one process. Writes are appended; a file that cannot be opened or written is
/// reported once, retried every [`RETRY_EVERY`], and the app keeps running.
#[derive(Debug)]
pub struct LogFiles {
    paths: ProcPaths,
    opts: LogOptions,
    slots: Vec<Slot>,
    /// out, err, combined → slot.
    route: [Option<usize>; 3],
    /// Unfinished line per stream, as the bus sees it.
    view_mid: [Option<u64>; 2],
    /// Errors and notices not yet reported (with the path), drained by the owner for the daemon log.
    pub errors: Vec<String>,
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// (continuation, break) of a write by `src` to a file whose unfinished line belongs to `mid`.
fn state(mid: Option<u64>, src: u64) -> (bool, bool) {
    match mid {
        None => (false, false),
        Some(m) if m == src => (true, false),
        Some(_) => (false, true),
    }
}

impl LogFiles {
    /// Opens (creating folders and files as needed) the files of `paths`.
    pub fn open(paths: ProcPaths, opts: LogOptions) -> LogFiles {
        let mut lf = LogFiles {
            paths: paths.clone(),
            opts,
            slots: Vec::new(),
            route: [None; 3],
            view_mid: [None; 2],
            errors: Vec::new(),
        };
        if lf.opts.disabled {
            return lf; // disable_logs: no files at all
        }
        for (i, p) in [paths.out, paths.err, paths.combined].into_iter().enumerate() {
            let Some(p) = p else { continue };
            let idx = match lf.slots.iter().position(|s| s.path == p) {
                Some(idx) => idx,
                None => {
                    lf.slots.push(Slot {
                        path: p,
                        file: None,
                        id: (0, 0),
                        size: 0,
                        mid: None,
                        broken: false,
                        retry_at: None,
                        checked_at: Instant::now(),
                    });
                    let idx = lf.slots.len() - 1;
                    lf.open_slot(idx);
                    idx
                }
            };
            lf.route[i] = Some(idx);
        }
        lf
    }

    /// The options of process `pm_id` of `spec`, and its files.
    pub fn for_app(spec: &AppSpec, pm_id: u32, paths: ProcPaths) -> LogFiles {
        LogFiles::open(paths, LogOptions::for_app(spec, pm_id))
    }

    /// The paths written.
    pub fn paths(&self) -> &ProcPaths {
        &self.paths
    }

    /// The options in force.
    pub fn options(&self) -> &LogOptions {
        &self.opts
    }

    /// Whether output is dropped (`disable_logs`).
    pub fn disabled(&self) -> bool {
        self.opts.disabled
    }

    fn open_slot(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        slot.checked_at = Instant::now();
        if let Some(dir) = slot.path.parent() {
            if !dir.exists() {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    if !slot.broken {
                        self.errors.push(format!(
                            "cannot create the log folder {} for {}: {e}; the app keeps running, retrying every {}s",
                            dir.display(),
                            slot.path.display(),
                            RETRY_EVERY.as_secs()
                        ));
                    }
                    slot.broken = true;
                    slot.retry_at = Some(Instant::now() + RETRY_EVERY);
                    return;
                }
            }
        }
        match OpenOptions::new().create(true).append(true).read(true).open(&slot.path) {
            Ok(f) => {
                let meta = f.metadata().ok();
                slot.id = meta.as_ref().map(file_id).unwrap_or((0, 0));
                slot.size = meta.map(|m| m.len()).unwrap_or(0);
                // A file that ends mid-line (an earlier run, a failed write): the next line starts anew.
                slot.mid = None;
                if slot.size > 0 {
                    let mut last = [0u8; 1];
                    let ends_mid = std::os::unix::fs::FileExt::read_at(&f, &mut last, slot.size - 1)
                        .map(|n| n == 1 && last[0] != b'\n')
                        .unwrap_or(false);
                    if ends_mid {
                        slot.mid = Some(FOREIGN);
                    }
                }
                if slot.broken {
                    self.errors.push(format!("log file {} is writable again: writing resumed", slot.path.display()));
                }
                slot.broken = false;
                slot.retry_at = None;
                slot.file = Some(f);
            }
            Err(e) => {
                if !slot.broken {
                    self.errors.push(format!(
                        "cannot open log file {}: {e}; the app keeps running, retrying every {}s",
                        slot.path.display(),
                        RETRY_EVERY.as_secs()
                    ));
                }
                slot.broken = true;
                slot.file = None;
                slot.retry_at = Some(Instant::now() + RETRY_EVERY);
            }
        }
    }

    /// Reopens every file (after an external rotation, or a fixed permission problem).
    pub fn reopen(&mut self) {
        for idx in 0..self.slots.len() {
            self.slots[idx].file = None;
            self.open_slot(idx);
        }
    }

    /// Formats `data` (whole lines, or a partial line at the end) for `stream`. `cont`: the first line
    /// continues an unfinished one (no prefix); `brk`: another source's line is unfinished (end it).
    fn format<'a>(&self, stream: Stream, data: &'a [u8], cont: bool, brk: bool, now: u64) -> Cow<'a, [u8]> {
        if self.opts.json {
            let ts = match &self.opts.date_format {
                Some(f) => fmt::format_date(now, f),
                None => fmt::iso_utc(now),
            };
            let mut out = Vec::with_capacity(data.len() + 128);
            for piece in data.split_inclusive(|&b| b == b'\n') {
                let obj = serde_json::json!({
                    "message": String::from_utf8_lossy(piece),
                    "timestamp": ts,
                    "type": stream.name(),
                    "process_id": self.opts.pm_id,
                    "app_name": self.opts.app_name,
                });
                let _ = serde_json::to_writer(&mut out, &obj);
                out.push(b'\n');
            }
            return Cow::Owned(out);
        }
        match &self.opts.date_format {
            None if !brk => Cow::Borrowed(data),
            None => {
                let mut v = Vec::with_capacity(data.len() + 1);
                v.push(b'\n');
                v.extend_from_slice(data);
                Cow::Owned(v)
            }
            Some(f) => {
                let prefix = format!("{}: ", fmt::format_date(now, f));
                let mut v = Vec::with_capacity(data.len() + prefix.len() * 4 + 1);
                if brk {
                    v.push(b'\n');
                }
                for (i, piece) in data.split_inclusive(|&b| b == b'\n').enumerate() {
                    if !(i == 0 && cont) {
                        v.extend_from_slice(prefix.as_bytes());
                    }
                    v.extend_from_slice(piece);
                }
                Cow::Owned(v)
            }
        }
    }

    /// Appends what source `src` wrote on `stream` (whole lines, possibly ending with a partial line
    /// that a later write of the same source continues). Returns the bytes as formatted for the
    /// stream's file, for the bus (empty with `disable_logs`). Rotates files that passed `max_size`.
    pub fn write<'a>(&mut self, src: u64, stream: Stream, data: &'a [u8]) -> Cow<'a, [u8]> {
        if self.opts.disabled || data.is_empty() {
            return Cow::Borrowed(&[]);
        }
        let si = stream.idx();
        let now = fmt::now_ms();
        let (cont, brk) = state(self.view_mid[si], src);
        let view = self.format(stream, data, cont, brk, now);
        let new_mid = if self.opts.json || data.ends_with(b"\n") { None } else { Some(src) };
        self.view_mid[si] = new_mid;
        let targets = match (self.route[si], self.route[2]) {
            (Some(a), Some(b)) if a == b => [Some(a), None],
            (a, b) => [a, b],
        };
        for t in targets.into_iter().flatten() {
            let st = state(self.slots[t].mid, src);
            if st == (cont, brk) {
                self.write_slot(t, &view);
            } else {
                let alt = self.format(stream, data, st.0, st.1, now);
                self.write_slot(t, &alt);
            }
            self.slots[t].mid = new_mid;
            let max = self.opts.rotation.max_size;
            if max > 0 && new_mid.is_none() && self.slots[t].size >= max {
                self.rotate_slot(t);
            }
        }
        view
    }

    fn write_slot(&mut self, idx: usize, bytes: &[u8]) {
        let now = Instant::now();
        if self.slots[idx].file.is_none() {
            if self.slots[idx].retry_at.map(|t| now < t).unwrap_or(false) {
                return;
            }
            self.open_slot(idx);
            if self.slots[idx].file.is_none() {
                return;
            }
        } else if now.duration_since(self.slots[idx].checked_at) >= RECHECK_EVERY {
            // Renamed or removed behind our back (logrotate, another process's rotation of a shared
            // file, rm): write to a file at the path again. Otherwise refresh the size, which other
            // writers of a shared file (merge_logs) and flush change.
            let slot = &mut self.slots[idx];
            slot.checked_at = now;
            let same = std::fs::metadata(&slot.path).map(|m| file_id(&m) == slot.id).unwrap_or(false);
            if same {
                if let Some(len) = slot.file.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.len()) {
                    slot.size = len;
                }
            } else {
                slot.file = None;
                self.open_slot(idx);
                if self.slots[idx].file.is_none() {
                    return;
                }
            }
        }
        let slot = &mut self.slots[idx];
        let Some(f) = slot.file.as_mut() else { return };
        let mut bytes = Cow::Borrowed(bytes);
        if slot.mid == Some(FOREIGN) && !bytes.starts_with(b"\n") {
            let mut v = Vec::with_capacity(bytes.len() + 1);
            v.push(b'\n');
            v.extend_from_slice(&bytes);
            bytes = Cow::Owned(v);
        }
        match f.write_all(&bytes) {
            Ok(()) => slot.size += bytes.len() as u64,
            Err(e) => {
                if !slot.broken {
                    self.errors.push(format!(
                        "cannot write log file {}: {e}; output is dropped until it can be written again (retrying every {}s)",
                        slot.path.display(),
                        RETRY_EVERY.as_secs()
                    ));
                }
                slot.broken = true;
                slot.file = None;
                slot.retry_at = Some(now + RETRY_EVERY);
            }
        }
    }

    fn rotate_slot(&mut self, idx: usize) {
        let rot = self.opts.rotation.clone();
        let slot = &mut self.slots[idx];
        let Some(f) = slot.file.as_ref() else { return };
        // The file may have been emptied (flush) or replaced since we counted.
        let actual = f.metadata().map(|m| m.len()).unwrap_or(slot.size);
        if actual < rot.max_size {
            slot.size = actual;
            return;
        }
        let same = std::fs::metadata(&slot.path).map(|m| file_id(&m) == slot.id).unwrap_or(false);
        if !same {
            slot.file = None;
            self.open_slot(idx);
            return;
        }
        let target = rotated_path(&slot.path, fmt::now_ms());
        if let Err(e) = std::fs::rename(&slot.path, &target) {
            if !slot.broken {
                self.errors.push(format!(
                    "cannot rotate log file {} to {}: {e}; it keeps growing",
                    slot.path.display(),
                    target.display()
                ));
            }
            slot.size = 0; // try again after another max_size bytes
            return;
        }
        slot.file = None;
        let path = slot.path.clone();
        self.open_slot(idx);
        finish_rotation(path, target, rot);
    }
}

// ---------------------------------------------------------------------------------------------------
// Rotated files

fn split_name(path: &Path) -> (PathBuf, String, String) {
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| PathBuf::from("."));
    let file = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "log".into());
    match file.rfind('.') {
        Some(i) if i > 0 => (dir, file[..i].to_string(), file[i..].to_string()),
        _ => (dir, file, String::new()),
    }
}

/// Where `path` goes when rotated at `ms`: `<stem>__YYYY-MM-DD_HH-mm-ss<ext>` (local time), with
/// `-1`, `-2`... after the date when rotated files of that second exist (always above the highest
/// counter present, so that names sort in rotation order even after pruning).
pub fn rotated_path(path: &Path, ms: u64) -> PathBuf {
    let (dir, stem, ext) = split_name(path);
    let date = fmt::format_date(ms, ROTATE_DATE);
    // The counters come from file names anyone can create in the log folder: saturate, then wrap in the
    // probe loop, so a `-18446744073709551615` name neither overflows nor makes the loop endless.
    let mut n =
        rotated_keys(path).into_iter().filter(|(d, _)| *d == date).map(|(_, n)| n.saturating_add(1)).max().unwrap_or(0);
    loop {
        let name = if n == 0 { format!("{stem}__{date}{ext}") } else { format!("{stem}__{date}-{n}{ext}") };
        let p = dir.join(&name);
        if !p.exists() && !dir.join(format!("{name}.gz")).exists() {
            return p;
        }
        n = n.wrapping_add(1);
    }
}

fn rotated_keys(path: &Path) -> Vec<(String, u64)> {
    rotated_map(path).into_keys().collect()
}

/// The rotated files of `path`, oldest first: each entry is the files of one rotation (the `.log`,
/// its `.gz`, or both while being compressed).
pub fn rotated_files(path: &Path) -> Vec<Vec<PathBuf>> {
    rotated_map(path).into_values().collect()
}

fn rotated_map(path: &Path) -> std::collections::BTreeMap<(String, u64), Vec<PathBuf>> {
    let (dir, stem, ext) = split_name(path);
    let prefix = format!("{stem}__");
    let gz = format!("{ext}.gz");
    let mut found: std::collections::BTreeMap<(String, u64), Vec<PathBuf>> = Default::default();
    let Ok(rd) = std::fs::read_dir(&dir) else { return found };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else { continue };
        let middle = if let Some(m) = rest.strip_suffix(&gz) {
            m
        } else if let Some(m) = rest.strip_suffix(ext.as_str()) {
            m
        } else {
            continue;
        };
        if middle.len() < ROTATE_DATE_LEN || !middle.is_char_boundary(ROTATE_DATE_LEN) {
            continue;
        }
        let (date, tail) = middle.split_at(ROTATE_DATE_LEN);
        let date_ok = date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 13 | 16 => b == b'-',
            10 => b == b'_',
            _ => b.is_ascii_digit(),
        });
        let n = match tail {
            "" => Some(0),
            t => t.strip_prefix('-').and_then(|n| n.parse::<u64>().ok()),
        };
        if let (true, Some(n)) = (date_ok, n) {
            found.entry((date.to_string(), n)).or_default().push(e.path());
        }
    }
    found
}

/// Removes the oldest rotated files of `path` beyond `retain`.
pub fn prune(path: &Path, retain: usize) {
    let all = rotated_files(path);
    if all.len() > retain {
        for group in &all[..all.len() - retain] {
            for f in group {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// Gzips `file` into `file.gz` (through a temporary file) and removes `file`.
pub fn gzip_file(file: &Path) -> std::io::Result<PathBuf> {
    let mut gz_name = file.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz = PathBuf::from(gz_name);
    let mut tmp_name = gz.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let res = (|| {
        let mut input = std::io::BufReader::new(File::open(file)?);
        let out = File::create(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        let mut w = enc.finish()?;
        w.flush()?;
        std::fs::rename(&tmp, &gz)?;
        std::fs::remove_file(file)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(gz)
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the one background thread that compresses and prunes rotated files. One thread, in
/// order: a later prune never races an earlier compression (which would bring a pruned file back).
fn background(job: Job) {
    static QUEUE: Mutex<Option<std::sync::mpsc::Sender<Job>>> = Mutex::new(None);
    let Ok(mut q) = QUEUE.lock() else { return job() };
    if q.is_none() {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new().name("rpm2-logs".into()).spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        });
        if let Err(e) = spawned {
            drop(q);
            crate::base::dlog(format!("cannot start the log compression thread: {e}; compressing inline"));
            return job();
        }
        *q = Some(tx);
    }
    if let Some(tx) = q.as_ref() {
        if let Err(std::sync::mpsc::SendError(job)) = tx.send(job) {
            *q = None;
            drop(q);
            job();
        }
    }
}

/// After `path` was renamed to `target`: gzip it (in the background) if asked, and prune old files.
fn finish_rotation(path: PathBuf, target: PathBuf, rot: Rotation) {
    if !rot.compress {
        prune(&path, rot.retain);
        return;
    }
    background(Box::new(move || {
        match gzip_file(&target) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // pruned meanwhile
            Err(e) => crate::base::dlog(format!("cannot compress rotated log {}: {e}", target.display())),
        }
        prune(&path, rot.retain);
    }));
}

// ---------------------------------------------------------------------------------------------------
// The daemon's own log

/// The `log` facade's sink in the daemon: each record of rpm2's own modules (see [`crate::base::dlog`])
/// becomes one timestamped line of the daemon log ([`daemon_log_line`]); records of other crates are
/// dropped.
struct DaemonLogger;

impl log::Log for DaemonLogger {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.target().starts_with("rpm2")
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let at = fmt::format_date(fmt::now_ms(), "YYYY-MM-DDTHH:mm:ss");
            daemon_log_line(&format!("{at}: rpm2: {}", record.args()));
        }
    }
    fn flush(&self) {}
}

static DAEMON_LOGGER: DaemonLogger = DaemonLogger;

/// Routes [`crate::base::dlog`] to the daemon log for the rest of this process. Called once by the
/// daemon at start; a second call (or another logger already set) changes nothing.
pub fn install_daemon_logger() {
    if log::set_logger(&DAEMON_LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

struct DaemonLog {
    path: Option<PathBuf>,
    /// Whether our stderr is that file (decided at the first line).
    owned: Option<bool>,
    rotation: Rotation,
}

static DAEMON_LOG: Mutex<Option<DaemonLog>> = Mutex::new(None);

fn reopen_stdio(path: &Path) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(f) = OpenOptions::new().create(true).append(true).mode(0o600).open(path) {
        // SAFETY: dup2 onto our own standard descriptors; `f` stays valid for the call.
        unsafe {
            libc::dup2(f.as_raw_fd(), 1);
            libc::dup2(f.as_raw_fd(), 2);
        }
    }
}

/// Writes one line to the daemon's stderr (never panics), and when stderr is `RPM2_HOME/rpm2.log`
/// rotates it past the size limit ([`Rotation::defaults`] from the daemon's environment) and follows
/// an external rename (logrotate) by reopening it.
pub fn daemon_log_line(line: &str) {
    {
        let mut err = std::io::stderr().lock();
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let _ = err.write_all(&buf);
    }
    let Ok(mut guard) = DAEMON_LOG.lock() else { return };
    let st = guard.get_or_insert_with(|| DaemonLog {
        // The file our stderr was opened on (before any rename), else RPM2_HOME's.
        path: std::fs::read_link("/proc/self/fd/2")
            .ok()
            .filter(|p| p.file_name().map(|n| n == "rpm2.log").unwrap_or(false))
            .or_else(|| Home::from_env().ok().map(|h| h.daemon_log())),
        owned: None,
        rotation: Rotation::defaults(&|k| std::env::var(k).ok()),
    });
    let Some(path) = st.path.clone() else { return };
    // SAFETY: fstat writes into the zeroed struct we own.
    let mut sb: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut sb) } != 0 || (sb.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return;
    }
    let fd_id = (sb.st_dev, sb.st_ino);
    let at_path = std::fs::metadata(&path).ok().map(|m| file_id(&m));
    let owned = *st.owned.get_or_insert(at_path == Some(fd_id));
    if !owned {
        return;
    }
    if at_path != Some(fd_id) {
        reopen_stdio(&path);
        return;
    }
    let max = st.rotation.max_size;
    if max == 0 || (sb.st_size as u64) < max {
        return;
    }
    let target = rotated_path(&path, fmt::now_ms());
    if std::fs::rename(&path, &target).is_ok() {
        reopen_stdio(&path);
        let rotation = st.rotation.clone();
        drop(guard); // finish_rotation may log
        finish_rotation(path, target, rotation);
    }
}

// ---------------------------------------------------------------------------------------------------
// Tail

/// The last `n` lines of a file, reading backwards from the end in blocks (never the whole file).
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    let mut f = File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    if n == 0 || len == 0 {
        return Ok(vec![]);
    }
    const BLOCK: u64 = 64 * 1024;
    let mut pos = len;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0usize;
    let mut trailing = None;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        if trailing.is_none() {
            trailing = Some(chunk.last() == Some(&b'\n'));
        }
        newlines += chunk.iter().filter(|&&b| b == b'\n').count();
        blocks.push(chunk);
        pos = start;
        // n whole lines: n newlines before them, not counting the file's final newline.
        if newlines - usize::from(trailing == Some(true)) >= n {
            break;
        }
    }
    let mut buf = Vec::with_capacity(blocks.iter().map(|b| b.len()).sum());
    for b in blocks.iter().rev() {
        buf.extend_from_slice(b);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.lines().map(|s| s.to_string()).collect();
    let keep = lines.len().saturating_sub(n);
    Ok(lines.split_off(keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve_app, ResolveCtx};
    use serde_json::Value;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rpm2-logs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn opts(date: Option<&str>, json: bool, rotation: Rotation) -> LogOptions {
        LogOptions {
            date_format: date.map(|s| s.to_string()),
            json,
            disabled: false,
            rotation,
            app_name: "app".into(),
            pm_id: 7,
        }
    }

    fn paths(d: &Path, combined: bool) -> ProcPaths {
        ProcPaths {
            out: Some(d.join("o.log")),
            err: Some(d.join("e.log")),
            combined: if combined { Some(d.join("c.log")) } else { None },
            pid: d.join("p"),
        }
    }

    #[test]
    fn paths_like_pm2() {
        let d = tmp("paths");
        std::fs::write(d.join("a.js"), "").unwrap();
        let ctx = ResolveCtx { cwd: d.clone(), env: Default::default(), env_name: None };
        let home = Home::at(d.join("home"));
        let s = resolve_app(&serde_json::json!({"script": "a.js", "name": "my app"}), &ctx).unwrap().spec;
        let p = proc_paths(&home, &s, 3);
        assert_eq!(p.out.unwrap(), d.join("home/logs/my-app-out.log"));
        assert_eq!(p.pid, d.join("home/pids/my-app-3.pid"));
        let s = resolve_app(
            &serde_json::json!({"script": "a.js", "merge_logs": false, "out_file": "o.log", "error_file": "NULL"}),
            &ctx,
        )
        .unwrap()
        .spec;
        let p = proc_paths(&home, &s, 4);
        assert_eq!(p.out.unwrap(), d.join("o-4.log"));
        assert!(p.err.is_none());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn assembler_holds_partial_lines() {
        let mut a = LineAssembler::new();
        assert_eq!(&*a.push(b"a\nb"), b"a\n");
        assert!(a.deadline().is_some());
        assert_eq!(&*a.push(b"c"), b"");
        assert_eq!(&*a.push(b"d\ne\n"), b"bcd\ne\n");
        assert!(a.deadline().is_none());
        assert_eq!(&*a.push(b"tail"), b"");
        assert_eq!(a.take(), b"tail");
        assert!(a.deadline().is_none());
        // A very long line is let through in pieces.
        let big = vec![b'x'; MAX_PARTIAL];
        assert_eq!(a.push(&big).len(), MAX_PARTIAL);
        assert!(a.take().is_empty());
    }

    #[test]
    fn prefixes_each_line_and_continues_partials() {
        let d = tmp("write");
        let mut lf = LogFiles::open(paths(&d, true), opts(Some("[T]"), false, Rotation::off()));
        let (s1, s2) = (next_source(), next_source());
        assert_eq!(&*lf.write(s1, Stream::Out, b"a\nb"), b"T: a\nT: b");
        // The same source continues its line: no second prefix.
        assert_eq!(&*lf.write(s1, Stream::Out, b"c\n"), b"c\n");
        lf.write(s1, Stream::Out, b"part");
        // Another source (a new child after a restart) ends the dangling line first.
        lf.write(s2, Stream::Out, b"x\n");
        lf.write(s2, Stream::Err, b"oops\n");
        let s = std::fs::read_to_string(d.join("o.log")).unwrap();
        assert_eq!(s, "T: a\nT: bc\nT: part\nT: x\n");
        assert_eq!(std::fs::read_to_string(d.join("e.log")).unwrap(), "T: oops\n");
        assert_eq!(std::fs::read_to_string(d.join("c.log")).unwrap(), "T: a\nT: bc\nT: part\nT: x\nT: oops\n");
        // Invalid UTF-8 passes through to files.
        lf.write(s1, Stream::Err, b"\xff\xfe\n");
        assert!(std::fs::read(d.join("e.log")).unwrap().ends_with(b"T: \xff\xfe\n"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn raw_lines_and_shared_files() {
        let d = tmp("raw");
        let p = ProcPaths { out: Some(d.join("x.log")), err: Some(d.join("x.log")), combined: None, pid: d.join("p") };
        // A file that ended mid-line before we opened it: the next line starts on its own line.
        std::fs::write(d.join("x.log"), "old").unwrap();
        let mut lf = LogFiles::open(p, LogOptions::plain());
        let s = next_source();
        assert!(matches!(lf.write(s, Stream::Out, b"one\n"), Cow::Borrowed(_)));
        lf.write(s, Stream::Err, b"two\n");
        assert_eq!(std::fs::read_to_string(d.join("x.log")).unwrap(), "old\none\ntwo\n");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn json_lines_have_pm2_shape() {
        let d = tmp("json");
        let mut lf = LogFiles::open(paths(&d, false), opts(None, true, Rotation::off()));
        let s = next_source();
        lf.write(s, Stream::Err, b"first\nsecond \xff\n");
        let text = std::fs::read_to_string(d.join("e.log")).unwrap();
        let objs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(objs.len(), 2);
        let keys: Vec<&String> = objs[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["message", "timestamp", "type", "process_id", "app_name"]);
        assert_eq!(objs[0]["message"], "first\n");
        assert_eq!(objs[1]["message"], "second \u{fffd}\n");
        assert_eq!(objs[0]["type"], "err");
        assert_eq!(objs[0]["process_id"], 7);
        assert_eq!(objs[0]["app_name"], "app");
        assert!(objs[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        // With a date format the timestamp uses it.
        let mut lf = LogFiles::open(paths(&d, false), opts(Some("[day]"), true, Rotation::off()));
        lf.write(s, Stream::Out, b"x\n");
        let last = std::fs::read_to_string(d.join("o.log")).unwrap();
        let v: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(v["timestamp"], "day");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn rotation_keeps_every_line_in_order_and_prunes() {
        let d = tmp("rotate");
        let rot = Rotation { max_size: 1000, retain: 3, compress: false };
        let mut lf = LogFiles::open(paths(&d, false), opts(None, false, rot));
        let s = next_source();
        let mut all = String::new();
        for i in 0..100 {
            let line = format!("line {i:04} ..........\n");
            all.push_str(&line);
            lf.write(s, Stream::Out, line.as_bytes());
        }
        let groups = rotated_files(&d.join("o.log"));
        assert_eq!(groups.len(), 2, "{groups:?}");
        let mut seen = String::new();
        for g in &groups {
            seen.push_str(&std::fs::read_to_string(&g[0]).unwrap());
        }
        seen.push_str(&std::fs::read_to_string(d.join("o.log")).unwrap());
        assert_eq!(seen, all, "two rotations and the current file hold every line once");
        // Pruning keeps the newest `retain`.
        let mut lf = LogFiles::open(paths(&d, false), opts(None, false, Rotation { retain: 3, ..Rotation::off() }));
        lf.opts.rotation.max_size = 100;
        for i in 0..40 {
            lf.write(s, Stream::Out, format!("more {i:04} ..........\n").as_bytes());
        }
        let groups = rotated_files(&d.join("o.log"));
        assert_eq!(groups.len(), 3);
        let newest = std::fs::read_to_string(&groups[2][0]).unwrap();
        assert!(newest.contains("more 00"), "{newest}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn rotation_waits_for_a_line_end() {
        let d = tmp("rotmid");
        let mut lf =
            LogFiles::open(paths(&d, false), opts(None, false, Rotation { max_size: 10, retain: 5, compress: false }));
        let s = next_source();
        lf.write(s, Stream::Out, b"0123456789abcdef");
        assert!(rotated_files(&d.join("o.log")).is_empty(), "no rotation inside a line");
        lf.write(s, Stream::Out, b" end\n");
        let groups = rotated_files(&d.join("o.log"));
        assert_eq!(groups.len(), 1);
        assert_eq!(std::fs::read_to_string(&groups[0][0]).unwrap(), "0123456789abcdef end\n");
        assert_eq!(std::fs::read_to_string(d.join("o.log")).unwrap(), "");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn rotated_names_and_gzip() {
        let d = tmp("names");
        let p = d.join("app-out.log");
        let off = fmt::local_time(1795593600000).offset_secs;
        let ms = (1795593600000i64 - off * 1000) as u64; // 2026-11-25 08:00:00 local
        let r = rotated_path(&p, ms);
        assert_eq!(r, d.join("app-out__2026-11-25_08-00-00.log"));
        std::fs::write(&r, "x\n").unwrap();
        assert_eq!(rotated_path(&p, ms), d.join("app-out__2026-11-25_08-00-00-1.log"));
        std::fs::write(d.join("app-out__2026-11-25_08-00-00-1.log"), "y\n").unwrap();
        std::fs::write(d.join("app-out__2026-11-24_23-59-59.log.gz"), "").unwrap();
        std::fs::write(d.join("app-out-3__2026-11-24_23-59-59.log"), "").unwrap(); // another file's
        std::fs::write(d.join("app-out__junk.log"), "").unwrap();
        let names: Vec<String> =
            rotated_files(&p).iter().map(|g| g[0].file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "app-out__2026-11-24_23-59-59.log.gz",
                "app-out__2026-11-25_08-00-00.log",
                "app-out__2026-11-25_08-00-00-1.log"
            ]
        );
        let gz = gzip_file(&r).unwrap();
        assert!(!r.exists());
        let mut s = String::new();
        flate2::read::GzDecoder::new(File::open(&gz).unwrap()).read_to_string(&mut s).unwrap();
        assert_eq!(s, "x\n");
        prune(&p, 1);
        let left = rotated_files(&p);
        assert_eq!(left.len(), 1);
        assert!(left[0][0].ends_with("app-out__2026-11-25_08-00-00-1.log"));
        assert!(d.join("app-out-3__2026-11-24_23-59-59.log").exists());
        // After pruning, a rotation in the same second still sorts last.
        assert_eq!(rotated_path(&p, ms), d.join("app-out__2026-11-25_08-00-00-2.log"));
        // A counter at u64::MAX (anyone can create such a name) neither overflows nor loops forever.
        std::fs::write(d.join(format!("app-out__2026-11-25_08-00-00-{}.log", u64::MAX)), "").unwrap();
        let r = rotated_path(&p, ms);
        assert!(!r.exists(), "{}", r.display());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn rotation_options() {
        let none = |_: &str| None;
        let r = Rotation::resolve(None, None, None, &none).unwrap();
        assert_eq!(r, Rotation { max_size: DEFAULT_MAX_SIZE, retain: DEFAULT_RETAIN, compress: false });
        let r = Rotation::resolve(Some(&"100K".into()), Some(&5.into()), Some(&true.into()), &none).unwrap();
        assert_eq!(r, Rotation { max_size: 102400, retain: 5, compress: true });
        assert_eq!(Rotation::resolve(Some(&false.into()), None, None, &none).unwrap().max_size, 0);
        assert_eq!(Rotation::resolve(Some(&0.into()), None, None, &none).unwrap().max_size, 0);
        let off = |k: &str| (k == "RPM2_LOG_ROTATE").then(|| "off".to_string());
        assert_eq!(Rotation::resolve(None, None, None, &off).unwrap().max_size, 0);
        assert_eq!(Rotation::resolve(Some(&"1M".into()), None, None, &off).unwrap().max_size, 0);
        assert!(Rotation::resolve(Some(&"10X".into()), None, None, &none).unwrap_err().contains("max_size"));
        assert!(Rotation::resolve(None, Some(&"many".into()), None, &none).unwrap_err().contains("retain"));
        assert!(Rotation::resolve(None, None, Some(&"yes".into()), &none).unwrap_err().contains("compress"));
    }

    #[test]
    fn unwritable_path_is_reported_once_and_retried() {
        let d = tmp("fault");
        std::fs::write(d.join("blocker"), "a file, not a folder").unwrap();
        let p = ProcPaths { out: Some(d.join("blocker/o.log")), err: None, combined: None, pid: d.join("p") };
        let mut lf = LogFiles::open(p, LogOptions::plain());
        assert_eq!(lf.errors.len(), 1);
        assert!(lf.errors[0].contains("blocker/o.log"), "{:?}", lf.errors);
        let s = next_source();
        lf.write(s, Stream::Out, b"lost\n");
        lf.write(s, Stream::Out, b"lost\n");
        assert_eq!(lf.errors.len(), 1, "reported once");
        std::fs::remove_file(d.join("blocker")).unwrap();
        lf.slots[0].retry_at = Some(Instant::now());
        lf.write(s, Stream::Out, b"back\n");
        assert_eq!(std::fs::read_to_string(d.join("blocker/o.log")).unwrap(), "back\n");
        assert!(lf.errors[1].contains("resumed"), "{:?}", lf.errors);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn tails_without_reading_everything() {
        let d = tmp("tail");
        let mut big = String::new();
        for i in 0..100_000 {
            big.push_str(&format!("line {i}\n"));
        }
        std::fs::write(d.join("big.log"), &big).unwrap();
        let t = tail_lines(&d.join("big.log"), 3).unwrap();
        assert_eq!(t, vec!["line 99997", "line 99998", "line 99999"]);
        let t = tail_lines(&d.join("big.log"), 20_000).unwrap();
        assert_eq!(t.len(), 20_000);
        assert_eq!(t[0], "line 80000");
        std::fs::write(d.join("small.log"), "a\nb").unwrap();
        assert_eq!(tail_lines(&d.join("small.log"), 5).unwrap(), vec!["a", "b"]);
        assert_eq!(tail_lines(&d.join("small.log"), 1).unwrap(), vec!["b"]);
        std::fs::remove_dir_all(d).unwrap();
    }
}
