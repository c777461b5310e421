//! Health probes (`liveness_probe`, `readiness_probe`), with Kubernetes' field names in snake_case
//! (camelCase is accepted too) and Kubernetes' defaults. A probe has exactly one check: `http_get`,
//! `tcp_socket`, `exec` or `event_loop`. Parsed and validated once by [`super::resolve_app`]; errors
//! name the field (`liveness_probe.period_seconds`) and the value.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    /// `GET path` over plain HTTP; a status from 200 to 399 passes.
    HttpGet {
        /// Host to connect to (`127.0.0.1` unless given). A cluster worker is reached through the
        /// daemon's hand-off instead, whatever the host.
        host: String,
        /// TCP port.
        port: u16,
        /// Request path (starts with `/`).
        path: String,
        /// Extra request headers (`http_headers: [{name, value}]`).
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// A TCP connection to `host:port` passes when it opens.
    TcpSocket {
        /// Host (`127.0.0.1` unless given).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A command (no shell for an array; `sh -c` for a string) passes when it exits with 0.
    Exec {
        /// The program and its arguments.
        command: Vec<String>,
    },
    /// The app's event loop answers: its metrics preload's `axm:monitor` message arrived within
    /// `period + timeout`.
    EventLoop,
}

/// One probe, validated: exactly one check, periods in milliseconds, thresholds at least 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// What is checked.
    pub check: ProbeCheck,
    /// Wait before the first check (`initial_delay_seconds`, default 0).
    pub initial_delay_ms: u64,
    /// Time between checks (`period_seconds`, default 10, more than 0).
    pub period_ms: u64,
    /// A check slower than this fails (`timeout_seconds`, default 1, more than 0).
    pub timeout_ms: u64,
    /// Consecutive failures that make the probe fail (`failure_threshold`, default 3).
    pub failure_threshold: u32,
    /// Consecutive successes that make the probe pass (`success_threshold`, default 1; always 1 for
    /// a liveness probe).
    pub success_threshold: u32,
}

impl Probe {
    /// A short name of the check for messages: `GET /healthz`, `TCP 127.0.0.1:5000`, `exec ./check`,
    /// `event loop`.
    pub fn describe(&self) -> String {
        match &self.check {
            ProbeCheck::HttpGet { path, .. } => format!("GET {path}"),
            ProbeCheck::TcpSocket { host, port } => format!("TCP {host}:{port}"),
            ProbeCheck::Exec { command } => format!("exec {}", command.join(" ")),
            ProbeCheck::EventLoop => "event loop".into(),
        }
    }
}

const CHECKS: [&str; 4] = ["http_get", "tcp_socket", "exec", "event_loop"];
const SETTINGS: [&str; 5] =
    ["initial_delay_seconds", "period_seconds", "timeout_seconds", "failure_threshold", "success_threshold"];

/// `someName` → `some_name` (Kubernetes' manifests are camelCase).
fn snake(k: &str) -> String {
    let mut out = String::with_capacity(k.len() + 4);
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The object at `field` with snake_case keys; an error for anything else.
fn object(v: &Value, field: &str) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(o) => Ok(o.iter().map(|(k, v)| (snake(k), v.clone())).collect()),
        other => Err(format!("field '{field}' must be an object, got {}", short(other))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(57) {
        Some((i, _)) if s.len() > 60 => format!("{}...", &s[..i]),
        _ => s,
    }
}

/// Seconds (a non-negative number; fractions allowed) as ms, `def` when absent; `positive` refuses 0.
fn seconds(o: &Map<String, Value>, key: &str, field: &str, def: u64, positive: bool) -> Result<u64, String> {
    let v = match o.get(key) {
        None | Some(Value::Null) => return Ok(def),
        Some(v) => v,
    };
    let ms = v.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f <= 86_400.0).map(|f| (f * 1000.0).round() as u64);
    match ms {
        Some(ms) if !(positive && ms == 0) => Ok(ms),
        _ => {
            let what = if positive { "a number of seconds greater than 0" } else { "a number of seconds (0 or more)" };
            Err(format!("field '{field}.{key}' must be {what}, got {}", short(v)))
        }
    }
}

/// A count of at least 1, `def` when absent.
fn threshold(o: &Map<String, Value>, key: &str, field: &str, def: u32) -> Result<u32, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(def),
        Some(v) => match v.as_u64().filter(|n| (1..=1_000_000).contains(n)) {
            Some(n) => Ok(n as u32),
            None => Err(format!("field '{field}.{key}' must be a whole number from 1 up, got {}", short(v))),
        },
    }
}

/// `host` (default `127.0.0.1`) and `port` (required, 1-65535) of a network check.
fn host_port(o: &Map<String, Value>, field: &str) -> Result<(String, u16), String> {
    let host = match o.get("host") {
        None | Some(Value::Null) => "127.0.0.1".to_string(),
        Some(Value::String(h)) if !h.trim().is_empty() => h.trim().to_string(),
        Some(v) => return Err(format!("field '{field}.host' must be a host name or address, got {}", short(v))),
    };
    let port = match o.get("port") {
        None | Some(Value::Null) => return Err(format!("field '{field}.port' is missing: say which port to check")),
        Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(p) if (1..=65535).contains(&p) => p as u16,
            _ => return Err(format!("field '{field}.port' must be a port number (1-65535), got {}", short(v))),
        },
    };
    Ok((host, port))
}

/// Refuses keys of `o` not in `known`.
fn only(o: &Map<String, Value>, known: &[&str], field: &str) -> Result<(), String> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("field '{field}.{k}' is not a known setting (expected one of: {})", known.join(", "))),
        None => Ok(()),
    }
}

fn http_get(v: &Value, field: &str) -> Result<ProbeCheck, String> {
    let o = object(v, field)?;
    only(&o, &["host", "port", "path", "scheme", "http_headers"], field)?;
    let (host, port) = host_port(&o, field)?;
    let path = match o.get("path") {
        None | Some(Value::Null) => "/".to_string(),
        Some(Value::String(p)) if p.starts_with('/') && !p.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            p.clone()
        }
        Some(v) => return Err(format!("field '{field}.path' must be a path starting with '/', got {}", short(v))),
    };
    match o.get("scheme") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.eq_ignore_ascii_case("http") => {}
        Some(v) => {
            return Err(format!(
                "field '{field}.scheme' must be \"HTTP\" (rpm2's probes speak plain HTTP), got {}",
                short(v)
            ))
        }
    }
    let mut headers = Vec::new();
    match o.get("http_headers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for h in list {
                let name = h.get("name").and_then(Value::as_str).filter(|n| valid_header_name(n));
                let value = h.get("value").and_then(Value::as_str).filter(|v| !v.chars().any(|c| c.is_control()));
                match (name, value) {
                    (Some(n), Some(v)) => headers.push((n.to_string(), v.to_string())),
                    _ => {
                        return Err(format!(
                            "field '{field}.http_headers' must list {{name, value}} header objects, got {}",
                            short(h)
                        ))
                    }
                }
            }
        }
        Some(v) => return Err(format!("field '{field}.http_headers' must be an array, got {}", short(v))),
    }
    Ok(ProbeCheck::HttpGet { host, port, path, headers })
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn exec(v: &Value, field: &str) -> Result<ProbeCheck, String> {
    let o = object(v, field)?;
    only(&o, &["command"], field)?;
    let bad = |v: &Value| {
        format!(
            "field '{field}.command' must be a non-empty array of strings (or a shell command string), got {}",
            short(v)
        )
    };
    let command = match o.get("command") {
        None | Some(Value::Null) => return Err(format!("field '{field}.command' is missing: say what to run")),
        Some(Value::String(s)) if !s.trim().is_empty() => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => {
            let parts: Option<Vec<String>> = a.iter().map(|x| x.as_str().map(str::to_string)).collect();
            match parts {
                Some(p) if !p[0].is_empty() => p,
                _ => return Err(bad(o.get("command").unwrap_or(&Value::Null))),
            }
        }
        Some(v) => return Err(bad(v)),
    };
    Ok(ProbeCheck::Exec { command })
}

/// Parses the probe declared at `field` (`liveness_probe` or `readiness_probe`). `liveness`: its
/// `success_threshold` must be 1, as in Kubernetes.
pub fn parse_probe(v: &Value, field: &str, liveness: bool) -> Result<Probe, String> {
    let o = object(v, field)?;
    let known: Vec<&str> = CHECKS.iter().chain(SETTINGS.iter()).copied().collect();
    only(&o, &known, field)?;
    let given: Vec<&str> = CHECKS.iter().copied().filter(|c| o.get(*c).is_some_and(|v| !v.is_null())).collect();
    let check = match given.as_slice() {
        [] => return Err(format!("field '{field}' needs one check: http_get, tcp_socket, exec or event_loop")),
        [one] => {
            let sub = format!("{field}.{one}");
            let v = &o[*one];
            match *one {
                "http_get" => http_get(v, &sub)?,
                "tcp_socket" => {
                    let t = object(v, &sub)?;
                    only(&t, &["host", "port"], &sub)?;
                    let (host, port) = host_port(&t, &sub)?;
                    ProbeCheck::TcpSocket { host, port }
                }
                "exec" => exec(v, &sub)?,
                _ => {
                    let e = object(v, &sub)?;
                    only(&e, &[], &sub)?;
                    ProbeCheck::EventLoop
                }
            }
        }
        many => return Err(format!("field '{field}' must have exactly one check, got {}", many.join(" and "))),
    };
    let probe = Probe {
        check,
        initial_delay_ms: seconds(&o, "initial_delay_seconds", field, 0, false)?,
        period_ms: seconds(&o, "period_seconds", field, 10_000, true)?,
        timeout_ms: seconds(&o, "timeout_seconds", field, 1_000, true)?,
        failure_threshold: threshold(&o, "failure_threshold", field, 3)?,
        success_threshold: threshold(&o, "success_threshold", field, 1)?,
    };
    if liveness && probe.success_threshold != 1 {
        return Err(format!(
            "field '{field}.success_threshold' must be 1 for a liveness probe, got {}",
            probe.success_threshold
        ));
    }
    Ok(probe)
}

/// An app's probes: `None` where none is declared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probes {
    /// `liveness_probe`: failing it restarts the instance.
    pub liveness: Option<Probe>,
    /// `readiness_probe`: an instance is online (and gets connections) only while it passes.
    pub readiness: Option<Probe>,
}

impl Probes {
    /// Whether no probe is declared.
    pub fn is_empty(&self) -> bool {
        self.liveness.is_none() && self.readiness.is_none()
    }
}

/// Both probes of a declaration with canonical keys. `node`: the app runs on Node (an `event_loop`
/// check needs the metrics preload, which only Node apps load; `pmx: false` turns it off).
pub fn parse_probes(o: &Map<String, Value>, node: bool) -> Result<Probes, String> {
    let mut out = Probes::default();
    for (field, liveness) in [("liveness_probe", true), ("readiness_probe", false)] {
        let Some(v) = o.get(field).filter(|v| !v.is_null()) else { continue };
        let p = parse_probe(v, field, liveness)?;
        if p.check == ProbeCheck::EventLoop {
            if !node {
                return Err(format!(
                    "field '{field}.event_loop' needs a Node.js app (it is measured by rpm2's preload)"
                ));
            }
            if matches!(o.get("pmx"), Some(Value::Bool(false))) {
                return Err(format!(
                    "field '{field}.event_loop' needs rpm2's metrics preload, which pmx: false turns off"
                ));
            }
        }
        if liveness {
            out.liveness = Some(p);
        } else {
            out.readiness = Some(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(v: Value) -> Result<Probe, String> {
        parse_probe(&v, "liveness_probe", true)
    }

    #[test]
    fn defaults_are_kubernetes_ones() {
        let p = live(json!({"http_get": {"port": 3000, "path": "/healthz"}})).unwrap();
        assert_eq!(
            p.check,
            ProbeCheck::HttpGet { host: "127.0.0.1".into(), port: 3000, path: "/healthz".into(), headers: vec![] }
        );
        assert_eq!((p.initial_delay_ms, p.period_ms, p.timeout_ms), (0, 10_000, 1_000));
        assert_eq!((p.failure_threshold, p.success_threshold), (3, 1));
        assert_eq!(p.describe(), "GET /healthz");
    }

    #[test]
    fn every_check_and_camel_case() {
        let p = live(json!({"tcpSocket": {"port": "5000", "host": "localhost"}, "periodSeconds": 0.5})).unwrap();
        assert_eq!(p.check, ProbeCheck::TcpSocket { host: "localhost".into(), port: 5000 });
        assert_eq!(p.period_ms, 500);
        let p = live(json!({"exec": {"command": ["cat", "/tmp/ok"]}})).unwrap();
        assert_eq!(p.check, ProbeCheck::Exec { command: vec!["cat".into(), "/tmp/ok".into()] });
        let p = live(json!({"exec": {"command": "test -f ok"}})).unwrap();
        assert_eq!(p.check, ProbeCheck::Exec { command: vec!["/bin/sh".into(), "-c".into(), "test -f ok".into()] });
        let p = live(json!({"event_loop": {}, "failure_threshold": 2})).unwrap();
        assert_eq!((p.check, p.failure_threshold), (ProbeCheck::EventLoop, 2));
        let p =
            live(json!({"http_get": {"port": 1, "scheme": "http", "http_headers": [{"name": "X-A", "value": "b"}]}}))
                .unwrap();
        assert!(
            matches!(p.check, ProbeCheck::HttpGet { ref headers, .. } if headers == &[("X-A".to_string(), "b".to_string())])
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cases = [
            (json!(5), "field 'liveness_probe' must be an object"),
            (json!({}), "field 'liveness_probe' needs one check"),
            (json!({"exec": {"command": ["a"]}, "event_loop": {}}), "exactly one check, got exec and event_loop"),
            (json!({"http_get": {"path": "/"}}), "field 'liveness_probe.http_get.port' is missing"),
            (json!({"http_get": {"port": 70000}}), "field 'liveness_probe.http_get.port' must be a port number"),
            (json!({"http_get": {"port": 1, "path": "x"}}), "field 'liveness_probe.http_get.path' must be a path"),
            (
                json!({"http_get": {"port": 1, "scheme": "HTTPS"}}),
                "field 'liveness_probe.http_get.scheme' must be \"HTTP\"",
            ),
            (
                json!({"http_get": {"port": 1, "pth": "/"}}),
                "field 'liveness_probe.http_get.pth' is not a known setting",
            ),
            (json!({"exec": {"command": []}}), "field 'liveness_probe.exec.command' must be a non-empty array"),
            (json!({"event_loop": {"x": 1}}), "field 'liveness_probe.event_loop.x' is not a known setting"),
            (
                json!({"event_loop": {}, "period_seconds": 0}),
                "field 'liveness_probe.period_seconds' must be a number of seconds greater than 0",
            ),
            (json!({"event_loop": {}, "timeout_seconds": "1"}), "field 'liveness_probe.timeout_seconds' must be"),
            (
                json!({"event_loop": {}, "initial_delay_seconds": -1}),
                "field 'liveness_probe.initial_delay_seconds' must be",
            ),
            (
                json!({"event_loop": {}, "failure_threshold": 0}),
                "field 'liveness_probe.failure_threshold' must be a whole number",
            ),
            (
                json!({"event_loop": {}, "success_threshold": 2}),
                "field 'liveness_probe.success_threshold' must be 1 for a liveness probe",
            ),
            (
                json!({"event_loop": {}, "perod_seconds": 2}),
                "field 'liveness_probe.perod_seconds' is not a known setting",
            ),
        ];
        for (v, want) in cases {
            let e = live(v.clone()).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // A readiness probe may ask for several successes.
        let p = parse_probe(&json!({"event_loop": {}, "success_threshold": 2}), "readiness_probe", false).unwrap();
        assert_eq!(p.success_threshold, 2);
    }

    #[test]
    fn event_loop_needs_node_and_the_preload() {
        let mut o = Map::new();
        o.insert("readiness_probe".into(), json!({"event_loop": {}}));
        assert!(parse_probes(&o, false).unwrap_err().contains("needs a Node.js app"));
        assert!(parse_probes(&o, true).unwrap().readiness.is_some());
        o.insert("pmx".into(), json!(false));
        assert!(parse_probes(&o, true).unwrap_err().contains("pmx: false"));
        assert!(parse_probes(&Map::new(), true).unwrap().is_empty());
    }
}
