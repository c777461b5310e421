//! Operations around the daemon's lifetime: `resurrect` from a saved list, importing a PM2 dump, and
//! the systemd unit of `startup`.

use super::progress::{client_with, Progress, Steps};
use super::Ui;
use crate::base::fmt::Paint;
use crate::base::paths::Home;
use crate::client::{dump, Client};
use crate::config::{self, ResolveCtx};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// `rpm2 resurrect`: starts the saved apps whose names are not running ([`dump::resurrect`]),
/// printing its warnings as they come.
/// Shows its progress (see [`Progress`]).
pub(super) fn resurrect(ui: &Ui) -> Result<i32> {
    let (home, paint, silent) = (&ui.home, &ui.paint, ui.silent);
    let mut warn = |w: String| eprintln!("{} {w}", paint.yellow("[rpm2][WARN]"));
    let path = dump::read_dump(home, &mut warn)?.0;
    if !silent {
        println!("{} Restoring processes located in {}", paint.cyan("[rpm2]"), path.display());
    }
    let progress = Progress::begin(ui, "resurrect", Steps::Up);
    let mut c = client_with(ui, Some(&progress))?;
    let started = dump::resurrect(home, &mut c, &mut warn);
    progress.finish(Some(&mut c));
    let started = started?;
    if !silent {
        println!("{} {} process(es) restored", paint.cyan("[rpm2]"), started.len());
    }
    Ok(0)
}

/// Converts one PM2 `pm2_env` (an entry of `dump.pm2`) to an rpm2 app object.
pub fn pm2_env_to_app(e: &Value) -> Option<Value> {
    let o = e.as_object()?;
    let mut app = Map::new();
    let copy = |app: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(v) = o.get(from).filter(|v| !v.is_null()) {
            app.insert(to.into(), v.clone());
        }
    };
    copy(&mut app, "name", "name");
    copy(&mut app, "pm_exec_path", "script");
    copy(&mut app, "pm_cwd", "cwd");
    copy(&mut app, "args", "args");
    copy(&mut app, "node_args", "node_args");
    copy(&mut app, "namespace", "namespace");
    for k in [
        "autorestart",
        "max_memory_restart",
        "watch",
        "ignore_watch",
        "kill_timeout",
        "wait_ready",
        "listen_timeout",
        "min_uptime",
        "max_restarts",
        "restart_delay",
        "exp_backoff_restart_delay",
        "shutdown_with_message",
        "stop_exit_codes",
        "cron_restart",
        "log_date_format",
        "instance_var",
        "increment_var",
        "treekill",
    ] {
        copy(&mut app, k, k);
    }
    if let Some(i) = o.get("exec_interpreter").and_then(|v| v.as_str()) {
        if i != "node" {
            app.insert("interpreter".into(), json!(i));
        }
    }
    if let Some(m) = o.get("exec_mode").and_then(|v| v.as_str()) {
        app.insert("exec_mode".into(), json!(if m.starts_with("cluster") { "cluster" } else { "fork" }));
    }
    if let Some(Value::Object(env)) = o.get("env") {
        let env: Map<String, Value> =
            env.iter().filter(|(_, v)| !v.is_object()).map(|(k, v)| (k.clone(), v.clone())).collect();
        app.insert("env".into(), Value::Object(env));
    }
    if !app.contains_key("script") {
        return None;
    }
    Some(Value::Object(app))
}

/// `rpm2 import-pm2 [path]`: starts the apps of a PM2 dump (default `~/.pm2/dump.pm2`) under rpm2.
pub fn import_pm2(path: Option<&str>, paint: &Paint, client: &dyn Fn() -> Result<Client>) -> Result<i32> {
    let path = match path {
        Some(p) => PathBuf::from(p),
        None => {
            let base = std::env::var_os("PM2_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pm2")))
                .context("HOME is not set: give the path of dump.pm2")?;
            base.join("dump.pm2")
        }
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("cannot read the PM2 dump {}", path.display()))?;
    let list: Value = json5::from_str(&text).map_err(|e| anyhow!("{} is not a PM2 dump: {e}", path.display()))?;
    let entries = list.as_array().ok_or_else(|| anyhow!("{} is not a PM2 dump (expected a list)", path.display()))?;
    // PM2 stores one entry per instance: group them back into apps.
    let mut apps: Vec<(Value, u32, bool)> = Vec::new();
    for e in entries {
        let Some(app) = pm2_env_to_app(e) else { continue };
        let stopped = e.get("status").and_then(|s| s.as_str()) == Some("stopped");
        match apps.iter_mut().find(|(a, _, _)| a.get("name") == app.get("name")) {
            Some(x) => x.1 += 1,
            None => apps.push((app, 1, stopped)),
        }
    }
    let mut specs = Vec::new();
    for (mut app, n, stopped) in apps {
        if app.get("exec_mode").and_then(|v| v.as_str()) == Some("cluster") {
            app["instances"] = json!(n);
        }
        let cwd = app.get("cwd").and_then(|v| v.as_str()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        let ctx = ResolveCtx {
            cwd: if cwd.is_dir() { cwd } else { PathBuf::from("/") },
            env: Default::default(),
            env_name: None,
        };
        match config::resolve_app(&app, &ctx) {
            Ok(r) => {
                let mut s = r.spec;
                if stopped {
                    s.autostart = false;
                }
                specs.push(s);
            }
            Err(e) => eprintln!("{} not imported: {e:#}", paint.yellow("[rpm2][WARN]")),
        }
    }
    let mut c = client()?;
    let r = c.call("start", json!({"apps": specs, "skip_existing": true}))?;
    println!(
        "{} imported {} process(es) from {}",
        paint.cyan("[rpm2]"),
        r.as_array().map(|a| a.len()).unwrap_or(0),
        path.display()
    );
    Ok(0)
}

/// The systemd unit `startup` installs: the daemon runs in the foreground under systemd
/// (`Type=simple`, `Restart=on-failure`), restores its app table itself, and `resurrect` adds the
/// saved apps. `KillMode=mixed` lets the daemon stop the apps gracefully on `systemctl stop`.
pub fn systemd_unit(exe: &Path, user: &str, home: &Home, path_env: &str) -> String {
    format!(
        "[Unit]
Description=rpm2 process manager for {user}
Documentation=https://www.npmjs.com/package/rpm2
After=network.target

[Service]
Type=simple
User={user}
LimitNOFILE=infinity
Environment=PATH={path_env}
Environment=RPM2_HOME={home}
ExecStart={exe} --daemon --foreground
ExecStartPost={exe} resurrect
ExecReload={exe} reload all
KillMode=mixed
TimeoutStopSec=60
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
",
        exe = exe.display(),
        home = home.root().display(),
    )
}

fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "root".into())
    })
}

/// `rpm2 startup [systemd]`: as root, writes `/etc/systemd/system/rpm2-<user>.service` and enables it;
/// otherwise (or with `--print`) prints the unit and the command to install it.
pub fn startup(
    home: &Home,
    platform: Option<&str>,
    user: Option<String>,
    home_path: Option<String>,
    print: bool,
) -> Result<i32> {
    if let Some(p) = platform {
        if p != "systemd" {
            bail!("init system '{p}' is not supported: rpm2 startup supports systemd");
        }
    }
    let exe = std::env::current_exe().context("cannot find the rpm2 executable")?;
    let user = user.unwrap_or_else(current_user);
    let home = match home_path {
        Some(h) => Home::at(PathBuf::from(h).join(".rpm2")),
        None => home.clone(),
    };
    let path_env = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let unit = systemd_unit(&exe, &user, &home, &path_env);
    let name = format!("rpm2-{user}.service");
    let is_root = nix::unistd::getuid().is_root();
    if print || !is_root {
        println!("{unit}");
        if !is_root {
            println!(
                "[rpm2] To install it, run as root:\nsudo env PATH=$PATH {} startup systemd -u {user} --hp {}",
                exe.display(),
                home.root().parent().map(|p| p.display().to_string()).unwrap_or_default()
            );
        }
        return Ok(0);
    }
    if which_ok("systemctl").is_none() {
        bail!("systemctl is not available: this machine does not run systemd (use --print to see the unit)");
    }
    let target = PathBuf::from("/etc/systemd/system").join(&name);
    crate::base::paths::write_atomic(&target, unit.as_bytes(), 0o644)?;
    println!("[rpm2] Wrote {}", target.display());
    for args in [vec!["daemon-reload"], vec!["enable", name.as_str()]] {
        let st = std::process::Command::new("systemctl").args(&args).status().context("cannot run systemctl")?;
        if !st.success() {
            bail!("`systemctl {}` failed", args.join(" "));
        }
    }
    println!("[rpm2] Enabled {name}: your saved apps (`rpm2 save`) start at boot");
    Ok(0)
}

fn which_ok(cmd: &str) -> Option<PathBuf> {
    config::which(cmd)
}

/// `rpm2 unstartup`: disables and removes the unit written by `startup`.
pub fn unstartup(_home: &Home, platform: Option<&str>) -> Result<i32> {
    if let Some(p) = platform {
        if p != "systemd" {
            bail!("init system '{p}' is not supported: rpm2 unstartup supports systemd");
        }
    }
    let name = format!("rpm2-{}.service", current_user());
    let target = PathBuf::from("/etc/systemd/system").join(&name);
    if !target.exists() {
        bail!("{} does not exist: nothing to remove", target.display());
    }
    if which_ok("systemctl").is_some() {
        let _ = std::process::Command::new("systemctl").args(["disable", &name]).status();
    }
    std::fs::remove_file(&target).with_context(|| format!("cannot remove {}", target.display()))?;
    println!("[rpm2] Removed {}", target.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_has_what_systemd_needs() {
        let u = systemd_unit(Path::new("/usr/bin/rpm2d"), "alice", &Home::at("/home/alice/.rpm2"), "/usr/bin:/bin");
        for line in [
            "Type=simple",
            "User=alice",
            "ExecStart=/usr/bin/rpm2d --daemon --foreground",
            "ExecStartPost=/usr/bin/rpm2d resurrect",
            "Environment=RPM2_HOME=/home/alice/.rpm2",
            "Restart=on-failure",
            "WantedBy=multi-user.target",
        ] {
            assert!(u.lines().any(|l| l == line), "missing {line}:\n{u}");
        }
        // Every line is a section header, a key=value pair or blank.
        for l in u.lines() {
            assert!(l.is_empty() || (l.starts_with('[') && l.ends_with(']')) || l.contains('='), "bad line {l}");
        }
    }

    #[test]
    fn converts_pm2_entries() {
        let e = json!({"name": "api", "pm_exec_path": "/srv/app.js", "pm_cwd": "/srv", "exec_interpreter": "node",
            "exec_mode": "cluster_mode", "env": {"A": "1", "api": {}}, "max_memory_restart": 1000, "status": "online"});
        let a = pm2_env_to_app(&e).unwrap();
        assert_eq!(a["script"], "/srv/app.js");
        assert_eq!(a["exec_mode"], "cluster");
        assert_eq!(a["env"], json!({"A": "1"}));
        assert!(a.get("interpreter").is_none());
        assert!(pm2_env_to_app(&json!({"name": "x"})).is_none());
    }
}
