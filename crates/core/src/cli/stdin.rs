//! `send` and `attach`: lines to a process's stdin (PM2's `sendLineToStdin`).

use super::list::print_list;
use super::Ui;
use anyhow::{bail, Result};
use serde_json::json;
use std::io::{BufRead, Write};

/// The pm_id of `send`/`attach`: a number (PM2 refuses names here).
fn pm_id(s: &str) -> Result<u32> {
    match s.trim().parse::<u32>() {
        Ok(id) => Ok(id),
        Err(_) => bail!("pm_id must be a process number (not a process name): got '{s}'; see `rpm2 id <name>`"),
    }
}

/// `rpm2 send <pm_id> <line>`: writes `line` and a newline to the process's stdin, then lists.
pub(super) fn send(ui: &Ui, id: &str, line: &str) -> Result<i32> {
    let id = pm_id(id)?;
    let mut c = ui.client()?;
    c.call("sendLine", json!({"id": id, "line": format!("{line}\n")}))?;
    if !ui.silent {
        print_list(ui, &mut c)?;
    }
    Ok(0)
}

/// `rpm2 attach <pm_id> [separator]`: prints the process's output as it comes and sends every line
/// read from our stdin to its stdin, until our stdin ends (Ctrl-D) or the daemon goes away.
pub(super) fn attach(ui: &Ui, id: &str, separator: Option<&str>) -> Result<i32> {
    let id = pm_id(id)?;
    let sep = separator.unwrap_or("\n").to_string();
    let mut c = ui.client()?;
    c.call("describe", json!({"targets": [id.to_string()]}))?;
    let sub = ui.client()?.subscribe(&["log:out", "log:err"], &[id.to_string()])?;
    let stop = sub.shutdown_handle()?;
    std::thread::spawn(move || {
        let mut out = std::io::stdout();
        for (_, data) in sub {
            if data["process"]["pm_id"].as_u64() != Some(u64::from(id)) {
                continue;
            }
            let text = data["data"].as_str().unwrap_or("");
            if out.write_all(text.as_bytes()).is_err() || out.flush().is_err() {
                break;
            }
        }
    });
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Err(e) = c.call("sendLine", json!({"id": id, "line": format!("{line}{sep}")})) {
            ui.warn(&format!("{e:#}"));
        }
    }
    let _ = stop.shutdown(std::net::Shutdown::Both);
    Ok(0)
}
