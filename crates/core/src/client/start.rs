//! The one start flow behind `rpm2 start` and the JS API's `start()`: what the user asked (a script,
//! a command, an ecosystem file, app objects, or the name/id of an existing app, plus options) into
//! the requests the daemon gets. The CLI prints what it returns; the napi addon hands it to JS.
//!
//! The order is fixed: every declaration is read and resolved before the daemon is asked anything,
//! so a bad file or option starts nothing.

use crate::client::{Client, RpcError};
use crate::config::{self, ResolveCtx};
use anyhow::{anyhow, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// An error of the start/operate flow: a stable code for programs and one line for people (the
/// line the CLI prints). `pm2` is PM2's wording of the same error, which the JS API uses.
#[derive(Debug, Clone)]
pub struct FlowError {
    /// Stable code: `bad_config`, `bad_request`, `not_found`, or the daemon's code.
    pub code: String,
    /// One line for people, as the CLI prints it.
    pub message: String,
    /// PM2's message for the same error, when it differs (the JS API's `message`).
    pub pm2: Option<String>,
}

impl FlowError {
    /// An error with `code` and `message` and no PM2 wording of its own.
    pub(crate) fn new(code: &str, message: impl Into<String>) -> FlowError {
        FlowError { code: code.into(), message: message.into(), pm2: None }
    }
}

impl std::fmt::Display for FlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for FlowError {}

/// A daemon `not_found` keeps its message (the CLI's line) and gets PM2's API wording
/// ("process or namespace not found: x") for `require('rpm2')`.
pub(crate) fn pm2_not_found(e: anyhow::Error, targets: &[String]) -> anyhow::Error {
    match e.downcast_ref::<RpcError>() {
        Some(r) if r.code == "not_found" => FlowError {
            code: r.code.clone(),
            message: r.message.clone(),
            pm2: Some(format!("process or namespace not found: {}", targets.join(", "))),
        }
        .into(),
        _ => e,
    }
}

/// What the flow tells the user along the way. The CLI prints these as it goes; the JS API turns
/// warnings into process warnings and drops the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// A progress line (`[rpm2] ...`).
    Info(String),
    /// A plain hint line (printed without prefix).
    Hint(String),
    /// A warning about an app declaration (`app 'x': unknown option ...`).
    Warn(String),
}

/// A connection to the daemon opened on first use and then reused, so the caller can keep using it
/// (the CLI prints the list on it afterwards).
pub struct Conn<'a> {
    open: &'a dyn Fn() -> Result<Client>,
    client: Option<Client>,
}

impl<'a> Conn<'a> {
    /// A connection that `open` makes when the flow first needs the daemon.
    pub fn new(open: &'a dyn Fn() -> Result<Client>) -> Conn<'a> {
        Conn { open, client: None }
    }

    /// The client, connecting (and maybe starting the daemon) on first use.
    pub fn get(&mut self) -> Result<&mut Client> {
        if self.client.is_none() {
            self.client = Some((self.open)()?);
        }
        self.client.as_mut().ok_or_else(|| anyhow!("no connection to the rpm2 daemon"))
    }

    /// The client when one was opened (it connects nothing).
    pub fn opened(&mut self) -> Option<&mut Client> {
        self.client.as_mut()
    }

    /// Closes the connection if one was opened.
    pub fn close(self) {
        if let Some(c) = self.client {
            c.close();
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub enum StartInput {
    /// Nothing given: `ecosystem.config.js` in the working directory.
    Default,
    /// A script path, a command line, an ecosystem file, or the name/id of an existing app.
    Script(String),
    /// App declarations: an app object, an array of them, or `{apps: [...]}`.
    Apps(Value),
}

/// How to start it.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The directory relative paths resolve against.
    pub cwd: PathBuf,
    /// The client's environment, the base of every app's environment.
    pub env: BTreeMap<String, String>,
    /// `--env <name>`: merge `env_<name>` (and `deploy.<name>.env`) of the declarations.
    pub env_name: Option<String>,
    /// `--only a,b`: only these apps of the declarations.
    pub only: Option<Vec<String>>,
    /// `--update-env`: an existing app restarted by name gets `env` as its environment.
    pub update_env: bool,
    /// `-f`: start even when an app of that name exists.
    pub force: bool,
    /// Existing declared apps are reloaded (zero-downtime) instead of restarted.
    pub reload: bool,
    /// `startOrRestart`/`startOrReload <script>`: a script whose app exists is restarted (or
    /// reloaded) with the new options instead of being refused as already running.
    pub or_restart: bool,
    /// The start flags as a PM2 app object (without `script`), applied to a script.
    pub app: Map<String, Value>,
    /// Extra environment values given with a restart (JS `restart(name, {env: {...}})`).
    pub extra_env: Option<BTreeMap<String, String>>,
}

/// What a start did: for each app, the process objects the daemon answered (the `jlist` objects of
/// started apps, [`operate_shape`](super::shape::operate_shape) of restarted ones).
#[derive(Debug, Clone, Default)]
pub struct StartOutcome {
    /// The processes started or restarted.
    pub processes: Vec<Value>,
    /// Whether the input named an existing app that was restarted (no declaration was read).
    pub restarted_by_name: bool,
}

/// The declarations read from the input, before resolution.
struct Declared {
    raws: Vec<Value>,
    /// The file they came from (error messages name it).
    file: Option<PathBuf>,
    /// Whether existing apps of these names take the new declaration (files and app objects).
    declarations: bool,
    ctx: ResolveCtx,
}

fn bad_config(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<FlowError>() {
        Ok(f) => f.into(),
        Err(e) => FlowError::new("bad_config", format!("{e:#}")).into(),
    }
}

/// Whether `s` names an ecosystem file by its extension (`.config.js`, `.json`, `.yaml`, ...).
pub fn is_ecosystem(s: &str) -> bool {
    config::ecosystem::kind_of(s).is_some()
}

/// The app objects of a JS declaration: an array, `{apps: [...]}` (or PM2's `pm2` key), or one app.
pub(crate) fn apps_of(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Object(mut o) => {
            let apps = o.remove("apps").or_else(|| o.remove("pm2"));
            match apps {
                None => Ok(vec![Value::Object(o)]),
                Some(Value::Array(a)) => Ok(a),
                Some(one) => Ok(vec![one]),
            }
        }
        _ => Err(FlowError::new(
            "bad_config",
            "the app declaration must be an object with `apps`, an array of apps or one app",
        )
        .into()),
    }
}

/// Starts what `input` names (see the module doc). `notes` receives progress lines and warnings.
pub fn start(
    conn: &mut Conn,
    input: StartInput,
    o: &StartOptions,
    notes: &mut dyn FnMut(Note),
) -> Result<StartOutcome> {
    let script = match input {
        StartInput::Default => {
            if o.cwd.join("ecosystem.config.js").exists() {
                Some("ecosystem.config.js".to_string())
            } else {
                return Err(FlowError::new(
                    "bad_request",
                    "no script given and no ecosystem.config.js here: `rpm2 start app.js` or `rpm2 start ecosystem.config.js`",
                )
                .into());
            }
        }
        StartInput::Script(s) if s.trim().is_empty() => {
            return Err(FlowError::new(
                "bad_request",
                "start needs a script, an app object, an array of apps or an ecosystem file",
            )
            .into())
        }
        StartInput::Script(s) => Some(s),
        StartInput::Apps(v) => {
            let ctx = ResolveCtx { cwd: o.cwd.clone(), env: o.env.clone(), env_name: o.env_name.clone() };
            let raws = only(apps_of(v)?, o, None)?;
            let d = Declared { raws, file: None, declarations: true, ctx };
            return start_declared(conn, d, o, notes);
        }
    };
    let script = script.unwrap_or_default();
    let file_path = config::absolutize(&o.cwd, &script);
    if is_ecosystem(&script) && file_path.is_file() {
        let d = read_file(&file_path, o, notes)?;
        return start_declared(conn, d, o, notes);
    }
    // Not a file: the name or id of an existing app is restarted, as PM2 does.
    if let Some(done) = restart_known(conn, &script, o)? {
        return Ok(done);
    }
    let mut app = o.app.clone();
    app.insert("script".into(), json!(script));
    let ctx = ResolveCtx { cwd: o.cwd.clone(), env: o.env.clone(), env_name: None };
    let d = Declared { raws: vec![Value::Object(app)], file: None, declarations: o.or_restart, ctx };
    start_declared(conn, d, o, notes)
}

/// Reads an ecosystem file with `--env` and `--only` applied. An `--env <name>` that no app (and no
/// `deploy` block) of the file declares starts the apps with their base `env`, as PM2, with one
/// warning naming the file and the environments it has.
fn read_file(file: &Path, o: &StartOptions, notes: &mut dyn FnMut(Note)) -> Result<Declared> {
    let eco = config::ecosystem::load(file).map_err(bad_config)?;
    let mut ctx = ResolveCtx { cwd: o.cwd.clone(), env: o.env.clone(), env_name: o.env_name.clone() };
    // PM2's precedence: shell env < deploy.<env>.env < app env < app env_<env>.
    let mut deploy = false;
    if let Some(n) = &o.env_name {
        if let Some(Value::Object(denv)) = eco.deploy_env.get(n) {
            deploy = true;
            for (k, v) in denv {
                ctx.env.insert(k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string()));
            }
        }
    }
    let deploy_names: Vec<String> = eco.deploy_env.keys().cloned().collect();
    let mut raws = only(eco.apps, o, Some(file))?;
    for app in &mut raws {
        append_env_to_name(app, o.env_name.as_deref());
    }
    if let Some(n) = &o.env_name {
        let key = format!("env_{n}");
        if !deploy && !raws.iter().any(|app| app.get(&key).is_some()) {
            notes(Note::Warn(unknown_env(n, file, &raws, &deploy_names)));
        }
    }
    Ok(Declared { raws, file: Some(file.to_path_buf()), declarations: true, ctx })
}

/// `append_env_to_name: true` with `--env <name>`: the app is named `<name>-<env>`, as PM2 (after
/// `--only` has picked the apps by their declared names).
pub(crate) fn append_env_to_name(app: &mut Value, env_name: Option<&str>) {
    let Some(env) = env_name.filter(|e| !e.is_empty()) else { return };
    let on = matches!(app.get("append_env_to_name"), Some(v) if !(v.is_null() || *v == json!(false) || *v == json!(0) || *v == json!("")));
    if let (true, Some(Value::String(name))) = (on, app.get_mut("name")) {
        name.push('-');
        name.push_str(env);
    }
}

/// The warning of an `--env <name>` that the file does not declare: the file and what it has.
fn unknown_env(name: &str, file: &Path, apps: &[Value], deploy: &[String]) -> String {
    let mut have: Vec<String> = Vec::new();
    for app in apps {
        for k in app.as_object().into_iter().flat_map(|o| o.keys()) {
            if let Some(e) = k.strip_prefix("env_") {
                if !have.iter().any(|h| h == e) {
                    have.push(e.to_string());
                }
            }
        }
    }
    for d in deploy {
        if !have.contains(d) {
            have.push(d.clone());
        }
    }
    let has = if have.is_empty() { "none".to_string() } else { have.join(", ") };
    format!(
        "--env {name}: {} declares no env_{name} (nor deploy.{name}) block (its environments: {has}); the apps get their base env",
        file.display()
    )
}

/// `--only`: keeps the apps of those names; none left is an error.
fn only(mut apps: Vec<Value>, o: &StartOptions, file: Option<&Path>) -> Result<Vec<Value>> {
    let Some(names) = &o.only else { return Ok(apps) };
    let names: Vec<&str> = names.iter().map(|s| s.trim()).collect();
    apps.retain(|app| app.get("name").and_then(|n| n.as_str()).map(|n| names.contains(&n)).unwrap_or(false));
    if apps.is_empty() {
        let joined = names.join(",");
        let message = match file {
            Some(f) => format!("--only {joined}: no app of that name in {}", f.display()),
            None => format!("--only {joined}: no app of that name"),
        };
        return Err(FlowError::new("not_found", message).into());
    }
    Ok(apps)
}

/// `start <name|namespace|id>` of an existing app restarts it, before any file or PATH lookup, as
/// PM2: only a word without `/`, space or file extension is looked up. Returns None when `script`
/// names no app.
fn restart_known(conn: &mut Conn, script: &str, o: &StartOptions) -> Result<Option<StartOutcome>> {
    let numeric = script.parse::<u32>().is_ok();
    if !numeric && (script.contains('/') || script.contains(' ') || Path::new(script).extension().is_some()) {
        return Ok(None);
    }
    let c = conn.get()?;
    let known = c
        .call("describe", json!({"targets": [script]}))
        .ok()
        .and_then(|v| v.as_array().map(|a| !a.is_empty()))
        .unwrap_or(false);
    if !known {
        return Ok(None);
    }
    let mut params = json!({"targets": [script]});
    if o.update_env {
        let mut env = o.env.clone();
        env.extend(o.extra_env.clone().unwrap_or_default());
        params["update_env"] = json!(true);
        params["env"] = json!(env);
    }
    if o.app.get("watch").is_some_and(|w| !w.is_null() && *w != json!(false)) {
        params["watch"] = json!(true); // `start <app> --watch` enables watching, as PM2
    }
    let res = c.call("restart", params)?;
    let processes = res.as_array().into_iter().flatten().map(super::shape::operate_shape).collect();
    Ok(Some(StartOutcome { processes, restarted_by_name: true }))
}

/// Resolves every declaration, then restarts the existing ones (declarations only) and starts the rest.
fn start_declared(conn: &mut Conn, d: Declared, o: &StartOptions, notes: &mut dyn FnMut(Note)) -> Result<StartOutcome> {
    // Resolve every app before starting any: nothing starts half-way.
    let mut specs = Vec::new();
    let mut names = HashSet::new();
    for raw in &d.raws {
        let r = match &d.file {
            Some(f) => config::resolve_app(raw, &d.ctx).map_err(|e| e.context(f.display().to_string())),
            None => config::resolve_app(raw, &d.ctx),
        }
        .map_err(bad_config)?;
        for w in &r.warnings {
            notes(Note::Warn(format!("app '{}': {w}", r.spec.name)));
        }
        if !names.insert(r.spec.name.clone()) {
            let message = match &d.file {
                Some(f) => {
                    format!("{}: two apps are named '{}': names in one file must be unique", f.display(), r.spec.name)
                }
                None => format!("two apps are named '{}': names in one start must be unique", r.spec.name),
            };
            return Err(FlowError::new("bad_config", message).into());
        }
        specs.push(r.spec);
    }
    let c = conn.get()?;
    let mut out = StartOutcome::default();
    let mut to_start = Vec::new();
    for s in specs {
        // A declared app that already exists is restarted with its new declaration, as PM2.
        if d.declarations && !o.force {
            let existing = c
                .call("describe", json!({"targets": [s.name]}))
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            if !existing.is_empty() {
                notes(Note::Info(format!("Restarting [{}] with the file's options", s.name)));
                // `reload <file>`: a zero-downtime rollout of the new declaration; else a restart.
                let method = if o.reload { "reload" } else { "restart" };
                let res = c.call(method, json!({"targets": [s.name], "spec": s}))?;
                out.processes.extend(res.as_array().into_iter().flatten().map(super::shape::operate_shape));
                continue;
            }
        }
        notes(Note::Info(format!(
            "Starting {} in {} ({} instance{})",
            s.script.display(),
            s.exec_mode.pm2_name(),
            s.instances,
            if s.instances == 1 { "" } else { "s" }
        )));
        to_start.push(s);
    }
    if !to_start.is_empty() {
        let res = c.call("start", json!({"apps": to_start, "force": o.force}))?;
        out.processes.extend(res.as_array().into_iter().flatten().cloned());
    }
    notes(Note::Info("Done.".into()));
    Ok(out)
}

/// The `{code, message}` of an error of the flow: a [`FlowError`]'s or a daemon [`RpcError`]'s code,
/// else `fallback` (connection problems); the message is the line the CLI prints.
pub fn error_parts(e: &anyhow::Error, fallback: &str) -> (String, String, Option<String>) {
    if let Some(f) = e.downcast_ref::<FlowError>() {
        return (f.code.clone(), f.message.clone(), f.pm2.clone());
    }
    if let Some(r) = e.downcast_ref::<RpcError>() {
        return (r.code.clone(), r.message.clone(), None);
    }
    (fallback.to_string(), format!("{e:#}"), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_of_accepts_pm2_shapes() {
        assert_eq!(apps_of(json!([{"script": "a"}])).unwrap().len(), 1);
        assert_eq!(apps_of(json!({"apps": [{"script": "a"}, {"script": "b"}]})).unwrap().len(), 2);
        assert_eq!(apps_of(json!({"apps": {"script": "a"}})).unwrap().len(), 1);
        assert_eq!(apps_of(json!({"script": "a"})).unwrap()[0]["script"], "a");
        let e = apps_of(json!("x")).unwrap_err();
        assert_eq!(e.downcast_ref::<FlowError>().unwrap().code, "bad_config");
    }

    #[test]
    fn only_keeps_named_apps_and_names_the_file() {
        let apps = vec![json!({"name": "a"}), json!({"name": "b"})];
        let o = StartOptions { only: Some(vec!["b".into(), " a".into()]), ..Default::default() };
        assert_eq!(only(apps.clone(), &o, None).unwrap().len(), 2);
        let o = StartOptions { only: Some(vec!["nope".into()]), ..Default::default() };
        let e = only(apps, &o, Some(Path::new("/x/eco.json"))).unwrap_err();
        assert_eq!(e.to_string(), "--only nope: no app of that name in /x/eco.json");
    }

    #[test]
    fn append_env_to_name_renames_only_with_an_env() {
        let mut a = json!({"name": "api", "append_env_to_name": true});
        append_env_to_name(&mut a, None);
        assert_eq!(a["name"], "api");
        append_env_to_name(&mut a, Some("production"));
        assert_eq!(a["name"], "api-production");
        let mut b = json!({"name": "w", "append_env_to_name": false});
        append_env_to_name(&mut b, Some("production"));
        assert_eq!(b["name"], "w");
    }

    #[test]
    fn unknown_env_names_the_file_and_its_environments() {
        let apps = vec![json!({"env_production": {}}), json!({"env_staging": {}, "env_production": {}})];
        let w = unknown_env("nope", Path::new("/x/eco.json"), &apps, &["qa".into()]);
        assert_eq!(
            w,
            "--env nope: /x/eco.json declares no env_nope (nor deploy.nope) block (its environments: production, staging, qa); the apps get their base env"
        );
        assert!(unknown_env("x", Path::new("e.json"), &[], &[]).contains("its environments: none"));
    }

    #[test]
    fn errors_keep_their_codes() {
        let e: anyhow::Error = FlowError::new("not_found", "gone").into();
        assert_eq!(error_parts(&e, "connection"), ("not_found".into(), "gone".into(), None));
        let e: anyhow::Error = RpcError { code: "already_running".into(), message: "m".into() }.into();
        assert_eq!(error_parts(&e, "connection").0, "already_running");
        let e = anyhow!("inner").context("outer");
        assert_eq!(error_parts(&e, "connection"), ("connection".into(), "outer: inner".into(), None));
        assert_eq!(bad_config(anyhow!("x").context("f")).to_string(), "f: x");
    }
}
