//! napi bindings: the native half of `require('rpm2')`. Thin on purpose: every behaviour lives in
//! `rpm2_core`; this file only moves JSON strings between JS and the core's blocking client.
//!
//! Threading (no tokio in the addon):
//! - [`call`] and [`run_cli`] run on libuv's thread pool ([`AsyncTask`]) and resolve a Promise.
//! - [`subscribe`] runs one std thread per bus that reads the subscription and hands each event to
//!   JS through a [`ThreadsafeFunction`]; [`BusHandle::close`] shuts the socket down, which ends the
//!   thread and releases the function, so nothing keeps Node's event loop alive after it.
//!
//! Error contract of [`call`]: the Promise never rejects for a daemon or connection error. It
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
use rpm2_core::client::{Client, RpcError};
use rpm2_core::config::{self, ResolveCtx};
use serde_json::{json, Value};
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

/// Resolves PM2-style app objects (a JSON array) into the daemon's app specs, against `cwd` and the
/// environment `envJson` (an object of strings), merging `env_<envName>` when given. Returns
/// `{"apps": [AppSpec], "warnings": [{"app", "message"}]}`; throws an Error with the core's one-line
/// message for an invalid app.
#[napi]
pub fn resolve_apps(apps_json: String, cwd: String, env_json: String, env_name: Option<String>) -> Result<String> {
    let apps: Value =
        serde_json::from_str(&apps_json).map_err(|e| Error::from_reason(format!("apps are not JSON: {e}")))?;
    let apps = match apps {
        Value::Array(a) => a,
        other => vec![other],
    };
    let env: BTreeMap<String, String> = match serde_json::from_str::<Value>(&env_json) {
        Ok(Value::Object(o)) => o
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect(),
        Ok(Value::Null) => BTreeMap::new(),
        Ok(_) => return Err(Error::from_reason("the environment must be an object")),
        Err(e) => return Err(Error::from_reason(format!("the environment is not JSON: {e}"))),
    };
    let ctx = ResolveCtx { cwd: PathBuf::from(cwd), env, env_name: env_name.filter(|n| !n.is_empty()) };
    let mut specs = Vec::new();
    let mut warnings = Vec::new();
    for raw in &apps {
        let r = config::resolve_app(raw, &ctx).map_err(|e| Error::from_reason(format!("{e:#}")))?;
        for w in r.warnings {
            warnings.push(json!({"app": r.spec.name, "message": w}));
        }
        specs.push(r.spec);
    }
    serde_json::to_string(&json!({"apps": specs, "warnings": warnings}))
        .map_err(|e| Error::from_reason(format!("cannot serialise the apps: {e}")))
}

/// Reads an ecosystem file on libuv's pool, with the CLI's loader (JSON/JSON5/YAML parsed natively;
/// JS files evaluated by `node`).
pub struct EcosystemTask {
    path: String,
}

impl Task for EcosystemTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let eco = rpm2_core::config::ecosystem::load(Path::new(&self.path))
            .map_err(|e| Error::from_reason(format!("{e:#}")))?;
        Ok(json!({"apps": eco.apps, "deploy_env": eco.deploy_env}).to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

/// Reads an ecosystem file into `{"apps": [app objects], "deploy_env": {<env name>: {...}}}` (JSON).
/// Rejects with the core's one-line message (file, line and column of a syntax error).
#[napi(ts_return_type = "Promise<string>")]
pub fn load_ecosystem(path: String) -> AsyncTask<EcosystemTask> {
    AsyncTask::new(EcosystemTask { path })
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
