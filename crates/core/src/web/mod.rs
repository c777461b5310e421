//! `rpm2 web`: the JSON web API (the payload of PM2's `HttpInterface`), Prometheus metrics and a live
//! dashboard for browsers, served by a process of its own (`rpm2d --web-server`), managed like any
//! app under the name [`APP_NAME`]. The server is a client of the daemon: it holds no daemon lock; a
//! flood of HTTP requests costs the daemon at most two `list` calls a second (answers are cached
//! briefly and concurrent requests share one fetch), and open dashboards one more a second however
//! many they are (one snapshot per server, plus one bus subscription).
//!
//! Safe by default: binds 127.0.0.1; a bearer token (`--token` or `RPM2_WEB_TOKEN`) is optional on
//! loopback and required anywhere else; env values are hidden unless `--show-env`; no CORS headers.
//!
//! Routes: `GET /` (PM2's payload; the dashboard page for a browser, which names `text/html` in
//! `Accept`), `GET /metrics` (Prometheus text format 0.0.4), `GET /events` (the dashboard's live
//! stream, server-sent events), `POST /api/<action>/<pm_id>` (the dashboard's actions: only with a
//! token), anything else 404 `{"err":"404"}`. HTTP/1.1 with keep-alive, request heads of at most
//! 16 KiB read within 10 s, at most [`MAX_CONNECTIONS`] connections at once (the rest wait in the
//! listen backlog).

use crate::base::fmt::now_ms;
use crate::base::paths::Home;
use crate::client::Client;
use crate::protocol::Pm2Process;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod command;
mod dashboard;
mod events;
mod http;
mod metrics;
mod payload;
mod serve;
mod server;
pub use self::command::{command, WebArgs};
use self::http::*;
pub use self::http::{authorized, host_is_address, parse_head, wants_html, Head};
pub use self::metrics::{render_metrics, DaemonFigures};
pub use self::payload::root_payload;
use self::payload::*;
pub use self::serve::{command as serve_command, serve_main, ServeArgs, SERVE_FLAG};
pub use self::server::{check_exposure, parse_host, server_main};

#[cfg(test)]
mod tests;

/// The process-list name of the web server, as PM2's (`pm2-http-interface`).
pub const APP_NAME: &str = "rpm2-http-interface";
/// The default port, as PM2's.
pub const DEFAULT_PORT: u16 = 9615;
/// The environment variable that holds the bearer token.
pub const TOKEN_ENV: &str = "RPM2_WEB_TOKEN";
/// The hidden argument that runs the server (`rpm2d --web-server --port P --host H [--show-env]`).
pub const SERVER_FLAG: &str = "--web-server";
/// The line the server prints on stdout once it listens (`rpm2 web` waits for it).
pub const READY_LINE: &str = "rpm2 web: listening on";

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
const MAX_HEAD: usize = 16 * 1024;
const MAX_REQUESTS_PER_CONN: usize = 1000;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const CACHE_TTL: Duration = Duration::from_millis(500);
const HIDDEN: &str = "[hidden]";
