//! Rotated files: their names, listing, pruning to the retention count and gzip, done in the
//! background after a rename.

use super::*;

pub(super) fn split_name(path: &Path) -> (PathBuf, String, String) {
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

pub(super) fn rotated_keys(path: &Path) -> Vec<(String, u64)> {
    rotated_map(path).into_keys().collect()
}

/// The rotated files of `path`, oldest first: each entry is the files of one rotation (the `.log`,
/// its `.gz`, or both while being compressed).
pub fn rotated_files(path: &Path) -> Vec<Vec<PathBuf>> {
    rotated_map(path).into_values().collect()
}

pub(super) fn rotated_map(path: &Path) -> std::collections::BTreeMap<(String, u64), Vec<PathBuf>> {
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

pub(super) type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the one background thread that compresses and prunes rotated files. One thread, in
/// order: a later prune never races an earlier compression (which would bring a pruned file back).
pub(super) fn background(job: Job) {
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
pub(super) fn finish_rotation(path: PathBuf, target: PathBuf, rot: Rotation) {
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
