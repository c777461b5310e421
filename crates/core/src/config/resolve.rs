//! The steps of [`super::resolve_app`] after the keys are normalised: where the app runs, what it runs,
//! how many and how, its environment, its logs, its restart triggers, and finally the [`AppSpec`].
//! Each step validates its own fields in the order the errors were always reported.

use super::*;

/// What to run: the script (or command), its arguments and interpreter, and the app's name.
struct Launch {
    script: PathBuf,
    args: Vec<String>,
    interpreter: Option<String>,
    node_args: Vec<String>,
    name: String,
}

/// Fork or cluster, and how many instances.
struct Mode {
    exec_mode: ExecMode,
    instances: u32,
    /// `instances` was given (PM2 then defaults to cluster mode for Node apps and splits logs).
    instances_given: bool,
}

/// Where the output goes.
struct Logs {
    out_file: LogTarget,
    error_file: LogTarget,
    log_file: Option<LogTarget>,
    pid_file: Option<PathBuf>,
    merge_logs: bool,
    log_date_format: Option<String>,
}

/// What restarts the app besides its own exit.
struct Triggers {
    max_memory_restart: Option<u64>,
    cron_restart: Option<String>,
    watch: bool,
    watching: WatchOptions,
}

/// Resolves a declaration whose keys are canonical (see [`super::resolve_app`]).
pub(super) fn resolve_inner(
    o: &Map<String, Value>,
    script_raw: &str,
    ctx: &ResolveCtx,
    warnings: Vec<String>,
) -> Result<Resolved> {
    let cwd = resolve_cwd(o, ctx)?;
    let launch = resolve_launch(o, script_raw, &cwd)?;
    let mode = resolve_mode(o, launch.interpreter.as_deref())?;
    let env = resolve_env(o, ctx, launch.interpreter.as_deref())?;
    let logs = resolve_logs(o, &cwd, &mode)?;
    let triggers = resolve_triggers(o, &cwd)?;
    let stop_exit_codes = resolve_stop_exit_codes(o)?;
    // log_type, max_size, retain, compress, disable_logs: parsed here, also kept as given in `extra`.
    let logging = log_options::parse_settings(o).map_err(|e| anyhow!(e))?;
    let mut extra = raw_extra(o);
    // `pmx`: kept as a boolean (the metrics preload is off when false).
    if let Some(pmx) = bool_field(o, "pmx")? {
        extra.insert("pmx".into(), Value::Bool(pmx));
    }
    let mut spec = AppSpec {
        namespace: match o.get("namespace") {
            None | Some(Value::Null) => "default".into(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v) => bail!("field 'namespace' must be a non-empty string, got {}", short(v)),
        },
        name: launch.name,
        script: launch.script,
        args: launch.args,
        interpreter: launch.interpreter,
        node_args: launch.node_args,
        cwd,
        env,
        exec_mode: mode.exec_mode,
        instances: mode.instances,
        out_file: logs.out_file,
        error_file: logs.error_file,
        log_file: logs.log_file,
        pid_file: logs.pid_file,
        merge_logs: logs.merge_logs,
        autorestart: bool_field(o, "autorestart")?.unwrap_or(true),
        // Saturated, not truncated: 2^32 must not wrap to 0 restarts; anything above u32::MAX is unlimited anyway.
        max_restarts: uint_field(o, "max_restarts")?.map_or(16, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        min_uptime: duration_field(o, "min_uptime")?.unwrap_or(1000),
        restart_delay: uint_field(o, "restart_delay")?.unwrap_or(0),
        exp_backoff_restart_delay: uint_field(o, "exp_backoff_restart_delay")?.filter(|v| *v > 0),
        stop_exit_codes,
        kill_timeout: uint_field(o, "kill_timeout")?.unwrap_or(1600),
        listen_timeout: uint_field(o, "listen_timeout")?.unwrap_or(3000),
        wait_ready: bool_field(o, "wait_ready")?.unwrap_or(false),
        shutdown_with_message: bool_field(o, "shutdown_with_message")?.unwrap_or(false),
        autostart: bool_field(o, "autostart")?.unwrap_or(true),
        treekill: bool_field(o, "treekill")?.unwrap_or(true),
        watch: triggers.watch,
        max_memory_restart: triggers.max_memory_restart,
        cron_restart: triggers.cron_restart,
        log_date_format: logs.log_date_format,
        instance_var: match o.get("instance_var") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => "NODE_APP_INSTANCE".into(),
        },
        increment_var: match o.get("increment_var") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        balance: Some(options::balance_of(&extra)),
        extra,
        watching: Some(triggers.watching),
        logging: Some(logging),
        probes: Default::default(),
    };
    spec.probes = probes::parse_probes(o, spec.is_node()).map_err(|e| anyhow!(e))?;
    Ok(Resolved { spec, warnings })
}

/// `cwd`: relative to the client's directory; must be a directory.
fn resolve_cwd(o: &Map<String, Value>, ctx: &ResolveCtx) -> Result<PathBuf> {
    let cwd = match o.get("cwd") {
        None | Some(Value::Null) => ctx.cwd.clone(),
        Some(Value::String(s)) => absolutize(&ctx.cwd, &expand_tilde(s)),
        Some(v) => bail!("field 'cwd' must be a string, got {}", short(v)),
    };
    if !cwd.is_dir() {
        bail!("cwd {} is not a directory", cwd.display());
    }
    Ok(cwd)
}

/// Script, arguments, interpreter and name.
fn resolve_launch(o: &Map<String, Value>, script_raw: &str, cwd: &Path) -> Result<Launch> {
    // Script: a file relative to cwd, a command on PATH, or a command line with spaces (run by bash -c).
    let mut args = string_list(o.get("args"), "args")?;
    let mut interpreter_given = match o.get("interpreter") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(v) => bail!("field 'interpreter' must be a string, got {}", short(v)),
    };
    let candidate = absolutize(cwd, &expand_tilde(script_raw));
    let script: PathBuf;
    let mut name_default = None;
    if candidate.exists() {
        if candidate.is_dir() {
            bail!("script {} is a directory: give the file to run", candidate.display());
        }
        script = candidate;
    } else if script_raw.contains(' ') && interpreter_given.is_none() {
        script = which("bash").unwrap_or_else(|| PathBuf::from("/bin/bash"));
        let mut a = vec!["-c".to_string(), script_raw.to_string()];
        a.append(&mut args);
        args = a;
        interpreter_given = Some("none".into());
        name_default = Some(script_raw.to_string());
    } else if !script_raw.contains('/') {
        match which(script_raw) {
            Some(p) => {
                script = p;
                if interpreter_given.is_none() {
                    interpreter_given = Some("none".into());
                }
            }
            None => bail!("script not found: {} (check the path, or --cwd)", candidate.display()),
        }
    } else {
        bail!("script not found: {} (check the path, or --cwd)", candidate.display());
    }
    let name = resolve_name(o, name_default, &script)?;
    let interpreter = resolve_interpreter(interpreter_given.as_deref(), &script)?;
    let node_args = string_list(o.get("node_args"), "node_args")?;
    Ok(Launch { script, args, interpreter, node_args, name })
}

/// `name` (default: the command line, or the script's file name) with its `name_prefix`.
fn resolve_name(o: &Map<String, Value>, name_default: Option<String>, script: &Path) -> Result<String> {
    let name = match o.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => {
            super::names::check_name(n).map_err(|e| anyhow!(e))?.to_string()
        }
        None | Some(Value::Null) => name_default.unwrap_or_else(|| default_name(script)),
        Some(v) => bail!("field 'name' must be a non-empty string, got {}", short(v)),
    };
    let name = match o.get("name_prefix") {
        Some(Value::String(p)) if !p.is_empty() => format!("{p}:{name}"),
        _ => name,
    };
    if let Some(p) = super::names::name_problem(&name) {
        bail!(p);
    }
    if name == "all" || name.parse::<i64>().is_ok() {
        bail!("name '{name}' cannot be used: it would be confused with a target (all or an id)");
    }
    Ok(name)
}

/// Interpreter: explicit, else by extension, else node for text files and none for binaries. It must be
/// installed; without one the script must be executable.
fn resolve_interpreter(given: Option<&str>, script: &Path) -> Result<Option<String>> {
    let interpreter = match given {
        Some("none") => None,
        Some(i) => Some(i.to_string()),
        None => default_interpreter(script),
    };
    if let Some(i) = &interpreter {
        if which(i).is_none() && !Path::new(i).is_file() {
            bail!("interpreter '{i}' is not installed (not found on PATH): install it or pass --interpreter");
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        let exec = std::fs::metadata(script).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false);
        if !exec {
            bail!(
                "{} is not executable and has no known interpreter: chmod +x it or pass --interpreter",
                script.display()
            );
        }
    }
    Ok(interpreter)
}

/// `instances` and `exec_mode` (cluster by default when instances are given to a Node app, as PM2).
fn resolve_mode(o: &Map<String, Value>, interpreter: Option<&str>) -> Result<Mode> {
    let is_node = interpreter.map(|i| {
        let b = Path::new(i).file_name().and_then(|s| s.to_str()).unwrap_or(i);
        b == "node" || b == "nodejs" || b == "bun"
    }) == Some(true);
    let instances_given = o.get("instances").filter(|v| !v.is_null());
    let instances = match instances_given {
        None => 1,
        Some(v) => resolve_instances(v)?,
    };
    let exec_mode = match o.get("exec_mode") {
        None | Some(Value::Null) => {
            if instances_given.is_some() && is_node && !bool_field(o, "execute_command")?.unwrap_or(false) {
                ExecMode::Cluster
            } else {
                ExecMode::Fork
            }
        }
        Some(Value::String(s)) => match s.as_str() {
            "fork" | "fork_mode" => ExecMode::Fork,
            "cluster" | "cluster_mode" => ExecMode::Cluster,
            _ => bail!("field 'exec_mode' must be 'fork' or 'cluster', got '{s}'"),
        },
        Some(v) => bail!("field 'exec_mode' must be 'fork' or 'cluster', got {}", short(v)),
    };
    if exec_mode == ExecMode::Cluster && !is_node {
        bail!(
            "cluster mode needs a Node.js app, but the interpreter is '{}': use fork mode (drop -i / exec_mode)",
            interpreter.unwrap_or("none")
        );
    }
    Ok(Mode { exec_mode, instances, instances_given: instances_given.is_some() })
}

/// Environment: client env, then app env, then env_<name>; `PORT` and `PYTHONUNBUFFERED` on top.
fn resolve_env(
    o: &Map<String, Value>,
    ctx: &ResolveCtx,
    interpreter: Option<&str>,
) -> Result<BTreeMap<String, String>> {
    let mut env = ctx.env.clone();
    merge_env(&mut env, o.get("env"), "env")?;
    if let Some(n) = &ctx.env_name {
        let key = format!("env_{n}");
        merge_env(&mut env, o.get(&key), &key)?;
    }
    if let Some(p) = o.get("port").filter(|v| !v.is_null()) {
        env.insert("PORT".into(), scalar_string(p));
    }
    if interpreter.map(|i| i.contains("python")).unwrap_or(false) {
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
    }
    Ok(env)
}

/// Log and pid files, `merge_logs` and the date prefix.
fn resolve_logs(o: &Map<String, Value>, cwd: &Path, mode: &Mode) -> Result<Logs> {
    let out_file = log_target(o.get("out_file"), cwd, "out_file")?;
    let error_file = log_target(o.get("error_file"), cwd, "error_file")?;
    let log_file = match o.get("log_file") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(LogTarget::Default),
        v => Some(log_target(v, cwd, "log_file")?),
    };
    let pid_file = match o.get("pid_file") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(absolutize(cwd, &expand_tilde(s))),
        Some(v) => bail!("field 'pid_file' must be a string, got {}", short(v)),
    };
    let merge_logs = bool_field(o, "merge_logs")?.unwrap_or(mode.exec_mode == ExecMode::Fork && !mode.instances_given);
    let log_date_format = match o.get("log_date_format") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            if bool_field(o, "time")?.unwrap_or(false) {
                Some("YYYY-MM-DDTHH:mm:ss".into())
            } else {
                None
            }
        }
        Some(v) => bail!("field 'log_date_format' must be a string, got {}", short(v)),
    };
    Ok(Logs { out_file, error_file, log_file, pid_file, merge_logs, log_date_format })
}

/// `max_memory_restart`, `cron_restart` and the watch options.
fn resolve_triggers(o: &Map<String, Value>, cwd: &Path) -> Result<Triggers> {
    let max_memory_restart = match o.get("max_memory_restart") {
        None | Some(Value::Null) => None,
        Some(v) => match parse_size(v) {
            Ok(0) => bail!("field 'max_memory_restart' must be more than 0, got {}", short(v)),
            Ok(n) => Some(n),
            Err(e) => bail!("field 'max_memory_restart': {e}"),
        },
    };
    let cron_restart = match o.get("cron_restart") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64() == Some(0) => None,
        Some(Value::String(s)) if s.trim() == "0" || s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            if let Err(e) = crate::config::cron::validate(s) {
                bail!(
                    "field 'cron_restart' has a bad cron pattern \"{s}\": {e} (e.g. \"0 3 * * *\", or \"*/30 * * * * *\" with seconds)"
                );
            }
            Some(s.trim().to_string())
        }
        Some(v) => bail!("field 'cron_restart' must be a cron pattern string, got {}", short(v)),
    };
    let watch = match o.get("watch") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) | Some(Value::String(_)) | Some(Value::Array(_)) => true,
        Some(v) => bail!("field 'watch' must be a boolean, a path or a list of paths, got {}", short(v)),
    };
    let watching = resolve_watch(o, cwd, watch)?;
    Ok(Triggers { max_memory_restart, cron_restart, watch, watching })
}

/// The watch options. Watched paths must exist when watching is on (otherwise `watch` names none:
/// the cwd); the other options are checked always (`restart --watch` may turn watching on later).
fn resolve_watch(o: &Map<String, Value>, cwd: &Path, watch: bool) -> Result<WatchOptions> {
    let roots = if watch {
        watch_options::roots(o.get("watch"), cwd).map_err(|e| anyhow!("field 'watch' {e}"))?
    } else {
        vec![cwd.to_path_buf()]
    };
    let ignore = watch_options::ignore_list(o.get("ignore_watch")).map_err(|e| anyhow!("field 'ignore_watch' {e}"))?;
    watch_options::IgnoreRules::new(&ignore, &[]).map_err(|e| anyhow!("field 'ignore_watch' {e}"))?;
    let delay_ms = watch_options::delay_ms(o.get("watch_delay")).map_err(|e| anyhow!("field 'watch_delay' {e}"))?;
    let poll = watch_options::poll_option(o.get("watch_options")).map_err(|e| anyhow!("field 'watch_options' {e}"))?;
    Ok(WatchOptions { roots, ignore, delay_ms, poll_ms: poll.map(|d| d.as_millis() as u64) })
}

/// `stop_exit_codes`: a number or a list of numbers.
fn resolve_stop_exit_codes(o: &Map<String, Value>) -> Result<Vec<i32>> {
    Ok(match o.get("stop_exit_codes") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| anyhow!("field 'stop_exit_codes' must hold numbers, got {}", short(v)))
                    .and_then(exit_code)
            })
            .collect::<Result<_>>()?,
        Some(v) => vec![exit_code(int_value(v, "stop_exit_codes")?)?],
    })
}

/// The options kept as given, for `show`/`jlist`.
fn raw_extra(o: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut extra = BTreeMap::new();
    for k in [
        "vizion",
        "cluster_lb",
        "ignore_watch",
        "watch_delay",
        "watch_options",
        "log_type",
        "disable_logs",
        "force",
        "max_size",
        "retain",
        "compress",
        "kill_signal",
        "liveness_probe",
        "readiness_probe",
    ] {
        if let Some(v) = o.get(k) {
            extra.insert(k.to_string(), v.clone());
        }
    }
    if let Some(w) = o.get("watch") {
        extra.insert("watch".into(), w.clone());
    }
    extra
}

/// The options a restart may change on an app (PM2's `restart app --node-args=...`), never its
/// identity, its process count or its environment: `name`, `namespace`, `instances`, `exec_mode`,
/// the watch options (which `--watch` toggles) and `env` (which `--update-env` governs) are left out.
const NOT_PATCHED: &[&str] =
    &["name", "namespace", "instances", "exec_mode", "watch", "ignore_watch", "watch_delay", "env", "cwd"];

/// Start options given with a restart (`{node_args: "--harmony", args: "a b"}`) as the fields of
/// the declaration they replace (keyed and shaped as the [`AppSpec`] JSON), validated as a start
/// validates them. An option that changes nothing a restart can change is left out.
pub fn spec_patch(app: &Map<String, Value>, ctx: &ResolveCtx) -> Result<Map<String, Value>> {
    let keys: Vec<String> = app
        .keys()
        .map(|k| canonical(k))
        .filter(|k| !NOT_PATCHED.contains(&k.as_str()) && k != "script" && !k.starts_with("env_"))
        .collect();
    if keys.is_empty() {
        return Ok(Map::new());
    }
    let mut raw = Map::new();
    for (k, v) in app {
        if keys.contains(&canonical(k)) {
            raw.insert(k.clone(), v.clone());
        }
    }
    // A stand-in script: only the given options are taken from the result.
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/bin/sh"));
    raw.insert("script".into(), Value::String(exe.to_string_lossy().into_owned()));
    raw.insert("name".into(), Value::String("restart options".into()));
    let r = super::resolve_app(&Value::Object(raw), ctx)?;
    let spec = serde_json::to_value(&r.spec)?;
    let mut out = Map::new();
    for k in keys {
        if let Some(v) = spec.get(&k) {
            out.insert(k, v.clone());
        }
    }
    Ok(out)
}
