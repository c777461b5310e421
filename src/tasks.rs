//! The addon's other pool tasks: stopping the daemon, running the CLI in-process, and the
//! client-side operations (`serve`, `report`, the module configuration).

use crate::flow::truthy;
use crate::*;
use napi_derive::napi;
use rpm2_core::client::{Client, RpcError};
use serde_json::{json, Value};
use std::path::Path;

/// Stops every app and the daemon, on libuv's pool.
pub struct KillTask {
    home: Option<String>,
}

impl Task for KillTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let home = match home_of(self.home.as_deref()) {
            Ok(h) => h,
            Err(m) => return Ok(json!({"error": plain_error("connection", m)}).to_string()),
        };
        let out = match rpm2_core::client::kill_daemon(&home) {
            Ok(_) => json!({"result": {"success": true}}),
            Err(e) => match e.downcast_ref::<RpcError>() {
                Some(r) => json!({"error": {"code": r.code, "message": r.message}}),
                // The daemon went away while answering: it is stopped.
                None => json!({"result": {"success": true}}),
            },
        };
        Ok(out.to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

/// Stops every app and the daemon of `home` (`RPM2_HOME` by default) and waits until it is gone.
/// Resolves to `{"result": {"success": true}}` (also when no daemon was running) or `{"error"}`.
#[napi(ts_return_type = "Promise<string>")]
pub fn kill_daemon(home: Option<String>) -> AsyncTask<KillTask> {
    AsyncTask::new(KillTask { home })
}

/// Runs the CLI in a pool thread (the fallback where no native executable exists).
pub struct CliTask {
    argv: Vec<String>,
    daemon_exe: Option<String>,
}

impl Task for CliTask {
    type Output = i32;
    type JsValue = i32;

    fn compute(&mut self) -> Result<i32> {
        // The CLI starts the daemon with its own executable, which in the addon is `node`: make
        // sure the daemon runs first (with the real daemon executable) for commands that need it.
        let cmd = self.argv.iter().skip(1).find(|a| !a.starts_with('-')).map(String::as_str);
        let info_only = self.argv.iter().skip(1).any(|a| matches!(a.as_str(), "-v" | "--version" | "-h" | "--help"));
        if let (Some(exe), Some(cmd)) = (self.daemon_exe.as_deref(), cmd) {
            if !info_only && !matches!(cmd, "kill" | "help") {
                let home = home_of(None).map_err(Error::from_reason)?;
                if !rpm2_core::client::is_running(&home) {
                    rpm2_core::client::start_daemon(&home, Path::new(exe))
                        .map_err(|e| Error::from_reason(format!("{e:#}")))?;
                }
            }
        }
        Ok(rpm2_core::cli::run(self.argv.iter().map(Into::into).collect()))
    }

    fn resolve(&mut self, _env: Env, output: i32) -> Result<i32> {
        Ok(output)
    }
}

/// Runs the rpm2 CLI with `argv` (program name first) and resolves to its exit code. Output goes
/// straight to the process's stdout/stderr. `daemonExe` is the executable that runs the daemon.
#[napi(ts_return_type = "Promise<number>")]
pub fn run_cli(argv: Vec<String>, daemon_exe: Option<String>) -> AsyncTask<CliTask> {
    AsyncTask::new(CliTask { argv, daemon_exe })
}

/// One client-side operation of the core (no single daemon request), run on libuv's pool.
pub struct LocalTask {
    op: String,
    args: String,
    home: Option<String>,
    daemon_exe: Option<String>,
}

/// The string `key` of `args`, if any.
fn arg_str(args: &Value, key: &str) -> Option<String> {
    match &args[key] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl LocalTask {
    /// Runs the operation; warnings it meets (a dump read from its `.bak`, a saved script that is
    /// gone) go to `warnings`, which the envelope carries to `process.emitWarning`.
    fn run(&self, warnings: &mut Vec<String>) -> std::result::Result<Value, Value> {
        use rpm2_core::client::conf;
        let args: Value = serde_json::from_str(&self.args)
            .map_err(|e| plain_error("bad_request", format!("arguments are not JSON: {e}")))?;
        let home = home_of(self.home.as_deref()).map_err(|m| plain_error("connection", m))?;
        let fail = |e: anyhow::Error| error_body(&e, "failed");
        match self.op.as_str() {
            "conf.set" => {
                let key = arg_str(&args, "key").ok_or_else(|| plain_error("bad_request", "set needs a key".into()))?;
                let value = arg_str(&args, "value").unwrap_or_default();
                conf::set(&home, &key, &value).map_err(fail)?;
                Ok(json!({"success": true}))
            }
            "conf.unset" => {
                let key =
                    arg_str(&args, "key").ok_or_else(|| plain_error("bad_request", "unset needs a key".into()))?;
                conf::unset(&home, &key).map_err(fail)?;
                Ok(json!({"success": true}))
            }
            "conf.multiset" => {
                let serial = arg_str(&args, "serial").unwrap_or_default();
                conf::multiset(&home, &serial).map_err(fail)?;
                Ok(json!({"success": true}))
            }
            "conf.get" => match arg_str(&args, "key").filter(|k| k != "all") {
                Some(k) => conf::get(&home, &k).map_err(|e| error_body(&e, "not_found")),
                None => Ok(Value::Object(conf::load(&home))),
            },
            "trigger" => {
                let target = arg_str(&args, "target").unwrap_or_default();
                let action = arg_str(&args, "action").unwrap_or_default();
                let mut c = connect(&home, None)?;
                let r = rpm2_core::client::actions::trigger(&mut c, &target, &action, args["params"].clone())
                    .map_err(|e| error_body(&e, "failed"))?;
                match r.missing_error(&action) {
                    Some(m) => Err(plain_error("timeout", m)),
                    None => Ok(Value::Array(r.replies)),
                }
            }
            "report" => {
                let mut c = if rpm2_core::client::is_running(&home) { connect(&home, None).ok() } else { None };
                Ok(rpm2_core::client::report::build(&home, c.as_mut()))
            }
            "serve" => {
                let a = rpm2_core::web::ServeArgs {
                    // The folder, from the caller's directory.
                    path: arg_str(&args, "path").map(|p| {
                        let cwd = arg_str(&args, "cwd").unwrap_or_default();
                        rpm2_core::config::absolutize(Path::new(&cwd), &p).to_string_lossy().into_owned()
                    }),
                    port: arg_str(&args, "port").and_then(|p| p.parse().ok()),
                    port_opt: None,
                    host: arg_str(&args, "host").unwrap_or_else(|| "127.0.0.1".into()),
                    spa: truthy(&args["spa"]),
                    basic_auth_username: arg_str(&args, "basicAuthUsername"),
                    basic_auth_password: arg_str(&args, "basicAuthPassword"),
                    name: arg_str(&args, "name"),
                };
                let exe = self.daemon_exe.clone();
                let open = || -> anyhow::Result<Client> {
                    match &exe {
                        Some(e) => Client::connect_or_start(&home, Path::new(e)),
                        None => Client::connect(&home),
                    }
                };
                // The server the app runs is the daemon's executable, not this Node process.
                let p = rpm2_core::web::serve_command(&a, exe.as_deref().map(Path::new), &open).map_err(fail)?;
                Ok(json!({"name": p.name, "path": p.path, "port": p.port}))
            }
            "connect" => {
                let mut c = connect(&home, self.daemon_exe.as_deref())?;
                let info = c.call("info", json!({})).map_err(|e| error_body(&e, "connection"))?;
                let started = c.started_daemon;
                c.close();
                Ok(rpm2_core::client::shape::connect_shape(&home, started, &info))
            }
            "flush" | "signal" | "monitor" | "inspect" | "sendData" => self.on_targets(&home, &args),
            "dump" | "resurrect" | "scale" => self.saved_list(&home, &args, warnings),
            "deploy" => {
                let words = rpm2_core::deploy::api_words(&args["file"], &args["commands"]);
                let cwd = match arg_str(&args, "cwd") {
                    Some(c) => std::path::PathBuf::from(c),
                    None => std::env::current_dir()
                        .map_err(|e| plain_error("failed", format!("cannot read the current directory: {e}")))?,
                };
                let paint = rpm2_core::base::fmt::Paint { enabled: false };
                let outcome = rpm2_core::deploy::deploy(&words, &cwd, paint).map_err(fail)?;
                match outcome.failure() {
                    Some(m) => Err(json!({"code": "deploy_failed", "message": m, "detail": outcome.to_json()})),
                    None => Ok(outcome.to_json()),
                }
            }
            other => Err(plain_error("bad_request", format!("unknown local operation '{other}'"))),
        }
    }
}

impl LocalTask {
    /// `dump` (`rpm2 save`), `resurrect` and `scale`, as the CLI runs them, in PM2's result shapes:
    /// `{success: true}` for dump and scale, the processes started for resurrect. Resurrect's
    /// warnings (as `rpm2 resurrect` prints them) are pushed to `warnings`.
    fn saved_list(&self, home: &Home, args: &Value, warnings: &mut Vec<String>) -> std::result::Result<Value, Value> {
        use rpm2_core::client::{actions, dump, start::error_parts, start::Conn};
        let fail = |e: anyhow::Error| crate::flow::flow_error(error_parts(&e, "failed"));
        let exe = self.daemon_exe.clone();
        let open = || match exe.as_deref().filter(|e| !e.is_empty()) {
            Some(exe) => Client::connect_or_start(home, Path::new(exe)),
            None => Client::connect(home),
        };
        let mut conn = Conn::new(&open);
        let out = match self.op.as_str() {
            "dump" => conn.get().and_then(|c| dump::save(c, truthy(&args["force"]))).map(|_| json!({"success": true})),
            "resurrect" => {
                conn.get().and_then(|c| dump::resurrect(home, c, &mut |w| warnings.push(w))).map(Value::Array)
            }
            _ => {
                let number = arg_str(args, "number").unwrap_or_default();
                actions::scale(&mut conn, &arg_str(args, "name").unwrap_or_default(), &number)
                    .map(|_| json!({"success": true}))
            }
        };
        conn.close();
        out.map_err(fail)
    }

    /// The requests on targets of `rpm2_core::client::actions` (`flush`, `signal`, `monitor`,
    /// `inspect`, `sendData`): the CLI's code, with PM2's API wording of errors. `flush` and `signal`
    /// resolve to the process list, as PM2's do.
    fn on_targets(&self, home: &Home, args: &Value) -> std::result::Result<Value, Value> {
        use rpm2_core::client::{actions, start::error_parts};
        let targets: Vec<String> = match &args["targets"] {
            Value::Array(a) => {
                a.iter().map(|t| t.as_str().map(String::from).unwrap_or_else(|| t.to_string())).collect()
            }
            Value::Null => Vec::new(),
            Value::String(s) => vec![s.clone()],
            t => vec![t.to_string()],
        };
        let cwd = arg_str(args, "cwd").map(std::path::PathBuf::from).unwrap_or_default();
        let mut c = connect(home, self.daemon_exe.as_deref())?;
        let fail = |e: anyhow::Error| crate::flow::flow_error(error_parts(&e, "failed"));
        let first = targets.first().map(String::as_str);
        let out = match self.op.as_str() {
            "flush" => actions::flush(&mut c, &targets, &cwd).map(|_| Value::Null),
            "signal" => actions::signal(&mut c, &arg_str(args, "signal").unwrap_or_default(), &targets, &cwd)
                .map(|_| Value::Null),
            "monitor" => actions::monitor(&mut c, first, truthy(&args["on"]), &cwd),
            "inspect" => actions::inspect(&mut c, first.unwrap_or_default(), &cwd),
            _ => actions::send_data(&mut c, args["packet"].clone()),
        }
        .map_err(fail)?;
        let out =
            if out.is_null() { c.call("list", json!({})).map_err(|e| error_body(&e, "connection"))? } else { out };
        c.close();
        Ok(out)
    }
}

impl Task for LocalTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let mut warnings = Vec::new();
        Ok(match self.run(&mut warnings) {
            Ok(result) => json!({"result": result, "warnings": warnings}),
            Err(body) => json!({"error": body, "warnings": warnings}),
        }
        .to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

/// Runs a client-side operation of the core (`conf.set`, `conf.unset`, `conf.multiset`, `conf.get`,
/// `report`, `serve`, `deploy`) with JSON arguments, on libuv's thread pool. Resolves to the same envelope as
/// [`call`].
#[napi(ts_return_type = "Promise<string>")]
pub fn local(op: String, args_json: String, home: Option<String>, daemon_exe: Option<String>) -> AsyncTask<LocalTask> {
    AsyncTask::new(LocalTask { op, args: args_json, home, daemon_exe })
}
