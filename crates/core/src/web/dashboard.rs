//! The dashboard: the page a browser gets at `GET /` (one HTML document with its style and script
//! inlined, all embedded in the executable: no CDN, works offline) and the actions it sends
//! (`POST /api/<restart|reload|stop|start|flush>/<pm_id>`).
//!
//! The page itself holds no data (it is served without a token, so a browser can load it); what it
//! shows comes from `/events`, and what it does goes through the actions, both under the token
//! rules. Actions are off unless the server has a token, and then need it in the `Authorization`
//! header (never a cookie, so another site cannot act for the user: a cross-site form cannot set
//! that header).

use super::server::State;
use super::*;
use crate::client::operate::{self, Method, OperateOptions, Target};
use crate::client::start::Conn;
use crate::client::RpcError;

const INDEX: &str = include_str!("ui/index.html");
const STYLE: &str = include_str!("ui/app.css");
const SCRIPT: &str = include_str!("ui/app.js");

/// The actions of the page, as `POST /api/<action>/<pm_id>`.
pub(super) const ACTIONS: [&str; 5] = ["restart", "reload", "stop", "start", "flush"];

/// The page with its style and script in place (the nonce and auth mode still to fill).
fn template() -> &'static str {
    static T: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    T.get_or_init(|| INDEX.replace("{{STYLE}}", STYLE).replace("{{SCRIPT}}", SCRIPT))
}

/// A fresh random nonce (hex) for the page's Content-Security-Policy.
fn nonce() -> String {
    use std::io::Read as _;
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        // No /dev/urandom: the time and pid still differ per answer (the page has no injected data,
        // the nonce is defence in depth).
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `GET /` for a browser: the page, with a nonce-based Content-Security-Policy (no other origin, no
/// inline code but the page's own), not frameable. `token` says whether the page must ask for it.
pub(super) fn page(token: bool) -> Reply {
    let nonce = nonce();
    let body = template().replace("{{NONCE}}", &nonce).replace("{{AUTH}}", if token { "token" } else { "none" });
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: body.into_bytes(),
        extra: vec![
            ("Content-Security-Policy", csp),
            ("X-Frame-Options", "DENY".into()),
            ("Referrer-Policy", "no-referrer".into()),
        ],
    }
}

/// Why an action is refused before it runs (the reply to send), or None when it may run.
pub(super) fn action_refusal(token: Option<&str>, authorization: Option<&str>) -> Option<Reply> {
    let Some(token) = token else {
        return Some(Reply::json(
            403,
            json!({"err": "actions are off: start the server with a token (`rpm2 web --token <secret>`) to enable them"}),
        ));
    };
    if !authorized(authorization, token) {
        let mut r = Reply::json(401, json!({"err": "unauthorized: send Authorization: Bearer <token>"}));
        r.extra.push(("WWW-Authenticate", "Bearer realm=\"rpm2\"".into()));
        return Some(r);
    }
    None
}

/// Splits `/api/<action>/<pm_id>` (None when it is not one).
pub(super) fn parse_action(path: &str) -> Option<(&'static str, u32)> {
    let rest = path.strip_prefix("/api/")?;
    let (action, id) = rest.split_once('/')?;
    let action = ACTIONS.iter().find(|a| **a == action)?;
    let id = id.parse::<u32>().ok().filter(|_| id.bytes().all(|b| b.is_ascii_digit()))?;
    Some((action, id))
}

/// `POST /api/<action>/<pm_id>`: the token checks, then the action through the same core flow as the
/// CLI (`start` of a known process is a restart, as `rpm2 start <id>`).
pub(super) async fn action(state: &State, head: &Head) -> Reply {
    if let Some(r) = action_refusal(state.opts.token.as_deref(), head.authorization.as_deref()) {
        return r;
    }
    let Some((action, id)) = parse_action(&head.path) else {
        return Reply::json(
            404,
            json!({"err": format!("no such action: use POST /api/<{}>/<pm_id>", ACTIONS.join("|"))}),
        );
    };
    let home = state.home.clone();
    let done = tokio::task::spawn_blocking(move || run_action(&home, action, id)).await;
    state.hub.wake();
    match done {
        Ok(Ok(v)) => Reply::json(200, json!({"ok": true, "action": action, "processes": v})),
        Ok(Err(e)) => {
            let status = match e.downcast_ref::<RpcError>().map(|r| r.code.as_str()) {
                Some("not_found") => 404,
                Some(_) => 500,
                None if !crate::client::is_running(&state.home) => 503,
                None => 500,
            };
            Reply::json(status, json!({"err": format!("{action} of process {id} failed: {e:#}")}))
        }
        Err(e) => Reply::json(500, json!({"err": format!("internal error: {e}")})),
    }
}

fn run_action(home: &Home, action: &str, id: u32) -> Result<Value> {
    let open = || -> Result<Client> { Client::connect(home) };
    let mut conn = Conn::new(&open);
    let got = match action {
        "flush" => conn.get().and_then(|c| c.call("flush", json!({"targets": [id.to_string()]}))),
        _ => {
            let method = match action {
                "stop" => Method::Stop,
                "reload" => Method::Reload,
                _ => Method::Restart,
            };
            let targets = [Target::Name(id.to_string())];
            operate::operate(&mut conn, method, &targets, &OperateOptions::default(), &mut |_| {}).map(Value::from)
        }
    };
    conn.close();
    got
}
