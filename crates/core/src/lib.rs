//! rpm2-core: every behaviour of rpm2 lives here. The daemon binary, the CLI and the napi addon are thin
//! shells over this crate, so `cargo test` covers the core without Node.
//!
//! Modules, one responsibility each:
//! - [`paths`]: where `RPM2_HOME` and its files are, created with safe permissions.
//! - [`protocol`]: the client ⇄ daemon wire format (newline-delimited JSON, versioned hello).
//! - [`config`]: app declarations (CLI flags, JS objects, ecosystem files) into validated [`spec::AppSpec`]s.
//! - [`spec`]: the resolved, absolute app model the daemon runs.
//! - [`policy`]: restart-policy maths (unstable restarts, delays, back-off).
//! - [`client`]: connect to the daemon, starting it when needed; request/response and subscriptions.
//! - [`daemon`]: the socket server, the registry of apps and persistence.
//! - [`supervisor`]: one actor per managed process: spawn, exit detection, restart, stop.
//! - [`cluster`]: the cluster primary (queryServer, round-robin hand-off, held listeners).
//! - [`pacer`]: batches the daemon's wake-ups under a flood of round-robin connections.
//! - [`ipc`]: Node's IPC channel (JSON lines over a socketpair).
//! - [`logs`]: log file writers and tails.
//! - [`procinfo`]: CPU and memory of a process tree, read from /proc.
//! - [`web`]: the JSON web API and Prometheus metrics (`rpm2 web`); [`monit`]: the terminal dashboard.
//! - [`triggers`], [`watch`], [`cron`]: restarts on file changes, on a schedule, over a memory limit.
//! - [`cli`], [`table`], [`fmt`]: the command line and its output.

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod cron;
pub mod daemon;
pub mod ecosystem;
pub mod fmt;
pub mod ipc;
pub mod logs;
pub mod monit;
pub mod ops;
pub mod pacer;
pub mod paths;
pub mod policy;
pub mod procinfo;
pub mod protocol;
pub mod runtime;
pub mod spec;
pub mod supervisor;
pub mod table;
pub mod triggers;
pub mod watch;
pub mod web;

/// The version of rpm2 (the crate version), printed by `rpm2 --version` and exchanged in the hello.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
