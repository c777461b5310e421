//! `rpm2-runtime`: rpm2 in the foreground for containers. Starts the daemon and the apps, streams
//! their logs to its own stdout/stderr, works as PID 1 (child subreaper: reaps every orphan), turns
//! SIGTERM/SIGINT into a graceful stop of all apps, and exits when everything has stopped: 0 after a
//! requested stop, 1 when an app is errored, else the apps' exit code. `rpm2 list`/`rpm2 logs` keep
//! working inside the container (same `RPM2_HOME`). The foreground loop is the CLI's
//! ([`crate::cli::foreground`], also behind `rpm2 start --no-daemon`); this file parses its own options.
//! `--health-port N` serves `GET /healthz` and `GET /readyz` for Kubernetes ([`crate::cli::health_http`]).

use crate::base::paths::Home;
use crate::cli::foreground::{self, Foreground};
use anyhow::Result;
use std::ffi::OsString;

/// Options of `rpm2-runtime` that are its own; everything else is passed to `rpm2 start`.
#[derive(Debug, Default)]
struct Opts {
    json: bool,
    health: bool,
    no_auto_exit: bool,
    /// `--health-port N`: serve `/healthz` and `/readyz`; `--health-host` (default all interfaces).
    health_port: Option<String>,
    health_host: Option<String>,
    start_args: Vec<OsString>,
}

fn parse(argv: &[OsString]) -> Opts {
    let mut o = Opts::default();
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_str().unwrap_or("");
        if let Some(v) = s.strip_prefix("--health-port=") {
            o.health_port = Some(v.to_string());
            continue;
        }
        if let Some(v) = s.strip_prefix("--health-host=") {
            o.health_host = Some(v.to_string());
            continue;
        }
        match a.to_str() {
            Some("--health-port") => o.health_port = Some(it.next().and_then(|v| v.to_str()).unwrap_or("").to_string()),
            Some("--health-host") => o.health_host = Some(it.next().and_then(|v| v.to_str()).unwrap_or("").to_string()),
            Some("--json") => o.json = true,
            Some("--health") => o.health = true,
            Some("--no-auto-exit") => o.no_auto_exit = true,
            Some("--runtime") => {}
            _ => o.start_args.push(a.clone()),
        }
    }
    o
}

/// Runs `rpm2-runtime` with `argv` (program name first); returns the exit code.
pub fn run(argv: Vec<OsString>) -> i32 {
    match run_inner(argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("[rpm2-runtime][ERROR] {e:#}");
            1
        }
    }
}

fn run_inner(argv: Vec<OsString>) -> Result<i32> {
    let opts = parse(&argv);
    let home = Home::from_env()?;
    if opts.health {
        return foreground::health(&home);
    }
    if opts.start_args.is_empty() {
        anyhow::bail!(
            "usage: rpm2-runtime <app.js|ecosystem.config.js> [rpm2 start options] [--json] [--no-auto-exit] [--health-port N [--health-host H]]"
        );
    }
    let health_port = match &opts.health_port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some((opts.health_host.clone().unwrap_or_else(|| "0.0.0.0".into()), n)),
            _ => anyhow::bail!("--health-port must be a port number (1-65535), got '{p}'"),
        },
    };
    let fg = Foreground { json_logs: opts.json, no_auto_exit: opts.no_auto_exit, tag: "rpm2-runtime", health_port };
    let mut args: Vec<OsString> = vec!["rpm2".into(), "start".into(), "-s".into()];
    args.extend(opts.start_args.iter().cloned());
    foreground::run(&home, &fg, &mut || crate::cli::run(args.clone()))
}
