//! App declarations into [`AppSpec`]s. One code path serves every source: the CLI turns its flags into
//! a PM2-style JSON object, the JS API passes its object through, ecosystem files are parsed into the
//! same objects; [`resolve_app`] then validates, applies PM2's defaults and aliases and makes paths
//! absolute. Errors name the app, the field and the value.

pub mod cron;
pub mod ecosystem;
pub mod log_options;
pub mod names;
mod options;
pub mod probes;
mod resolve;
pub mod spec;
pub mod watch_options;

use crate::config::spec::{AppSpec, ExecMode, LogTarget, WatchOptions};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use self::resolve::resolve_inner;
pub use self::resolve::spec_patch;

/// What a declaration is resolved against: the client's working directory and environment.
#[derive(Debug, Clone)]
pub struct ResolveCtx {
    /// The client's current directory (relative `cwd` and `script` resolve against it, as PM2 does).
    pub cwd: PathBuf,
    /// The client's environment, the base of every app's environment.
    pub env: BTreeMap<String, String>,
    /// `--env <name>`: merge `env_<name>` over `env`.
    pub env_name: Option<String>,
}

/// Every option name rpm2 understands (canonical snake_case), for validation and "did you mean".
pub const KNOWN_OPTIONS: &[&str] = &[
    "name",
    "script",
    "cwd",
    "args",
    "interpreter",
    "node_args",
    "instances",
    "exec_mode",
    "watch",
    "ignore_watch",
    "watch_delay",
    "watch_options",
    "max_memory_restart",
    "env",
    "log_date_format",
    "error_file",
    "out_file",
    "log_file",
    "merge_logs",
    "pid_file",
    "min_uptime",
    "listen_timeout",
    "kill_timeout",
    "shutdown_with_message",
    "wait_ready",
    "max_restarts",
    "restart_delay",
    "exp_backoff_restart_delay",
    "autorestart",
    "autostart",
    "cron_restart",
    "vizion",
    "stop_exit_codes",
    "increment_var",
    "instance_var",
    "namespace",
    "time",
    "log_type",
    "disable_logs",
    "treekill",
    "force",
    "port",
    "filter_env",
    "append_env_to_name",
    "name_prefix",
    "source_map_support",
    "disable_source_map_support",
    "pmx",
    "automation",
    "trace",
    "disable_trace",
    "uid",
    "gid",
    "windowsHide",
    "kill_retry_time",
    "post_update",
    "cluster_lb",
    "max_size",
    "retain",
    "compress",
    "kill_signal",
    "username",
    "execute_command",
    "io",
    "deep_monitoring",
    "v8",
    "event_loop_inspector",
    "write",
    "install_url",
    "liveness_probe",
    "readiness_probe",
];

/// Maps PM2's aliases to the canonical option name.
fn canonical(key: &str) -> String {
    let snake = camel_to_snake(key);
    let c = match snake.as_str() {
        "exec" | "cmd" | "command" => "script",
        "exec_interpreter" => "interpreter",
        "interpreter_args" => "node_args",
        "error" | "err" | "err_file" | "err_log" | "error_log" => "error_file",
        "out" | "output" | "out_log" => "out_file",
        "log" => "log_file",
        "combine_logs" => "merge_logs",
        "pid" => "pid_file",
        "cron" => "cron_restart",
        "user" => "uid",
        "windows_hide" => "windowsHide",
        _ => return snake,
    };
    c.to_string()
}

fn camel_to_snake(s: &str) -> String {
    if s == "windowsHide" || s.starts_with("env_") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The result of resolving one declaration: the spec and any warnings (unknown options).
#[derive(Debug)]
pub struct Resolved {
    /// The validated app.
    pub spec: AppSpec,
    /// Things the user should know but that did not stop the start (unknown options, ...).
    pub warnings: Vec<String>,
}

/// Resolves one PM2-style app object against `ctx`. Fails with a one-line error naming the app, the
/// field and the value when anything is invalid; never starts anything.
pub fn resolve_app(raw: &Value, ctx: &ResolveCtx) -> Result<Resolved> {
    let obj = raw.as_object().ok_or_else(|| anyhow!("an app declaration must be an object, got {}", short(raw)))?;
    // Normalise keys to canonical names; later keys win, as in a JS object.
    let mut o: Map<String, Value> = Map::new();
    let mut warnings = Vec::new();
    for (k, v) in obj {
        let c = canonical(k);
        if !c.starts_with("env_") && !KNOWN_OPTIONS.contains(&c.as_str()) {
            let hint = closest(&c).map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default();
            warnings.push(format!("unknown option '{k}' ignored{hint}"));
            continue;
        }
        o.insert(c, v.clone());
    }
    let script_raw = match o.get("script") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(v) => bail!("field 'script' must be a non-empty string, got {}", short(v)),
        None => match o.get("name").and_then(|n| n.as_str()) {
            Some(n) => {
                bail!("app '{n}': field 'script' is missing: say which file to run, e.g. \"script\": \"app.js\"")
            }
            None => bail!("field 'script' is missing: say which file to run, e.g. {{\"script\": \"app.js\"}}"),
        },
    };
    let app_label = match o.get("name") {
        Some(Value::String(n)) if names::name_problem(n).is_none() => n.clone(),
        // The name the app would get (the script's file name without extension), as `list` shows it.
        _ => default_name(Path::new(&script_raw)),
    };
    resolve_inner(&o, &script_raw, ctx, warnings).with_context(|| format!("app '{app_label}'"))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.char_indices().nth(57).map(|(i, _)| i).unwrap_or(s.len())])
    } else {
        s
    }
}

fn expand_tilde(s: &str) -> String {
    if let Some(rest) = s.strip_prefix("~/") {
        if let Some(h) = std::env::var_os("HOME") {
            return format!("{}/{}", h.to_string_lossy(), rest);
        }
    }
    s.to_string()
}

/// `p` made absolute against `base`, with `.` and `..` folded.
pub fn absolutize(base: &Path, p: &str) -> PathBuf {
    let joined = if Path::new(p).is_absolute() { PathBuf::from(p) } else { base.join(p) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// Looks `cmd` up on `PATH` (or checks it directly when it contains a `/`).
pub fn which(cmd: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec =
        |p: &Path| p.is_file() && std::fs::metadata(p).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return if is_exec(&p) { Some(p) } else { None };
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(cmd)).find(|p| is_exec(p))
}

/// The name an app gets from its script: the file name without its extension.
pub(crate) fn default_name(script: &Path) -> String {
    let file = script.file_name().and_then(|s| s.to_str()).unwrap_or("app");
    match file.rfind('.') {
        Some(i) if i > 0 => file[..i].to_string(),
        _ => file.to_string(),
    }
}

fn default_interpreter(script: &Path) -> Option<String> {
    let ext = script.extension().and_then(|s| s.to_str()).unwrap_or("");
    match ext {
        "js" | "mjs" | "cjs" => Some("node".into()),
        "ts" | "tsx" | "mts" | "cts" => Some("node".into()),
        "py" => Some(if which("python3").is_some() || which("python").is_none() {
            "python3".into()
        } else {
            "python".into()
        }),
        "sh" => Some("bash".into()),
        "rb" => Some("ruby".into()),
        "php" => Some("php".into()),
        "pl" => Some("perl".into()),
        "coffee" => Some("coffee".into()),
        _ => {
            // A binary file runs as itself; a text file is assumed to be JavaScript, as PM2 does.
            let head = std::fs::read(script).map(|b| b.into_iter().take(512).collect::<Vec<u8>>()).unwrap_or_default();
            if head.starts_with(b"\x7fELF") || head.contains(&0) || head.starts_with(b"#!") {
                None
            } else {
                Some("node".into())
            }
        }
    }
}

fn resolve_instances(v: &Value) -> Result<u32> {
    let cpus = std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1);
    let n: i64 = match v {
        Value::Number(n) => {
            n.as_i64().ok_or_else(|| anyhow!("field 'instances' must be a whole number or 'max', got {n}"))?
        }
        Value::String(s) if s == "max" => 0,
        Value::String(s) => {
            s.trim().parse().map_err(|_| anyhow!("field 'instances' must be a whole number or 'max', got \"{s}\""))?
        }
        v => bail!("field 'instances' must be a whole number or 'max', got {}", short(v)),
    };
    if n <= 0 {
        // `cpus + n` is in 1..=cpus here, so the cast cannot truncate; saturating_add keeps i64::MIN from overflowing.
        Ok(cpus.saturating_add(n).max(1) as u32)
    } else {
        u32::try_from(n).map_err(|_| anyhow!("field 'instances' is too large: {n}"))
    }
}

/// An exit code for `stop_exit_codes`, refused rather than truncated when it does not fit an `i32`.
fn exit_code(n: i64) -> Result<i32> {
    i32::try_from(n).map_err(|_| anyhow!("field 'stop_exit_codes' holds {n}, which is not an exit code"))
}

fn string_list(v: Option<&Value>, field: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => shell_split(s).with_context(|| format!("field '{field}' has unbalanced quotes: {s}")),
        Some(Value::Array(a)) => Ok(a.iter().map(scalar_string).collect()),
        Some(v) => bail!("field '{field}' must be a string or a list of strings, got {}", short(v)),
    }
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn merge_env(env: &mut BTreeMap<String, String>, v: Option<&Value>, field: &str) -> Result<()> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                env.insert(k.clone(), scalar_string(v));
            }
            Ok(())
        }
        Some(v) => bail!("field '{field}' must be an object of variables, got {}", short(v)),
    }
}

fn log_target(v: Option<&Value>, cwd: &Path, field: &str) -> Result<LogTarget> {
    match v {
        None | Some(Value::Null) => Ok(LogTarget::Default),
        Some(Value::String(s)) if s == "NULL" || s == "/dev/null" => Ok(LogTarget::Null),
        Some(Value::String(s)) if !s.is_empty() => Ok(LogTarget::File(absolutize(cwd, &expand_tilde(s)))),
        Some(v) => bail!("field '{field}' must be a file path, got {}", short(v)),
    }
}

fn bool_field(o: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(v) => bail!("field '{field}' must be true or false, got {}", short(v)),
    }
}

fn int_value(v: &Value, field: &str) -> Result<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| anyhow!("field '{field}' must be a whole number, got {}", short(v)))
}

fn uint_field(o: &Map<String, Value>, field: &str) -> Result<Option<u64>> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = int_value(v, field)?;
            if n < 0 {
                bail!("field '{field}' must not be negative, got {n}");
            }
            Ok(Some(n as u64))
        }
    }
}

/// A duration in ms: a number, or `<n>h|m|s|ms` as PM2's `min_uptime` accepts.
fn duration_field(o: &Map<String, Value>, field: &str) -> Result<Option<u64>> {
    match o.get(field) {
        Some(Value::String(s)) => {
            let s = s.trim();
            let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
                (n, 1)
            } else if let Some(n) = s.strip_suffix('h') {
                (n, 3_600_000)
            } else if let Some(n) = s.strip_suffix('m') {
                (n, 60_000)
            } else if let Some(n) = s.strip_suffix('s') {
                (n, 1000)
            } else {
                (s, 1)
            };
            let n: u64 = num
                .parse()
                .map_err(|_| anyhow!("field '{field}' must be a duration like 1000, \"10s\" or \"1m\", got \"{s}\""))?;
            let ms = n.checked_mul(mul).ok_or_else(|| anyhow!("field '{field}' is too large: \"{s}\""))?;
            Ok(Some(ms))
        }
        _ => uint_field(o, field),
    }
}

/// Parses a memory size as PM2 does: bytes, or `<n>K|M|G` (×1024ⁿ). `"60X"`, `"1.5G"` are errors.
pub fn parse_size(v: &Value) -> Result<u64> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| anyhow!("a size must be a positive whole number of bytes")),
        Value::String(s) => {
            let s = s.trim();
            let (num, mul) = match s.chars().last() {
                Some('K') | Some('k') => (&s[..s.len() - 1], 1024u64),
                Some('M') | Some('m') => (&s[..s.len() - 1], 1024 * 1024),
                Some('G') | Some('g') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
                _ => (s, 1),
            };
            let n: u64 = num
                .parse()
                .map_err(|_| anyhow!("'{s}' is not a size: use bytes or a number with K, M or G, e.g. \"60M\""))?;
            n.checked_mul(mul).ok_or_else(|| anyhow!("'{s}' is too large a size"))
        }
        _ => bail!("a size must be a number or a string like \"60M\""),
    }
}

/// Splits a command line the way a POSIX shell splits words (quotes and backslashes; no expansion).
/// Not `shlex::split`: PM2 passes `#...` words through as arguments (shlex reads them as comments),
/// and a trailing backslash or Unicode whitespace must not turn a valid PM2 `args` string into an error
/// or a different list; the unit tests pin these cases.
pub fn shell_split(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => bail!("unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c)
                            }
                            None => bail!("unterminated double quote"),
                        },
                        Some(c) => cur.push(c),
                        None => bail!("unterminated double quote"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c)
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c)
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The known option closest to `key`, if it is close enough to be a likely typo.
pub fn closest(key: &str) -> Option<&'static str> {
    KNOWN_OPTIONS
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(dir: &Path) -> ResolveCtx {
        ResolveCtx { cwd: dir.to_path_buf(), env: BTreeMap::from([("HOME".into(), "/h".into())]), env_name: None }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rpm2-cfg-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("app.js"), "console.log(1)").unwrap();
        d
    }

    #[test]
    fn defaults_like_pm2() {
        let d = tmpdir("defaults");
        let r = resolve_app(&json!({"script": "app.js"}), &ctx(&d)).unwrap();
        let s = r.spec;
        assert_eq!(s.name, "app");
        assert_eq!(s.script, d.join("app.js"));
        assert_eq!(s.exec_mode, ExecMode::Fork);
        assert_eq!(s.kill_timeout, 1600);
        assert_eq!(s.max_restarts, 16);
        assert_eq!(s.min_uptime, 1000);
        assert!(s.merge_logs && s.autorestart);
        assert_eq!(s.interpreter.as_deref(), Some("node"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn pmx_is_a_boolean_kept_in_extra() {
        let d = tmpdir("pmx");
        let on = resolve_app(&json!({"script": "app.js"}), &ctx(&d)).unwrap().spec;
        assert!(on.pmx() && !on.extra.contains_key("pmx"));
        for off in [json!(false), json!("false")] {
            let s = resolve_app(&json!({"script": "app.js", "pmx": off}), &ctx(&d)).unwrap().spec;
            assert!(!s.pmx());
            assert_eq!(s.extra.get("pmx"), Some(&json!(false)));
        }
        let e = resolve_app(&json!({"script": "app.js", "pmx": 3}), &ctx(&d)).unwrap_err();
        assert!(format!("{e:#}").contains("'pmx'"), "{e:#}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn instances_imply_cluster_and_aliases_work() {
        let d = tmpdir("cluster");
        let r = resolve_app(&json!({"script": "app.js", "instances": "max", "nodeArgs": "--max-old-space-size=100", "combine_logs": false}), &ctx(&d)).unwrap();
        assert_eq!(r.spec.exec_mode, ExecMode::Cluster);
        assert!(r.spec.instances >= 1);
        assert_eq!(r.spec.node_args, vec!["--max-old-space-size=100"]);
        assert!(!r.spec.merge_logs);
        std::fs::remove_dir_all(d).unwrap();
    }

    /// Names with control characters (and empty ones) are refused with one line, from the name or
    /// the name_prefix; path-like names are kept (their log files are sanitized).
    #[test]
    fn strict_names() {
        let d = tmpdir("names");
        for raw in [
            json!({"script": "app.js", "name": "two\nlines"}),
            json!({"script": "app.js", "name": "tab\there"}),
            json!({"script": "app.js", "name": "\u{1b}[31mred"}),
            json!({"script": "app.js", "name": ""}),
            json!({"script": "app.js", "name": "ok", "name_prefix": "bad\r"}),
        ] {
            let e = format!("{:#}", resolve_app(&raw, &ctx(&d)).unwrap_err());
            assert!(!e.contains('\n') && !e.contains('\t') && !e.contains('\u{1b}') && !e.contains('\r'), "{e}");
            assert!(e.contains("name"), "{e}");
        }
        let r = resolve_app(&json!({"script": "app.js", "name": "../a/b"}), &ctx(&d)).unwrap();
        assert_eq!(r.spec.name, "../a/b");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bad_values_name_the_field() {
        let d = tmpdir("bad");
        let e = resolve_app(&json!({"script": "app.js", "instances": "lots"}), &ctx(&d)).unwrap_err();
        assert!(format!("{e:#}").contains("instances"), "{e:#}");
        let e = resolve_app(&json!({"script": "nope.js"}), &ctx(&d)).unwrap_err();
        assert!(format!("{e:#}").contains("script not found"), "{e:#}");
        let e = resolve_app(&json!({"script": "app.js", "kill_timeout": "abc"}), &ctx(&d)).unwrap_err();
        assert!(format!("{e:#}").contains("kill_timeout"), "{e:#}");
        let e = resolve_app(&json!({"script": "app.js", "interpreter": "no-such-interp-xyz"}), &ctx(&d)).unwrap_err();
        assert!(format!("{e:#}").contains("not installed"), "{e:#}");
        let e = resolve_app(&json!({"script": "app.js", "max_memory_restart": "60X"}), &ctx(&d)).unwrap_err();
        assert!(format!("{e:#}").contains("max_memory_restart"), "{e:#}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn unknown_option_warns_with_suggestion() {
        let d = tmpdir("unknown");
        let r = resolve_app(&json!({"script": "app.js", "max_restart": 3}), &ctx(&d)).unwrap();
        assert!(r.warnings[0].contains("max_restarts"), "{:?}", r.warnings);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn env_merges_in_order() {
        let d = tmpdir("env");
        let mut c = ctx(&d);
        c.env_name = Some("production".into());
        let r =
            resolve_app(&json!({"script": "app.js", "env": {"A": "dev", "B": 2}, "env_production": {"A": "prod"}}), &c)
                .unwrap();
        assert_eq!(r.spec.env["A"], "prod");
        assert_eq!(r.spec.env["B"], "2");
        assert_eq!(r.spec.env["HOME"], "/h");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn watch_memory_and_cron_options_are_checked() {
        let d = tmpdir("triggers");
        std::fs::create_dir_all(d.join("src")).unwrap();
        let ok = |v: serde_json::Value| resolve_app(&v, &ctx(&d)).map(|r| r.spec);
        let err = |v: serde_json::Value| format!("{:#}", resolve_app(&v, &ctx(&d)).unwrap_err());
        let s = ok(json!({"script": "app.js", "name": "w", "watch": ["src"], "ignore_watch": "*.log",
            "watch_delay": "2s", "watch_options": {"usePolling": true}, "max_memory_restart": "60M",
            "cron_restart": "*/2 * * * * *"}))
        .unwrap();
        assert!(s.watch);
        assert_eq!(s.max_memory_restart, Some(60 * 1024 * 1024));
        assert_eq!(s.cron_restart.as_deref(), Some("*/2 * * * * *"));
        assert_eq!(s.extra["watch_options"], json!({"usePolling": true}));
        assert_eq!(ok(json!({"script": "app.js", "cron_restart": 0})).unwrap().cron_restart, None);
        for (bad, needles) in [
            (json!({"script": "app.js", "name": "w", "watch": "nope"}), vec!["app 'w'", "'watch'", "nope"]),
            (
                json!({"script": "app.js", "name": "w", "max_memory_restart": "60X"}),
                vec!["'max_memory_restart'", "60X"],
            ),
            (
                json!({"script": "app.js", "name": "w", "max_memory_restart": 0}),
                vec!["'max_memory_restart'", "more than 0"],
            ),
            (
                json!({"script": "app.js", "name": "w", "cron_restart": "61 * * * *"}),
                vec!["'cron_restart'", "61 * * * *"],
            ),
            (json!({"script": "app.js", "name": "w", "cron_restart": "* *"}), vec!["'cron_restart'", "2 fields"]),
            (json!({"script": "app.js", "name": "w", "ignore_watch": ["a/[b"]}), vec!["'ignore_watch'", "a/[b"]),
            (json!({"script": "app.js", "name": "w", "watch_delay": "later"}), vec!["'watch_delay'", "later"]),
            (json!({"script": "app.js", "name": "w", "watch_options": {"interval": "x"}}), vec!["'watch_options'"]),
        ] {
            let e = err(bad.clone());
            for n in needles {
                assert!(e.contains(n), "{bad}: {e} should contain {n}");
            }
            assert!(!e.contains('\n'), "one line: {e}");
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn sizes_and_words() {
        assert_eq!(parse_size(&json!("100M")).unwrap(), 104857600);
        assert_eq!(parse_size(&json!("1K")).unwrap(), 1024);
        assert_eq!(parse_size(&json!(5000)).unwrap(), 5000);
        assert!(parse_size(&json!("1.5G")).is_err());
        assert_eq!(shell_split(r#"x "y z" 'a b' c\ d"#).unwrap(), vec!["x", "y z", "a b", "c d"]);
        assert!(shell_split("'open").is_err());
        // Where this differs from the `shlex` crate (kept hand-written on purpose): `#` starts no
        // comment (`--color #fff`, `#channel` are ordinary arguments), a trailing backslash is dropped
        // rather than an error, and any Unicode whitespace (`\r`, no-break space) separates words.
        assert_eq!(shell_split("--color #fff #chan").unwrap(), vec!["--color", "#fff", "#chan"]);
        assert_eq!(shell_split("a b\\").unwrap(), vec!["a", "b"]);
        assert_eq!(shell_split("a\r\nb\u{a0}c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(shell_split(r#""a\"b" '\n'"#).unwrap(), vec![r#"a"b"#, "\\n"]);
    }

    #[test]
    fn out_of_range_numbers_are_errors_not_wraps() {
        assert!(parse_size(&json!("18446744073709551615G")).is_err());
        let d = tmpdir("range");
        let bad = |v: Value| {
            let mut app = json!({"script": "app.js"});
            if let (Some(o), Some(extra)) = (app.as_object_mut(), v.as_object()) {
                o.extend(extra.clone());
            }
            resolve_app(&app, &ctx(&d))
        };
        assert!(bad(json!({"min_uptime": "9223372036854775807h"})).is_err());
        assert!(bad(json!({"stop_exit_codes": [4294967296i64]})).is_err());
        assert!(bad(json!({"stop_exit_codes": 4294967296i64})).is_err());
        assert!(bad(json!({"instances": 4294967296i64})).is_err());
        assert!(bad(json!({"instances": i64::MIN})).unwrap().spec.instances >= 1);
        assert_eq!(bad(json!({"max_restarts": 4294967296i64})).unwrap().spec.max_restarts, u32::MAX);
    }

    #[test]
    fn restart_options_become_a_spec_patch() {
        let d = tmpdir("patch");
        let app = json!({"nodeArgs": "--harmony --trace", "args": "-p 80", "name": "x", "instances": 4,
            "max_memory_restart": "200M", "env": {"A": "1"}, "env_production": {"A": "2"}});
        let p = spec_patch(app.as_object().unwrap(), &ctx(&d)).unwrap();
        assert_eq!(p["node_args"], json!(["--harmony", "--trace"]));
        assert_eq!(p["args"], json!(["-p", "80"]));
        assert_eq!(p["max_memory_restart"], json!(200 * 1024 * 1024));
        for k in ["name", "instances", "env", "env_production"] {
            assert!(!p.contains_key(k), "{k} must not be patched");
        }
        assert!(spec_patch(&Map::new(), &ctx(&d)).unwrap().is_empty());
        let e = spec_patch(json!({"kill_timeout": "soon"}).as_object().unwrap(), &ctx(&d)).unwrap_err();
        assert!(format!("{e:#}").contains("kill_timeout"), "{e:#}");
    }
}
