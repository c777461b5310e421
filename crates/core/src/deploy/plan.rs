//! The commands a deploy runs: the ssh command line for a host and the remote shell commands of
//! each step, on PM2's remote layout (`<path>/source` the clone, `<path>/current` a symlink to it,
//! `<path>/shared/{logs,pids}`, `<path>/.deploys` one deployed commit per line, newest last). Pure
//! functions: nothing here runs anything.

use super::config::{DeployEnv, Host};
use std::path::{Path, PathBuf};

/// `s` as one POSIX shell word (single-quoted, `'` written as `'\''`).
pub fn sq(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A path on the host as a shell word: `~/x` becomes `"$HOME"/'x'` so the host's shell expands it.
fn remote_path(p: &str) -> String {
    match p.strip_prefix('~') {
        Some("") => "\"$HOME\"".to_string(),
        Some(rest) if rest.starts_with('/') => format!("\"$HOME\"{}", sq(rest)),
        _ => sq(p),
    }
}

/// The branch `setup` clones for a ref: what follows the first `/` (`origin/main` → `main`), as PM2.
pub fn branch_of(git_ref: &str) -> &str {
    git_ref.split_once('/').map(|(_, b)| b).unwrap_or(git_ref)
}

/// What runs for one host of one environment.
pub struct Remote<'a> {
    /// The environment (repo, ref, hooks).
    pub env: &'a DeployEnv,
    /// The host (connection, path, env).
    pub host: &'a Host,
}

impl Remote<'_> {
    /// `<path>/<sub>` as a shell word.
    fn dir(&self, sub: &str) -> String {
        let base = self.host.path.trim_end_matches('/');
        let base = if base.is_empty() { "/" } else { base };
        if sub.is_empty() {
            remote_path(base)
        } else {
            format!("{}/{sub}", remote_path(base))
        }
    }

    /// `user@host` (or `host`), what ssh connects to.
    pub fn destination(&self) -> String {
        match &self.host.user {
            Some(u) => format!("{u}@{}", self.host.host),
            None => self.host.host.clone(),
        }
    }

    /// The ssh argv (program first) that runs `remote_cmd` on the host, as PM2 builds it:
    /// `ssh [-o opt]... [-t] [-A] [-p port] [-i key] [user@]host <cmd>`.
    pub fn ssh_argv(&self, remote_cmd: &str) -> Vec<String> {
        let mut a = vec!["ssh".to_string()];
        for o in &self.host.ssh_options {
            a.push("-o".into());
            a.push(o.clone());
        }
        if self.host.needs_tty {
            a.push("-t".into());
        }
        if self.host.forward_agent {
            a.push("-A".into());
        }
        if let Some(p) = self.host.port {
            a.push("-p".into());
            a.push(p.to_string());
        }
        if let Some(k) = &self.host.key {
            a.push("-i".into());
            a.push(expand_home(k));
        }
        a.push(self.destination());
        a.push(remote_cmd.to_string());
        a
    }

    /// `pre-setup` when its first word is a file here: that script and its arguments (run on the
    /// host with `bash -s -- <args>`, the script on stdin, as PM2 does).
    pub fn pre_setup_script(&self, cwd: &Path) -> Option<(PathBuf, String)> {
        let cmd = self.env.hooks.pre_setup.as_deref()?;
        let mut words = cmd.split_whitespace();
        let first = cwd.join(words.next()?);
        if !first.is_file() {
            return None;
        }
        let args: Vec<String> = words.map(sq).collect();
        let remote = if args.is_empty() { "bash -s".to_string() } else { format!("bash -s -- {}", args.join(" ")) };
        Some((first, remote))
    }

    /// Setup's folders: `<path>/shared/{logs,pids}` and `<path>/source`.
    pub fn mkdirs(&self) -> String {
        format!("mkdir -p {} {} {}", self.dir("shared/logs"), self.dir("shared/pids"), self.dir("source"))
    }

    /// Fails, saying what to run instead, when `<path>/source` is already a clone (setup ran before).
    pub fn check_not_set_up(&self) -> String {
        format!(
            "if [ -e {src}/.git ]; then echo {msg} >&2; exit 1; fi",
            src = self.dir("source"),
            msg = sq(&format!(
                "already set up: {}/source is a clone (deploy with `rpm2 deploy {}`)",
                self.host.path.trim_end_matches('/'),
                self.env.name
            )),
        )
    }

    /// Setup's clone of the ref's branch into `<path>/source`.
    pub fn clone_source(&self) -> String {
        let depth = if self.env.fetch_fast { "--depth=5 " } else { "" };
        format!(
            "git clone {depth}--branch {branch} {repo} {src}",
            src = self.dir("source"),
            branch = sq(branch_of(&self.env.git_ref)),
            repo = sq(&self.env.repo),
        )
    }

    /// Points `<path>/current` at `<path>/source`.
    pub fn link(&self) -> String {
        format!("ln -sfn {} {}", self.dir("source"), self.dir("current"))
    }

    /// A hook run in `<path>/current` with `SHARED` set to `<path>/shared` (and the section's `env`
    /// exported when `with_env`); the command runs in a subshell so an `exit` in it ends only it.
    pub fn hook(&self, cmd: &str, with_env: bool) -> String {
        let mut s = format!("cd {} && SHARED={} && export SHARED", self.dir("current"), self.dir("shared"));
        if with_env {
            for (k, v) in &self.host.env {
                s.push_str(&format!(" && {k}={} && export {k}", sq(v)));
            }
        }
        s.push_str(&format!(" && ( {cmd}\n)"));
        s
    }

    /// Fetches every remote's branches and tags into `<path>/source`.
    pub fn fetch(&self) -> String {
        let depth = if self.env.fetch_fast { "--depth=5 " } else { "" };
        format!("cd {} && git fetch {depth}--all --tags", self.dir("source"))
    }

    /// Prints the full commit `<path>/source` is on.
    pub fn head(&self) -> String {
        format!("cd {} && git rev-parse HEAD", self.dir("source"))
    }

    /// Prints the short commit `<path>/source` is on (`curr`).
    pub fn current_short(&self) -> String {
        format!("cd {} && git rev-parse --short HEAD", self.dir("source"))
    }

    /// Resets `<path>/source` to `git_ref` (a ref or a commit) and prints the commit it is now on.
    pub fn reset(&self, git_ref: &str) -> String {
        format!("cd {} && git reset --hard {} >/dev/null && git rev-parse HEAD", self.dir("source"), sq(git_ref))
    }

    /// Appends the commit `<path>/source` is on to `<path>/.deploys` (PM2's deploy log).
    pub fn record(&self) -> String {
        format!("cd {} && git rev-parse HEAD >> {}", self.dir("source"), self.dir(".deploys"))
    }

    /// Prints `<path>/.deploys` (nothing when there is none yet).
    pub fn deploys(&self) -> String {
        format!("if [ -f {d} ]; then cat {d}; fi", d = self.dir(".deploys"))
    }

    /// `exec`: `cmd` in `<path>/current` with the section's `env` exported.
    pub fn exec(&self, cmd: &str) -> String {
        self.hook(cmd, true)
    }
}

/// `~/x` as `$HOME/x` of this machine (for the `key` file ssh reads here).
fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) if !home.is_empty() => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => p.to_string(),
    }
}

/// The commit `revert n` goes back to: the `(n+1)`th line from the end of `.deploys` (the first
/// word of the line, as PM2). `None` when the log has fewer deploys than that.
pub fn nth_from_end(deploys: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = deploys.lines().filter(|l| !l.trim().is_empty()).collect();
    let i = lines.len().checked_sub(n + 1)?;
    lines.get(i).and_then(|l| l.split_whitespace().next()).map(str::to_string)
}

/// `list`: `.deploys` newest first, each line `<n>\t<commit>` (0 the current deploy), as PM2.
pub fn list_lines(deploys: &str) -> Vec<String> {
    let lines: Vec<&str> = deploys.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.iter().rev().enumerate().map(|(i, l)| format!("{i}\t{l}")).collect()
}
