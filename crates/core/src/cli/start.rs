//! `rpm2 start` and the commands that act on processes (stop, restart, reload, delete, reset): the
//! CLI side of the core's start/operate flow, which decides; this file only prints.

use super::args::{LogsArgs, RestartArgs, StartArgs, StartFlags};
use super::foreground::{self, Foreground};
use super::list::print_list;
use super::progress::{client_with, Progress, Steps};
use super::Ui;
use crate::client::env::client_env;
use crate::client::operate::{self, Method, OperateOptions, Target};
use crate::client::start::{self as flow, Conn, Note, StartInput, StartOptions};
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Map, Value};
use std::io::Read;

/// Prints a note of the flow as the CLI always has.
fn show_note(ui: &Ui, n: Note) {
    match n {
        Note::Info(m) => ui.info(&m),
        Note::Warn(m) => ui.warn(&m),
        Note::Hint(m) => {
            if !ui.silent {
                println!("{m}");
            }
        }
    }
}

/// `rpm2 start [scripts...]`, and `startOrRestart`/`startOrReload` (`existing` says what happens
/// to the apps that already exist). Several scripts start one after the other, each with the
/// options given; the first failure stops the rest (as PM2). `-` reads a JSON (or JS expression)
/// declaration from stdin. `--no-daemon` runs it all in the foreground; `--attach` streams the logs.
pub(super) fn start(ui: &Ui, a: StartArgs, existing: Option<Method>) -> Result<i32> {
    let env_no_daemon = std::env::var("RPM2_NO_DAEMON").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if (a.no_daemon || env_no_daemon) && !foreground::active() {
        return start_foreground(ui, a, existing);
    }
    let attach = a.attach;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut app = flags_to_app(&a.opts, &a.args)?;
    if a.no_pmx {
        app.insert("pmx".into(), json!(false));
    }
    let f = &a.opts;
    let o = StartOptions {
        cwd,
        env: client_env(),
        env_name: f.env.clone(),
        only: f.only.as_ref().map(|s| s.split(',').map(|n| n.trim().to_string()).collect()),
        update_env: f.update_env,
        force: f.force,
        reload: existing == Some(Method::Reload),
        or_restart: existing.is_some(),
        app,
        extra_env: None,
    };
    let inputs: Vec<StartInput> = if a.scripts.is_empty() {
        vec![StartInput::Default]
    } else {
        a.scripts
            .iter()
            .map(|s| if s == "-" { stdin_json().map(StartInput::Apps) } else { Ok(StartInput::Script(s.clone())) })
            .collect::<Result<_>>()?
    };
    // Progress shows from the first connection on, so the first start of a home (which starts the
    // daemon) reports too; a command that fails its checks before connecting starts nothing.
    let progress = std::cell::RefCell::new(None);
    let open = || {
        // Progress watches this connection (once it is up: the daemon may have had to start)
        // from before the first request on.
        progress.borrow_mut().get_or_insert_with(|| Progress::begin(ui, "start", Steps::Up));
        client_with(ui, progress.borrow().as_ref())
    };
    let mut conn = Conn::new(&open);
    let mut restarted = false;
    let mut first_name = None;
    for input in inputs {
        let out = flow::start(&mut conn, input, &o, &mut |n| show_note(ui, n));
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                drop(progress.take());
                return Err(e);
            }
        };
        restarted |= out.restarted_by_name;
        if first_name.is_none() {
            first_name = out.processes.first().and_then(|p| p["name"].as_str()).map(String::from);
        }
    }
    if let Some(p) = progress.take() {
        p.finish(conn.opened());
    }
    if restarted || !ui.silent {
        print_list(ui, conn.get()?)?;
    }
    if attach {
        conn.close();
        let name = first_name.unwrap_or_else(|| "all".to_string());
        return super::logs::logs(ui, LogsArgs::stream_of(name));
    }
    Ok(0)
}

/// The declaration piped on stdin (`start -`, `stop -`): JSON, or a JS expression as PM2 evaluates it.
fn stdin_json() -> Result<Value> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("cannot read the app declaration from stdin")?;
    crate::config::ecosystem::parse_json_or_js(&text)
        .map_err(|e| anyhow!("the declaration on stdin is not JSON nor a JS expression:{e}"))
}

/// `rpm2 start --no-daemon`: the foreground mode of `rpm2-runtime` (logs here, Ctrl-C stops every
/// app, the exit code says how it ended).
fn start_foreground(ui: &Ui, a: StartArgs, existing: Option<Method>) -> Result<i32> {
    let fg = Foreground { json_logs: false, no_auto_exit: false, tag: "rpm2", health_port: None };
    let mut a = Some(a);
    foreground::run(&ui.home, &fg, &mut || match a.take().map(|a| start(ui, a, existing)) {
        Some(Ok(code)) => code,
        Some(Err(e)) => {
            super::report(ui, &e);
            1
        }
        None => 1,
    })
}

/// `rpm2 stop|restart|reload|delete|reset <targets...>`; restart/reload apply the start options
/// given (`restart app --node-args=...`); `-` is the apps of a JSON declaration on stdin.
pub(super) fn operate(
    ui: &Ui,
    method: Method,
    targets: &[String],
    r: Option<RestartArgs>,
    env_name: Option<String>,
) -> Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let app = match &r {
        Some(r) => flags_to_app(&r.opts, &r.args)?,
        None => Map::new(),
    };
    let r = r.as_ref();
    let o = OperateOptions {
        cwd,
        env: client_env(),
        update_env: r.is_some_and(|r| r.opts.update_env),
        env_name: r.and_then(|r| r.opts.env.clone()).or(env_name),
        extra_env: None,
        watch: r.is_some_and(|r| r.opts.watch.is_some()),
        app,
    };
    let mut list = Vec::new();
    for t in targets {
        if t == "-" {
            // `stop -`: the apps of a JSON declaration piped on stdin, as PM2.
            list.extend(flow::apps_of(stdin_json()?)?.into_iter().map(Target::App));
        } else {
            list.push(Target::Name(t.clone()));
        }
    }
    let targets = list;
    let steps = match method {
        Method::Stop => Steps::Stopped,
        Method::Delete => Steps::Deleted,
        _ => Steps::Up,
    };
    // Progress watches the connection from before the request on.
    let progress =
        std::cell::RefCell::new((method != Method::Reset).then(|| Progress::begin(ui, method.as_str(), steps)));
    let open = || client_with(ui, progress.borrow().as_ref());
    let mut conn = Conn::new(&open);
    let declaration = matches!(method, Method::Restart | Method::Reload)
        && targets.first().is_some_and(|t| match t {
            Target::Name(n) => flow::is_ecosystem(n),
            Target::App(_) => true,
        });
    let res = operate::operate(&mut conn, method, &targets, &o, &mut |n| show_note(ui, n));
    if let Some(p) = progress.take() {
        p.finish(conn.opened());
    }
    let res = res?;
    if !declaration {
        for p in &res {
            ui.info(&format!("[{}]({}) {}", p["name"].as_str().unwrap_or(""), p["pm_id"], ui.paint.green("✓")));
        }
    }
    if !ui.silent {
        print_list(ui, conn.get()?)?;
    }
    Ok(0)
}

/// Turns `rpm2 start` flags (and the words after `--`) into a PM2-style app object (without its
/// `script`).
fn flags_to_app(a: &StartFlags, args: &[String]) -> Result<Map<String, Value>> {
    let mut o = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    let num = |flag: &str, v: &Option<String>| -> Result<Option<Value>> {
        match v {
            None => Ok(None),
            Some(s) => {
                let unit = if flag == "--max-restarts" { "" } else { " of milliseconds" };
                match s.trim().parse::<i64>() {
                    Ok(n) if n >= 0 => Ok(Some(json!(n))),
                    _ => Err(anyhow!("{flag} must be a positive whole number{unit}, got '{s}'")),
                }
            }
        }
    };
    put("name", a.name.clone().map(Value::String));
    put("instances", a.instances.clone().map(Value::String));
    put("namespace", a.namespace.clone().map(Value::String));
    put("cwd", a.cwd.clone().map(Value::String));
    put("interpreter", a.interpreter.clone().map(Value::String));
    put("node_args", a.node_args.clone().map(Value::String));
    if let Some(w) = &a.watch {
        put("watch", Some(if w.is_empty() { json!(true) } else { json!(w) }));
    }
    put("ignore_watch", a.ignore_watch.clone().map(|v| json!(v)));
    // `--watch-delay 4` is seconds, `--watch-delay 4000ms` milliseconds (PM2); the option is ms.
    put(
        "watch_delay",
        a.watch_delay.clone().map(|d| match d.trim().parse::<f64>() {
            Ok(secs) if secs >= 0.0 && secs.is_finite() => json!((secs * 1000.0).round() as u64),
            _ => Value::String(d),
        }),
    );
    put("max_memory_restart", a.max_memory_restart.clone().map(Value::String));
    put("kill_timeout", num("--kill-timeout", &a.kill_timeout)?);
    put("listen_timeout", num("--listen-timeout", &a.listen_timeout)?);
    put("restart_delay", num("--restart-delay", &a.restart_delay)?);
    put("exp_backoff_restart_delay", num("--exp-backoff-restart-delay", &a.exp_backoff_restart_delay)?);
    put("max_restarts", num("--max-restarts", &a.max_restarts)?);
    put("min_uptime", a.min_uptime.clone().map(Value::String));
    if a.no_autorestart {
        put("autorestart", Some(json!(false)));
    }
    if a.no_autostart {
        put("autostart", Some(json!(false)));
    }
    if a.no_treekill {
        put("treekill", Some(json!(false)));
    }
    if let Some(codes) = &a.stop_exit_codes {
        let mut v = Vec::new();
        for c in codes {
            v.push(c.parse::<i64>().map_err(|_| anyhow!("--stop-exit-codes must be numbers, got '{c}'"))?);
        }
        put("stop_exit_codes", Some(json!(v)));
    }
    if a.wait_ready {
        put("wait_ready", Some(json!(true)));
    }
    if a.shutdown_with_message {
        put("shutdown_with_message", Some(json!(true)));
    }
    put("out_file", a.output.clone().map(Value::String));
    put("error_file", a.error.clone().map(Value::String));
    put("log_file", a.log.clone().map(|l| if l.is_empty() { json!(true) } else { json!(l) }));
    put("pid_file", a.pid.clone().map(Value::String));
    if a.merge_logs {
        put("merge_logs", Some(json!(true)));
    }
    put("log_date_format", a.log_date_format.clone().map(Value::String));
    if a.time {
        put("time", Some(json!(true)));
    }
    put("log_type", a.log_type.clone().map(Value::String));
    put("cron_restart", a.cron_restart.clone().map(Value::String));
    if a.execute_command {
        put("exec_mode", Some(json!("fork")));
    }
    put("increment_var", a.increment_var.clone().map(Value::String));
    put("instance_var", a.instance_var.clone().map(Value::String));
    put("cluster_lb", a.cluster_lb.clone().map(Value::String));
    put("args", a.args_line.clone().map(Value::String));
    if !args.is_empty() {
        put("args", Some(json!(args)));
    }
    Ok(o)
}
