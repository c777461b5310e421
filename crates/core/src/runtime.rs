//! `rpm2-runtime`: rpm2 in the foreground for containers. Starts the daemon and the apps, streams
//! their logs to its own stdout/stderr, works as PID 1 (child subreaper: reaps every orphan), turns
//! SIGTERM/SIGINT into a graceful stop of all apps, and exits when everything has stopped: 0 after a
//! requested stop, 1 when an app is errored, else the apps' exit code. `rpm2 list`/`rpm2 logs` keep
//! working inside the container (same `RPM2_HOME`). The foreground loop is the CLI's
//! ([`crate::cli::foreground`], also behind `rpm2 start --no-daemon`); this file parses its own options.

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
    start_args: Vec<OsString>,
}

fn parse(argv: &[OsString]) -> Opts {
    let mut o = Opts::default();
    for a in argv.iter().skip(1) {
        match a.to_str() {
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
            "usage: rpm2-runtime <app.js|ecosystem.config.js> [rpm2 start options] [--json] [--no-auto-exit]"
        );
    }
    let fg = Foreground { json_logs: opts.json, no_auto_exit: opts.no_auto_exit, tag: "rpm2-runtime" };
    let mut args: Vec<OsString> = vec!["rpm2".into(), "start".into(), "-s".into()];
    args.extend(opts.start_args.iter().cloned());
    foreground::run(&home, &fg, &mut || crate::cli::run(args.clone()))
}
