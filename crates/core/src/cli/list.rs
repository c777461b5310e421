//! `list`, `show`, `jlist` and `prettylist`: the process table and the description of one process.

use super::{Shown, Ui};
use crate::base::fmt::{human_bytes, human_duration, iso_utc, now_ms, Paint};
use crate::client::{Client, RpcError};
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
    let list = c.call("list", json!({"env": env}))?;
    println!("{}", serde_json::to_string(&list)?);
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
    let list = c.call("list", json!({}))?;
    let p = &ui.paint;
    let header: Vec<String> =
        ["App name", "id", "mode", "pid", "status", "restart", "uptime", "cpu", "memory", "watching"]
            .iter()
            .map(|h| p.bold(&p.cyan(h)))
            .collect();
    let now = now_ms();
    let mut rows = Vec::new();
    for proc_ in list.as_array().into_iter().flatten() {
        let env = &proc_["pm2_env"];
        let status = env["status"].as_str().unwrap_or("");
        let online = status == "online" || status == "launching";
        let mode = if env["exec_mode"] == "cluster_mode" { "cluster" } else { "fork" };
        rows.push(vec![
            p.bold(proc_["name"].as_str().unwrap_or("")),
            proc_["pm_id"].to_string(),
            mode.to_string(),
            proc_["pid"].to_string(),
            p.status(status),
            env["restart_time"].to_string(),
            if online {
                human_duration(now.saturating_sub(env["pm_uptime"].as_u64().unwrap_or(now)))
            } else {
                "0".into()
            },
            format!("{}%", proc_["monit"]["cpu"].as_f64().unwrap_or(0.0)),
            human_bytes(proc_["monit"]["memory"].as_u64().unwrap_or(0)),
            if env["watch_paused"].is_string() {
                p.yellow("paused")
            } else if env["watch"].as_bool().unwrap_or(false) {
                p.green("enabled")
            } else {
                p.grey("disabled")
            },
        ]);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(crate::base::table::render(&header, &rows).as_bytes());
    if rows.is_empty() {
        let _ = writeln!(out, " Use `rpm2 start app.js` to start an app");
    }
    Ok(())
}

/// The key/value rows of `rpm2 show` for one process.
fn describe_rows(p: &Paint, proc_: &Value, now: u64) -> Vec<(&'static str, String)> {
    let e = &proc_["pm2_env"];
    let s = |k: &str| match &e[k] {
        Value::String(s) => s.clone(),
        Value::Null => "N/A".into(),
        Value::Array(a) if a.is_empty() => "N/A".into(),
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
            .collect::<Vec<_>>()
            .join(" "),
        v => v.to_string(),
    };
    let status = s("status");
    let online = status == "online" || status == "launching";
    let mut rows = vec![
        ("status", p.status(&status)),
        ("name", s("name")),
        ("namespace", s("namespace")),
        ("version", s("version")),
        ("restarts", s("restart_time")),
        (
            "uptime",
            if online {
                human_duration(now.saturating_sub(e["pm_uptime"].as_u64().unwrap_or(now)))
            } else {
                "0".into()
            },
        ),
        ("pid", proc_["pid"].to_string()),
        ("script path", s("pm_exec_path")),
        ("script args", s("args")),
        ("error log path", s("pm_err_log_path")),
        ("out log path", s("pm_out_log_path")),
        ("pid path", s("pm_pid_path")),
        ("interpreter", s("exec_interpreter")),
        ("interpreter args", s("node_args")),
        ("script id", proc_["pm_id"].to_string()),
        ("exec cwd", s("pm_cwd")),
        ("exec mode", s("exec_mode")),
        ("watch & reload", if e["watch"].as_bool().unwrap_or(false) { p.green("✔") } else { p.red("✘") }),
        ("unstable restarts", s("unstable_restarts")),
        ("created at", iso_utc(e["created_at"].as_u64().unwrap_or(0))),
    ];
    if e["vizion"] != json!(false) {
        if let Some(g) = e["pm_cwd"].as_str().and_then(|c| git_info(Path::new(c))) {
            rows.push(("revision control", "git".into()));
            rows.push(("remote url", g.url.unwrap_or_else(|| "N/A".into())));
            rows.push(("repository root", g.root));
            rows.push(("branch", g.branch.unwrap_or_else(|| "N/A".into())));
            rows.push(("revision", g.revision.unwrap_or_else(|| "N/A".into())));
        }
    }
    if let Some(r) = e["restart_reason"].as_str() {
        rows.push(("last restart reason", r.to_string()));
    }
    if let Some(r) = e["watch_paused"].as_str() {
        rows.push(("watch paused", p.yellow(r)));
    }
    if let Some(c) = e["exit_code"].as_i64() {
        rows.push(("last exit code", c.to_string()));
    }
    for k in ["kill_timeout", "max_memory_restart", "cron_restart", "pm_log_path"] {
        if !e[k].is_null() {
            rows.push((k, s(k)));
        }
    }
    rows
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
    let list = match c.call("describe", json!({"targets": [target], "env": env})) {
        Ok(l) => l,
        Err(e) if e.downcast_ref::<RpcError>().map(|r| r.code == "not_found").unwrap_or(false) => {
            ui.warn(&format!("{target} doesn't exist"));
            return Err(Shown.into());
        }
        Err(e) => return Err(e),
    };
    let p = &ui.paint;
    let now = now_ms();
    for proc_ in list.as_array().into_iter().flatten() {
        let e = &proc_["pm2_env"];
        println!(
            " Describing process with id {} - name {} ",
            proc_["pm_id"],
            p.bold(proc_["name"].as_str().unwrap_or(""))
        );
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
        if let Some(actions) = e["axm_actions"].as_array().filter(|a| !a.is_empty()) {
            println!(" Actions available ");
            let rows: Vec<Vec<String>> =
                actions.iter().map(|a| vec![a["action_name"].as_str().unwrap_or("").to_string()]).collect();
            print!("{}", crate::base::table::render(&["action".into()], &rows));
            println!(" Trigger via: rpm2 trigger {} <action_name>\n", proc_["name"].as_str().unwrap_or(""));
        }
        if let Some(m) = e["axm_monitor"].as_object().filter(|m| !m.is_empty()) {
            println!(" Code metrics value ");
            print!("{}", metrics_table(m));
        }
        if env {
            println!(" Environment ");
            for (k, v) in e["env"].as_object().into_iter().flatten() {
                println!("  {k}: {}", v.as_str().unwrap_or(""));
            }
        }
        println!(" Use `rpm2 logs {} [--lines 1000]` to display logs", proc_["name"].as_str().unwrap_or(""));
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
