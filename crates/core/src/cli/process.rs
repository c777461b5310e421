//! Commands about running processes other than the start/operate flow: `sendSignal`, `pid`, `id`,
//! `env`, `scale`, `web`.

use super::list::print_list;
use super::Ui;
use anyhow::{anyhow, Result};

/// `rpm2 sendSignal <signal> <target>`.
pub(super) fn send_signal(ui: &Ui, signal: &str, target: &str) -> Result<i32> {
    let mut c = ui.client()?;
    let cwd = super::cwd()?;
    crate::client::actions::signal(&mut c, signal, &[target.to_string()], &cwd)?;
    let target = crate::client::operate::target_string(target, &cwd);
    ui.info(&format!("successfully sent signal {signal} to {target}"));
    print_list(ui, &mut c)?;
    Ok(0)
}

/// `rpm2 pid [target]`.
pub(super) fn pid(ui: &Ui, target: Option<String>) -> Result<i32> {
    let mut c = ui.client()?;
    let list = match &target {
        Some(t) => c.describe(&[t], false)?,
        None => c.processes()?,
    };
    for p in list {
        println!("{}", p.pid);
    }
    Ok(0)
}

/// `rpm2 id <name>`.
pub(super) fn id(ui: &Ui, name: String) -> Result<i32> {
    let mut c = ui.client()?;
    let list = c.describe(&[&name], false).unwrap_or_default();
    let ids: Vec<String> = list.iter().map(|p| p.pm_id.to_string()).collect();
    println!("[ {} ]", ids.join(", "));
    Ok(0)
}

/// `rpm2 env <id>`.
pub(super) fn env(ui: &Ui, id: String) -> Result<i32> {
    crate::config::names::parse_id(&id, "`rpm2 env <id>`: the id").map_err(|e| anyhow!(e))?;
    let mut c = ui.client()?;
    for p in c.describe(&[&id], true)? {
        for (k, v) in &p.pm2_env.env {
            println!("{k}: {}", v.as_str().unwrap_or(""));
        }
    }
    Ok(0)
}

/// `rpm2 scale <name> <N|+N|-N>`.
pub(super) fn scale(ui: &Ui, name: String, number: String) -> Result<i32> {
    let open = || ui.client();
    let mut conn = crate::client::start::Conn::new(&open);
    let up = number.starts_with('+') || number.parse::<i64>().map(|_| true).unwrap_or(false);
    crate::client::actions::scale(&mut conn, &name, &number)?;
    ui.info(if up && !number.starts_with('-') { "Scaling application" } else { "Scaling down application" });
    if !ui.silent {
        print_list(ui, conn.get()?)?;
    }
    Ok(0)
}

/// `rpm2 web ...`.
pub(super) fn web(ui: &Ui, a: crate::web::WebArgs) -> Result<i32> {
    let code = crate::web::command(&ui.home, &ui.paint, ui.silent, a, &|| ui.client())?;
    if !ui.silent {
        print_list(ui, &mut ui.client()?)?;
    }
    Ok(code)
}
