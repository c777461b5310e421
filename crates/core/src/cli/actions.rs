//! `trigger` (actions apps declare with tx2/@pm2/io) and `monitor`/`unmonitor`.

use super::list::print_list;
use super::Ui;
use anyhow::{bail, Result};
use serde_json::Value;

/// `rpm2 trigger <target> <action> [param]`: runs the action on every matching process and prints
/// each reply as PM2 does (`[name:id:namespace]=<JSON>`). Fails when no process received it or a
/// process did not answer in time.
pub(super) fn trigger(ui: &Ui, target: &str, action: &str, param: Option<&str>) -> Result<i32> {
    let mut c = ui.client()?;
    // The daemon waits up to 10 s for the replies: give the call some more.
    c.set_timeout(Some(std::time::Duration::from_secs(20)));
    let params = param.map(|p| Value::String(p.to_string())).unwrap_or(Value::Null);
    let r = crate::client::actions::trigger(&mut c, target, action, params)?;
    println!("{}", ui.paint.bold(&format!("{} processes have received command {action}", r.count)));
    for rep in &r.replies {
        let p = &rep["process"];
        println!(
            "[{}:{}:{}]={}",
            p["name"].as_str().unwrap_or(""),
            p["pm_id"],
            p["namespace"].as_str().unwrap_or(""),
            rep["data"]["return"]
        );
    }
    if let Some(e) = r.missing_error(action) {
        bail!(e);
    }
    Ok(0)
}

/// `rpm2 monitor|unmonitor <target>`: sets PM2's `_km_monitored` flag, then lists.
pub(super) fn monitor(ui: &Ui, target: Option<&str>, on: bool) -> Result<i32> {
    let mut c = ui.client()?;
    crate::client::actions::monitor(&mut c, target, on, &super::cwd()?)?;
    if !ui.silent {
        print_list(ui, &mut c)?;
    }
    Ok(0)
}
