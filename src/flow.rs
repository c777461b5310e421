//! The core's start/operate flow (`start`, `operate`) on libuv's pool: the code `rpm2 start|stop|...`
//! runs. `index.js` calls `operate` with the method name (stop, restart, reload, delete, reset).

use crate::*;
use napi_derive::napi;
use rpm2_core::client::operate::{self as op, Method, OperateOptions, Target};
use rpm2_core::client::start::{self as flow_core, error_parts, Conn, Note, StartInput, StartOptions};
use rpm2_core::client::Client;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
pub(crate) fn truthy(v: &Value) -> bool {
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
    // A declaration's `cwd` option is where its relative paths resolve; a script's is its app's cwd.
    let declaration = match &input {
        StartInput::Script(s) => flow_core::is_ecosystem(s),
        StartInput::Apps(_) | StartInput::Default => true,
    };
    let caller = PathBuf::from(c["cwd"].as_str().unwrap_or("."));
    let so = StartOptions {
        cwd: match o["cwd"].as_str().filter(|d| declaration && !d.is_empty()) {
            Some(d) => rpm2_core::config::absolutize(&caller, d),
            None => caller,
        },
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
pub(crate) fn flow_error((code, message, pm2): (String, String, Option<String>)) -> Value {
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
