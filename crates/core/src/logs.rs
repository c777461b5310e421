//! App log files: where they are, writing what children print (appended, nothing lost), optional date
//! prefixes, flush and reopen, and reading the last lines of a file without reading all of it.

use crate::fmt;
use crate::paths::{sanitize_name, Home};
use crate::spec::{AppSpec, LogTarget};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout (`log:out`).
    Out,
    /// stderr (`log:err`).
    Err,
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

/// The open files of one process. Writes are appended; a file that cannot be opened is reported once
/// and retried on the next reopen, and the app keeps running.
#[derive(Debug)]
pub struct LogFiles {
    paths: ProcPaths,
    out: Option<File>,
    err: Option<File>,
    combined: Option<File>,
    date_format: Option<String>,
    line_start: [bool; 2],
    /// Errors not yet reported (path and reason), drained by the owner for the daemon log.
    pub errors: Vec<String>,
}

fn open_append(p: &Path, errors: &mut Vec<String>) -> Option<File> {
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match OpenOptions::new().create(true).append(true).open(p) {
        Ok(f) => Some(f),
        Err(e) => {
            errors.push(format!("cannot open log file {}: {e}", p.display()));
            None
        }
    }
}

impl LogFiles {
    /// Opens (creating folders and files as needed) the files of `paths`.
    pub fn open(paths: ProcPaths, date_format: Option<String>) -> LogFiles {
        let mut errors = Vec::new();
        let out = paths.out.as_deref().and_then(|p| open_append(p, &mut errors));
        let err = paths.err.as_deref().and_then(|p| open_append(p, &mut errors));
        let combined = paths.combined.as_deref().and_then(|p| open_append(p, &mut errors));
        LogFiles { paths, out, err, combined, date_format, line_start: [true, true], errors }
    }

    /// Reopens every file (after an external rotation or a fixed permission problem).
    pub fn reopen(&mut self) {
        let df = self.date_format.take();
        let paths = self.paths.clone();
        let mut errs = std::mem::take(&mut self.errors);
        *self = LogFiles::open(paths, df);
        errs.append(&mut self.errors);
        self.errors = errs;
    }

    /// Appends one chunk the child wrote; with a date format every line gets a `<date>: ` prefix.
    /// Returns the bytes as written (prefixed), for the bus.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Vec<u8> {
        let idx = if stream == Stream::Out { 0 } else { 1 };
        let bytes = match &self.date_format {
            None => data.to_vec(),
            Some(f) => {
                let prefix = format!("{}: ", fmt::format_date(fmt::now_ms(), f));
                let mut v = Vec::with_capacity(data.len() + prefix.len() * 2);
                for &b in data {
                    if self.line_start[idx] {
                        v.extend_from_slice(prefix.as_bytes());
                        self.line_start[idx] = false;
                    }
                    v.push(b);
                    if b == b'\n' {
                        self.line_start[idx] = true;
                    }
                }
                v
            }
        };
        let file = if stream == Stream::Out { &mut self.out } else { &mut self.err };
        if let Some(f) = file {
            if let Err(e) = f.write_all(&bytes) {
                let p = if stream == Stream::Out { &self.paths.out } else { &self.paths.err };
                self.errors.push(format!(
                    "cannot write {}: {e}",
                    p.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
                ));
                *file = None;
            }
        }
        if let Some(f) = &mut self.combined {
            if let Err(e) = f.write_all(&bytes) {
                self.errors.push(format!("cannot write combined log: {e}"));
                self.combined = None;
            }
        }
        bytes
    }
}

/// The last `n` lines of a file, reading backwards from the end in blocks (never the whole file).
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    let mut f = File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    if n == 0 || len == 0 {
        return Ok(vec![]);
    }
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    loop {
        let newlines = buf.iter().filter(|&&b| b == b'\n').count();
        let trailing = buf.last() == Some(&b'\n');
        if newlines > n + usize::from(trailing) || pos == 0 {
            break;
        }
        let start = pos.saturating_sub(BLOCK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        pos = start;
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.lines().map(|s| s.to_string()).collect();
    if pos > 0 && !lines.is_empty() && lines.len() > n {
        // The first line may be partial; it is dropped when we have enough.
    }
    let keep = lines.len().saturating_sub(n);
    Ok(lines.split_off(keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve_app, ResolveCtx};

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rpm2-logs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
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
    fn prefixes_each_line_and_tails() {
        let d = tmp("write");
        let paths =
            ProcPaths { out: Some(d.join("o.log")), err: None, combined: Some(d.join("c.log")), pid: d.join("p") };
        let mut lf = LogFiles::open(paths, Some("[T]".into()));
        lf.write(Stream::Out, b"a\nb");
        lf.write(Stream::Out, b"c\n");
        let s = std::fs::read_to_string(d.join("o.log")).unwrap();
        assert_eq!(s, "T: a\nT: bc\n");
        assert_eq!(std::fs::read_to_string(d.join("c.log")).unwrap(), s);
        let mut big = String::new();
        for i in 0..100_000 {
            big.push_str(&format!("line {i}\n"));
        }
        std::fs::write(d.join("big.log"), big).unwrap();
        let t = tail_lines(&d.join("big.log"), 3).unwrap();
        assert_eq!(t, vec!["line 99997", "line 99998", "line 99999"]);
        std::fs::remove_dir_all(d).unwrap();
    }
}
