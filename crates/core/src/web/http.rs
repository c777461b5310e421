//! A small HTTP/1.1 reader and writer: request heads with strict limits, bearer tokens, replies.

use super::*;

/// One parsed request head.
#[derive(Debug, PartialEq)]
pub struct Head {
    /// Method (`GET`, ...).
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Whether the client asked to keep the connection open (HTTP/1.1 default).
    pub keep_alive: bool,
    /// Whether the request has a body (which we do not read: the connection is closed after it).
    pub has_body: bool,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Accept` header (several are joined with `,`, as HTTP allows).
    pub accept: Option<String>,
    /// The `Host` header.
    pub host: Option<String>,
}

/// Why a request head is refused: the status to answer before closing.
#[derive(Debug, PartialEq)]
pub enum HeadError {
    /// 400: not HTTP.
    Bad(&'static str),
    /// 505: not HTTP/1.x.
    Version,
}

/// Parses a request head (the bytes before the blank line).
pub fn parse_head(raw: &[u8]) -> std::result::Result<Head, HeadError> {
    let text = std::str::from_utf8(raw).map_err(|_| HeadError::Bad("the request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(HeadError::Bad("empty request"))?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HeadError::Bad("malformed method"));
    }
    if !target.starts_with('/') && target != "*" {
        return Err(HeadError::Bad("malformed request target"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Err(HeadError::Version),
        _ => return Err(HeadError::Bad("malformed HTTP version")),
    };
    let mut keep_alive = http11;
    let mut has_body = false;
    let mut authorization = None;
    let mut accept: Option<String> = None;
    let mut host = None;
    let mut count = 0;
    for l in lines {
        if l.is_empty() {
            continue;
        }
        count += 1;
        if count > 100 {
            return Err(HeadError::Bad("too many headers"));
        }
        let (k, v) = l.split_once(':').ok_or(HeadError::Bad("malformed header"))?;
        if k.is_empty() || k.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(HeadError::Bad("malformed header name"));
        }
        let v = v.trim();
        match k.to_ascii_lowercase().as_str() {
            "connection" => {
                let v = v.to_ascii_lowercase();
                if v.split(',').any(|t| t.trim() == "close") {
                    keep_alive = false;
                } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                    keep_alive = true;
                }
            }
            "content-length" => {
                let n: u64 = v.parse().map_err(|_| HeadError::Bad("malformed Content-Length"))?;
                has_body |= n > 0;
            }
            "transfer-encoding" => has_body = true,
            "authorization" => authorization = Some(v.to_string()),
            "host" => host = Some(v.to_string()),
            "accept" => {
                accept = Some(match accept {
                    Some(a) => format!("{a},{v}"),
                    None => v.to_string(),
                })
            }
            _ => {}
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    Ok(Head { method: method.to_string(), path, keep_alive, has_body, authorization, accept, host })
}

/// Whether a `Host` header names this machine by address or as `localhost` (any port), as a page
/// opened on the server's own address or through an SSH tunnel does. A DNS name is refused: a page
/// of another site that re-points its name at 127.0.0.1 (DNS rebinding) sends that name. No header
/// (HTTP/1.0) passes.
pub fn host_is_address(host: Option<&str>) -> bool {
    let Some(h) = host.map(str::trim) else { return true };
    let name = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => ip,
            _ => return false,
        }
    } else {
        match h.split_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => h,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a request with this `Accept` header gets the dashboard page rather than the JSON payload:
/// only when it names `text/html` itself (a browser) with a quality above that of `application/json`.
/// Wildcards (`*/*`, curl's default), no header, JSON named as high or higher: the JSON, as before.
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut html, mut json) = (None::<f32>, None::<f32>);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse::<f32>().ok().filter(|q| q.is_finite()).unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
        }
        let slot = match media.as_str() {
            "text/html" | "application/xhtml+xml" => &mut html,
            "application/json" => &mut json,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
    }
    html.is_some_and(|h| h > json.unwrap_or(0.0))
}

/// Constant-time check of `Authorization: Bearer <token>`.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(h) = header else { return false };
    let Some((scheme, given)) = h.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Finds the end of a request head (index just past the blank line).
pub(super) fn head_end(buf: &[u8]) -> Option<usize> {
    let a = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let b = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Reads the next request head of a connection into `buf` (which keeps bytes read past it): the
/// first within [`HEAD_TIMEOUT`], later ones (`served` > 0) after at most [`IDLE_TIMEOUT`] idle.
/// On a bad, oversized or late head it answers the error itself; None means: close the connection.
pub(super) async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, served: usize) -> Option<Head> {
    let deadline = tokio::time::Instant::now() + if served == 0 { HEAD_TIMEOUT } else { IDLE_TIMEOUT };
    let end = loop {
        let found = head_end(buf);
        if found.map(|e| e > MAX_HEAD).unwrap_or(buf.len() > MAX_HEAD) {
            let r = Reply::json(431, json!({"err": "request head too large"}));
            let _ = write_reply(stream, &r, false, false).await;
            return None;
        }
        if found.is_some() {
            break found;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break None,
        }
    };
    let Some(end) = end else {
        if !buf.is_empty() {
            let r = Reply::json(408, json!({"err": "request head not received in time"}));
            let _ = write_reply(stream, &r, false, false).await;
        }
        return None;
    };
    let head = match parse_head(&buf[..end]) {
        Ok(h) => h,
        Err(e) => {
            let r = match e {
                HeadError::Bad(why) => Reply::json(400, json!({"err": why})),
                HeadError::Version => Reply::json(505, json!({"err": "only HTTP/1.0 and HTTP/1.1 are served"})),
            };
            let _ = write_reply(stream, &r, false, false).await;
            return None;
        }
    };
    buf.drain(..end);
    Some(head)
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: Vec<u8>,
    pub(super) extra: Vec<(&'static str, String)>,
}

impl Reply {
    pub(super) fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(&v).unwrap_or_default(),
            extra: vec![],
        }
    }
}

pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        403 => "Forbidden",
        500 => "Internal Server Error",
        413 => "Payload Too Large",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

pub(super) async fn write_reply(stream: &mut TcpStream, r: &Reply, head_only: bool, keep_alive: bool) -> bool {
    let mut h = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (k, v) in &r.extra {
        let _ = write!(h, "{k}: {v}\r\n");
    }
    h.push_str("\r\n");
    let mut bytes = h.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&r.body);
    }
    matches!(tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await, Ok(Ok(())))
}
