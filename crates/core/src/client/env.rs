//! What the client sends along with a request: its environment (the base of every app's
//! environment) and the Node it would run.

use serde_json::{json, Value};

/// The `node` on PATH and its version, recorded in dumps so `resurrect` can warn when it changed.
pub fn node_info() -> Value {
    let Some(path) = crate::config::which("node") else { return Value::Null };
    let version = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({"path": path, "version": version})
}

/// The client's environment (the base of every app's environment).
pub fn client_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}
