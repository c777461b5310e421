//! Requests on targets other than the start/operate flow, for the CLI and the API alike: `trigger`
//! (an action that apps declared with tx2/@pm2/io), `flush`, `sendSignal`, `monitor`/`unmonitor`,
//! `inspect` and `sendDataToProcessId`. Each is written once here; the CLI prints what it returns
//! and `index.js` resolves to it.

use super::operate::target_string;
use super::start::{pm2_not_found, Conn, FlowError};
use super::Client;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::Path;

/// What a `trigger` got back from the daemon.
pub struct Triggered {
    /// How many processes received the action.
    pub count: u64,
    /// The `axm:reply` packets, `[{process, data: {return, action_name}, at}]`.
    pub replies: Vec<Value>,
    /// The pm_ids that did not answer within the daemon's wait.
    pub missing: Vec<String>,
}

impl Triggered {
    /// The one-line error for processes that did not answer; None when every one did.
    pub fn missing_error(&self, action: &str) -> Option<String> {
        (!self.missing.is_empty())
            .then(|| format!("no reply to '{action}' from process(es) {} within 10 s", self.missing.join(", ")))
    }
}

/// Sends `action` (with `params`, or `null` for none) to every process of `target` that declared it,
/// and waits for their replies (the daemon bounds the wait). Fails with the daemon's error, e.g.
/// `not_found` when no online process declares the action.
pub fn trigger(c: &mut Client, target: &str, action: &str, params: Value) -> Result<Triggered> {
    let r = c.call("trigger", json!({"target": target, "action": action, "params": params}))?;
    Ok(Triggered {
        count: r["process_count"].as_u64().unwrap_or(0),
        replies: r["replies"].as_array().cloned().unwrap_or_default(),
        missing: r["missing"].as_array().into_iter().flatten().map(|v| v.to_string()).collect(),
    })
}

/// Targets as the daemon takes them: script files become absolute paths from `cwd`, as every other
/// command takes them ([`target_string`]).
fn resolved(targets: &[String], cwd: &Path) -> Vec<String> {
    targets.iter().map(|t| target_string(t, cwd)).collect()
}

/// `flush`: empties the log files of `targets` (every app's and the daemon's own when `targets` is
/// empty or `["all"]`) and returns the files emptied. Unknown targets fail with `not_found` and
/// touch nothing.
pub fn flush(c: &mut Client, targets: &[String], cwd: &Path) -> Result<Vec<String>> {
    let all = targets.is_empty() || targets.iter().all(|t| t == "all");
    let names = if all { Vec::new() } else { resolved(targets, cwd) };
    let files = c.call("flush", json!({"targets": names})).map_err(|e| pm2_not_found(e, targets))?;
    Ok(files.as_array().into_iter().flatten().filter_map(|f| f.as_str().map(String::from)).collect())
}

/// `sendSignal`: sends `signal` (a name such as `SIGUSR2`, or a number) to every process of
/// `targets`. Fails with `not_found` (nothing sent) or `bad_request` for an unknown signal.
pub fn signal(c: &mut Client, signal: &str, targets: &[String], cwd: &Path) -> Result<()> {
    let params = json!({"signal": signal, "targets": resolved(targets, cwd)});
    c.call("signal", params).map_err(|e| pm2_not_found(e, targets))?;
    Ok(())
}

/// `monitor`/`unmonitor`: sets PM2's `_km_monitored` flag of the processes of `target` to `on` and
/// returns their summaries. A missing target is a `bad_request` with PM2's words.
pub fn monitor(c: &mut Client, target: Option<&str>, on: bool, cwd: &Path) -> Result<Value> {
    let Some(target) = target.filter(|t| !t.trim().is_empty()) else {
        return Err(FlowError::new("bad_request", "Please specify an <app_name|pm_id>").into());
    };
    let targets = [target.to_string()];
    c.call("monitor", json!({"targets": resolved(&targets, cwd), "on": on})).map_err(|e| pm2_not_found(e, &targets))
}

/// `inspect`: restarts the processes of `target` with Node's inspector on; returns their summaries.
pub fn inspect(c: &mut Client, target: &str, cwd: &Path) -> Result<Value> {
    let targets = [target.to_string()];
    c.call("inspect", json!({"targets": resolved(&targets, cwd)})).map_err(|e| pm2_not_found(e, &targets))
}

/// `sendDataToProcessId`: sends `packet` verbatim on the IPC channel of process `packet.id` and
/// returns `{success: true, data: packet}`. A packet without `id`, `data` or a truthy `topic` is a
/// `bad_request` with PM2's words and is not sent.
pub fn send_data(c: &mut Client, packet: Value) -> Result<Value> {
    let truthy = |v: &Value| !matches!(v, Value::Null | Value::Bool(false)) && v != "" && v != &json!(0);
    let ok = packet.is_object()
        && !packet["id"].is_null()
        && packet.get("data").is_some()
        && packet.get("topic").is_some_and(truthy);
    if !ok {
        return Err(FlowError::new("bad_request", "ID, DATA or TOPIC field is missing").into());
    }
    c.call("send", json!({"id": packet["id"].clone(), "packet": packet}))
}

/// `scale`: sets the number of instances of app `name` to `number` (`3`), or changes it by `+N` /
/// `-N`; returns the daemon's reply. A count that is not one of those forms is a `bad_request` and
/// nothing changes (the daemon is not even reached); an unknown app is `not_found`.
pub fn scale(conn: &mut Conn, name: &str, number: &str) -> Result<Value> {
    crate::config::names::parse_scale(number).map_err(|e| FlowError::new("bad_request", e))?;
    conn.get()?
        .call("scale", json!({"name": name, "number": number}))
        .map_err(|e| pm2_not_found(e, &[name.to_string()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_files_are_resolved_and_names_are_kept() {
        let dir = std::env::temp_dir().join(format!("rpm2-actions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.js"), "").unwrap();
        let t = resolved(&["a.js".into(), "api".into(), "all".into(), "/^x/".into()], &dir);
        assert_eq!(t[0], dir.join("a.js").to_string_lossy());
        assert_eq!(&t[1..], ["api", "all", "/^x/"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
