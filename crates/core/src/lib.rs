//! rpm2-core: every behaviour of rpm2 lives here. The daemon binary, the CLI and the napi addon are thin
//! shells over this crate, so `cargo test` covers the core without Node. ARCHITECTURE.md at the
//! repository root is the map; the layers, from the bottom up (a module uses only what is below it):
//!
//! 1. [`base`]: paths, formatting, tables, /proc sampling, the daemon log.
//! 2. [`protocol`]: the client ⇄ daemon wire format and the PM2 contract's shapes;
//!    [`config`]: app declarations (CLI flags, JS objects, ecosystem files) into validated
//!    [`config::spec::AppSpec`]s; [`ipc`]: Node's IPC channel (JSON lines over a socketpair).
//! 3. [`logs`]: log writers, rotation and tails; [`watch`]: file watching; [`cluster`]: the cluster
//!    primary and its hand-off [`cluster::pacer`].
//! 4. [`supervisor`]: one actor per managed process, its restart policy and triggers (watch, cron,
//!    memory).
//! 5. [`daemon`]: the socket server, one handler per request, the registry and persistence.
//! 6. [`client`]: connect to the daemon (starting it when needed) and the one start/operate flow;
//!    [`deploy`]: `rpm2 deploy` over ssh and git.
//! 7. [`web`], [`monit`]: the JSON web API and the terminal dashboard, over the client.
//! 8. [`cli`]: the command line and its output; [`runtime`]: `rpm2-runtime` (containers);
//!    [`fuzz`]: the fuzz targets' bodies (cargo-fuzz and a stable `cargo test` driver).

#![warn(missing_docs)]

pub mod base;
pub mod cli;
pub mod client;
pub(crate) mod cluster;
pub mod config;
pub(crate) mod daemon;
pub mod deploy;
pub mod fuzz;
pub mod ipc;
pub(crate) mod logs;
pub(crate) mod monit;
pub mod protocol;
pub mod runtime;
pub(crate) mod supervisor;
pub(crate) mod watch;
pub mod web;

/// The version of rpm2 (the crate version), printed by `rpm2 --version` and exchanged in the hello.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
