//! `trigger`: runs an action that apps declared (tx2/@pm2/io), for the CLI and the API alike.

use super::Client;
use anyhow::Result;
use serde_json::{json, Value};

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
