//! Ecosystem files: every format PM2 users have (`.json` with comments and trailing commas, `.json5`,
//! `.yaml`/`.yml`, `ecosystem.config.js`/`.cjs`/`.mjs` with `module.exports`, `export default` or
//! `export const apps`), into the list of app objects [`crate::config::resolve_app`] takes. Data
//! formats are parsed in Rust; JS files are evaluated by Node. Errors name the file, the line and
//! the column.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The kinds of ecosystem file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON with comments/trailing commas (JSON5 grammar), as PM2 users write it.
    Json5,
    /// YAML.
    Yaml,
    /// A JavaScript module (CommonJS or ESM), evaluated by Node.
    Js,
}

/// The kind of `name` when it is an ecosystem file (by its ending, as PM2 recognises them).
pub fn kind_of(name: &str) -> Option<Kind> {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".json") || n.ends_with(".json5") {
        Some(Kind::Json5)
    } else if n.ends_with(".yml") || n.ends_with(".yaml") {
        Some(Kind::Yaml)
    } else if n.ends_with(".config.js") || n.ends_with(".config.cjs") || n.ends_with(".config.mjs") {
        Some(Kind::Js)
    } else {
        None
    }
}

/// An ecosystem file's content: its apps (raw objects) and the `deploy.<env>.env` blocks.
#[derive(Debug, Clone, Default)]
pub struct Ecosystem {
    /// App declarations, as written.
    pub apps: Vec<Value>,
    /// `deploy.<name>.env` per environment name (merged under `env_<name>`, as PM2).
    pub deploy_env: Map<String, Value>,
}

/// Parses data-format text (JSON5 or YAML). Never panics, whatever the input.
pub fn parse_text(text: &str, kind: Kind) -> std::result::Result<Value, String> {
    match kind {
        Kind::Json5 => {
            nesting_depth(text, false)?;
            json5::from_str::<Value>(text).map_err(|e| json5_error(&e.to_string()))
        }
        Kind::Yaml => {
            nesting_depth(text, true)?;
            serde_norway::from_str::<Value>(text).map_err(|e| match e.location() {
                Some(l) => format!("{}:{}: {e}", l.line(), l.column()),
                None => format!(" {e}"),
            })
        }
        Kind::Js => Err("JavaScript needs Node".into()),
    }
}

/// Deepest nesting of `[...]` and `{...}` a JSON5 or YAML file may have (serde_json's own limit).
/// Found while fuzzing (a deep-nesting probe): the json5 crate has no limit (it recurses once per level and overflowed the
/// stack at a few thousand levels, which would abort the CLI or the Node process that loaded the
/// addon), and YAML's flow collections take time quadratic in their depth (40 kB: 1.8 s).
pub(crate) const MAX_NESTING: usize = 128;

/// Most `[` and `{` a YAML file may hold, counted anywhere (in strings and comments too). Found by
/// the fuzzer: quotes in a plain scalar (`ap"...`) hid 177,000 levels from the depth check and
/// YAML took 30 s; at this many brackets the worst case is under 0.1 s.
pub(crate) const MAX_YAML_BRACKETS: usize = 10_000;

/// Refuses text nested deeper than [`MAX_NESTING`], with `line:col: ...` of the bracket that goes
/// too deep. Quoted strings (either quote, with escapes) and comments (JSON5's `//` and `/* */`,
/// YAML's `#`) are skipped, so brackets inside them do not count.
fn nesting_depth(text: &str, yaml: bool) -> std::result::Result<(), String> {
    let b = text.as_bytes();
    if yaml {
        // Whatever the quoting, nesting is never deeper than the number of brackets: bounding
        // that bounds the quadratic time even when a quote hides brackets from the count below.
        let opens = b.iter().filter(|&&c| c == b'[' || c == b'{').count();
        if opens > MAX_YAML_BRACKETS {
            return Err(format!(
                " {opens} `[` and `{{` in one YAML file (at most {MAX_YAML_BRACKETS}): split the file or use JSON"
            ));
        }
    }
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            // In YAML a quote opens a quoted scalar only where a token starts (`ap"x` is a plain
            // scalar), and a single-quoted one escapes its quote by doubling it, not with `\`.
            q @ (b'"' | b'\'') if !yaml || i == 0 || b" \t\r\n[{,".contains(&b[i - 1]) => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' && !(yaml && q == b'\'') { 2 } else { 1 };
                    if yaml && q == b'\'' && b.get(i) == Some(&b'\'') && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                    }
                }
            }
            b'#' if yaml && (i == 0 || b[i - 1].is_ascii_whitespace()) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if !yaml && b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if !yaml && b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let before = &b[..i];
                    let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
                    let col = 1 + i - before.iter().rposition(|&c| c == b'\n').map(|p| p + 1).unwrap_or(0);
                    return Err(format!("{line}:{col}: nested deeper than {MAX_NESTING} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// pest's multi-line error (` --> 3:5 ... = expected x`) as `3:5: expected x`.
fn json5_error(e: &str) -> String {
    let pos = e.split("-->").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string);
    let msg =
        e.lines().find_map(|l| l.trim().strip_prefix("= ")).map(str::to_string).unwrap_or_else(|| e.replace('\n', " "));
    match pos {
        Some(p) => format!("{p}: {msg}"),
        None => format!(" {msg}"),
    }
}

/// Splits a parsed document into apps and deploy environments. Accepts `{apps: [...]}` (or PM2's
/// old `pm2` key), a bare array of apps, or one app object.
pub fn shape(v: Value, path: &Path) -> Result<Ecosystem> {
    let mut eco = Ecosystem::default();
    match v {
        Value::Array(a) => eco.apps = a,
        Value::Object(mut o) => {
            if let Some(Value::Object(dep)) = o.remove("deploy") {
                for (name, d) in dep {
                    if let Some(env) = d.get("env") {
                        eco.deploy_env.insert(name, env.clone());
                    }
                }
            }
            match o.remove("apps").or_else(|| o.remove("pm2")) {
                Some(Value::Array(a)) => eco.apps = a,
                Some(other @ Value::Object(_)) => eco.apps = vec![other],
                Some(other) => bail!("{}: `apps` must be a list of apps, got {other}", path.display()),
                None if o.contains_key("script") || o.contains_key("exec") || o.contains_key("cmd") => {
                    eco.apps = vec![Value::Object(o)]
                }
                None => bail!("{}: no `apps` list and no `script`: nothing to start", path.display()),
            }
        }
        other => bail!("{} must hold an object with `apps`, a list of apps or one app, got {other}", path.display()),
    }
    for (i, a) in eco.apps.iter().enumerate() {
        if !a.is_object() {
            bail!("{}: app #{} must be an object, got {a}", path.display(), i + 1);
        }
    }
    Ok(eco)
}

const NODE_LOADER: &str = r#"const p=require('path'),u=require('url');const f=p.resolve(process.argv[1]);
(async()=>{let m;
 if(/\.mjs$/i.test(f)){m=await import(u.pathToFileURL(f).href)}
 else{try{m=require(f)}catch(e){if(e&&(e.code==='ERR_REQUIRE_ESM'||e.code==='ERR_REQUIRE_ASYNC_MODULE')){m=await import(u.pathToFileURL(f).href)}else{throw e}}}
 if(m&&typeof m==='object'&&!Array.isArray(m)&&!('apps' in m)&&m.default!==undefined)m=m.default;
 process.stdout.write(JSON.stringify(m===undefined?null:m))
})().catch(e=>{process.stderr.write(String(e&&e.stack||e));process.exit(3)})"#;

/// Node's error output condensed to `file:line:column: message` (the column from the caret line).
fn node_error(stderr: &str, path: &Path) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let message = lines
        .iter()
        .find(|l| l.contains("Error:") || l.contains("Error "))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| {
            lines.iter().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string()).unwrap_or_default()
        });
    let file = path.display().to_string();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix(&format!("{file}:")) {
            if let Ok(line) = rest.trim().parse::<u32>() {
                let col = lines.get(i + 2).and_then(|c| c.find('^')).map(|c| c + 1);
                return match col {
                    Some(c) => format!("{file}:{line}:{c}: {message}"),
                    None => format!("{file}:{line}: {message}"),
                };
            }
        }
    }
    format!("{file}: {message}")
}

/// The default limit on evaluating a JS ecosystem file, in ms (`RPM2_CONFIG_TIMEOUT_MS` overrides it).
pub const DEFAULT_CONFIG_TIMEOUT_MS: u64 = 10_000;

/// How long Node may take to evaluate a JS ecosystem file (`RPM2_CONFIG_TIMEOUT_MS`, default 10 s,
/// at least 1 ms).
pub fn config_timeout() -> Duration {
    let ms = std::env::var("RPM2_CONFIG_TIMEOUT_MS").ok().and_then(|v| v.trim().parse::<u64>().ok());
    Duration::from_millis(ms.unwrap_or(DEFAULT_CONFIG_TIMEOUT_MS).max(1))
}

/// Runs the loader on `path` in its own process group and collects its output; past `limit` the
/// whole group is killed and the error names the file and the limit.
fn run_node(path: &Path, limit: Duration) -> Result<std::process::Output> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut child = std::process::Command::new("node")
        .arg("-e")
        .arg(NODE_LOADER)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot run node to read the ecosystem file (is Node.js installed?)")?;
    // Drain both pipes on threads, so a chatty file cannot block on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err_t = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let began = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().context("cannot wait for node")? {
            break st;
        }
        if began.elapsed() >= limit {
            let pg = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(pg, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{}: Node did not finish evaluating it within {} ms (the limit, RPM2_CONFIG_TIMEOUT_MS): nothing started",
                path.display(),
                limit.as_millis()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Grandchildren may hold the pipes open: stop the group before collecting the output.
    let pg = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let _ = nix::sys::signal::kill(pg, nix::sys::signal::Signal::SIGKILL);
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok(std::process::Output { status, stdout, stderr })
}

/// Loads an ecosystem file of any supported kind. Evaluating a JS file is bounded by
/// [`config_timeout`].
pub fn load(path: &Path) -> Result<Ecosystem> {
    shape(load_value(path)?, path)
}

/// An ecosystem file's whole document (apps, `deploy`, ...), as [`load`] reads it, before it is
/// split into apps. Errors name the file.
pub fn load_value(path: &Path) -> Result<Value> {
    let name = path.to_string_lossy();
    let kind = kind_of(&name).unwrap_or(Kind::Json5);
    let v = match kind {
        Kind::Js => {
            let out = run_node(path, config_timeout())?;
            if !out.status.success() {
                bail!("cannot load {}", node_error(&String::from_utf8_lossy(&out.stderr), path));
            }
            if out.stdout.is_empty() {
                // Node ran out of work before the module settled (an await on a promise nothing resolves).
                bail!("{}: its evaluation never finished (a top-level await that never resolves?)", path.display());
            }
            serde_json::from_slice(&out.stdout).map_err(|_| anyhow!("{} did not export an object", path.display()))?
        }
        Kind::Json5 => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            parse_json_or_js(&text).map_err(|e| anyhow!("syntax error in {}:{e}", path.display()))?
        }
        k => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            parse_text(&text, k).map_err(|e| anyhow!("syntax error in {}:{e}", path.display()))?
        }
    };
    Ok(v)
}

const NODE_EVAL: &str = r#"const t=require('fs').readFileSync(0,'utf8');
const v=require('vm').runInThisContext('('+t+')',{timeout:1000,displayErrors:false});
process.stdout.write(JSON.stringify(v===undefined?null:v))"#;

/// A JSON process declaration (a `.json` file, or `start -` on stdin): JSON5, and when that fails, a
/// JavaScript expression evaluated by Node, as PM2 evaluates process files. The error is JSON5's
/// (`line:col: message`) when neither reads it.
pub fn parse_json_or_js(text: &str) -> std::result::Result<Value, String> {
    let json_err = match parse_text(text, Kind::Json5) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    use std::io::Write;
    let child = std::process::Command::new("node")
        .arg("-e")
        .arg(NODE_EVAL)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return Err(json_err) };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).map_err(|_| json_err),
        _ => Err(json_err),
    }
}

/// The starter `ecosystem.config.js` written by `rpm2 init`.
pub const STARTER: &str = r#"// rpm2 / PM2 ecosystem file. Start everything with `rpm2 start` (or `rpm2 start ecosystem.config.js`),
// pick an environment with `--env production`, one app with `--only api`.
// Every option: see schema/ecosystem.schema.json in the rpm2 package (editors complete from it).
module.exports = {
  apps: [
    {
      name: 'api',
      script: './index.js',          // relative to cwd (default: the folder you run rpm2 from)
      // cwd: __dirname,             // uncomment to resolve paths against this file's folder
      instances: 1,                  // 'max' = one per CPU (cluster mode)
      exec_mode: 'fork',             // or 'cluster'
      watch: false,                  // true, a path, or a list of paths
      max_memory_restart: '300M',    // restart above this memory (K, M, G)
      kill_timeout: 1600,            // ms between SIGINT and SIGKILL on stop
      // wait_ready: true,           // wait for process.send('ready')
      // listen_timeout: 3000,       // ms to wait for 'ready' / listening
      env: {
        NODE_ENV: 'development',
      },
      env_production: {
        NODE_ENV: 'production',
      },
    },
  ],
};
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found while fuzzing (a deep-nesting probe): the json5 crate recursed once per level and overflowed the stack; YAML's
    /// flow collections took quadratic time.
    #[test]
    fn json5_nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_text(&deep(MAX_NESTING), Kind::Json5).is_ok());
        assert!(parse_text(&deep(MAX_NESTING), Kind::Yaml).is_ok());
        let e = parse_text(&format!("apps: # [[[\n  - {}", deep(129)), Kind::Yaml).unwrap_err();
        assert_eq!(e, format!("2:{}: nested deeper than 128 levels", 4 + 129));
        let e = parse_text(&format!("{{apps: [\n  {}]}}", deep(200)), Kind::Json5).unwrap_err();
        assert_eq!(e, format!("2:{}: nested deeper than 128 levels", 128 - 2 + 3));
        assert!(parse_text(&deep(100_000), Kind::Json5).is_err());
        // Brackets in strings and comments do not count.
        let text = format!("{{a: '{0}', \"b\": \"\\\"{0}\", // {0}\n /* {0} */ c: [1]}}", "[".repeat(300));
        assert_eq!(parse_text(&text, Kind::Json5).unwrap()["c"], json!([1]));
        // YAML: a quote inside a plain scalar opens nothing, so the brackets after it count; a
        // single-quoted scalar doubles its quote; and the brackets of a file are bounded anyway.
        let e = parse_text(&format!("ap\"x{}\"s: 1", "[".repeat(200)), Kind::Yaml).unwrap_err();
        assert!(e.contains("nested deeper than 128 levels"), "{e}");
        let v = parse_text(&format!("a: 'it''s {}'\nb: [1]", "[".repeat(300)), Kind::Yaml).unwrap();
        assert_eq!(v["b"], json!([1]));
        let e = parse_text(&format!("a: \"{}\"", "[".repeat(MAX_YAML_BRACKETS + 1)), Kind::Yaml).unwrap_err();
        assert!(e.contains("at most 10000"), "{e}");
    }

    #[test]
    fn json_files_fall_back_to_a_js_expression() {
        assert_eq!(parse_json_or_js("{\"a\": 1}").unwrap(), json!({"a": 1}));
        if std::process::Command::new("node").arg("-v").output().is_ok() {
            let v = parse_json_or_js("{apps: [{name: 'a' + 1, script: ['x', 'js'].join('.')}]}").unwrap();
            assert_eq!(v, json!({"apps": [{"name": "a1", "script": "x.js"}]}));
        }
        // Neither JSON nor JS: JSON5's error, with its position.
        let e = parse_json_or_js("{apps: [").unwrap_err();
        assert!(e.contains(':'), "{e}");
    }

    #[test]
    fn same_apps_from_every_data_format() {
        let p = Path::new("x");
        let a = shape(
            parse_text(
                "{\n // or 0 => 'max'\n apps: [{name: 'a', script: 'a.js', instances: 2, env: {X: '1'},},],\n}",
                Kind::Json5,
            )
            .unwrap(),
            p,
        )
        .unwrap();
        let b = shape(
            parse_text("apps:\n  - name: a\n    script: a.js\n    instances: 2\n    env:\n      X: '1'\n", Kind::Yaml)
                .unwrap(),
            p,
        )
        .unwrap();
        assert_eq!(a.apps, b.apps);
        let c = shape(json!([{"name": "a", "script": "a.js", "instances": 2, "env": {"X": "1"}}]), p).unwrap();
        assert_eq!(a.apps, c.apps);
        let d = shape(json!({"name": "a", "script": "a.js", "instances": 2, "env": {"X": "1"}}), p).unwrap();
        assert_eq!(a.apps, d.apps);
    }

    #[test]
    fn deploy_env_and_bad_shapes() {
        let p = Path::new("f.json");
        let e = shape(json!({"apps": [{"script": "a.js"}], "deploy": {"production": {"env": {"A": "1"}}}}), p).unwrap();
        assert_eq!(e.deploy_env["production"], json!({"A": "1"}));
        assert!(shape(json!({"nothing": 1}), p).is_err());
        assert!(shape(json!({"apps": [1]}), p).is_err());
        assert!(shape(json!(3), p).is_err());
        let err = parse_text("{apps: [\n  {script: 'a.js',,}\n]}", Kind::Json5).unwrap_err();
        assert!(err.starts_with("2:"), "line:column expected: {err}");
        let err = parse_text("apps:\n  - script: [a\n", Kind::Yaml).unwrap_err();
        assert!(err.contains("line"), "{err}");
    }

    /// A file that never finishes is cut off at the limit, with one line naming the file and the
    /// limit, and Node is gone (needs `node` on PATH, as JS ecosystem files do).
    #[test]
    fn js_evaluation_is_bounded() {
        if crate::config::which("node").is_none() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("rpm2-eco-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, body) in [
            ("spin.config.js", "while (true) {}\n"),
            ("await.config.mjs", "await new Promise(() => setInterval(() => {}, 1000));\nexport default {apps: []};\n"),
        ] {
            let p = dir.join(file);
            std::fs::write(&p, body).unwrap();
            let began = Instant::now();
            let err = run_node(&p, Duration::from_millis(400)).map(|_| ()).unwrap_err().to_string();
            assert!(began.elapsed() < Duration::from_secs(5), "{file}: not cut off in time");
            assert!(err.contains(&p.display().to_string()) && err.contains("400 ms"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let idle = dir.join("idle.config.mjs");
        std::fs::write(&idle, "await new Promise(() => {});\nexport default {apps: []};\n").unwrap();
        let err = load(&idle).unwrap_err().to_string();
        assert!(err.contains("never finished"), "{err}");
        let ok = dir.join("ok.config.js");
        std::fs::write(&ok, "module.exports = {apps: [{script: 'a.js'}]};\n").unwrap();
        assert_eq!(load(&ok).unwrap().apps.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_of("ecosystem.config.js"), Some(Kind::Js));
        assert_eq!(kind_of("a.config.mjs"), Some(Kind::Js));
        assert_eq!(kind_of("dev.json"), Some(Kind::Json5));
        assert_eq!(kind_of("x.yml"), Some(Kind::Yaml));
        assert_eq!(kind_of("app.js"), None);
    }

    /// Property test without extra crates: random and mutated inputs never make the parsers panic.
    #[test]
    fn parsers_never_panic() {
        let seeds = [
            "{apps:[{name:'a',script:'a.js',env:{A:1}}]}",
            "apps:\n  - script: a.js\n    env: {A: 1}\n",
            "[{\"script\": \"x\"}]",
        ];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet: Vec<char> = "{}[]:,'\"\\/*\n -#&!|>@`%0123456789abcnulltrue\u{e9}\u{1F600}".chars().collect();
        for round in 0..3000 {
            let base: Vec<char> = seeds[round % seeds.len()].chars().collect();
            let mut s: Vec<char> = base.clone();
            for _ in 0..(next() % 6) {
                let pos = (next() as usize) % (s.len() + 1);
                match next() % 3 {
                    0 if !s.is_empty() => {
                        s.remove(pos.min(s.len() - 1));
                    }
                    1 => s.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                    _ => s.truncate(pos),
                }
            }
            let text: String = s.into_iter().collect();
            for k in [Kind::Json5, Kind::Yaml] {
                if let Ok(v) = parse_text(&text, k) {
                    let _ = shape(v, Path::new("fuzz"));
                }
            }
        }
    }
}

#[cfg(test)]
mod schema_tests {
    /// The shipped JSON Schema and the Rust model name the same options.
    #[test]
    fn schema_matches_known_options() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/ecosystem.schema.json");
        let text = std::fs::read_to_string(&path).expect("schema/ecosystem.schema.json is shipped");
        let v: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
        let props = v["definitions"]["app"]["properties"].as_object().expect("app properties");
        for k in crate::config::KNOWN_OPTIONS {
            assert!(props.contains_key(*k), "option '{k}' is missing from the schema");
        }
        for (k, p) in props {
            let alias = p.get("$ref").is_some();
            assert!(
                alias || crate::config::KNOWN_OPTIONS.contains(&k.as_str()),
                "schema has '{k}' that rpm2 does not know"
            );
        }
    }
}
