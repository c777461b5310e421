//! The one operate flow behind `rpm2 stop|restart|reload|delete|reset` and the JS API's methods of
//! the same names: targets (ids, names, namespaces, `all`, ecosystem files, app objects) into one
//! daemon request. Restarting or reloading a declaration (a file or app objects) applies it through
//! the start flow instead, as PM2 does.

pub use super::shape::operate_shape;
use crate::client::start::{self, Conn, FlowError, Note, StartInput, StartOptions};
use crate::config;
use anyhow::Result;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One target of an operation.
#[derive(Debug, Clone)]
pub enum Target {
    /// An id, a name, a namespace, `all`, or an ecosystem file.
    Name(String),
    /// An app declaration (a JS app object): acts on the app of its name.
    App(Value),
}

/// What to do: `stop`, `restart`, `reload`, `delete` or `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Stop the processes (and their watching).
    Stop,
    /// Restart them.
    Restart,
    /// Reload them (zero-downtime in cluster mode).
    Reload,
    /// Stop them and remove them from the list.
    Delete,
    /// Zero their restart counters.
    Reset,
}

impl Method {
    /// The daemon method (and the CLI command) of this operation.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Stop => "stop",
            Method::Restart => "restart",
            Method::Reload => "reload",
            Method::Delete => "delete",
            Method::Reset => "reset",
        }
    }

    /// The method of a name (`gracefulReload` is `reload`), or None.
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "stop" => Method::Stop,
            "restart" => Method::Restart,
            "reload" | "gracefulReload" => Method::Reload,
            "delete" | "del" => Method::Delete,
            "reset" => Method::Reset,
            _ => return None,
        })
    }
}

/// Options of an operation.
#[derive(Debug, Clone, Default)]
pub struct OperateOptions {
    /// The directory relative file targets resolve against.
    pub cwd: PathBuf,
    /// The client's environment (sent with `--update-env`, the base of a re-applied declaration).
    pub env: BTreeMap<String, String>,
    /// `--update-env`: the processes get `env` (plus `extra_env`) as their environment.
    pub update_env: bool,
    /// `--env <name>`: only with a declaration (restart/reload of an ecosystem file).
    pub env_name: Option<String>,
    /// Environment values to set on restart/reload (JS `restart(name, {env: {...}})`).
    pub extra_env: Option<BTreeMap<String, String>>,
    /// `restart --watch`: toggle watching.
    pub watch: bool,
    /// Start options given with a restart/reload (`--node-args`, `--max-memory-restart`, `args`,
    /// ...) as a PM2 app object: applied to each target's declaration, as PM2 applies them.
    pub app: Map<String, Value>,
}

/// The name an app declaration gets (as [`config::resolve_app`] names it), without resolving it:
/// stop/delete by file must work even when a script has gone.
pub fn declared_name(app: &Value) -> Option<String> {
    let name = match app.get("name").and_then(|n| n.as_str()).filter(|n| !n.trim().is_empty()) {
        Some(n) => n.to_string(),
        None => {
            let script = ["script", "exec", "cmd", "command"]
                .iter()
                .find_map(|k| app.get(*k).and_then(|s| s.as_str()).filter(|s| !s.is_empty()))?;
            if script.contains(' ') && !Path::new(script).exists() {
                script.to_string()
            } else {
                config::default_name(Path::new(script))
            }
        }
    };
    let prefix = ["name_prefix", "namePrefix"].iter().find_map(|k| app.get(*k).and_then(|p| p.as_str()));
    Some(match prefix.filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}:{name}"),
        None => name,
    })
}

/// Whether the targets are a declaration: app objects, or (first) an ecosystem file.
fn is_declaration(targets: &[Target]) -> bool {
    match targets.first() {
        Some(Target::Name(t)) => start::is_ecosystem(t),
        Some(Target::App(_)) => true,
        None => false,
    }
}

/// One target string as the daemon gets it: a script file (a target with a `.` or a `/` that names
/// an existing file from `cwd`, as `stop echo.js`) becomes its absolute path, which the daemon
/// matches against each app's script as PM2 matches `pm_exec_path`; anything else is unchanged
/// (`all`, ids, names, namespaces, `/regex/`).
pub fn target_string(t: &str, cwd: &Path) -> String {
    let t = t.trim();
    let regex = t.len() > 1 && t.starts_with('/') && t.ends_with('/');
    if t == "all" || regex || t.parse::<f64>().is_ok() || !(t.contains('.') || t.contains('/')) {
        return t.to_string();
    }
    let p = config::absolutize(cwd, t);
    if p.is_file() {
        p.to_string_lossy().into_owned()
    } else {
        t.to_string()
    }
}

/// Targets as daemon target strings: ecosystem files and app objects become the names of their
/// apps (with `append_env_to_name` and `env_name`, as they were started), script files their
/// absolute paths ([`target_string`]).
pub fn expand(targets: &[Target], cwd: &Path, env_name: Option<&str>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in targets {
        match t {
            Target::App(app) => out.extend(declared_name(app)),
            Target::Name(t) if t.trim().is_empty() => {
                return Err(FlowError::new(
                    "bad_request",
                    "a target is needed: an id, a name, a namespace, \"all\", /regex/, a script or an ecosystem file",
                )
                .into())
            }
            Target::Name(t) => {
                let p = config::absolutize(cwd, t);
                if start::is_ecosystem(t) && p.is_file() {
                    let eco =
                        config::ecosystem::load(&p).map_err(|e| FlowError::new("bad_config", format!("{e:#}")))?;
                    for mut app in eco.apps {
                        start::append_env_to_name(&mut app, env_name);
                        out.extend(declared_name(&app));
                    }
                } else {
                    out.push(target_string(t, cwd));
                }
            }
        }
    }
    Ok(out)
}

/// Runs `method` on `targets` and returns the processes it acted on, as [`operate_shape`]s.
/// A restart/reload of a declaration starts or restarts its apps through the start flow.
pub fn operate(
    conn: &mut Conn,
    method: Method,
    targets: &[Target],
    o: &OperateOptions,
    notes: &mut dyn FnMut(Note),
) -> Result<Vec<Value>> {
    let restart_like = matches!(method, Method::Restart | Method::Reload);
    if restart_like && is_declaration(targets) {
        let input = match &targets[0] {
            Target::Name(f) => StartInput::Script(f.clone()),
            Target::App(_) => StartInput::Apps(Value::Array(
                targets.iter().filter_map(|t| if let Target::App(a) = t { Some(a.clone()) } else { None }).collect(),
            )),
        };
        let so = StartOptions {
            cwd: o.cwd.clone(),
            env: o.env.clone(),
            env_name: o.env_name.clone(),
            update_env: true,
            reload: method == Method::Reload,
            or_restart: true,
            ..Default::default()
        };
        return Ok(start::start(conn, input, &so, notes)?.processes);
    }
    let name = method.as_str();
    let mut params = json!({});
    if restart_like {
        if let Some(n) = &o.env_name {
            return Err(FlowError::new(
                "bad_request",
                format!("--env needs an ecosystem file: `rpm2 {name} ecosystem.config.js --env {n}`"),
            )
            .into());
        }
        if o.update_env {
            let mut env = o.env.clone();
            env.extend(o.extra_env.clone().unwrap_or_default());
            params["update_env"] = json!(true);
            params["env"] = json!(env);
        } else if let Some(extra) = &o.extra_env {
            params["update_env"] = json!(true);
            params["env"] = json!(extra);
        } else {
            notes(Note::Hint("Use --update-env to update environment variables".into()));
        }
        if o.watch && method == Method::Restart {
            params["watch"] = json!("toggle");
        }
        let ctx = config::ResolveCtx { cwd: o.cwd.clone(), env: o.env.clone(), env_name: None };
        let patch =
            config::spec_patch(&o.app, &ctx).map_err(|e| FlowError::new("bad_config", format!("{name}: {e:#}")))?;
        if !patch.is_empty() {
            params["patch"] = Value::Object(patch);
        }
    } else if method == Method::Stop {
        params["watch"] = json!(false);
    }
    let names = expand(targets, &o.cwd, o.env_name.as_deref())?;
    params["targets"] = json!(names);
    notes(Note::Info(format!("Applying action {name} on app [{}]", names.join(", "))));
    match conn.get()?.call(name, params) {
        Ok(res) => Ok(res.as_array().into_iter().flatten().map(operate_shape).collect()),
        Err(e) => Err(start::pm2_not_found(e, &names)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RpcError;

    #[test]
    fn declared_names_follow_the_resolver() {
        assert_eq!(declared_name(&json!({"name": "a", "script": "x.js"})).unwrap(), "a");
        assert_eq!(declared_name(&json!({"script": "/srv/api.server.js"})).unwrap(), "api.server");
        assert_eq!(declared_name(&json!({"script": "bin"})).unwrap(), "bin");
        assert_eq!(declared_name(&json!({"cmd": "sleep 100"})).unwrap(), "sleep 100");
        assert_eq!(declared_name(&json!({"script": "a.js", "name_prefix": "p"})).unwrap(), "p:a");
        assert_eq!(declared_name(&json!({"name": " "})), None);
    }

    #[test]
    fn declarations_and_targets() {
        assert!(is_declaration(&[Target::Name("eco.config.js".into())]));
        assert!(is_declaration(&[Target::App(json!({}))]));
        assert!(!is_declaration(&[Target::Name("app".into())]));
        let t = vec![Target::Name("a".into()), Target::App(json!({"script": "b.js"})), Target::Name("3".into())];
        assert_eq!(expand(&t, Path::new("/"), None).unwrap(), vec!["a", "b", "3"]);
        let e = expand(&[Target::Name("".into())], Path::new("/"), None).unwrap_err();
        assert_eq!(e.downcast_ref::<FlowError>().unwrap().code, "bad_request");
    }

    #[test]
    fn script_files_become_absolute_paths() {
        let d = std::env::temp_dir().join(format!("rpm2-tgt-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("echo.js"), "").unwrap();
        std::fs::write(d.join("sub/w.js"), "").unwrap();
        assert_eq!(target_string("echo.js", &d), d.join("echo.js").to_string_lossy());
        assert_eq!(target_string("./sub/w.js", &d), d.join("sub/w.js").to_string_lossy());
        for t in ["all", "3", "/^api/", "api", "missing.js", "api.server"] {
            assert_eq!(target_string(t, &d), t);
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn not_found_gets_the_pm2_wording() {
        let e: anyhow::Error = RpcError { code: "not_found".into(), message: "no process named 'x'".into() }.into();
        let f = start::pm2_not_found(e, &["x".into(), "y".into()]);
        let f = f.downcast_ref::<FlowError>().unwrap();
        assert_eq!(f.message, "no process named 'x'");
        assert_eq!(f.pm2.as_deref(), Some("process or namespace not found: x, y"));
        assert_eq!(Method::parse("gracefulReload"), Some(Method::Reload));
    }
}
