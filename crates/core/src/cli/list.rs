//! `list`, `show`, `jlist` and `prettylist`: the process table and the description of one process.

use super::{Shown, Ui};
use crate::base::fmt::{human_bytes, human_duration, iso_utc, now_ms, Paint};
use crate::client::{Client, RpcError};
use crate::protocol::Pm2Process;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;

/// `rpm2 list`.
pub(super) fn list(ui: &Ui) -> Result<i32> {
    let mut c = ui.client()?;
    print_list(ui, &mut c)?;
    Ok(0)
}

/// `rpm2 jlist [--env]`: the list as one line of JSON.
pub(super) fn jlist(ui: &Ui, env: bool) -> Result<i32> {
    let mut c = ui.client()?;
    // The daemon's JSON text as it came: the same line a parse and re-serialization would print.
    let list = c.call_raw("list", json!({"env": env}))?;
    println!("{}", list.get());
    Ok(0)
}

/// `rpm2 prettylist [--env]`: the list as Node's util.inspect prints it.
pub(super) fn prettylist(ui: &Ui, env: bool) -> Result<i32> {
    let mut c = ui.client()?;
    let list = c.call("list", json!({"env": env}))?;
    render_inspect(&list)?;
    Ok(0)
}

/// Prints the process table (as `rpm2 list`) from a fresh list.
pub(super) fn print_list(ui: &Ui, c: &mut Client) -> Result<()> {
    let list = c.processes()?;
    let p = &ui.paint;
    // A `ready` column when some app declares a readiness probe.
    let probed = list.iter().any(|x| x.pm2_env.readiness.is_some());
    let mut names = vec!["App name", "id", "mode", "pid", "status", "restart", "uptime", "cpu", "memory", "watching"];
    if probed {
        names.push("ready");
    }
    let header: Vec<String> = names.iter().map(|h| p.bold(&p.cyan(h))).collect();
    let now = now_ms();
    let mut rows = Vec::new();
    for proc_ in &list {
        let env = &proc_.pm2_env;
        let mode = if env.exec_mode == "cluster_mode" { "cluster" } else { "fork" };
        let mut row = vec![
            p.bold(&proc_.name),
            proc_.pm_id.to_string(),
            mode.to_string(),
            proc_.pid.to_string(),
            p.status(&env.status),
            env.restart_time.to_string(),
            uptime(proc_, now),
            format!("{}%", proc_.monit.cpu),
            human_bytes(proc_.monit.memory),
            if env.watch_paused.is_some() {
                p.yellow("paused")
            } else if env.watch {
                p.green("enabled")
            } else {
                p.grey("disabled")
            },
        ];
        if probed {
            row.push(match env.readiness.as_deref() {
                Some("ready") => p.green("ready"),
                Some(other) => p.yellow(other),
                None => p.grey("-"),
            });
        }
        rows.push(row);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(crate::base::table::render(&header, &rows).as_bytes());
    if rows.is_empty() {
        let _ = writeln!(out, " Use `rpm2 start app.js` to start an app");
    }
    Ok(())
}

/// How long the process has been up, as PM2 prints it; `0` when it is not running.
fn uptime(proc_: &Pm2Process, now: u64) -> String {
    let e = &proc_.pm2_env;
    if e.status == "online" || e.status == "launching" {
        human_duration(now.saturating_sub(e.pm_uptime))
    } else {
        "0".into()
    }
}

/// A list value as `rpm2 show` prints it: words joined by spaces, `N/A` when empty.
fn words(a: &[String]) -> String {
    if a.is_empty() {
        "N/A".into()
    } else {
        a.join(" ")
    }
}

/// The key/value rows of `rpm2 show` for one process.
fn describe_rows(p: &Paint, proc_: &Pm2Process, now: u64) -> Vec<(&'static str, String)> {
    let e = &proc_.pm2_env;
    let path = |x: &Path| x.display().to_string();
    let mut rows = vec![
        ("status", p.status(&e.status)),
        ("name", e.name.clone()),
        ("namespace", e.namespace.clone()),
        ("version", e.version.clone()),
        ("restarts", e.restart_time.to_string()),
        ("uptime", uptime(proc_, now)),
        ("pid", proc_.pid.to_string()),
        ("script path", path(&e.pm_exec_path)),
        ("script args", words(&e.args)),
        ("error log path", e.pm_err_log_path.clone()),
        ("out log path", e.pm_out_log_path.clone()),
        ("pid path", path(&e.pm_pid_path)),
        ("interpreter", e.exec_interpreter.clone()),
        ("interpreter args", words(&e.node_args)),
        ("script id", proc_.pm_id.to_string()),
        ("exec cwd", path(&e.pm_cwd)),
        ("exec mode", e.exec_mode.clone()),
        ("watch & reload", if e.watch { p.green("✔") } else { p.red("✘") }),
        ("unstable restarts", e.unstable_restarts.to_string()),
        ("created at", iso_utc(e.created_at)),
    ];
    if e.vizion {
        if let Some(g) = git_info(&e.pm_cwd) {
            rows.push(("revision control", "git".into()));
            rows.push(("remote url", g.url.unwrap_or_else(|| "N/A".into())));
            rows.push(("repository root", g.root));
            rows.push(("branch", g.branch.unwrap_or_else(|| "N/A".into())));
            rows.push(("revision", g.revision.unwrap_or_else(|| "N/A".into())));
        }
    }
    if let Some(r) = &e.restart_reason {
        rows.push(("last restart reason", r.clone()));
    }
    if let Some(r) = &e.readiness {
        rows.push(("readiness", if r == "ready" { p.green(r) } else { p.yellow(r) }));
    }
    if let Some(r) = &e.watch_paused {
        rows.push(("watch paused", p.yellow(r)));
    }
    if let Some(c) = e.exit_code {
        rows.push(("last exit code", c.to_string()));
    }
    rows.push(("kill_timeout", e.kill_timeout.to_string()));
    if let Some(m) = e.max_memory_restart {
        rows.push(("max_memory_restart", m.to_string()));
    }
    if let Some(c) = &e.cron_restart {
        rows.push(("cron_restart", c.clone()));
    }
    if let Some(l) = &e.pm_log_path {
        rows.push(("pm_log_path", path(l)));
    }
    rows
}

/// A JSON value as one table cell: strings without quotes.
fn cell(v: &Value) -> String {
    v.as_str().map(String::from).unwrap_or_else(|| v.to_string())
}

/// The "Code metrics" table of `show`, as PM2 prints it: one row per metric, its value followed by
/// its unit, no header row.
fn metrics_table(m: &Map<String, Value>) -> String {
    let rows: Vec<Vec<String>> = m
        .iter()
        .map(|(k, v)| {
            let value = v.get("value").unwrap_or(v);
            let mut shown = value.as_str().map(String::from).unwrap_or_else(|| value.to_string());
            if let Some(unit) = v.get("unit").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                shown = format!("{shown} {unit}");
            }
            vec![k.clone(), shown]
        })
        .collect();
    let t = crate::base::table::render(&["metric".into(), "value".into()], &rows);
    // Drop the header row and its rule: PM2's metrics table has none.
    t.lines().enumerate().filter(|(i, _)| *i != 1 && *i != 2).map(|(_, l)| format!("{l}\n")).collect()
}

/// `rpm2 show <target> [--env]`.
pub(super) fn show(ui: &Ui, target: &str, env: bool) -> Result<i32> {
    let mut c = ui.client()?;
    let list = match c.describe(&[target], env) {
        Ok(l) => l,
        Err(e) if e.downcast_ref::<RpcError>().map(|r| r.code == "not_found").unwrap_or(false) => {
            ui.warn(&format!("{target} doesn't exist"));
            return Err(Shown.into());
        }
        Err(e) => return Err(e),
    };
    let p = &ui.paint;
    let now = now_ms();
    for proc_ in &list {
        let e = &proc_.pm2_env;
        println!(" Describing process with id {} - name {} ", proc_.pm_id, p.bold(&proc_.name));
        let rows = describe_rows(p, proc_, now);
        let table_rows: Vec<Vec<String>> = rows.into_iter().map(|(k, v)| vec![k.to_string(), v]).collect();
        let t = crate::base::table::render(&["key".into(), "value".into()], &table_rows);
        // Drop the header row: PM2's describe table has none.
        let lines: Vec<&str> = t.lines().collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            if i == 1 || i == 2 {
                continue;
            }
            out.push_str(l);
            out.push('\n');
        }
        print!("{out}");
        if let Some(actions) = e.extra.get("axm_actions").and_then(Value::as_array).filter(|a| !a.is_empty()) {
            println!(" Actions available ");
            let rows: Vec<Vec<String>> = actions.iter().map(|a| vec![cell(&a["action_name"])]).collect();
            print!("{}", crate::base::table::render(&["action".into()], &rows));
            println!(" Trigger via: rpm2 trigger {} <action_name>\n", proc_.name);
        }
        if let Some(m) = e.axm_monitor.as_object().filter(|m| !m.is_empty()) {
            println!(" Code metrics value ");
            print!("{}", metrics_table(m));
        }
        if env {
            println!(" Environment ");
            for (k, v) in &e.env {
                println!("  {k}: {}", v.as_str().unwrap_or(""));
            }
        }
        println!(" Use `rpm2 logs {} [--lines 1000]` to display logs", proc_.name);
    }
    Ok(0)
}

/// Git metadata of the repository holding `dir` (PM2's `vizion`), read from `.git` directly.
struct GitInfo {
    root: String,
    branch: Option<String>,
    revision: Option<String>,
    url: Option<String>,
}

fn git_info(dir: &Path) -> Option<GitInfo> {
    let mut d = Some(dir);
    while let Some(cur) = d {
        let git = cur.join(".git");
        if git.is_dir() {
            let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
            let head = head.trim();
            let (branch, revision) = match head.strip_prefix("ref: ") {
                Some(r) => {
                    let rev = std::fs::read_to_string(git.join(r)).ok().map(|s| s.trim().to_string()).or_else(|| {
                        let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
                        packed
                            .lines()
                            .find(|l| l.ends_with(r))
                            .and_then(|l| l.split_whitespace().next())
                            .map(String::from)
                    });
                    (Some(r.trim_start_matches("refs/heads/").to_string()), rev)
                }
                None => (None, Some(head.to_string())),
            };
            let config = std::fs::read_to_string(git.join("config")).unwrap_or_default();
            let mut in_origin = false;
            let mut url = None;
            for l in config.lines() {
                let l = l.trim();
                if l.starts_with('[') {
                    in_origin = l == "[remote \"origin\"]";
                } else if in_origin {
                    if let Some(u) = l.strip_prefix("url") {
                        url = Some(u.trim_start_matches([' ', '=']).trim().to_string());
                    }
                }
            }
            return Some(GitInfo { root: cur.display().to_string(), branch, revision, url });
        }
        d = cur.parent();
    }
    None
}

fn render_inspect(list: &Value) -> Result<()> {
    let mut child = std::process::Command::new("node")
        .arg("-e")
        .arg("let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(require('util').inspect(JSON.parse(s),false,null,false)))")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("prettylist needs Node.js on PATH")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(serde_json::to_string(list)?.as_bytes())?;
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("node failed to render the list");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_table_shows_value_and_unit_without_header() {
        let m = json!({
            "Heap Size": {"historic": true, "unit": "MiB", "type": "internal/v8/heap/total", "value": "6.98"},
            "Active handles": {"historic": true, "type": "internal/libuv/handles", "value": 3},
        });
        let t = metrics_table(m.as_object().unwrap());
        assert!(t.contains("Heap Size") && t.contains("6.98 MiB"), "{t}");
        assert!(t.lines().any(|l| l.contains("Active handles") && l.contains(" 3 ")), "{t}");
        assert!(!t.contains("metric") && !t.contains("value"), "no header row: {t}");
        assert_eq!(t.lines().count(), 4, "{t}");
    }
}
