//! The process list as typed PM2 objects, for the clients that read it (monit, web, cli).

use super::Client;
use crate::protocol::Pm2Process;
use anyhow::{Context, Result};
use serde_json::json;

impl Client {
    /// The daemon's `list` as typed jlist objects ([`Pm2Process`]), in pm_id order, without the
    /// environment (`pm2_env.env` empty, no env key at the top level: none of the readers shows it;
    /// [`Client::describe`] has it). Fails with the daemon's error, or when the answer is not a
    /// list of PM2 process objects (a daemon of another version: `rpm2 update` restarts it).
    pub fn processes(&mut self) -> Result<Vec<Pm2Process>> {
        let raw = self.call_raw("list", json!({"no_env": true}))?;
        typed(&raw)
    }

    /// The daemon's `describe` of `targets` as typed jlist objects, with env values shown when
    /// `env`. Fails with the daemon's error unchanged (`not_found` for an unknown target), or as
    /// [`Client::processes`] does for an answer of another shape.
    pub fn describe(&mut self, targets: &[&str], env: bool) -> Result<Vec<Pm2Process>> {
        let raw = self.call_raw("describe", json!({"targets": targets, "env": env}))?;
        typed(&raw)
    }
}

fn typed(raw: &serde_json::value::RawValue) -> Result<Vec<Pm2Process>> {
    serde_json::from_str(raw.get())
        .context("the daemon's process list is not in the shape this rpm2 reads: run `rpm2 update`")
}
