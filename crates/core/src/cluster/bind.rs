//! What a worker's `queryServer` asks for: Node's server key, and binding the socket the way Node's
//! `_createServerHandle` does.

use super::*;

/// `undefined`/`null`/value as JavaScript's template strings print them.
pub(super) fn js_str(v: Option<&Value>) -> String {
    match v {
        None => "undefined".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// Node's key for a `queryServer`: `${address}:${port}:${addressType}:${fd}:${index}`.
pub fn server_key(q: &Value) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        js_str(q.get("address")),
        js_str(q.get("port")),
        js_str(q.get("addressType")),
        js_str(q.get("fd")),
        js_str(q.get("index"))
    )
}

pub(super) fn neg_errno(e: &std::io::Error) -> i64 {
    -(e.raw_os_error().unwrap_or(libc::EINVAL) as i64)
}

pub(super) enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
    Udp(std::net::UdpSocket),
}

/// Binds what a `queryServer` asks for, the way Node's `_createServerHandle` does.
pub(super) fn bind(q: &Value) -> std::io::Result<Bound> {
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    if let Some(fd) = q.get("fd").and_then(|v| v.as_i64()) {
        if fd >= 0 {
            return Err(einval());
        }
    }
    let address = q.get("address").and_then(|v| v.as_str());
    let port = q.get("port").and_then(|v| v.as_i64()).unwrap_or(0);
    match q.get("addressType") {
        Some(Value::String(t)) if t == "udp4" || t == "udp6" => {
            let host = address.unwrap_or(if t == "udp6" { "::" } else { "0.0.0.0" });
            let addr = format!("{}:{}", if host.contains(':') { format!("[{host}]") } else { host.to_string() }, port);
            Ok(Bound::Udp(std::net::UdpSocket::bind(addr)?))
        }
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => {
            let path = address.ok_or_else(einval)?;
            Ok(Bound::Unix(std::os::unix::net::UnixListener::bind(path)?))
        }
        _ => {
            if !(0..=65535).contains(&port) {
                return Err(einval());
            }
            let l = match address {
                None => std::net::TcpListener::bind(format!("[::]:{port}"))
                    .or_else(|_| std::net::TcpListener::bind(format!("0.0.0.0:{port}")))?,
                Some(h) if h.contains(':') => std::net::TcpListener::bind(format!("[{h}]:{port}"))?,
                Some(h) => std::net::TcpListener::bind(format!("{h}:{port}"))?,
            };
            Ok(Bound::Tcp(l))
        }
    }
}

pub(super) fn sockname(l: &std::net::TcpListener) -> Value {
    match l.local_addr() {
        Ok(a) => json!({
            "address": a.ip().to_string(),
            "family": if a.is_ipv6() { "IPv6" } else { "IPv4" },
            "port": a.port(),
        }),
        Err(_) => Value::Null,
    }
}
