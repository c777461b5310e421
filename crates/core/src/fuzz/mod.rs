//! The bodies of the fuzz targets, one function per target, so that one body serves two drivers:
//! cargo-fuzz on a nightly toolchain (`fuzz/fuzz_targets/<name>.rs` calls [`run`] or the function
//! itself; long runs with `scripts/fuzz.sh`), and a stable `cargo test` (this module's tests) that
//! replays the seed corpus in `fuzz/corpus/<name>/` and then feeds each body mutated inputs from a
//! seeded PRNG for a bounded time (`RPM2_FUZZ_SECS` per target, 3 s by default; CI sets 15). Either
//! way a panic is a failure and its input is kept to become a seed (a regression test).
//!
//! Every function here accepts any bytes and never panics (that is what the drivers check); what it
//! exercises is said on each.

use crate::config::ecosystem::{parse_text, shape, Kind};
use crate::config::{resolve_app, ResolveCtx};
use crate::protocol::request::Method;
use crate::protocol::Request;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[cfg(test)]
mod tests;

/// The fuzz targets by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`).
pub const TARGETS: [&str; 6] = ["ecosystem", "resolve", "ipc", "protocol", "http", "units"];

/// Runs the body of the target `name` on `data`; false when no target has that name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "ecosystem" => ecosystem(data),
        "resolve" => resolve(data),
        "ipc" => ipc(data),
        "protocol" => protocol(data),
        "http" => http(data),
        "units" => units(data),
        _ => return false,
    }
    true
}

/// Ecosystem data formats (JSON, JSON5, YAML) and their shaping into apps: any text.
pub fn ecosystem(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for kind in [Kind::Json5, Kind::Yaml] {
        if let Ok(v) = parse_text(text, kind) {
            let _ = shape(v, Path::new("fuzz.json"));
        }
    }
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let _ = shape(v, Path::new("fuzz.json"));
    }
}

/// A scratch folder holding `app.js`, for the paths the resolver checks.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rpm2-fuzz-resolve-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        let _ = std::fs::write(d.join("app.js"), "setInterval(() => {}, 1000)\n");
        d
    })
}

/// The option resolver (`config::resolve_app`) on any app object, given as JSON5 text (so seeds can
/// be written by hand); paths resolve against a scratch folder holding `app.js`. At most 8 apps.
pub fn resolve(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(v) = parse_text(text, Kind::Json5) else { return };
    let Ok(eco) = shape(v, Path::new("fuzz.json")) else { return };
    let ctx = ResolveCtx {
        cwd: scratch().clone(),
        env: BTreeMap::from([("HOME".to_string(), "/nonexistent".to_string())]),
        env_name: Some("production".into()),
    };
    for app in eco.apps.iter().take(8) {
        let _ = resolve_app(app, &ctx);
    }
}

/// The IPC decoder: whatever a child writes on its channel (garbage, long lines, invalid UTF-8,
/// handle lines without fds). The first byte picks the read size, so lines are split across reads
/// in many ways.
pub fn ipc(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else { return };
    let size = 1 + k as usize * 7;
    let chunks: Vec<&[u8]> = rest.chunks(size).collect();
    let _ = crate::ipc::decode_child_bytes(&chunks);
}

/// The control-socket protocol: a request line into [`Request`], then into a typed [`Method`].
pub fn protocol(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<Request>(data) else { return };
    if let Ok(m) = Method::parse(&req.method, req.params) {
        let _ = m.name();
        let _ = m.is_read_only();
    }
}

/// The web server's request head parser and its token check.
pub fn http(data: &[u8]) {
    let _ = crate::web::parse_head(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::web::authorized(Some(s), "token");
        let _ = crate::web::wants_html(Some(s));
        let _ = crate::web::host_is_address(Some(s));
    }
}

/// Small parsers of user text: cron patterns (and their next fire time), sizes, watch delays,
/// shell words, names, ids and scale counts.
pub fn units(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(sched) = crate::config::cron::Schedule::parse(s) {
        let _ = sched.next_after(&chrono::Local::now());
    }
    let _ = crate::config::cron::validate(s);
    let v = Value::String(s.to_string());
    let _ = crate::config::parse_size(&v);
    let _ = crate::config::watch_options::delay_ms(Some(&v));
    let _ = crate::config::watch_options::poll_option(Some(&v));
    let _ = crate::config::shell_split(s);
    let _ = crate::config::names::check_name(s);
    let _ = crate::config::names::parse_id(s, "id");
    let _ = crate::config::names::parse_scale(s);
}
