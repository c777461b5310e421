//! The process list as typed PM2 objects, for the clients that read it (monit, web, cli).

use super::Client;
use crate::protocol::Pm2Process;
use anyhow::{Context, Result};
use serde_json::json;

impl Client {
    /// The daemon's `list` as typed jlist objects ([`Pm2Process`]), in pm_id order. Fails with the
    /// daemon's error, or when the answer is not a list of PM2 process objects (a daemon of another
    /// version: `rpm2 update` restarts it).
    pub fn processes(&mut self) -> Result<Vec<Pm2Process>> {
        let v = self.call("list", json!({}))?;
        serde_json::from_value(v)
            .context("the daemon's process list is not in the shape this rpm2 reads: run `rpm2 update`")
    }
}
