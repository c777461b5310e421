//! `rpm2 deploy`: PM2's deploy over the system's `ssh` and `git`. The `deploy.<env>` section of an
//! ecosystem file names hosts, a repository, a ref and hooks; each host keeps PM2's remote layout
//! (`<path>/source` the clone, `<path>/current` → `source`, `<path>/shared`, `<path>/.deploys`), so
//! a host deployed by PM2 can be updated by rpm2 and back.
//!
//! Client floor: uses only [`crate::config::ecosystem`] (loading the file) and [`crate::base`].
//! `config` parses the section, `plan` writes the commands, `run` runs them on every host at once
//! and [`deploy`] is the one entry the CLI and `require('rpm2').deploy` call.

pub(crate) mod config;
pub(crate) mod plan;
mod run;

pub use run::HostOutcome;

use crate::base::fmt::Paint;
use anyhow::{anyhow, bail, Context, Result};
use run::{emit, Stream};
use std::path::Path;

/// What to do on the hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `setup`: create the folders, clone, link `current`.
    Setup,
    /// `update` (or nothing): deploy the section's ref; `ref <r>` or a bare `<r>`: deploy `r`.
    Update(Option<String>),
    /// `revert [n]`: deploy again the commit `n` deploys before the current one (1 by default).
    Revert(usize),
    /// `curr[ent]`: print the commit each host is on.
    Current,
    /// `prev[ious]`: print the commit deployed before the current one.
    Previous,
    /// `list`: print `.deploys`, newest first.
    List,
    /// `exec|run <cmd>`: run a command in `<path>/current`.
    Exec(String),
}

/// `rpm2 deploy`'s arguments, as PM2 reads them: `[file] <env> [command...] [--force]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployArgs {
    /// The ecosystem file; `None`: the default one of the current folder.
    pub file: Option<String>,
    /// The environment; `None`: print the help.
    pub env: Option<String>,
    /// The action.
    pub action: Action,
    /// `--force`/`-f`: skip the check for uncommitted or unpushed local changes.
    pub force: bool,
}

/// The file names `rpm2 deploy <env>` looks for, in PM2's order.
pub const DEFAULT_FILES: &[&str] = &[
    "ecosystem.json",
    "ecosystem.yml",
    "ecosystem.yaml",
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.json5",
    "package.json",
];

/// Whether PM2 takes `name` as a config file rather than an environment (its name contains one of
/// `.json`, `.yml`, `.yaml`, `.config.js`, `.config.cjs`, `.config.mjs`).
pub fn is_config_file(name: &str) -> bool {
    [".json", ".yml", ".yaml", ".config.js", ".config.cjs", ".config.mjs"].iter().any(|e| name.contains(e))
}

/// The words of `rpm2 deploy` from PM2's API arguments `deploy(file, commands)`: `commands` is PM2's
/// commander object (`{rawArgs}`: the words after `deploy`), an array of the words after `file`, or
/// one word; `deploy('help')` is the help.
pub fn api_words(file: &serde_json::Value, commands: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let word = |v: &Value| v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
    if file == "help" {
        return vec!["help".into()];
    }
    if let Some(raw) = commands.get("rawArgs").and_then(Value::as_array) {
        let after = raw.iter().position(|w| w == "deploy").map(|i| i + 1).unwrap_or(0);
        return raw[after..].iter().map(word).collect();
    }
    let mut words = vec![word(file)];
    match commands {
        Value::Array(a) => words.extend(a.iter().map(word)),
        Value::Null => {}
        c => words.push(word(c)),
    }
    words
}

/// Parses the words after `deploy`. The error is one line saying what is wrong.
pub fn parse_args(words: &[String]) -> Result<DeployArgs, String> {
    // `--force` anywhere before `exec`/`run` (whose command keeps every word, as PM2).
    let is_force = |w: &str| matches!(w, "--force" | "-f" | "-F");
    let cmd_at = words.iter().position(|w| matches!(w.as_str(), "exec" | "run")).unwrap_or(words.len());
    let force = words[..cmd_at].iter().any(|w| is_force(w));
    let mut w: Vec<&str> =
        words.iter().enumerate().filter(|(i, w)| *i >= cmd_at || !is_force(w)).map(|(_, w)| w.as_str()).collect();
    let help = DeployArgs { file: None, env: None, action: Action::Update(None), force };
    if w.first().is_none_or(|f| *f == "help") {
        return Ok(help);
    }
    let file = if is_config_file(w[0]) { Some(w.remove(0).to_string()) } else { None };
    let Some(env) = (!w.is_empty()).then(|| w.remove(0).to_string()) else {
        return Ok(DeployArgs { file, ..help });
    };
    let action = match w.as_slice() {
        [] | ["update"] => Action::Update(None),
        ["setup"] => Action::Setup,
        ["revert"] => Action::Revert(1),
        ["revert", n] => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Action::Revert(n),
            _ => return Err(format!("revert takes a number of deploys to go back (1 or more), got {n:?}")),
        },
        ["curr" | "current"] => Action::Current,
        ["prev" | "previous"] => Action::Previous,
        ["list"] => Action::List,
        ["exec" | "run"] => return Err("exec needs a command: rpm2 deploy <env> exec \"<cmd>\"".into()),
        ["exec" | "run", cmd @ ..] => Action::Exec(cmd.join(" ")),
        ["ref"] => return Err("ref needs a ref to deploy: rpm2 deploy <env> ref origin/main".into()),
        ["ref", r] => Action::Update(Some(r.to_string())),
        [r] => Action::Update(Some(r.to_string())),
        [first, rest @ ..] => {
            return Err(format!("unexpected {:?} after {first:?} (see `rpm2 deploy help`)", rest.join(" ")));
        }
    };
    Ok(DeployArgs { file, env: Some(env), action, force })
}

/// `rpm2 deploy help`: the commands and examples.
pub const HELP: &str = "
-----> Helper: Deployment with rpm2

  Describe the hosts in the `deploy` section of ecosystem.config.js: host, repo, ref, path, hooks

  Commands:
    setup                run remote setup commands
    update               update deploy to the latest release
    revert [n]           revert to [n]th last deployment or 1
    curr[ent]            output current release commit
    prev[ious]           output previous release commit
    exec|run <cmd>       execute the given <cmd>
    list                 list previous deploy commits
    [ref] <ref>          deploy <ref> instead of the section's `ref`

  Examples:
    rpm2 deploy ecosystem.config.js production setup
    rpm2 deploy ecosystem.config.js production
    rpm2 deploy ecosystem.config.js production revert 1
    rpm2 deploy ecosystem.config.js production exec \"rpm2 reload all\"
    rpm2 deploy production              (the default ecosystem file of this folder)
";

/// What [`deploy`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// No environment was given: the help was printed.
    Help,
    /// The action ran on every host of `env`.
    Ran {
        /// The environment.
        env: String,
        /// One outcome per host, in the section's order.
        hosts: Vec<HostOutcome>,
    },
}

impl Outcome {
    /// Whether every host succeeded (true for the help).
    pub fn ok(&self) -> bool {
        self.failure().is_none()
    }

    /// `Deploy failed on <n> of <m> host(s): <hosts>` when a host failed.
    pub fn failure(&self) -> Option<String> {
        let Outcome::Ran { hosts, .. } = self else { return None };
        let failed: Vec<&str> = hosts.iter().filter(|h| h.result.is_err()).map(|h| h.host.as_str()).collect();
        (!failed.is_empty())
            .then(|| format!("Deploy failed on {} of {} host(s): {}", failed.len(), hosts.len(), failed.join(", ")))
    }

    /// As JSON for `require('rpm2').deploy`: `{env, hosts: [{host, ref, ok, error, seconds}]}`
    /// (`{help: true}` for the help).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Outcome::Help => serde_json::json!({"help": true}),
            Outcome::Ran { env, hosts } => serde_json::json!({
                "env": env,
                "hosts": hosts.iter().map(|h| serde_json::json!({
                    "host": h.host,
                    "ref": h.git_ref,
                    "ok": h.result.is_ok(),
                    "error": h.result.as_ref().err(),
                    "seconds": (h.seconds * 1000.0).round() / 1000.0,
                })).collect::<Vec<_>>(),
            }),
        }
    }
}

/// Runs `rpm2 deploy <words>` from `cwd`: progress lines (prefixed with the host), then the summary
/// table and `--> Success` or the failure line, on stdout/stderr. An `Err` is a one-line error from
/// before any host was contacted (no file, no such environment, a malformed section, local changes,
/// `pre-deploy-local` failed); a host that fails is in the [`Outcome`], the others still run.
pub fn deploy(words: &[String], cwd: &Path, paint: Paint) -> Result<Outcome> {
    let a = parse_args(words).map_err(|e| anyhow!(e))?;
    let Some(env_name) = a.env.clone() else {
        println!("{HELP}");
        return Ok(Outcome::Help);
    };
    let file = match &a.file {
        Some(f) => f.clone(),
        None => match DEFAULT_FILES.iter().find(|f| cwd.join(f).is_file()) {
            Some(f) => f.to_string(),
            None => bail!("no deploy file here: rpm2 looks for {} in {}", DEFAULT_FILES.join(", "), cwd.display()),
        },
    };
    let doc = crate::config::ecosystem::load_value(&cwd.join(&file))?;
    let section = doc.get("deploy").cloned().unwrap_or(serde_json::Value::Null);
    if section.get(&env_name).is_none() {
        let names = config::env_names(&section);
        let defined = if names.is_empty() {
            "it has no deploy section".into()
        } else {
            format!("it defines {}", names.join(", "))
        };
        bail!("{env_name} environment is not defined in {file} ({defined})");
    }
    let default_post = format!("rpm2 startOrRestart {file} --env {env_name}");
    let env = config::parse(&section, &env_name, Some(default_post)).map_err(|e| anyhow!("{file}: {e}"))?;
    for w in &env.warnings {
        eprintln!("{} {file}: {w}", paint.yellow("[rpm2][WARN]"));
    }
    println!(
        "--> Deploying to {env_name} environment ({} host{})",
        env.hosts.len(),
        if env.hosts.len() == 1 { "" } else { "s" }
    );
    if matches!(a.action, Action::Update(_)) && !a.force {
        check_local_changes(cwd)?;
    }
    if matches!(a.action, Action::Update(_) | Action::Revert(_)) {
        if let Some(cmd) = &env.hooks.pre_deploy_local {
            run::run_local(cmd, cwd).map_err(|e| anyhow!(e))?;
        }
    }
    let hosts = run::run_all(env, &a.action, cwd, true);
    println!("{}", summary(&hosts, paint));
    let outcome = Outcome::Ran { env: env_name, hosts };
    match outcome.failure() {
        None => println!("--> Success"),
        Some(f) => emit(Stream::Err, "", &format!("{} {f}", paint.red("[rpm2][ERROR]"))),
    }
    Ok(outcome)
}

/// The summary table: host, ref, result, seconds.
pub fn summary(hosts: &[HostOutcome], paint: Paint) -> String {
    let header: Vec<String> = ["host", "ref", "result", "seconds"].iter().map(|h| paint.bold(h)).collect();
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let result = match &h.result {
                Ok(()) => paint.green("ok"),
                Err(e) => {
                    let reason = e.strip_prefix(&format!("{}: ", h.host)).unwrap_or(e);
                    let reason: String = if reason.chars().count() > 72 {
                        reason.chars().take(71).chain(std::iter::once('…')).collect()
                    } else {
                        reason.to_string()
                    };
                    paint.red(&format!("failed: {reason}"))
                }
            };
            vec![h.host.clone(), h.git_ref.clone(), result, format!("{:.1}", h.seconds)]
        })
        .collect();
    crate::base::table::render(&header, &rows).trim_end().to_string()
}

/// PM2's check before a deploy: no uncommitted, unstaged or unpushed change in the local repository
/// (`--force` skips it). Outside a git work tree there is nothing to check.
fn check_local_changes(cwd: &Path) -> Result<()> {
    let git = |args: &[&str]| std::process::Command::new("git").args(args).current_dir(cwd).output();
    let inside = git(&["rev-parse", "--is-inside-work-tree"]).context("cannot run git (is it installed?)")?;
    if !inside.status.success() || String::from_utf8_lossy(&inside.stdout).trim() != "true" {
        return Ok(());
    }
    let quiet_diff = |cached: bool| {
        let mut a = vec!["--no-pager", "diff", "--exit-code", "--quiet"];
        if cached {
            a.push("--cached");
        }
        git(&a).map(|o| o.status.success()).unwrap_or(false)
    };
    if !quiet_diff(false) {
        bail!("commit or stash your changes before deploying (or deploy with --force)");
    }
    if !quiet_diff(true) {
        bail!("commit your staged changes before deploying (or deploy with --force)");
    }
    if let Ok(o) = git(&["rev-list", "@{upstream}..", "-n", "1"]) {
        if o.status.success() && !o.stdout.trim_ascii().is_empty() {
            bail!("push your changes before deploying (or deploy with --force)");
        }
    }
    Ok(())
}
