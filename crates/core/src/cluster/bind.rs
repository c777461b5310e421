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

/// A server key as people read it in the daemon log: `0.0.0.0:9000`, `[::1]:80`, `udp4 0.0.0.0:53`,
/// or a socket path; never `null`/`undefined` (an absent address is the wildcard one).
pub(crate) fn key_display(key: &str) -> String {
    // `${address}:${port}:${addressType}:${fd}:${index}`: the address may itself hold colons (IPv6).
    let mut parts = key.rsplitn(5, ':');
    let (_index, _fd, kind, port, address) = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next());
    let (Some(kind), Some(port), Some(address)) = (kind, port, address) else {
        return key.to_string();
    };
    let known = |s: &str| !s.is_empty() && s != "null" && s != "undefined";
    if kind == "-1" {
        return if known(address) { address.to_string() } else { "a unix socket".into() };
    }
    let udp = kind == "udp4" || kind == "udp6";
    let host = match (known(address), kind) {
        (true, _) => address.to_string(),
        (false, "6" | "udp6") => "::".to_string(),
        _ => "0.0.0.0".to_string(),
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let port = if known(port) { port } else { "0" };
    if udp {
        format!("{kind} {host}:{port}")
    } else {
        format!("{host}:{port}")
    }
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

#[cfg(test)]
mod key_tests {
    use super::key_display;

    #[test]
    fn keys_read_as_addresses() {
        assert_eq!(key_display("null:9000:4:undefined:0"), "0.0.0.0:9000");
        assert_eq!(key_display("::1:80:6:undefined:0"), "[::1]:80");
        assert_eq!(key_display("127.0.0.1:3000:4:undefined:2"), "127.0.0.1:3000");
        assert_eq!(key_display("null:53:udp4:undefined:0"), "udp4 0.0.0.0:53");
        assert_eq!(key_display("/tmp/app.sock:undefined:-1:undefined:0"), "/tmp/app.sock");
    }
}
