//! Commands about the daemon and the saved list: `kill`, `ping`, `update`, `save`, `cleardump`, `init`.

use super::list::print_list;
use super::Ui;
use crate::client::Client;
use anyhow::{bail, Context, Result};
use serde_json::json;

/// Waits (up to `tries` × 10 ms) for the process `pid` to be gone.
fn wait_gone(pid: u32, tries: usize) {
    for _ in 0..tries {
        if pid == 0 || !crate::base::procinfo::is_alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `rpm2 kill`: stops every app and the daemon (or what a dead daemon left running).
pub(super) fn kill(ui: &Ui) -> Result<i32> {
    match crate::client::kill_daemon(&ui.home)? {
        Some(n) => {
            ui.info(&format!("[v] All Applications Stopped ({n})"));
            ui.info("[v] rpm2 daemon stopped");
        }
        None => {
            // The daemon died: stop what its persisted table says is still running, and forget it.
            let n = crate::daemon::kill_orphans(&ui.home);
            ui.info(&format!("No daemon running; stopped {n} process(es) left by the previous one"));
        }
    }
    Ok(0)
}

/// `rpm2 ping`.
pub(super) fn ping(ui: &Ui) -> Result<i32> {
    let mut c = ui.client()?;
    let r = c.call("ping", json!({}))?;
    println!("{{ msg: '{}' }}", r.get("msg").and_then(|v| v.as_str()).unwrap_or(""));
    Ok(0)
}

/// `rpm2 update`: replaces the running daemon with this version.
pub(super) fn update(ui: &Ui) -> Result<i32> {
    if crate::client::is_running(&ui.home) {
        let mut c = Client::connect(&ui.home)?;
        let old = c.daemon_version.clone();
        let pid = c.call("info", json!({}))?.get("pid").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        ui.info(&format!("Stopping the rpm2 {old} daemon (apps are restarted by the new one)"));
        c.call("shutdown", json!({}))?;
        wait_gone(pid, 1000);
    }
    let mut c = ui.client()?;
    // As PM2 (whose update resurrects the apps afresh): restart counters start again at 0.
    if let Err(e) = c.call("reset", json!({"targets": ["all"]})) {
        if e.downcast_ref::<crate::client::RpcError>().map(|r| r.code != "not_found").unwrap_or(true) {
            return Err(e);
        }
    }
    ui.info(&format!("rpm2 daemon {} running", c.daemon_version));
    // Give restored apps a moment to come up before showing them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    print_list(ui, &mut c)?;
    Ok(0)
}

/// `rpm2 save [-f]`.
pub(super) fn save(ui: &Ui, force: bool) -> Result<i32> {
    let mut c = ui.client()?;
    ui.info("Saving current process list...");
    let r = crate::client::dump::save(&mut c, force)?;
    ui.info(&format!("Successfully saved {} app(s) in {}", r["count"], r["path"].as_str().unwrap_or("")));
    Ok(0)
}

/// `rpm2 cleardump`.
pub(super) fn cleardump(ui: &Ui) -> Result<i32> {
    for f in ["dump.rpm2", "dump.rpm2.bak"] {
        let _ = std::fs::remove_file(ui.home.root().join(f));
    }
    ui.info(&format!("Saved app list removed from {}", ui.home.root().display()));
    Ok(0)
}

/// `rpm2 init [simple] [-f]`: writes a starter ecosystem.config.js here.
pub(super) fn init(mode: Option<String>, force: bool) -> Result<i32> {
    let path = std::env::current_dir().context("cannot read the current directory")?.join("ecosystem.config.js");
    if path.exists() && !force {
        bail!("{} already exists: use --force to overwrite it", path.display());
    }
    let text = if mode.as_deref() == Some("simple") {
        "module.exports = {\n  apps: [{\n    name: 'app1',\n    script: './app.js',\n  }],\n};\n"
    } else {
        crate::config::ecosystem::STARTER
    };
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("File {} generated", path.display());
    Ok(0)
}
