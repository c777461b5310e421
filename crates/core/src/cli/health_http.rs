//! `rpm2-runtime --health-port N`: a tiny HTTP server for Kubernetes' own probes. `GET /healthz`
//! answers 200 while the daemon answers and no app is `errored`; `GET /readyz` answers 200 while
//! every instance is online and (when it declares a readiness probe) ready. Anything else is 404.
//! One thread, one connection at a time, each bounded by a 2-second timeout; every answer asks the
//! daemon afresh (one `list`).

use crate::base::paths::Home;
use crate::client::Client;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Binds `host:port` and serves the two routes on a thread of its own, for the life of the process.
/// Fails only when the port cannot be bound.
pub fn serve(home: &Home, host: &str, port: u16) -> Result<()> {
    let listener =
        TcpListener::bind((host, port)).with_context(|| format!("cannot listen on {host}:{port} for --health-port"))?;
    let home = home.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            answer(&home, conn);
        }
    });
    Ok(())
}

/// Whether the app list is healthy (`/healthz`) and ready (`/readyz`), with a short reason when not.
pub(crate) fn verdicts(list: &Value) -> (Result<(), String>, Result<(), String>) {
    let procs = list.as_array().cloned().unwrap_or_default();
    let name = |p: &Value| format!("{}:{}", p["name"].as_str().unwrap_or("?"), p["pm_id"]);
    let health = match procs.iter().find(|p| p["pm2_env"]["status"] == "errored") {
        Some(p) => Err(format!("{} is errored", name(p))),
        None => Ok(()),
    };
    let ready = if procs.is_empty() {
        Err("no app is declared".to_string())
    } else {
        match procs.iter().find(|p| {
            p["pm2_env"]["status"] != "online" || p["pm2_env"]["readiness"].as_str().is_some_and(|r| r != "ready")
        }) {
            Some(p) => {
                let st = p["pm2_env"]["status"].as_str().unwrap_or("?");
                let r = p["pm2_env"]["readiness"].as_str().map(|r| format!(", {r}")).unwrap_or_default();
                Err(format!("{} is {st}{r}", name(p)))
            }
            None => Ok(()),
        }
    };
    (health, ready)
}

fn answer(home: &Home, mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") && buf.len() < 8192 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(buf.split(|b| *b == b'\n').next().unwrap_or(&[])).to_string();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (code, body) = match (method, path) {
        ("GET" | "HEAD", "/healthz" | "/readyz") => {
            match Client::connect(home).and_then(|mut c| c.call("list", json!({}))) {
                Err(e) => (503, format!("daemon not answering: {e:#}")),
                Ok(list) => {
                    let (health, ready) = verdicts(&list);
                    match if path == "/healthz" { health } else { ready } {
                        Ok(()) => (200, "ok".to_string()),
                        Err(why) => (503, why),
                    }
                }
            }
        }
        ("GET" | "HEAD", _) => (404, "not found: try /healthz or /readyz".to_string()),
        _ => (405, "only GET".to_string()),
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let body = format!("{body}\n");
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = conn.write_all(body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::verdicts;
    use serde_json::json;

    #[test]
    fn health_and_readiness_of_a_list() {
        let p = |status: &str, readiness: Option<&str>| {
            let mut env = json!({"status": status});
            if let Some(r) = readiness {
                env["readiness"] = json!(r);
            }
            json!({"name": "a", "pm_id": 0, "pm2_env": env})
        };
        let (h, r) = verdicts(&json!([p("online", None), p("online", Some("ready"))]));
        assert!(h.is_ok() && r.is_ok());
        let (h, r) = verdicts(&json!([p("online", Some("not ready"))]));
        assert!(h.is_ok());
        assert_eq!(r.unwrap_err(), "a:0 is online, not ready");
        let (h, r) = verdicts(&json!([p("errored", None)]));
        assert_eq!(h.unwrap_err(), "a:0 is errored");
        assert!(r.is_err());
        let (h, r) = verdicts(&json!([]));
        assert!(h.is_ok() && r.is_err());
    }
}
