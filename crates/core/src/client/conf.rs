//! PM2's module configuration store (`set`, `unset`, `multiset`, `get`, `conf`): a JSON object in
//! `RPM2_HOME/module_conf.json` (PM2's file name), `{"<module>": {"<key>": "<value>"}}`, written with
//! four-space indentation as PM2 writes it. Values are strings. Keys are `module:key` or
//! `module.key` (quotes group a part that holds the separator); PM2's refused keys (`__proto__`,
//! `constructor`, `prototype`) are ignored.

use crate::base::paths::{write_atomic, Home};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The file of the store.
pub fn conf_file(home: &Home) -> PathBuf {
    home.root().join("module_conf.json")
}

/// The whole store (an empty object when the file is missing or not a JSON object).
pub fn load(home: &Home) -> Map<String, Value> {
    std::fs::read(conf_file(home))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| match v {
            Value::Object(o) => Some(o),
            _ => None,
        })
        .unwrap_or_default()
}

fn save(home: &Home, conf: &Map<String, Value>) -> Result<()> {
    home.ensure()?;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(conf, &mut ser).context("cannot encode the module configuration")?;
    let path = conf_file(home);
    write_atomic(&path, &buf, 0o600).with_context(|| format!("cannot write {}", path.display()))
}

/// The parts of a key, as PM2 splits it: on `.` when it has one, else on `:`; `"..."` groups.
/// Empty when a part is a refused name.
pub fn split_key(key: &str) -> Vec<String> {
    let sep = if key.contains('.') {
        Some('.')
    } else if key.contains(':') {
        Some(':')
    } else {
        None
    };
    let parts: Vec<String> = match sep {
        None => vec![key.to_string()],
        Some(sep) => {
            let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
            for c in key.chars() {
                match c {
                    '"' => quoted = !quoted,
                    c if c == sep && !quoted => {
                        if !cur.is_empty() {
                            out.push(std::mem::take(&mut cur));
                        }
                    }
                    c => cur.push(c),
                }
            }
            if !cur.is_empty() {
                out.push(cur);
            }
            out
        }
    };
    if parts.iter().any(|p| matches!(p.as_str(), "__proto__" | "constructor" | "prototype")) {
        return vec![];
    }
    parts
}

/// The object at `path` inside `conf`, made (or replaced by an object) where missing.
fn object_at<'a>(conf: &'a mut Map<String, Value>, path: &[String]) -> Option<&'a mut Map<String, Value>> {
    let mut tmp = conf;
    for k in path {
        let slot = tmp.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        tmp = slot.as_object_mut()?;
    }
    Some(tmp)
}

/// `set <key> <value>`: stores the value (a string) and saves. Answers the module name (the first
/// part of the key) when the key had several parts.
pub fn set(home: &Home, key: &str, value: &str) -> Result<Option<String>> {
    let parts = split_key(key);
    let Some((last, path)) = parts.split_last() else {
        bail!("'{key}' cannot be used as a configuration key");
    };
    let mut conf = load(home);
    if let Some(o) = object_at(&mut conf, path) {
        o.insert(last.clone(), Value::String(value.to_string()));
    }
    save(home, &conf)?;
    Ok((parts.len() > 1).then(|| parts[0].clone()))
}

/// `unset <key>`: removes the key (a module's object stays, possibly empty) and saves.
pub fn unset(home: &Home, key: &str) -> Result<()> {
    let parts = split_key(key);
    let Some((last, path)) = parts.split_last() else {
        bail!("'{key}' cannot be used as a configuration key");
    };
    let mut conf = load(home);
    if let Some(o) = object_at(&mut conf, path) {
        o.remove(last);
    }
    save(home, &conf)
}

/// `multiset "<k1> <v1> <k2> <v2> ..."`: [`set`] for each pair (a `"..."` word may hold spaces; a
/// key without a value is stored as an empty string). Answers the module of the first key.
pub fn multiset(home: &Home, serial: &str) -> Result<Option<String>> {
    let mut words = Vec::new();
    let (mut cur, mut quoted, mut any) = (String::new(), false, false);
    for c in serial.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    if words.is_empty() {
        bail!("multiset needs \"<key> <value> ...\" (e.g. rpm2 multiset \"mymod:a 1 mymod:b 2\")");
    }
    let mut first = None;
    for pair in words.chunks(2) {
        let m = set(home, &pair[0], pair.get(1).map(String::as_str).unwrap_or(""))?;
        if first.is_none() {
            first = Some(m);
        }
    }
    Ok(first.flatten())
}

/// `get <key>`: the value at the key (a string, or a module's object), or an error `Unknown key`
/// when missing, empty or false as PM2.
pub fn get(home: &Home, key: &str) -> Result<Value> {
    let mut data = Value::Object(load(home));
    for part in split_key(key) {
        match data.get(&part) {
            Some(v) if !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some("") => data = v.clone(),
            _ => bail!("Unknown key: {key} (see `rpm2 get` for what is set)"),
        }
    }
    Ok(data)
}

/// PM2's listing of the store: per module `Module: <name>` and one `$ <prog> set <module>:<key>
/// <value>` line per key; only `module` when given.
pub fn display_lines(conf: &Map<String, Value>, module: Option<&str>, prog: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for (m, v) in conf {
        if module.map(|x| x != m).unwrap_or(false) {
            continue;
        }
        let Some(o) = v.as_object() else { continue };
        out.push((true, m.clone()));
        for (k, val) in o {
            let shown = val.as_str().map(String::from).unwrap_or_else(|| val.to_string());
            out.push((false, format!("$ {prog} set {m}:{k} {shown}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_as_pm2() {
        assert_eq!(split_key("mod:key"), vec!["mod", "key"]);
        assert_eq!(split_key("mod.key"), vec!["mod", "key"]);
        assert_eq!(split_key("a.\"b.c\""), vec!["a", "b.c"]);
        assert_eq!(split_key("plain"), vec!["plain"]);
        assert!(split_key("x:__proto__").is_empty());
    }

    #[test]
    fn set_get_unset_multiset_round_trip() {
        let dir = std::env::temp_dir().join(format!("rpm2-conf-{}", std::process::id()));
        let home = Home::at(&dir);
        assert_eq!(set(&home, "mymod:key", "val").unwrap(), Some("mymod".into()));
        assert_eq!(get(&home, "mymod:key").unwrap(), Value::String("val".into()));
        assert_eq!(multiset(&home, "a:b 1 a:c \"x y\"").unwrap(), Some("a".into()));
        assert_eq!(get(&home, "a:c").unwrap(), Value::String("\"x y\"".into()));
        unset(&home, "mymod:key").unwrap();
        assert!(get(&home, "mymod:key").is_err());
        assert_eq!(get(&home, "mymod").unwrap(), serde_json::json!({}), "an empty module is still there, as PM2");
        let text = std::fs::read_to_string(conf_file(&home)).unwrap();
        assert!(text.contains("\n    \"a\": {\n        \"b\": \"1\""), "{text}");
        let lines = display_lines(&load(&home), Some("a"), "rpm2");
        assert_eq!(lines[0], (true, "a".to_string()));
        assert_eq!(lines[1].1, "$ rpm2 set a:b 1");
        let _ = std::fs::remove_dir_all(dir);
    }
}
