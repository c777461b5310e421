//! The metrics preload: a small CommonJS file, embedded in the executable, that Node apps load with
//! `--require` (unless `pmx: false`). It sends PM2's built-in code metrics over the IPC channel every
//! second as `axm:monitor` (see the file itself for what it does and does not do).
//!
//! The daemon writes it into its home on first use (atomically, and again whenever it is missing or
//! differs from the embedded copy), so it works from every install layout and the file on disk is
//! always the one this executable ships.

use crate::base::paths::{write_atomic, Home};
use crate::config::spec::AppSpec;
use std::path::PathBuf;
use std::sync::Mutex;

/// The preload's source.
pub(crate) const SOURCE: &str = include_str!("metrics-preload.cjs");

/// The variable that marks the app's own process: the preload acts only where it is `1`, and deletes
/// it at once (the app and the processes it starts never see it).
pub(crate) const ENV_FLAG: &str = "RPM2_METRICS";

/// The file name in the daemon's home.
const FILE_NAME: &str = "metrics-preload.cjs";

/// Serializes the writes (actors spawn concurrently; two writers would share one temporary file).
static WRITE: Mutex<()> = Mutex::new(());

/// Whether `spec` gets the preload: a Node interpreter (not Bun, whose `perf_hooks` lacks the
/// event-loop histogram) and `pmx` not turned off.
pub(crate) fn wanted(spec: &AppSpec) -> bool {
    let node = spec.interpreter.as_deref().is_some_and(|i| {
        let base = std::path::Path::new(i).file_name().and_then(|s| s.to_str()).unwrap_or(i);
        base == "node" || base == "nodejs" || base.starts_with("node-")
    });
    node && spec.pmx()
}

/// The preload's path in `home`, written there first when missing or stale. An error says what
/// failed (the caller starts the app without metrics).
pub(crate) fn ensure(home: &Home) -> Result<PathBuf, String> {
    let path = home.root().join(FILE_NAME);
    let _guard = WRITE.lock().unwrap_or_else(|e| e.into_inner());
    if std::fs::read(&path).is_ok_and(|d| d == SOURCE.as_bytes()) {
        return Ok(path);
    }
    write_atomic(&path, SOURCE.as_bytes(), 0o644).map_err(|e| format!("{e:#}"))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_writes_and_repairs_the_file() {
        let dir = std::env::temp_dir().join(format!("rpm2-preload-{}", std::process::id()));
        let home = Home::at(&dir);
        home.ensure().unwrap();
        let p = ensure(&home).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), SOURCE);
        std::fs::write(&p, "stale").unwrap();
        assert_eq!(std::fs::read_to_string(ensure(&home).unwrap()).unwrap(), SOURCE);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(std::fs::read_to_string(ensure(&home).unwrap()).unwrap(), SOURCE);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_source_reads_and_deletes_its_flag() {
        assert!(SOURCE.contains(&format!("process.env.{ENV_FLAG}")));
        assert!(SOURCE.contains(&format!("delete process.env.{ENV_FLAG}")));
        assert!(SOURCE.contains("'axm:monitor'"));
        assert!(!SOURCE.contains("process.on("), "the preload installs no handler");
    }
}
