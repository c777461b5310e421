//! The watch options of an app declaration (`watch`, `ignore_watch`, `watch_delay`, `watch_options`),
//! parsed here so that a declaration that passes validation always works in [`crate::watch`], and the
//! compiled ignore rules the watcher applies.

use crate::config::spec::WatchOptions;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Polling interval when polling is used and no interval is given.
pub const DEFAULT_POLL: Duration = Duration::from_millis(1000);

/// Names ignored at any depth below a watched path (besides every dot-file and dot-directory).
pub const DEFAULT_IGNORED: &[&str] = &["node_modules", ".git"];
// ---------------------------------------------------------------------------------------------------
// Options (shared with config validation, so a declaration that passes validation always works here)

/// The watched paths of an app: `watch: true` (or `[]`) watches the cwd; a string or a list of strings
/// watches those paths (relative to the cwd). Every path must exist.
pub fn roots(watch: Option<&Value>, cwd: &Path) -> Result<Vec<PathBuf>, String> {
    let list: Vec<String> = match watch {
        None | Some(Value::Null) | Some(Value::Bool(_)) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(format!("must list paths as strings, got {v}")),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(format!("must be true, a path or a list of paths, got {v}")),
    };
    let mut out = Vec::new();
    for raw in list {
        if raw.trim().is_empty() {
            return Err("has an empty path".into());
        }
        let p = super::absolutize(cwd, &raw);
        if !p.exists() {
            return Err(format!("names a path that does not exist: \"{raw}\" ({})", p.display()));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        out.push(cwd.to_path_buf());
    }
    Ok(out)
}

/// Like [`roots`], leniently: the listed paths that exist now (for a declaration validated earlier).
pub fn existing_roots(watch: Option<&Value>, cwd: &Path) -> Vec<PathBuf> {
    let list: Vec<&str> = match watch {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if !a.is_empty() => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => return vec![cwd.to_path_buf()],
    };
    list.into_iter().map(|r| super::absolutize(cwd, r)).filter(|p| p.exists()).collect()
}

/// `ignore_watch` as a list of entries (a string is one entry).
pub fn ignore_list(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(format!("must list names or globs as strings, got {v}")),
            })
            .collect(),
        Some(v) => Err(format!("must be a name, a glob or a list of them, got {v}")),
    }
}

/// `watch_delay` in ms: a number of ms, or a string `"<n>"` (ms), `"<n>ms"` or `"<n>s"`.
pub fn delay_ms(v: Option<&Value>) -> Result<u64, String> {
    let bad = |v: &dyn std::fmt::Display| {
        format!("must be a delay in milliseconds (e.g. 1000, \"1000ms\" or \"1s\"), got {v}")
    };
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) => Ok(x),
            None => n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()).map(|f| f.round() as u64).ok_or_else(|| bad(n)),
        },
        Some(Value::String(s)) => {
            let t = s.trim();
            let (num, mul) = if let Some(n) = t.strip_suffix("ms") {
                (n, 1.0)
            } else if let Some(n) = t.strip_suffix('s') {
                (n, 1000.0)
            } else {
                (t, 1.0)
            };
            match num.trim().parse::<f64>() {
                Ok(f) if f >= 0.0 && f.is_finite() => Ok((f * mul).round() as u64),
                _ => Err(bad(&format!("\"{s}\""))),
            }
        }
        Some(v) => Err(bad(v)),
    }
}

/// `watch_options`: `{usePolling: true, interval: ms}` asks for polling; other keys are accepted
/// and ignored (they are chokidar's). Returns the polling interval, if polling.
pub fn poll_option(v: Option<&Value>) -> Result<Option<Duration>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => {
            let polling = match o.get("usePolling") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(v) => return Err(format!("usePolling must be true or false, got {v}")),
            };
            let interval = match o.get("interval") {
                None | Some(Value::Null) => DEFAULT_POLL,
                Some(v) => match v.as_u64() {
                    Some(ms) if ms >= 10 => Duration::from_millis(ms),
                    _ => return Err(format!("interval must be a number of milliseconds (10 or more), got {v}")),
                },
            };
            Ok(polling.then_some(interval))
        }
        Some(v) => Err(format!("must be an object like {{\"usePolling\": true}}, got {v}")),
    }
}

/// The watch options kept in `extra` by an rpm2 that did not store [`WatchOptions`], read as it read
/// them: leniently (they were validated when declared; a watched path removed since is skipped, and
/// anything unreadable keeps its default).
pub fn options_from_extra(x: &BTreeMap<String, Value>, cwd: &Path) -> WatchOptions {
    let watch = x.get("watch");
    WatchOptions {
        roots: roots(watch, cwd).unwrap_or_else(|_| existing_roots(watch, cwd)),
        ignore: ignore_list(x.get("ignore_watch")).unwrap_or_default(),
        delay_ms: delay_ms(x.get("watch_delay")).unwrap_or(0),
        poll_ms: poll_option(x.get("watch_options")).unwrap_or(None).map(|d| d.as_millis() as u64),
    }
}

// ---------------------------------------------------------------------------------------------------
// Ignore rules

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

fn glob_set(globs: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("has a bad pattern \"{g}\": {}", e.kind()))?;
        b.add(glob);
    }
    b.build().map_err(|e| format!("has a bad pattern: {e}"))
}

/// What is ignored below one app's watched paths (see the module doc).
#[derive(Debug)]
pub struct IgnoreRules {
    names: HashSet<String>,
    component_globs: GlobSet,
    path_globs: GlobSet,
    absolute: Vec<PathBuf>,
    absolute_globs: GlobSet,
    /// `(directory, "<stem>__")` of always-ignored files: their rotated copies (see the log rotation).
    rotated: Vec<(PathBuf, String)>,
}

impl IgnoreRules {
    /// The rules that ignore only the `always` paths (exactly, no globs): what the watcher falls back
    /// to when the user's rules cannot be built. Never fails.
    pub fn only_paths(always: &[PathBuf]) -> IgnoreRules {
        IgnoreRules {
            names: HashSet::new(),
            component_globs: GlobSet::empty(),
            path_globs: GlobSet::empty(),
            absolute: always.to_vec(),
            absolute_globs: GlobSet::empty(),
            rotated: vec![],
        }
    }

    /// Rules from the user's `ignore_watch` entries plus absolute paths always ignored (log files,
    /// the daemon's home). Fails on a malformed glob, naming it.
    pub fn new(user: &[String], always: &[PathBuf]) -> Result<IgnoreRules, String> {
        let mut names = HashSet::new();
        let (mut comp, mut rel, mut abs_globs) = (vec![], vec![], vec![]);
        let mut absolute: Vec<PathBuf> = always.to_vec();
        for raw in user {
            let mut e = raw.trim();
            while let Some(x) = e.strip_prefix("./") {
                e = x;
            }
            let e = if e.len() > 1 { e.trim_end_matches('/') } else { e };
            if e.is_empty() || e == "." {
                continue;
            }
            if e.starts_with('/') {
                if is_glob(e) {
                    abs_globs.push(e.to_string());
                } else {
                    absolute.push(PathBuf::from(e));
                }
            } else if e.contains('/') {
                rel.push(e.to_string());
            } else if is_glob(e) {
                comp.push(e.to_string());
            } else {
                names.insert(e.to_string());
            }
        }
        let rotated = always
            .iter()
            .filter(|p| p.extension().is_some())
            .filter_map(|p| {
                let stem = p.file_stem()?.to_str()?;
                Some((p.parent()?.to_path_buf(), format!("{stem}__")))
            })
            .collect();
        Ok(IgnoreRules {
            names,
            component_globs: glob_set(&comp)?,
            path_globs: glob_set(&rel)?,
            absolute,
            absolute_globs: glob_set(&abs_globs)?,
            rotated,
        })
    }

    /// Whether `path` (below the watched path `root`; `cwd` is the app's) is ignored.
    pub fn is_ignored(&self, root: &Path, cwd: &Path, path: &Path) -> bool {
        // An absolute entry that contains the watched path itself (a daemon home above the project)
        // would ignore everything: it only applies to paths it does not contain the root of.
        if self.absolute.iter().any(|a| path.starts_with(a) && !root.starts_with(a)) {
            return true;
        }
        if !self.absolute_globs.is_empty() && path.ancestors().any(|a| self.absolute_globs.is_match(a)) {
            return true;
        }
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) {
            if self.rotated.iter().any(|(d, prefix)| d == dir && name.starts_with(prefix.as_str())) {
                return true;
            }
        }
        let Ok(rel) = path.strip_prefix(root) else { return false };
        for c in rel.components() {
            let s = c.as_os_str().to_string_lossy();
            if s.starts_with('.') || DEFAULT_IGNORED.contains(&s.as_ref()) || self.names.contains(s.as_ref()) {
                return true;
            }
            if !self.component_globs.is_empty() && self.component_globs.is_match(s.as_ref()) {
                return true;
            }
        }
        if !self.path_globs.is_empty() {
            let prefixes_match = |rel: &Path| {
                let mut acc = PathBuf::new();
                rel.components().any(|c| {
                    acc.push(c);
                    self.path_globs.is_match(&acc)
                })
            };
            if prefixes_match(rel) {
                return true;
            }
            if let Ok(relc) = path.strip_prefix(cwd) {
                if relc != rel && prefixes_match(relc) {
                    return true;
                }
            }
        }
        false
    }
}
