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
