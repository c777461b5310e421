//! The saved app list (`RPM2_HOME/dump.rpm2`): `save` writes it through the daemon, `resurrect`
//! starts what it holds. One implementation for `rpm2 save|resurrect` and `require('rpm2')`'s
//! `dump()`/`resurrect()`.

use super::env::node_info;
use super::Client;
use crate::base::paths::Home;
use crate::config::spec::AppSpec;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The newest dump format this version reads.
pub const DUMP_FORMAT: u64 = 1;

/// Saves the running app list to the home's dump (the previous one kept as `.bak`) and returns the
/// daemon's `{count, path}`. An empty list is refused (code `empty`) unless `force`, so that a
/// `save` after a crash cannot erase the saved apps.
pub fn save(c: &mut Client, force: bool) -> Result<Value> {
    c.call("dump", json!({"force": force, "node": node_info()}))
}

/// Reads a dump, falling back to the `.bak` copy when the dump is missing or unreadable (`warn`
/// says why). Never deletes or rewrites either file.
pub fn read_dump(home: &Home, warn: &mut dyn FnMut(String)) -> Result<(PathBuf, Value)> {
    let main = home.root().join("dump.rpm2");
    let bak = home.root().join("dump.rpm2.bak");
    let mut why = Vec::new();
    for p in [&main, &bak] {
        match std::fs::read(p) {
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(v) if v.get("apps").map(|a| a.is_array()).unwrap_or(false) => {
                    let fmt = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
                    if fmt > DUMP_FORMAT {
                        bail!(
                            "{} was written by a newer rpm2 (format {fmt}, this one reads {DUMP_FORMAT}): upgrade rpm2",
                            p.display()
                        );
                    }
                    for w in why {
                        warn(format!("{w}; using {}", p.display()));
                    }
                    return Ok((p.clone(), v));
                }
                Ok(_) => why.push(format!("{} has no app list", p.display())),
                Err(e) => why.push(format!("{} is unreadable ({e})", p.display())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => why.push(format!("cannot read {}: {e}", p.display())),
        }
    }
    if why.is_empty() {
        bail!("no saved app list in {}: run `rpm2 save` first", home.root().display());
    }
    bail!("{}; both files are left as they are", why.join("; "))
}

/// Starts the saved apps whose names are not running (each once, even when two resurrects race:
/// the daemon skips names it already has); apps saved stopped are registered stopped. Entries that
/// cannot be read or whose script is gone are skipped with a warning, as is a change of Node
/// version since the save. Returns the processes started.
pub fn resurrect(home: &Home, c: &mut Client, warn: &mut dyn FnMut(String)) -> Result<Vec<Value>> {
    let (path, doc) = read_dump(home, &mut *warn)?;
    if let (Some(saved), Value::Object(now)) = (doc["node"]["version"].as_str(), node_info()) {
        let cur = now.get("version").and_then(|v| v.as_str()).unwrap_or("");
        if !saved.is_empty() && saved != cur {
            warn(format!("the apps were saved with Node {saved} but `node` is now {cur}: check your apps still run"));
        }
    }
    let mut apps = Vec::new();
    for a in doc["apps"].as_array().into_iter().flatten() {
        let mut spec: AppSpec = match serde_json::from_value(a["spec"].clone()) {
            Ok(s) => s,
            Err(e) => {
                warn(format!("skipping an unreadable entry of {}: {e}", path.display()));
                continue;
            }
        };
        if !spec.script.exists() {
            warn(format!("app '{}': script {} no longer exists, not restored", spec.name, spec.script.display()));
            continue;
        }
        if a["status"] == "stopped" {
            spec.autostart = false;
        }
        apps.push(spec);
    }
    let r = c.call("start", json!({"apps": apps, "skip_existing": true}))?;
    Ok(r.as_array().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_fallback_and_errors() {
        let t = crate::base::paths::TempHome::new("dump");
        let (h, d) = (&t.0, t.0.root());
        let mut warnings = Vec::new();
        let mut warn = |w: String| warnings.push(w);
        assert!(format!("{:#}", read_dump(h, &mut warn).unwrap_err()).contains("rpm2 save"));
        std::fs::write(d.join("dump.rpm2"), "{truncated").unwrap();
        std::fs::write(d.join("dump.rpm2.bak"), r#"{"format":1,"apps":[]}"#).unwrap();
        let (p, _) = read_dump(h, &mut warn).unwrap();
        assert!(p.ends_with("dump.rpm2.bak"));
        assert!(d.join("dump.rpm2").exists(), "an unreadable dump is never deleted");
        std::fs::write(d.join("dump.rpm2"), r#"{"format":99,"apps":[]}"#).unwrap();
        assert!(format!("{:#}", read_dump(h, &mut warn).unwrap_err()).contains("newer rpm2"));
        assert_eq!(warnings.len(), 1, "the fallback said why: {warnings:?}");
    }
}
