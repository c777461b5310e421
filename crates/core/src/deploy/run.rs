//! Running a deploy action on every host at once (tokio, one task per host, the system's `ssh`),
//! every output line prefixed with its host, and the per-host outcome for the summary.

use super::config::{DeployEnv, Host};
use super::plan::{self, Remote};
use super::Action;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// How one host's action ended.
#[derive(Debug, Clone)]
pub struct HostOutcome {
    /// The host's label (`host` or `host:port`).
    pub host: String,
    /// The ref the action was about, with the commit the host ended on when known.
    pub git_ref: String,
    /// `Ok(())`, or the one-line reason it failed (naming the host).
    pub result: Result<(), String>,
    /// Wall time spent on this host.
    pub seconds: f64,
}

/// Where lines go: stdout or stderr, each line whole (the lock keeps hosts' lines apart).
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Out,
    Err,
}

/// Writes one line with `prefix` to `stream`.
pub(crate) fn emit(stream: Stream, prefix: &str, line: &str) {
    let text = if prefix.is_empty() { format!("{line}\n") } else { format!("{prefix} {line}\n") };
    let _ = match stream {
        Stream::Out => std::io::stdout().lock().write_all(text.as_bytes()),
        Stream::Err => std::io::stderr().lock().write_all(text.as_bytes()),
    };
}

/// A step's failure: `ssh` itself failed (exit 255: unreachable, refused, auth) or the command did.
struct StepError {
    unreachable: bool,
    code: Option<i32>,
    last_line: String,
}

/// One host's context: its label (the line prefix), the environment and the host.
struct Ctx {
    label: String,
    prefix: String,
    env: Arc<DeployEnv>,
    host: Host,
    cwd: PathBuf,
}

impl Ctx {
    fn remote(&self) -> Remote<'_> {
        Remote { env: &self.env, host: &self.host }
    }

    fn log(&self, msg: &str) {
        emit(Stream::Out, &self.prefix, &format!("○ {msg}"));
    }

    /// Runs `cmd` on the host; its output is printed line by line with the host prefix, or (with
    /// `capture`) its stdout returned instead.
    async fn run(&self, cmd: &str, capture: bool, stdin_file: Option<&Path>) -> Result<String, StepError> {
        let argv = self.remote().ssh_argv(cmd);
        let mut c = tokio::process::Command::new(&argv[0]);
        c.args(&argv[1..]).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        match stdin_file.map(std::fs::File::open) {
            Some(Ok(f)) => {
                c.stdin(Stdio::from(f));
            }
            Some(Err(e)) => {
                return Err(StepError {
                    unreachable: false,
                    code: None,
                    last_line: format!("cannot read the script: {e}"),
                })
            }
            None => {
                c.stdin(Stdio::null());
            }
        }
        let mut child = match c.spawn() {
            Ok(ch) => ch,
            Err(e) => {
                return Err(StepError {
                    unreachable: true,
                    code: None,
                    last_line: format!("cannot run ssh ({e}): is the OpenSSH client installed?"),
                })
            }
        };
        let out = child.stdout.take();
        let err = child.stderr.take();
        let prefix = self.prefix.clone();
        let (captured, last_err, status) = tokio::join!(
            pump(out, Stream::Out, prefix.clone(), capture),
            pump(err, Stream::Err, prefix, false),
            child.wait()
        );
        let last_line = last_err.1;
        match status {
            Ok(st) if st.success() => Ok(captured.0),
            Ok(st) => Err(StepError { unreachable: st.code() == Some(255), code: st.code(), last_line }),
            Err(e) => Err(StepError { unreachable: false, code: None, last_line: format!("cannot wait for ssh: {e}") }),
        }
    }

    /// Runs a step and turns its failure into the host's one-line error (`what failed (exit n): last
    /// line`, or only the last line when `what` is empty).
    async fn step(&self, what: &str, cmd: &str, capture: bool) -> Result<String, String> {
        self.run(cmd, capture, None).await.map_err(|e| self.describe(what, &e))
    }

    fn describe(&self, what: &str, e: &StepError) -> String {
        let detail = if e.last_line.is_empty() { String::new() } else { format!(": {}", e.last_line) };
        if e.unreachable {
            let dest = self.remote().destination();
            format!("{}: cannot reach {dest} over ssh{detail}", self.label)
        } else if what.is_empty() {
            format!("{}: {}", self.label, e.last_line)
        } else {
            let code = e.code.map(|c| format!(" (exit {c})")).unwrap_or_default();
            format!("{}: {what} failed{code}{detail}", self.label)
        }
    }

    /// Runs the hook `name` when set (`log hook <name>` otherwise, as PM2).
    async fn hook(&self, name: &str, cmd: Option<&str>, with_env: bool) -> Result<(), String> {
        match cmd {
            Some(c) => {
                self.log(&format!("executing {name} `{c}`"));
                self.step(name, &self.remote().hook(c, with_env), false).await.map(|_| ())
            }
            None => {
                self.log(&format!("hook {name}"));
                Ok(())
            }
        }
    }
}

/// Prints every line of `r` with `prefix` (or collects them with `capture`). Returns the collected
/// text and the last non-empty line seen.
async fn pump<R: AsyncRead + Unpin>(r: Option<R>, stream: Stream, prefix: String, capture: bool) -> (String, String) {
    let mut text = String::new();
    let mut last = String::new();
    let Some(r) = r else { return (text, last) };
    let mut lines = BufReader::new(r).split(b'\n');
    while let Ok(Some(raw)) = lines.next_segment().await {
        let line = String::from_utf8_lossy(&raw);
        // git's progress uses \r: keep the last state of the line.
        let line = line.trim_end_matches('\r').rsplit('\r').next().unwrap_or("").to_string();
        if !line.trim().is_empty() {
            last = line.trim().to_string();
        }
        if capture {
            text.push_str(&line);
            text.push('\n');
        } else {
            emit(stream, &prefix, &line);
        }
    }
    (text, last)
}

/// Runs `action` on every host of `env` at once; returns each host's outcome in the hosts' order.
pub(crate) fn run_all(env: DeployEnv, action: &Action, cwd: &Path, prefixes: bool) -> Vec<HostOutcome> {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return env
                .hosts
                .iter()
                .map(|h| HostOutcome {
                    host: h.label(),
                    git_ref: env.git_ref.clone(),
                    result: Err(format!("{}: cannot start the async runtime: {e}", h.label())),
                    seconds: 0.0,
                })
                .collect()
        }
    };
    let env = Arc::new(env);
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, host) in env.hosts.iter().enumerate() {
            let label = host.label();
            let prefix = if prefixes { format!("[{label}]") } else { String::new() };
            let ctx = Ctx { label, prefix, env: env.clone(), host: host.clone(), cwd: cwd.to_path_buf() };
            let action = action.clone();
            set.spawn(async move {
                let began = Instant::now();
                let (git_ref, result) = one_host(&ctx, &action).await;
                if let Err(e) = &result {
                    // The prefix names the host already.
                    let e = e.strip_prefix(&format!("{}: ", ctx.label)).unwrap_or(e);
                    emit(Stream::Err, &ctx.prefix, &format!("✖ {e}"));
                }
                (i, HostOutcome { host: ctx.label, git_ref, result, seconds: began.elapsed().as_secs_f64() })
            });
        }
        let mut out: Vec<(usize, HostOutcome)> = Vec::new();
        while let Some(done) = set.join_next().await {
            if let Ok(pair) = done {
                out.push(pair);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, o)| o).collect()
    })
}

/// One host: the action's steps in order. Returns the ref column and the result.
async fn one_host(ctx: &Ctx, action: &Action) -> (String, Result<(), String>) {
    let cfg_ref = ctx.env.git_ref.clone();
    match action {
        Action::Setup => (cfg_ref, setup(ctx).await),
        Action::Update(r) => {
            let r = r.clone().unwrap_or(cfg_ref);
            deploy_ref(ctx, &r).await
        }
        Action::Revert(n) => match revert_target(ctx, *n).await {
            Ok(commit) => {
                ctx.log(&format!("reverting {n} deploy(s)"));
                deploy_ref(ctx, &commit).await
            }
            Err(e) => (cfg_ref, Err(e)),
        },
        Action::Current => (cfg_ref, ctx.step("curr", &ctx.remote().current_short(), false).await.map(|_| ())),
        Action::Previous => match revert_target(ctx, 1).await {
            Ok(c) => {
                emit(Stream::Out, &ctx.prefix, &c);
                (cfg_ref, Ok(()))
            }
            Err(e) => (cfg_ref, Err(e)),
        },
        Action::List => match ctx.step("list", &ctx.remote().deploys(), true).await {
            Ok(text) => {
                for l in plan::list_lines(&text) {
                    emit(Stream::Out, &ctx.prefix, &l);
                }
                (cfg_ref, Ok(()))
            }
            Err(e) => (cfg_ref, Err(e)),
        },
        Action::Exec(cmd) => (cfg_ref, ctx.step("exec", &ctx.remote().exec(cmd), false).await.map(|_| ())),
    }
}

/// The commit `n` deploys before the current one, from the host's `.deploys`.
async fn revert_target(ctx: &Ctx, n: usize) -> Result<String, String> {
    let text = ctx.step("reading .deploys", &ctx.remote().deploys(), true).await?;
    let count = plan::list_lines(&text).len();
    plan::nth_from_end(&text, n).ok_or_else(|| {
        format!(
            "{}: {count} deploy(s) recorded in {}/.deploys, so there is no deploy {n} before the current one",
            ctx.label,
            ctx.host.path.trim_end_matches('/')
        )
    })
}

/// `setup`: pre-setup, folders, clone, `current` link, post-setup (PM2's order), refused when the
/// host has a clone already.
async fn setup(ctx: &Ctx) -> Result<(), String> {
    let r = ctx.remote();
    // Before pre-setup, so a second setup changes nothing (no `what`: its message says it all).
    ctx.step("", &r.check_not_set_up(), false).await?;
    match (&ctx.env.hooks.pre_setup, r.pre_setup_script(&ctx.cwd)) {
        (Some(cmd), Some((script, remote))) => {
            ctx.log(&format!("executing pre-setup script `{cmd}`"));
            ctx.run(&remote, false, Some(&script)).await.map_err(|e| ctx.describe("pre-setup", &e))?;
        }
        (Some(cmd), None) => {
            ctx.log(&format!("executing pre-setup `{cmd}`"));
            ctx.step("pre-setup", cmd, false).await?;
        }
        (None, _) => ctx.log("hook pre-setup"),
    }
    ctx.step("creating the folders", &r.mkdirs(), false).await?;
    ctx.log("running setup");
    ctx.log(&format!("cloning {}", ctx.env.repo));
    ctx.log(if ctx.env.fetch_fast { "fast fetch" } else { "full fetch" });
    ctx.step("git clone", &r.clone_source(), false).await?;
    ctx.step("linking current", &r.link(), false).await?;
    ctx.hook("post-setup", ctx.env.hooks.post_setup.as_deref(), false).await?;
    ctx.log("setup complete");
    Ok(())
}

/// Deploys `git_ref`: pre-deploy, fetch, reset, link, post-deploy, then the `.deploys` record. When
/// post-deploy fails the source goes back to the commit it was on, so `current` stays the previous
/// release, and nothing is recorded.
async fn deploy_ref(ctx: &Ctx, git_ref: &str) -> (String, Result<(), String>) {
    let mut shown = git_ref.to_string();
    let result: Result<(), String> = async {
        let r = ctx.remote();
        ctx.log(&format!("deploying {git_ref}"));
        ctx.hook("pre-deploy", ctx.env.hooks.pre_deploy.as_deref(), false).await?;
        ctx.log("fetching updates");
        ctx.step("git fetch", &r.fetch(), false).await?;
        let previous = ctx.step("reading the current commit", &r.head(), true).await?.trim().to_string();
        ctx.log(&format!("resetting HEAD to {git_ref}"));
        let now = ctx.step("git reset", &r.reset(git_ref), true).await?.trim().to_string();
        shown = format!("{git_ref} {}", short(&now));
        ctx.step("linking current", &r.link(), false).await?;
        if let Err(e) = ctx.hook("post-deploy", ctx.env.hooks.post_deploy.as_deref(), true).await {
            ctx.log(&format!("post-deploy failed: putting {} back", short(&previous)));
            shown = format!("{git_ref} {}", short(&previous));
            return match ctx.step("putting the previous commit back", &r.reset(&previous), true).await {
                Ok(_) => Err(format!("{e}; {} is still the current release", short(&previous))),
                Err(e2) => Err(format!("{e}; and then {e2}")),
            };
        }
        ctx.step("recording the deploy in .deploys", &r.record(), false).await?;
        ctx.log(&format!("successfully deployed {git_ref}"));
        Ok(())
    }
    .await;
    (shown, result)
}

/// The 7-character short form of a commit.
fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// Runs `pre-deploy-local` here once (before any host is contacted), its lines prefixed `[local]`.
pub(crate) fn run_local(cmd: &str, cwd: &Path) -> Result<(), String> {
    emit(Stream::Out, "", &format!("  ○ executing pre-deploy-local `{cmd}`"));
    let shell = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
    let out = std::process::Command::new(shell)
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("pre-deploy-local: cannot run {shell}: {e}"))?;
    for (stream, bytes) in [(Stream::Out, &out.stdout), (Stream::Err, &out.stderr)] {
        for l in String::from_utf8_lossy(bytes).lines() {
            emit(stream, "[local]", l);
        }
    }
    if out.status.success() {
        Ok(())
    } else {
        let code = out.status.code().map(|c| format!(" (exit {c})")).unwrap_or_default();
        Err(format!("pre-deploy-local `{cmd}` failed{code}: no host was deployed"))
    }
}
