//! napi bindings: the native half of `require('rpm2')`. Thin on purpose: every behaviour lives in
//! `rpm2_core`; this file only moves JSON strings between JS and the core's blocking client.
//!
//! Threading (no tokio in the addon):
//! - [`call`], [`start`], [`operate`] (and `stop`, `restart`, ...) and [`run_cli`] run on libuv's
//!   thread pool ([`AsyncTask`]) and resolve a Promise. `start` and `operate` are the core's
//!   start/operate flow ([`rpm2_core::client::start`]), the same code `rpm2 start|stop|...` runs.
//! - [`subscribe`] runs one std thread per bus that reads the subscription and hands each event to
//!   JS through a [`ThreadsafeFunction`]; [`BusHandle::close`] shuts the socket down, which ends the
//!   thread and releases the function, so nothing keeps Node's event loop alive after it.
//!
//! Error contract of [`call`] (and of the flow functions): the Promise never rejects for a daemon or connection error. It
//! resolves to a JSON envelope, `{"result": <value>, "started_daemon": bool}` on success or
//! `{"error": {"code": "...", "message": "..."}}` on failure, and `index.js` turns the latter into an
//! `Error` whose `message` is the one-line message and whose `code` is the code. Codes are the
//! daemon's (`not_found`, `bad_request`, `already_running`, `version_mismatch`, ...) plus two of the
//! client: `not_running` (no daemon and none was to be started) and `connection` (cannot reach or
//! start the daemon, or the connection was lost).

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use rpm2_core::base::paths::Home;
use rpm2_core::client::operate::{self as op, Method, OperateOptions, Target};
use rpm2_core::client::start::{self as flow_core, error_parts, Conn, Note, StartInput, StartOptions};
use rpm2_core::client::{Client, RpcError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The version of the rpm2 core this addon was built from.
#[napi]
pub fn version() -> String {
    rpm2_core::VERSION.to_string()
}

/// The home to talk to: `home` when given (relative to the current directory), else `RPM2_HOME`
/// (or `~/.rpm2`). The error is the core's one-line message.
fn home_of(home: Option<&str>) -> std::result::Result<Home, String> {
    match home.filter(|h| !h.is_empty()) {
        Some(h) => {
            let p = PathBuf::from(h);
            if p.is_absolute() {
                Ok(Home::at(p))
            } else {
                let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
                Ok(Home::at(cwd.join(p)))
            }
        }
        None => Home::from_env().map_err(|e| format!("{e:#}")),
    }
}

/// `{code, message}` of a core error (an `anyhow::Error`): the daemon's code for an [`RpcError`],
/// else `fallback`, with the whole context chain on one line.
fn error_body<E>(e: &E, fallback: &str) -> Value
where
    E: std::fmt::Display + std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>,
{
    match e.downcast_ref::<RpcError>() {
        Some(r) => json!({"code": r.code, "message": r.message}),
        None => json!({"code": fallback, "message": format!("{e:#}")}),
    }
}

fn plain_error(code: &str, message: String) -> Value {
    json!({"code": code, "message": message})
}

/// Connects to the daemon of `home`, starting it with `daemon_exe` when given and needed.
fn connect(home: &Home, daemon_exe: Option<&str>) -> std::result::Result<Client, Value> {
    match daemon_exe.filter(|e| !e.is_empty()) {
        Some(exe) => Client::connect_or_start(home, Path::new(exe)).map_err(|e| error_body(&e, "connection")),
        None => Client::connect(home).map_err(|e| error_body(&e, "not_running")),
    }
}

/// One request to the daemon, run on libuv's pool.
pub struct CallTask {
    method: String,
    params: String,
    home: Option<String>,
    daemon_exe: Option<String>,
}

impl CallTask {
    fn run(&self) -> Value {
        let params: Value = match serde_json::from_str(&self.params) {
            Ok(v) => v,
            Err(e) => return json!({"error": {"code": "bad_request", "message": format!("params are not JSON: {e}")}}),
        };
        let home = match home_of(self.home.as_deref()) {
            Ok(h) => h,
            Err(m) => return json!({"error": plain_error("connection", m)}),
        };
        let mut client = match connect(&home, self.daemon_exe.as_deref()) {
            Ok(c) => c,
            Err(body) => return json!({"error": body}),
        };
        let started = client.started_daemon;
        let out = match client.call(&self.method, params) {
            Ok(result) => json!({"result": result, "started_daemon": started}),
            Err(e) => json!({"error": error_body(&e, "connection"), "started_daemon": started}),
        };
        client.close();
        out
    }
}

impl Task for CallTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        Ok(self.run().to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

/// Calls a daemon method (`list`, `start`, `stop`, ...) with JSON params, on libuv's thread pool.
/// Resolves to a JSON envelope: `{"result", "started_daemon"}` or `{"error": {"code", "message"}}`.
/// With `daemonExe`, a daemon that is not running is started with that executable; without it,
/// the call fails with code `not_running`. `home` defaults to `RPM2_HOME` (or `~/.rpm2`).
#[napi(ts_return_type = "Promise<string>")]
pub fn call(
    method: String,
    params_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<CallTask> {
    AsyncTask::new(CallTask { method, params: params_json, home, daemon_exe })
}

#[derive(Default)]
struct BusShared {
    closed: AtomicBool,
    stream: Mutex<Option<UnixStream>>,
}

impl BusShared {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(mut s) = self.stream.lock() {
            if let Some(s) = s.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// A live event subscription. `close()` ends it; the callback then gets no more events and the
/// Node event loop is no longer held by it.
#[napi]
pub struct BusHandle {
    shared: Arc<BusShared>,
}

#[napi]
impl BusHandle {
    /// Shuts the subscription's connection down (idempotent).
    #[napi]
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

type EventFn = ThreadsafeFunction<String, (), String, Status, false>;

/// Subscribes to the daemon's event bus (`topics` empty = every topic; `targets` limit to some
/// processes). `cb` receives one JSON string per notification:
/// `{"kind":"ready"}` once subscribed, `{"kind":"event","topic":...,"data":...}` per event,
/// `{"kind":"error","code":...,"message":...}` if the subscription could not be made, and
/// `{"kind":"end"}` last (after `close()` or when the daemon goes away).
#[napi(ts_args_type = "topics: string[], targets: string[], home: string | undefined | null, \
                        daemonExe: string | undefined | null, cb: (msg: string) => void")]
pub fn subscribe(
    topics: Vec<String>,
    targets: Vec<String>,
    home: Option<String>,
    daemon_exe: Option<String>,
    cb: EventFn,
) -> Result<BusHandle> {
    let shared = Arc::new(BusShared::default());
    let th = shared.clone();
    std::thread::Builder::new()
        .name("rpm2-bus".into())
        .spawn(move || bus_thread(th, topics, targets, home, daemon_exe, cb))
        .map_err(|e| Error::from_reason(format!("cannot start the bus thread: {e}")))?;
    Ok(BusHandle { shared })
}

fn bus_thread(
    shared: Arc<BusShared>,
    topics: Vec<String>,
    targets: Vec<String>,
    home: Option<String>,
    daemon_exe: Option<String>,
    cb: EventFn,
) {
    let send = |v: Value| {
        cb.call(v.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
    };
    let sub = (|| -> std::result::Result<Option<rpm2_core::client::Subscription>, Value> {
        let home = home_of(home.as_deref()).map_err(|m| plain_error("connection", m))?;
        let client = connect(&home, daemon_exe.as_deref())?;
        let handle = client.shutdown_handle().map_err(|e| error_body(&e, "connection"))?;
        {
            let mut slot = shared.stream.lock().map_err(|_| json!({"code": "internal", "message": "poisoned"}))?;
            if shared.closed.load(Ordering::SeqCst) {
                client.close();
                return Ok(None);
            }
            *slot = Some(handle);
        }
        let t: Vec<&str> = topics.iter().map(String::as_str).collect();
        client.subscribe(&t, &targets).map(Some).map_err(|e| error_body(&e, "connection"))
    })();
    match sub {
        Err(body) => {
            if !shared.closed.load(Ordering::SeqCst) {
                let mut m = json!({"kind": "error"});
                if let (Some(o), Some(b)) = (m.as_object_mut(), body.as_object()) {
                    o.extend(b.clone());
                }
                send(m);
            }
        }
        Ok(None) => {}
        Ok(Some(sub)) => {
            send(json!({"kind": "ready"}));
            for (topic, data) in sub {
                if shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                send(json!({"kind": "event", "topic": topic, "data": data}));
            }
        }
    }
    shared.close();
    send(json!({"kind": "end"}));
    // `cb` is dropped here: the threadsafe function is released and no longer holds the event loop.
}

/// Which flow a [`FlowTask`] runs.
#[derive(Clone, Copy)]
enum FlowKind {
    Start,
    Operate(Method),
}

/// One start or operate of the core's flow ([`rpm2_core::client::start`]), run on libuv's pool.
pub struct FlowTask {
    kind: FlowKind,
    input: String,
    opts: String,
    home: Option<String>,
    daemon_exe: Option<String>,
}

/// Environment values of a JSON object as strings (objects as JSON, as PM2 does); None when absent.
fn env_of(v: &Value) -> Option<BTreeMap<String, String>> {
    let o = v.as_object()?;
    Some(
        o.iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Null => None,
                other => Some((k.clone(), other.to_string())),
            })
            .collect(),
    )
}

/// Keys of PM2's `start()` options that steer the call itself rather than describe the app.
const CALL_OPTIONS: &[&str] = &[
    "force",
    "updateEnv",
    "update_env",
    "only",
    "rawArgs",
    "parent",
    "commands",
    "options",
    "silent",
    "_events",
    "_eventsCount",
    "_maxListeners",
    "_name",
    "_execs",
    "_args",
    "home",
    "daemonExe",
];

/// JavaScript's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// The app object (without its script) of PM2's `start(script, opts)` options: option names go
/// through unchanged (the core maps camelCase and aliases); options that steer the call, and `env`
/// when it is an environment *name*, are left out; `scriptArgs` is `args`.
fn app_of_options(opts: &Map<String, Value>) -> Map<String, Value> {
    let mut app = Map::new();
    for (k, v) in opts {
        if CALL_OPTIONS.contains(&k.as_str()) || (k == "env" && !v.is_object()) {
            continue;
        }
        if k == "scriptArgs" {
            if !app.contains_key("args") {
                app.insert("args".into(), v.clone());
            }
            continue;
        }
        app.insert(k.clone(), v.clone());
    }
    app
}

/// `opts.env` when it is an environment name (`start(file, {env: 'production'})`).
fn env_name_of(opts: &Value) -> Option<String> {
    opts["env"].as_str().filter(|n| !n.is_empty()).map(String::from)
}

/// Runs the start flow. `c` is `{cwd, env, reload, options}`: the directory and environment of the
/// caller, whether existing declared apps are reloaded, and PM2's `start()` options.
fn flow_start(
    conn: &mut Conn,
    input: Value,
    c: &Value,
    notes: &mut dyn FnMut(Note),
) -> std::result::Result<Vec<Value>, Value> {
    let o = &c["options"];
    let input = match (input.get("script"), input.get("apps")) {
        (Some(Value::String(s)), _) => StartInput::Script(s.clone()),
        (_, Some(apps)) => StartInput::Apps(apps.clone()),
        _ => StartInput::Script(String::new()),
    };
    let only = match &o["only"] {
        Value::String(s) => Some(s.split(',').map(|n| n.trim().to_string()).collect()),
        Value::Array(a) => {
            Some(a.iter().map(|n| n.as_str().map(String::from).unwrap_or_else(|| n.to_string())).collect())
        }
        _ => None,
    };
    let app = match (&input, o.as_object()) {
        (StartInput::Script(_), Some(opts)) => app_of_options(opts),
        _ => Map::new(),
    };
    let so = StartOptions {
        cwd: PathBuf::from(c["cwd"].as_str().unwrap_or(".")),
        env: env_of(&c["env"]).unwrap_or_default(),
        env_name: env_name_of(o),
        only,
        update_env: truthy(&o["updateEnv"]) || truthy(&o["update_env"]),
        force: truthy(&o["force"]),
        reload: truthy(&c["reload"]),
        or_restart: truthy(&c["orRestart"]),
        app,
        extra_env: None,
    };
    flow_core::start(conn, input, &so, notes)
        .map(|o| o.processes)
        .map_err(|e| flow_error(error_parts(&e, "connection")))
}

/// Runs the operate flow; `c` is `{cwd, env, options}` as for [`flow_start`].
fn flow_operate(
    conn: &mut Conn,
    method: Method,
    input: Value,
    c: &Value,
    notes: &mut dyn FnMut(Note),
) -> std::result::Result<Vec<Value>, Value> {
    let list = match input {
        Value::Array(a) => a,
        other => vec![other],
    };
    let targets: Vec<Target> = list
        .into_iter()
        .map(|t| match t {
            Value::String(s) => Target::Name(s),
            Value::Null => Target::Name(String::new()),
            Value::Object(_) => Target::App(t),
            other => Target::Name(other.to_string()),
        })
        .collect();
    let opts = &c["options"];
    let oo = OperateOptions {
        cwd: PathBuf::from(c["cwd"].as_str().unwrap_or(".")),
        env: env_of(&c["env"]).unwrap_or_default(),
        update_env: truthy(&opts["updateEnv"]) || truthy(&opts["update_env"]),
        env_name: env_name_of(opts),
        extra_env: env_of(&opts["env"]),
        watch: false,
        app: opts.as_object().map(app_of_options).unwrap_or_default(),
    };
    op::operate(conn, method, &targets, &oo, notes).map_err(|e| flow_error(error_parts(&e, "connection")))
}

/// The JS error body of a flow error: PM2's wording as `message` (the CLI's line as `detail`) when
/// they differ.
fn flow_error((code, message, pm2): (String, String, Option<String>)) -> Value {
    match pm2 {
        Some(m) => json!({"code": code, "message": m, "detail": message}),
        None => json!({"code": code, "message": message}),
    }
}

impl FlowTask {
    fn run(&self) -> Value {
        let parse = |s: &str| serde_json::from_str::<Value>(s);
        let (input, opts) = match (parse(&self.input), parse(&self.opts)) {
            (Ok(i), Ok(o)) => (i, o),
            _ => return json!({"error": plain_error("bad_request", "arguments are not JSON".into())}),
        };
        let home = match home_of(self.home.as_deref()) {
            Ok(h) => h,
            Err(m) => return json!({"error": plain_error("connection", m)}),
        };
        let exe = self.daemon_exe.clone();
        let open = || match exe.as_deref().filter(|e| !e.is_empty()) {
            Some(exe) => Client::connect_or_start(&home, Path::new(exe)),
            None => Client::connect(&home),
        };
        let mut conn = Conn::new(&open);
        let mut warnings = Vec::new();
        let mut notes = |n: Note| {
            if let Note::Warn(w) = n {
                warnings.push(w);
            }
        };
        let res = match self.kind {
            FlowKind::Start => flow_start(&mut conn, input, &opts, &mut notes),
            FlowKind::Operate(m) => flow_operate(&mut conn, m, input, &opts, &mut notes),
        };
        conn.close();
        match res {
            Ok(list) => json!({"result": list, "warnings": warnings}),
            Err(body) => json!({"error": body, "warnings": warnings}),
        }
    }
}

impl Task for FlowTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        Ok(self.run().to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

fn flow(
    kind: FlowKind,
    input: String,
    opts: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<FlowTask> {
    AsyncTask::new(FlowTask { kind, input, opts, home, daemon_exe })
}

/// Starts what `inputJson` names (`{"script": "..."}` for a script, command, ecosystem file or app
/// name/id; `{"apps": ...}` for app objects) with `optsJson` (`{cwd, env, reload, options}`: the
/// caller's directory and environment, whether existing declared apps are reloaded, and PM2's
/// `start()` options), through the core's start flow (the CLI's).
/// Resolves to `{"result": [process], "warnings": [string]}` or `{"error": {"code", "message",
/// "detail"?}, "warnings"}`; never rejects for a daemon or declaration error.
#[napi(ts_return_type = "Promise<string>")]
pub fn start(
    input_json: String,
    opts_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<FlowTask> {
    flow(FlowKind::Start, input_json, opts_json, home, daemon_exe)
}

/// Runs `method` (`stop`, `restart`, `reload`, `delete`, `reset`) on `targetsJson` (a target or an
/// array of ids, names, namespaces, `all`, ecosystem files and app objects) with `optsJson` (`{cwd,
/// env, options}`: PM2's `updateEnv`, `env` name or values), through the core's operate flow (the
/// CLI's). Resolves
/// to the same envelope as [`start`]; an unknown method is a `bad_request` error.
#[napi(ts_return_type = "Promise<string>")]
pub fn operate(
    method: String,
    targets_json: String,
    opts_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> std::result::Result<AsyncTask<FlowTask>, Error> {
    let m = Method::parse(&method).ok_or_else(|| Error::from_reason(format!("unknown method '{method}'")))?;
    Ok(flow(FlowKind::Operate(m), targets_json, opts_json, home, daemon_exe))
}

/// Stops targets: [`operate`] with method `stop`.
#[napi(ts_return_type = "Promise<string>")]
pub fn stop(
    targets_json: String,
    opts_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<FlowTask> {
    flow(FlowKind::Operate(Method::Stop), targets_json, opts_json, home, daemon_exe)
}

/// Restarts targets: [`operate`] with method `restart`.
#[napi(ts_return_type = "Promise<string>")]
pub fn restart(
    targets_json: String,
    opts_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<FlowTask> {
    flow(FlowKind::Operate(Method::Restart), targets_json, opts_json, home, daemon_exe)
}

/// Reloads targets: [`operate`] with method `reload`.
#[napi(ts_return_type = "Promise<string>")]
pub fn reload(
    targets_json: String,
    opts_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<FlowTask> {
    flow(FlowKind::Operate(Method::Reload), targets_json, opts_json, home, daemon_exe)
}

/// Deletes targets: [`operate`] with method `delete`.
#[napi(js_name = "delete", ts_return_type = "Promise<string>")]
pub fn delete_apps(
    targets_json: String,
    opts_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<FlowTask> {
    flow(FlowKind::Operate(Method::Delete), targets_json, opts_json, home, daemon_exe)
}

/// Resets the restart counters of targets: [`operate`] with method `reset`.
#[napi(ts_return_type = "Promise<string>")]
pub fn reset(
    targets_json: String,
    opts_json: String,
    home: Option<String>,
    daemon_exe: Option<String>,
) -> AsyncTask<FlowTask> {
    flow(FlowKind::Operate(Method::Reset), targets_json, opts_json, home, daemon_exe)
}

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
    fn run(&self) -> std::result::Result<Value, Value> {
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
            "report" => {
                let mut c = if rpm2_core::client::is_running(&home) { connect(&home, None).ok() } else { None };
                Ok(rpm2_core::client::report::build(&home, c.as_mut()))
            }
            "serve" => {
                let a = rpm2_core::web::ServeArgs {
                    path: arg_str(&args, "path"),
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
            other => Err(plain_error("bad_request", format!("unknown local operation '{other}'"))),
        }
    }
}

impl Task for LocalTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        Ok(match self.run() {
            Ok(result) => json!({"result": result}),
            Err(body) => json!({"error": body}),
        }
        .to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

/// Runs a client-side operation of the core (`conf.set`, `conf.unset`, `conf.multiset`, `conf.get`,
/// `report`, `serve`) with JSON arguments, on libuv's thread pool. Resolves to the same envelope as
/// [`call`].
#[napi(ts_return_type = "Promise<string>")]
pub fn local(op: String, args_json: String, home: Option<String>, daemon_exe: Option<String>) -> AsyncTask<LocalTask> {
    AsyncTask::new(LocalTask { op, args: args_json, home, daemon_exe })
}
