//! napi bindings: the native half of `require('rpm2')`. Thin on purpose: every behaviour lives in
//! `rpm2_core`; this file only moves JSON strings between JS and the core's blocking client.
//!
//! Threading (no tokio in the addon):
//! - [`call`], [`start`], [`operate`] (stop, restart, reload, delete, reset by name) and [`run_cli`] run on libuv's
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
use napi_derive::napi;
use rpm2_core::base::paths::Home;
use rpm2_core::client::{Client, RpcError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

mod bus;
mod flow;
mod tasks;
pub use bus::*;
pub use flow::*;
pub use tasks::*;

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
