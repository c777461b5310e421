//! The bottom floor: what every other module may use and which uses nothing of rpm2 above it.
//!
//! - [`paths`]: where `RPM2_HOME` and its files are, created with safe permissions; atomic writes.
//! - [`fmt`]: times, sizes and durations as PM2 prints them; terminal colours.
//! - [`table`]: the boxed tables of `list` and `show`.
//! - [`procinfo`]: CPU and memory of a process tree, read from /proc.
//! - [`platform`]: every Linux-only call, each with its fallback for other Unix systems.
//! - [`dlog`]: one line to the daemon log.

pub mod fmt;
pub mod paths;
pub mod platform;
pub mod procinfo;
pub mod table;

/// Writes one line to the daemon log through the `log` facade. In the daemon the line goes to
/// `RPM2_HOME/rpm2.log` with a timestamp (the sink is installed by `logs::install_daemon_logger`);
/// in any other process, where no sink is installed, it is dropped. Never blocks on the network and
/// never panics, even when the disk is full.
pub fn dlog(msg: impl std::fmt::Display) {
    log::info!("{msg}");
}
