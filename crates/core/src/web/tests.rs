use super::*;
use crate::web::server::{parse_server_args, redact, ServerOpts};

#[test]
fn parses_heads() {
    let h = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer abc\r\n\r\n").unwrap();
    assert_eq!(h.method, "GET");
    assert_eq!(h.path, "/metrics");
    assert!(h.keep_alive);
    assert!(!h.has_body);
    assert_eq!(h.authorization.as_deref(), Some("Bearer abc"));
    let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(!h.keep_alive);
    let h = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n").unwrap();
    assert!(h.has_body);
    assert!(!h.keep_alive);
    assert!(matches!(parse_head(b"garbage\r\n\r\n"), Err(HeadError::Bad(_))));
    assert!(matches!(parse_head(b"GET / HTTP/2.0\r\n\r\n"), Err(HeadError::Version)));
    assert!(matches!(parse_head(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), Err(HeadError::Bad(_))));
    assert!(matches!(parse_head(b"get / HTTP/1.1\r\n\r\n"), Err(HeadError::Bad(_))));
    assert!(matches!(parse_head(&[0xff, 0xfe, b'\r', b'\n']), Err(HeadError::Bad(_))));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
}

#[test]
fn checks_tokens() {
    assert!(authorized(Some("Bearer s3cret"), "s3cret"));
    assert!(authorized(Some("bearer s3cret"), "s3cret"));
    assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
    assert!(!authorized(Some("Bearer s3cretX"), "s3cret"));
    assert!(!authorized(Some("Basic s3cret"), "s3cret"));
    assert!(!authorized(None, "s3cret"));
}

#[test]
fn refuses_public_addresses_without_token() {
    let any = parse_host("0.0.0.0").unwrap();
    assert!(check_exposure(any, 9615, None).is_err());
    assert!(check_exposure(any, 9615, Some("")).is_err());
    assert!(check_exposure(any, 9615, Some("t")).is_ok());
    assert!(check_exposure(parse_host("localhost").unwrap(), 9615, None).is_ok());
    assert!(check_exposure(parse_host("::1").unwrap(), 9615, None).is_ok());
    assert!(parse_host("example.com").is_err());
    let o = parse_server_args(&["--port".into(), "0".into(), "--show-env".into()], Some("t".into())).unwrap();
    assert_eq!(o.port, 0);
    assert!(o.show_env);
    assert_eq!(o.token.as_deref(), Some("t"));
    assert!(parse_server_args(&["--port".into(), "x".into()], None).is_err());
    let e = parse_server_args(&["--port".into(), "x".into()], None).unwrap_err().to_string();
    assert!(e.contains("--port must be a port number (0-65535), got 'x'"), "{e}");
    let e = parse_server_args(&["--bogus".into()], None).unwrap_err().to_string();
    assert!(e.contains("--bogus"), "{e}");
    assert!(parse_server_args(&["--host".into()], None).is_err());
    assert!(parse_server_args(&["--host".into(), "nowhere".into()], None)
        .unwrap_err()
        .to_string()
        .contains("--host must be an IP address"));
    // Defaults, `localhost`, the last of a repeated option, and an empty token meaning none.
    let o = parse_server_args(&[], Some(String::new())).unwrap();
    assert_eq!(o, ServerOpts { host: IpAddr::from([127, 0, 0, 1]), port: DEFAULT_PORT, token: None, show_env: false });
    let args: Vec<String> =
        ["--host", "::1", "--port", "80", "--port", "81", "--host", "localhost"].map(String::from).to_vec();
    let o = parse_server_args(&args, None).unwrap();
    assert_eq!((o.host, o.port), (IpAddr::from([127, 0, 0, 1]), 81));
}

#[test]
fn redacts_env() {
    let mut l = json!([{"pm2_env": {"env": {"A": "1", TOKEN_ENV: "t"}}}]);
    redact(&mut l, false);
    assert_eq!(l[0]["pm2_env"]["env"]["A"], HIDDEN);
    let mut l = json!([{"pm2_env": {"env": {"A": "1", TOKEN_ENV: "t"}}}]);
    redact(&mut l, true);
    assert_eq!(l[0]["pm2_env"]["env"]["A"], "1");
    assert_eq!(l[0]["pm2_env"]["env"][TOKEN_ENV], HIDDEN);
    // The top-level copies of env keys are hidden with them; a field of the same name is left alone.
    let mut l = json!([{"pm2_env": {"name": "api", "A": "1", TOKEN_ENV: "t", "env": {"A": "1", "name": "api", TOKEN_ENV: "t"}}}]);
    redact(&mut l, true);
    assert_eq!(l[0]["pm2_env"]["A"], "1");
    assert_eq!(l[0]["pm2_env"][TOKEN_ENV], HIDDEN);
    redact(&mut l, false);
    assert_eq!(l[0]["pm2_env"]["A"], HIDDEN);
    assert_eq!(l[0]["pm2_env"]["name"], "api");
}

#[test]
fn renders_metrics() {
    let mut p = crate::protocol::process::tests::sample();
    (p.pid, p.name, p.pm_id) = (42, "a\"b".into(), 3);
    p.monit = crate::protocol::Monit { memory: 1000, cpu: 1.5 };
    (p.pm2_env.status, p.pm2_env.restart_time, p.pm2_env.unstable_restarts) = ("online".into(), 2, 0);
    p.pm2_env.pm_uptime = now_ms();
    p.pm2_env.axm_monitor = json!({"Heap Size": {"value": "5.73", "unit": "MiB"}, "txt": {"value": "n/a"}});
    let t = render_metrics(&[p], &DaemonFigures { pid: 1, version: "x".into(), ..Default::default() });
    assert!(t.contains("# TYPE rpm2_process_cpu_percent gauge\n"));
    assert!(t.contains(
        "rpm2_process_memory_bytes{pm_id=\"3\",name=\"a\\\"b\",namespace=\"default\",exec_mode=\"fork\"} 1000\n"
    ));
    assert!(t.contains("status=\"online\"} 1\n"));
    assert!(t.contains("status=\"errored\"} 0\n"));
    assert!(t.contains("metric=\"Heap Size\",unit=\"MiB\"} 5.73\n"));
    assert!(!t.contains("metric=\"txt\""));
    assert!(t.contains("rpm2_processes{status=\"online\"} 1\n"));
}

#[test]
fn system_payload_has_pm2_shape() {
    let p = root_payload(&json!([]));
    assert!(p["system_info"]["hostname"].is_string());
    assert!(p["system_info"]["uptime"].as_f64().unwrap() > 0.0);
    assert_eq!(p["monit"]["loadavg"].as_array().unwrap().len(), 3);
    assert!(p["monit"]["total_mem"].as_u64().unwrap() > 0);
    let cpus = p["monit"]["cpu"].as_array().unwrap();
    assert!(!cpus.is_empty());
    assert!(cpus[0]["times"]["idle"].is_u64());
    assert!(p["monit"]["interfaces"].is_object());
}

#[test]
fn negotiates_html_only_for_browsers() {
    // Browsers name text/html.
    assert!(wants_html(Some("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8")));
    assert!(wants_html(Some("text/html")));
    assert!(wants_html(Some("TEXT/HTML; q=0.5, */*;q=0.1")));
    assert!(wants_html(Some("application/json;q=0.5, text/html")));
    // Everything else keeps the JSON: no header, wildcards (curl), JSON, JSON as good, html refused.
    for a in [
        None,
        Some(""),
        Some("*/*"),
        Some("text/*"),
        Some("application/json"),
        Some("application/json, text/plain, */*"),
        Some("application/json, text/html"),
        Some("text/html;q=0"),
        Some("text/html;q=0.5, application/json"),
        Some("text/html;q=bogus"),
        Some("text/plain"),
    ] {
        assert!(!wants_html(a), "{a:?}");
    }
    // Several Accept headers are one list.
    let h = parse_head(b"GET / HTTP/1.1\r\nAccept: application/json;q=0.1\r\nAccept: text/html\r\n\r\n").unwrap();
    assert_eq!(h.accept.as_deref(), Some("application/json;q=0.1,text/html"));
    assert!(wants_html(h.accept.as_deref()));
    assert_eq!(parse_head(b"GET / HTTP/1.1\r\n\r\n").unwrap().accept, None);
}

#[test]
fn frames_server_sent_events() {
    assert_eq!(events::sse_frame("list", "{\"a\":1}"), "event: list\ndata: {\"a\":1}\n\n");
    // A line break in the data cannot end the frame early: each line is a data line.
    assert_eq!(events::sse_frame("log", "a\nb\r\n\nc"), "event: log\ndata: a\ndata: b\ndata: \ndata: c\n\n");
    assert_eq!(events::sse_frame("x", ""), "event: x\ndata: \n\n");
    // JSON text (what the hub sends) is always one line.
    let v = json!({"text": "two\nlines\r\n"});
    let f = events::sse_frame("log", &v.to_string());
    assert_eq!(f.matches('\n').count(), 3, "{f}");
    assert!(events::STREAM_HEAD.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"));
    assert!(events::STREAM_HEAD.ends_with("\r\n\r\n"));
}

#[test]
fn actions_need_a_server_token_and_the_header() {
    use super::dashboard::{action_refusal, parse_action};
    assert_eq!(action_refusal(None, Some("Bearer x")).map(|r| r.status), Some(403));
    assert_eq!(action_refusal(None, None).map(|r| r.status), Some(403));
    assert_eq!(action_refusal(Some("t0k"), None).map(|r| r.status), Some(401));
    assert_eq!(action_refusal(Some("t0k"), Some("Bearer t0")).map(|r| r.status), Some(401));
    assert_eq!(action_refusal(Some("t0k"), Some("Basic t0k")).map(|r| r.status), Some(401));
    assert!(action_refusal(Some("t0k"), Some("Bearer t0k")).is_none());
    assert_eq!(parse_action("/api/restart/3"), Some(("restart", 3)));
    assert_eq!(parse_action("/api/flush/0"), Some(("flush", 0)));
    for bad in ["/api/restart/", "/api/restart/x", "/api/restart/+3", "/api/delete/1", "/api/restart", "/restart/1"] {
        assert_eq!(parse_action(bad), None, "{bad}");
    }
}

fn test_state(token: Option<&str>) -> server::State {
    let dir = std::env::temp_dir().join(format!("rpm2-web-test-{}-{}", std::process::id(), token.unwrap_or("")));
    server::State {
        opts: ServerOpts {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            token: token.map(String::from),
            show_env: false,
        },
        home: Home::at(dir),
        cache: tokio::sync::Mutex::new(server::Cache { at: None, snap: None, client: None }),
        hub: Arc::new(events::Hub::new()),
    }
}

fn answer(state: &server::State, raw: &str) -> http::Reply {
    let head = parse_head(raw.as_bytes()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(server::respond(state, &head))
}

#[test]
fn routes_the_page_the_json_and_the_actions() {
    let with = test_state(Some("s3cret"));
    // A browser gets the page without the token (it holds no data)...
    let r = answer(&with, "GET / HTTP/1.1\r\nAccept: text/html\r\n\r\n");
    assert_eq!((r.status, r.content_type), (200, "text/html; charset=utf-8"));
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("data-auth=\"token\""));
    let csp = &r.extra.iter().find(|(k, _)| *k == "Content-Security-Policy").unwrap().1;
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert_eq!(nonce.len(), 32);
    assert!(page.contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(!page.contains("{{"), "every placeholder is filled");
    // ... and a JSON client still needs it, as before.
    let r = answer(&with, "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
    assert_eq!((r.status, r.content_type), (401, "application/json; charset=utf-8"));
    assert_eq!(answer(&with, "GET /metrics HTTP/1.1\r\n\r\n").status, 401);
    assert_eq!(answer(&with, "HEAD /events HTTP/1.1\r\n\r\n").status, 401);
    assert_eq!(answer(&with, "POST /api/restart/0 HTTP/1.1\r\n\r\n").status, 401);
    assert_eq!(answer(&with, "POST /api/restart/0 HTTP/1.1\r\nCookie: token=s3cret\r\n\r\n").status, 401);
    assert_eq!(answer(&with, "GET /api/restart/0 HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n").status, 405);
    assert_eq!(answer(&with, "POST /api/nope/0 HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n").status, 404);
    assert_eq!(answer(&with, "POST / HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n").status, 405);
    // Without a server token: the page is read-only and actions are forbidden, whatever is sent.
    let without = test_state(None);
    let r = answer(&without, "GET / HTTP/1.1\r\nAccept: text/html\r\n\r\n");
    assert!(String::from_utf8(r.body).unwrap().contains("data-auth=\"none\""));
    assert_eq!(answer(&without, "POST /api/restart/0 HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n").status, 403);
    // The JSON route is still the JSON route (no daemon here: 503, in JSON).
    let r = answer(&without, "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n");
    assert_eq!((r.status, r.content_type), (503, "application/json; charset=utf-8"));
}

#[test]
fn the_page_is_small_and_self_contained() {
    let r = super::dashboard::page(false);
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.len() < 150 * 1024, "{} bytes", page.len());
    for origin in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "url(http"] {
        assert!(!page.contains(origin), "{origin}");
    }
    let header = |k: &str| r.extra.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(header("Content-Security-Policy").contains("frame-ancestors 'none'"));
    assert!(header("Content-Security-Policy").contains("connect-src 'self'"));
    assert_eq!(header("X-Frame-Options"), "DENY");
    assert_ne!(super::dashboard::page(false).extra, r.extra, "a new nonce per answer");
}

#[test]
fn the_hub_replays_history_and_limits_log_floods() {
    let hub = events::Hub::new();
    let p = json!({"pm_id": 1, "name": "api"});
    hub.on_bus("log:err", &json!({"process": p, "at": 5, "data": "boom\n"}));
    hub.on_bus("process:event", &json!({"process": p, "event": "exit", "at": 6}));
    let (joined, mut rx, replay) = hub.join();
    assert_eq!(hub.clients(), 1);
    // The log line is kept for pages to come; a process event is not.
    assert_eq!(replay.len(), 1);
    assert!(replay[0].starts_with("event: log\ndata: {"));
    assert!(replay[0].contains("\"err\":true") && replay[0].contains("\"text\":\"boom\\n\""));
    // Live frames reach a page that joined; a flood is cut at the per-second budget.
    for i in 0..(events::LOG_BACKLOG + 50) {
        hub.on_bus("log:out", &json!({"process": p, "at": 7, "data": format!("line {i}")}));
    }
    let mut live = 0;
    while rx.try_recv().is_ok() {
        live += 1;
    }
    assert!(live > 0 && live < events::LOG_BACKLOG + 50, "{live}");
    let (_again, _rx2, replay) = hub.join();
    assert!(replay.len() <= events::LOG_BACKLOG);
    drop(joined);
    assert_eq!(hub.clients(), 1);
    // The processes a page gets carry no env, and samples carry the figures and custom metrics.
    let list = json!([{"pm_id": 0, "name": "a", "pid": 9, "monit": {"cpu": 1.5, "memory": 10},
        "pm2_env": {"status": "online", "env": {"SECRET": "x"}, "SECRET": "x", "axm_monitor": {"m": {"value": 1}}}}]);
    let procs = events::page_processes(&list);
    assert_eq!(procs[0]["pm2_env"], json!({"status": "online", "axm_monitor": {"m": {"value": 1}}}));
    let s = events::sample_of(&list, 3, json!({}));
    assert_eq!(s["p"], json!([[0, 1.5, 10, {"m": {"value": 1}}]]));
}

#[test]
fn the_stream_of_a_server_without_token_refuses_dns_names() {
    for ok in [
        None,
        Some("127.0.0.1:9615"),
        Some("localhost:9615"),
        Some("LOCALHOST"),
        Some("[::1]:80"),
        Some("[::1]"),
        Some("10.0.0.2"),
    ] {
        assert!(host_is_address(ok), "{ok:?}");
    }
    for bad in [
        Some("evil.example:9615"),
        Some("evil.example"),
        Some("localhost.evil.example"),
        Some("127.0.0.1:x"),
        Some("[::1]x"),
        Some(""),
    ] {
        assert!(!host_is_address(bad), "{bad:?}");
    }
    let h = parse_head(b"GET /events HTTP/1.1\r\nHost: evil.example:9615\r\n\r\n").unwrap();
    assert_eq!(h.host.as_deref(), Some("evil.example:9615"));
    assert_eq!(server::rebinding(&test_state(None), &h).map(|r| r.status), Some(403));
    // With a token the token decides (another site does not have it).
    assert!(server::rebinding(&test_state(Some("t")), &h).is_none());
    let h = parse_head(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1:9615\r\n\r\n").unwrap();
    assert!(server::rebinding(&test_state(None), &h).is_none());
}
