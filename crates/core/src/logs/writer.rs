//! The open log files of one process: formatting (raw, date prefix, JSON lines), appending without
//! splitting a line, error reporting and retry, and rotation at a line boundary.

use super::*;

/// One open file (several streams may share it: out + combined, or `-o x -e x`).
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) path: PathBuf,
    pub(super) file: Option<File>,
    /// (dev, ino) of `file`.
    pub(super) id: (u64, u64),
    /// Bytes in the file, as far as we know (re-read from the fd before rotating).
    pub(super) size: u64,
    /// The source whose line is unfinished at the end of the file.
    pub(super) mid: Option<u64>,
    /// An error was reported and not yet resolved.
    pub(super) broken: bool,
    pub(super) retry_at: Option<Instant>,
    pub(super) checked_at: Instant,
}

/// A source id that matches no writer: a file that ended mid-line before we opened it.
pub(super) const FOREIGN: u64 = 0;

/// The open files of one process. Writes are appended; a file that cannot be opened or written is
/// reported once, retried every [`RETRY_EVERY`], and the app keeps running.
#[derive(Debug)]
pub struct LogFiles {
    pub(super) opts: LogOptions,
    pub(super) slots: Vec<Slot>,
    /// out, err, combined → slot.
    pub(super) route: [Option<usize>; 3],
    /// Unfinished line per stream, as the bus sees it.
    pub(super) view_mid: [Option<u64>; 2],
    /// Errors and notices not yet reported (with the path), drained by the owner for the daemon log.
    pub errors: Vec<String>,
}

pub(super) fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// (continuation, break) of a write by `src` to a file whose unfinished line belongs to `mid`.
pub(super) fn state(mid: Option<u64>, src: u64) -> (bool, bool) {
    match mid {
        None => (false, false),
        Some(m) if m == src => (true, false),
        Some(_) => (false, true),
    }
}

impl LogFiles {
    /// Opens (creating folders and files as needed) the files of `paths`.
    pub fn open(paths: ProcPaths, opts: LogOptions) -> LogFiles {
        let mut lf = LogFiles { opts, slots: Vec::new(), route: [None; 3], view_mid: [None; 2], errors: Vec::new() };
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

    pub(super) fn open_slot(&mut self, idx: usize) {
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
    pub(super) fn format<'a>(&self, stream: Stream, data: &'a [u8], cont: bool, brk: bool, now: u64) -> Cow<'a, [u8]> {
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

    pub(super) fn write_slot(&mut self, idx: usize, bytes: &[u8]) {
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

    pub(super) fn rotate_slot(&mut self, idx: usize) {
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
