//! `set`, `unset`, `multiset`, `get`, `conf`, `config`: PM2's module configuration store
//! ([`crate::client::conf`], `RPM2_HOME/module_conf.json`), with PM2's output.

use super::Ui;
use crate::client::conf;
use anyhow::{bail, Result};
use serde_json::Value;

/// Prints the store as PM2's `displayConf` (only `module` when given).
fn display(ui: &Ui, module: Option<&str>) {
    for (head, line) in conf::display_lines(&conf::load(&ui.home), module, "rpm2") {
        if head {
            println!("{}{}", ui.paint.bold("Module: "), ui.paint.bold(&ui.paint.cyan(&line)));
        } else {
            println!("{line}");
        }
    }
}

/// `rpm2 set <key> <value>`.
pub(super) fn set(ui: &Ui, key: Option<&str>, value: Option<&str>) -> Result<i32> {
    let Some(key) = key else {
        bail!(
            "set needs a key and a value: rpm2 set <module>:<key> <value> (file {})",
            conf::conf_file(&ui.home).display()
        );
    };
    let module = match value {
        Some(v) => conf::set(&ui.home, key, v)?,
        // PM2 stores `undefined`, which its JSON file drops: nothing changes.
        None => None,
    };
    ui.info("Setting changed");
    display(ui, module.as_deref());
    Ok(0)
}

/// `rpm2 multiset "<k1> <v1> <k2> <v2> ..."`.
pub(super) fn multiset(ui: &Ui, serial: &str) -> Result<i32> {
    let module = conf::multiset(&ui.home, serial)?;
    display(ui, module.as_deref());
    Ok(0)
}

/// `rpm2 unset <key>`.
pub(super) fn unset(ui: &Ui, key: &str) -> Result<i32> {
    conf::unset(&ui.home, key)?;
    display(ui, None);
    Ok(0)
}

/// `rpm2 get [key]` (and `conf` / `config <key> [value]`).
pub(super) fn get(ui: &Ui, key: Option<&str>) -> Result<i32> {
    let Some(key) = key.filter(|k| *k != "all") else {
        display(ui, None);
        return Ok(0);
    };
    let v = conf::get(&ui.home, key)?;
    if !key.contains(':') && !key.contains('.') {
        display(ui, Some(key));
        println!("Modules configuration. Copy/Paste line to edit values.");
        return Ok(0);
    }
    let parts = conf::split_key(key);
    let shown = match &v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!(
        "Value for module {} key {}: {}",
        ui.paint.cyan(parts.first().map(String::as_str).unwrap_or("")),
        ui.paint.cyan(parts.get(1).map(String::as_str).unwrap_or("")),
        ui.paint.bold(&ui.paint.green(&shown))
    );
    Ok(0)
}

/// `rpm2 config <key> [value]`: set with a value, else get.
pub(super) fn config(ui: &Ui, key: &str, value: Option<&str>) -> Result<i32> {
    match value {
        Some(v) => set(ui, Some(key), Some(v)),
        None => get(ui, Some(key)),
    }
}
