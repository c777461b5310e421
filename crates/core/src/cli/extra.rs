//! `serve`, `link`/`unlink`, `report`, `completion` and `inspect`.

use super::list::print_list;
use super::{Shown, Ui};
use anyhow::{bail, Result};
use serde_json::Value;

/// `rpm2 serve [path] [port]`: starts the static server app, then lists.
pub(super) fn serve(ui: &Ui, a: &crate::web::ServeArgs) -> Result<i32> {
    let p = crate::web::serve_command(a, None, &|| ui.client())?;
    ui.info(&format!("Serving {} on port {}", p.path.display(), p.port));
    if !ui.silent {
        print_list(ui, &mut ui.client()?)?;
    }
    Ok(0)
}

/// `rpm2 link|unlink`: rpm2 has no PM2 Plus (keymetrics) cloud link; says so and exits with 1, so
/// that a script that relies on the link notices.
pub(super) fn link(ui: &Ui, linking: bool) -> Result<i32> {
    let what = if linking { "link" } else { "unlink" };
    eprintln!(
        "{} rpm2 has no PM2 Plus cloud link, so `{what}` does nothing. For monitoring use `rpm2 monit`, \
         `rpm2 web` (a dashboard in the browser, JSON API and Prometheus /metrics) or `rpm2 report`.",
        ui.paint.yellow("[rpm2][WARN]")
    );
    Err(Shown.into())
}

fn field(k: &str, v: impl std::fmt::Display) {
    println!("{k:<14}: {v}");
}

/// `rpm2 report`: the report of [`crate::client::report::build`], in PM2's layout (inside a
/// Markdown code fence, to paste into an issue).
pub(super) fn report(ui: &Ui) -> Result<i32> {
    let mut c = if crate::client::is_running(&ui.home) { ui.client().ok() } else { None };
    let r = crate::client::report::build(&ui.home, c.as_mut());
    let s = |v: &Value| v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
    println!("\n\n\n```");
    println!("--- rpm2 report ----------------------------------------------------------------");
    field("Date", crate::base::fmt::iso_utc(r["date"].as_u64().unwrap_or(0)));
    println!("===============================================================================");
    println!("--- Daemon -------------------------------------------------");
    match r["daemon"].as_object() {
        Some(d) => {
            field("rpm2d version", s(&d["version"]));
            field("pid", s(&d["pid"]));
            field("home", s(&d["home"]));
            field("started at", s(&d["started_at_iso"]));
        }
        None => println!("not running"),
    }
    println!("===============================================================================");
    println!("--- CLI ----------------------------------------------------");
    let cli = &r["cli"];
    field("local rpm2", s(&cli["rpm2_version"]));
    field("node version", s(&cli["node"]["version"]));
    field("node path", s(&cli["node"]["path"]));
    field("argv", s(&cli["argv"]));
    field("user", s(&cli["user"]));
    field("uid", s(&cli["uid"]));
    field("gid", s(&cli["gid"]));
    println!("===============================================================================");
    println!("--- System info --------------------------------------------");
    for (k, key) in [
        ("arch", "arch"),
        ("platform", "platform"),
        ("cpus", "cpus"),
        ("cpus nb", "cpus_nb"),
        ("freemem", "freemem"),
        ("totalmem", "totalmem"),
    ] {
        field(k, s(&r["system"][key]));
    }
    println!("===============================================================================");
    println!("--- rpm2 list ----------------------------------------------");
    for a in r["apps"].as_array().into_iter().flatten() {
        println!(
            "[{}] {} ({}) {} pid {} restarts {} mem {} cpu {}%",
            a["pm_id"],
            s(&a["name"]),
            s(&a["exec_mode"]),
            s(&a["status"]),
            a["pid"],
            a["restart_time"],
            a["memory"],
            a["cpu"]
        );
        for (k, tag) in [("out_log", "out"), ("err_log", "err")] {
            for l in a[k].as_array().into_iter().flatten() {
                println!("    {tag} | {}", l.as_str().unwrap_or(""));
            }
        }
    }
    println!("===============================================================================");
    println!("--- Daemon logs --------------------------------------------");
    for l in r["daemon_log"].as_array().into_iter().flatten() {
        println!("rpm2 | {}", l.as_str().unwrap_or(""));
    }
    println!("```\n");
    println!("{}", ui.paint.green("Please copy/paste the above report in your issue"));
    Ok(0)
}

/// `rpm2 completion [bash|zsh|fish]`: prints the completion script (clap_complete) on stdout.
pub(super) fn completion(shell: Option<&str>) -> Result<i32> {
    use clap_complete::Shell;
    let sh = match shell.unwrap_or("bash") {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => bail!("no completion for the shell '{other}': use bash, zsh or fish"),
    };
    let mut cmd = <super::args::Cli as clap::CommandFactory>::command();
    clap_complete::generate(sh, &mut cmd, "rpm2", &mut std::io::stdout());
    Ok(0)
}

/// `rpm2 inspect <app>`: restarts the app's processes with Node's inspector on.
pub(super) fn inspect(ui: &Ui, target: &str) -> Result<i32> {
    let mut c = ui.client()?;
    crate::client::actions::inspect(&mut c, target, &super::cwd()?)?;
    ui.info(&format!(
        "Inspect enabled on {target}: the inspector's URL is in `rpm2 logs {target} --err` (chrome://inspect)"
    ));
    if !ui.silent {
        print_list(ui, &mut c)?;
    }
    Ok(0)
}
