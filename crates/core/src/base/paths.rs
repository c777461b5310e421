//! Where rpm2 keeps its state: `RPM2_HOME` (default `~/.rpm2`) and the files inside it.

use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An `RPM2_HOME` directory and the paths of everything rpm2 keeps inside it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home named by `RPM2_HOME`, or `~/.rpm2` when unset. Does not touch the file system.
    pub fn from_env() -> Result<Home> {
        if let Some(h) = std::env::var_os("RPM2_HOME").filter(|h| !h.is_empty()) {
            let p = PathBuf::from(h);
            let p = if p.is_absolute() {
                p
            } else {
                std::env::current_dir().context("reading the current directory")?.join(p)
            };
            return Ok(Home { root: p });
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .context("neither RPM2_HOME nor HOME is set: set RPM2_HOME to a writable directory")?;
        Ok(Home { root: PathBuf::from(home).join(".rpm2") })
    }

    /// A home at an explicit path (tests, the API's `connect({home})`).
    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// Creates the home (mode 0700) with its `logs/` and `pids/` folders, and checks it is writable.
    /// Guarantees on success that the daemon can create its socket, lock and state files there.
    pub fn ensure(&self) -> Result<()> {
        for dir in [self.root.clone(), self.logs_dir(), self.pids_dir()] {
            if !dir.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .with_context(|| format!("cannot create {}: check permissions or set RPM2_HOME", dir.display()))?;
            }
        }
        let meta = fs::metadata(&self.root).with_context(|| format!("cannot read {}", self.root.display()))?;
        if !meta.is_dir() {
            bail!("RPM2_HOME {} is not a directory", self.root.display());
        }
        if meta.permissions().mode() & 0o077 != 0 {
            // Tighten a home that others can read: it holds the control socket and app environments.
            let _ = fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700));
        }
        let probe = self.root.join(".write-test");
        fs::write(&probe, b"").with_context(|| {
            format!("RPM2_HOME {} is not writable: fix its permissions or set RPM2_HOME", self.root.display())
        })?;
        let _ = fs::remove_file(probe);
        Ok(())
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The control socket (`rpc.sock`, mode 0600).
    pub fn socket(&self) -> PathBuf {
        self.root.join("rpc.sock")
    }
    /// The daemon's pid file: `RPM2_PID_FILE_PATH` (or PM2's `PM2_PID_FILE_PATH`) when set, a
    /// relative path being taken inside the home; else `rpm2d.pid` in the home. The daemon inherits
    /// the environment of the client that started it, so both agree.
    pub fn pid_file(&self) -> PathBuf {
        for key in ["RPM2_PID_FILE_PATH", "PM2_PID_FILE_PATH"] {
            if let Some(p) = std::env::var_os(key).filter(|p| !p.is_empty()) {
                return self.root.join(PathBuf::from(p));
            }
        }
        self.root.join("rpm2d.pid")
    }
    /// The lock that guarantees one daemon per home.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("rpm2d.lock")
    }
    /// The daemon's own log.
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("rpm2.log")
    }
    /// The persisted app table (rewritten atomically on every change).
    pub fn state_file(&self) -> PathBuf {
        self.root.join("apps.json")
    }
    /// The folder of default app log files.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// The folder of default app pid files.
    pub fn pids_dir(&self) -> PathBuf {
        self.root.join("pids")
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, fsync, rename.
/// Readers see either the old or the new content, never a torn file.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("atomic write target has no parent folder")?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let res = write_file(&tmp, data, mode)
        .and_then(|f| f.sync_all().with_context(|| format!("cannot write {}", tmp.display())));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Creates (or truncates) `path` with permissions `mode` and writes `data` to it, with no fsync.
/// Returns the open file, for a caller that wants to sync it. The error names the file.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<fs::File> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(data).map(|_| f))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A temporary home for a unit test, removed when dropped (also when the test fails).
#[cfg(test)]
pub(crate) struct TempHome(pub(crate) Home);

#[cfg(test)]
impl TempHome {
    /// An empty home under the system's temp folder, unique to `tag` and this process.
    pub(crate) fn new(tag: &str) -> TempHome {
        let dir = std::env::temp_dir().join(format!("rpm2-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let home = Home::at(&dir);
        home.ensure().expect("a temporary home");
        TempHome(home)
    }
}

#[cfg(test)]
impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.0.root());
    }
}

/// Replaces every character PM2 would not keep in a log file name (`[^a-zA-Z0-9.-]`) by `-`.
pub fn sanitize_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_like_pm2() {
        assert_eq!(sanitize_name("my app/1"), "my-app-1");
        assert_eq!(sanitize_name("a.b-c_d"), "a.b-c-d");
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = std::env::temp_dir().join(format!("rpm2-paths-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ensure_creates_private_home() {
        let dir = std::env::temp_dir().join(format!("rpm2-home-{}", std::process::id()));
        let h = Home::at(&dir);
        h.ensure().unwrap();
        assert!(h.logs_dir().is_dir() && h.pids_dir().is_dir());
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        fs::remove_dir_all(dir).unwrap();
    }
}
