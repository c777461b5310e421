//! The `rpm2d --web-server` process: its arguments, the listener, connections, the cached snapshot
//! of the daemon's list, and the routes.

use super::*;

/// Options of the server process.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOpts {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0: any free port).
    pub port: u16,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// Show env values in the payload.
    pub show_env: bool,
}

/// Parses a `--host` value: an IP address or `localhost`.
pub fn parse_host(s: &str) -> Result<IpAddr> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| anyhow!("--host must be an IP address to bind (e.g. 127.0.0.1, 0.0.0.0 or ::1), got '{s}'"))
}

/// The rule of the safe default: off loopback a token is required. Returns the error to show.
pub fn check_exposure(host: IpAddr, port: u16, token: Option<&str>) -> Result<()> {
    if !host.is_loopback() && token.map(|t| t.is_empty()).unwrap_or(true) {
        bail!(
            "refusing to serve the web API on {} without a token: anyone who can reach port {port} could read \
             your process list. Pass --token <secret> (or set {TOKEN_ENV}), or keep the default --host 127.0.0.1",
            fmt_addr(host, port)
        );
    }
    Ok(())
}

pub(super) fn fmt_addr(host: IpAddr, port: u16) -> String {
    match host {
        IpAddr::V6(h) => format!("[{h}]:{port}"),
        IpAddr::V4(h) => format!("{h}:{port}"),
    }
}

/// The server's command line (after [`SERVER_FLAG`]), as `rpm2 web` writes it. A repeated option
/// takes its last value.
#[derive(clap::Parser, Debug)]
#[command(name = "rpm2d --web-server", no_binary_name = true, args_override_self = true, disable_version_flag = true)]
struct ServerArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT, value_parser = port_arg)]
    port: u16,
    /// Address to bind: an IP address or `localhost`.
    #[arg(long, default_value = "127.0.0.1", value_parser = host_arg)]
    host: IpAddr,
    /// Show environment values in the payload.
    #[arg(long = "show-env")]
    show_env: bool,
}

fn port_arg(v: &str) -> std::result::Result<u16, String> {
    v.parse().map_err(|_| format!("--port must be a port number (0-65535), got '{v}'"))
}

fn host_arg(v: &str) -> std::result::Result<IpAddr, String> {
    parse_host(v).map_err(|e| e.to_string())
}

/// Parses the server's argv (after [`SERVER_FLAG`]); the token comes from [`TOKEN_ENV`]. The error
/// (an unknown argument, a bad or missing value, or `--help`) carries clap's message.
pub fn parse_server_args(args: &[String], token_env: Option<String>) -> Result<ServerOpts> {
    use clap::Parser;
    let a = ServerArgs::try_parse_from(args).map_err(|e| anyhow!("{}", e.render().to_string().trim_end()))?;
    Ok(ServerOpts { host: a.host, port: a.port, token: token_env.filter(|t| !t.is_empty()), show_env: a.show_env })
}

/// Entry of `rpm2d --web-server ...`: serves until killed. Returns the exit code (1 with the reason
/// on stderr when it cannot start, e.g. the port is in use).
pub fn server_main(args: &[String]) -> i32 {
    let opts = match parse_server_args(args, std::env::var(TOKEN_ENV).ok()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rpm2 web: {e:#}");
            return 2;
        }
    };
    match run_server(opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rpm2 web: {e:#}");
            1
        }
    }
}

pub(super) fn run_server(opts: ServerOpts) -> Result<()> {
    check_exposure(opts.host, opts.port, opts.token.as_deref())?;
    let home = Home::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot build the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((opts.host, opts.port)).await.map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "port {} is already in use (another program listens there): pick another port with `rpm2 web <port>`",
                    opts.port
                )
            } else {
                e.to_string()
            };
            anyhow!("cannot listen on {}: {why}", fmt_addr(opts.host, opts.port))
        })?;
        let local = listener.local_addr().context("cannot read the bound address")?;
        println!("{READY_LINE} http://{} (GET / and /metrics)", fmt_addr(local.ip(), local.port()));
        let state = Arc::new(State {
            opts,
            home,
            cache: tokio::sync::Mutex::new(Cache { at: None, snap: None, client: None }),
            hub: Arc::new(events::Hub::new()),
        });
        events::start(&state)?;
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        serve_conn(state, stream).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("rpm2 web: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Ok(())
    })
}

pub(super) struct State {
    pub(super) opts: ServerOpts,
    pub(super) home: Home,
    pub(super) cache: tokio::sync::Mutex<Cache>,
    /// The live frames of `/events`.
    pub(super) hub: Arc<events::Hub>,
}

pub(super) struct Cache {
    pub(super) at: Option<Instant>,
    pub(super) snap: Option<Arc<Snapshot>>,
    pub(super) client: Option<Client>,
}

/// Rendered bodies, shared by every request within [`CACHE_TTL`], and what they were made of.
pub(super) struct Snapshot {
    pub(super) root: Vec<u8>,
    pub(super) metrics: Vec<u8>,
    /// The list as `GET /` shows it (env values hidden unless `--show-env`).
    pub(super) list: Value,
    pub(super) daemon: DaemonFigures,
}

impl State {
    /// The current snapshot: cached (if younger than `max_age`), or fetched once for every waiting
    /// request.
    pub(super) async fn snapshot(&self, max_age: Duration) -> std::result::Result<Arc<Snapshot>, String> {
        let mut c = self.cache.lock().await;
        if let (Some(at), Some(s)) = (c.at, &c.snap) {
            if at.elapsed() < max_age {
                return Ok(s.clone());
            }
        }
        let client = c.client.take();
        let home = self.home.clone();
        let show_env = self.opts.show_env;
        let joined = tokio::task::spawn_blocking(move || fetch(&home, client, show_env)).await;
        match joined {
            Ok((client, Ok(snap))) => {
                let snap = Arc::new(snap);
                c.client = client;
                c.at = Some(Instant::now());
                c.snap = Some(snap.clone());
                Ok(snap)
            }
            Ok((client, Err(e))) => {
                c.client = client;
                Err(e)
            }
            Err(e) => Err(format!("internal error: {e}")),
        }
    }
}

/// Fetches the list and the daemon's info (reconnecting once) and renders both bodies.
pub(super) fn fetch(
    home: &Home,
    client: Option<Client>,
    show_env: bool,
) -> (Option<Client>, std::result::Result<Snapshot, String>) {
    let mut last_err = String::new();
    let mut client = client;
    for _ in 0..2 {
        let mut c = match client.take() {
            Some(c) => c,
            None => match Client::connect(home) {
                Ok(c) => {
                    c.set_timeout(Some(Duration::from_secs(10)));
                    c
                }
                Err(e) => {
                    last_err = format!("{e:#}");
                    continue;
                }
            },
        };
        let got = c.call("list", json!({"env": show_env})).and_then(|l| Ok((l, c.call("info", json!({}))?)));
        match got {
            Ok((list, info)) => {
                let mut list = list;
                redact(&mut list, show_env);
                let daemon = DaemonFigures::read(&info);
                let root = serde_json::to_vec(&root_payload(&list)).unwrap_or_else(|_| b"{}".to_vec());
                let procs: Vec<Pm2Process> = match serde_json::from_value(list.clone()) {
                    Ok(p) => p,
                    Err(e) => {
                        last_err = format!("its process list has an unexpected shape ({e}): run `rpm2 update`");
                        continue;
                    }
                };
                let metrics = render_metrics(&procs, &daemon).into_bytes();
                return (Some(c), Ok(Snapshot { root, metrics, list, daemon }));
            }
            Err(e) => last_err = format!("{e:#}"),
        }
    }
    (None, Err(format!("the rpm2 daemon is not reachable: {last_err}")))
}

/// Hides env values (keys kept) unless `show_env`, and always hides the web token.
pub fn redact(list: &mut Value, show_env: bool) {
    for p in list.as_array_mut().into_iter().flatten() {
        let Some(env) = p.get_mut("pm2_env").and_then(|e| e.get_mut("env")).and_then(|e| e.as_object_mut()) else {
            continue;
        };
        let mut hidden = Vec::new();
        for (k, v) in env.iter_mut() {
            if !show_env || k == TOKEN_ENV {
                hidden.push((k.clone(), std::mem::replace(v, Value::String(HIDDEN.into()))));
            }
        }
        // The env keys are also at the top level of pm2_env (as PM2 has them): hide those copies too.
        if let Some(top) = p.get_mut("pm2_env").and_then(|e| e.as_object_mut()) {
            for (k, was) in hidden {
                if !crate::protocol::process::PM2_ENV_KEYS.contains(&k.as_str()) && top.get(&k) == Some(&was) {
                    top.insert(k, Value::String(HIDDEN.into()));
                }
            }
        }
    }
}

pub(super) async fn serve_conn(state: Arc<State>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for served in 0..MAX_REQUESTS_PER_CONN {
        let Some(head) = read_head(&mut stream, &mut buf, served).await else { return };
        if head.method == "GET" && head.path == "/events" && !head.has_body {
            match refusal(&state, &head).or_else(|| rebinding(&state, &head)) {
                None => return events::stream(state, stream).await,
                Some(r) => {
                    let _ = write_reply(&mut stream, &r, false, false).await;
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        }
        // We never read bodies: answer, then close so leftover body bytes are not taken for a request.
        let keep_alive = head.keep_alive && !head.has_body && served + 1 < MAX_REQUESTS_PER_CONN;
        let reply = respond(&state, &head).await;
        if !write_reply(&mut stream, &reply, head.method == "HEAD", keep_alive).await || !keep_alive {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// The 401 for a request without the server's token (None: it may be served).
pub(super) fn refusal(state: &State, head: &Head) -> Option<Reply> {
    let t = state.opts.token.as_ref()?;
    if authorized(head.authorization.as_deref(), t) {
        return None;
    }
    let mut r = Reply::json(401, json!({"err": "unauthorized: send Authorization: Bearer <token>"}));
    r.extra.push(("WWW-Authenticate", "Bearer realm=\"rpm2\"".into()));
    Some(r)
}

/// The 403 for a stream asked under a DNS name from a server without a token (DNS rebinding: another
/// site's page must not read the log lines); None when it may be served.
pub(super) fn rebinding(state: &State, head: &Head) -> Option<Reply> {
    if state.opts.token.is_some() || host_is_address(head.host.as_deref()) {
        return None;
    }
    Some(Reply::json(
        403,
        json!({"err": "this server has no token, so its stream is served only to pages opened at an address             (http://127.0.0.1:PORT or http://localhost:PORT), not under a DNS name: use the address, or start             the server with --token"}),
    ))
}

/// The answer to one request: the page for a browser at `/`, the actions at `/api/`, else the JSON
/// API and metrics as before (with the token when the server has one).
pub(super) async fn respond(state: &State, head: &Head) -> Reply {
    let get = head.method == "GET" || head.method == "HEAD";
    if get && head.path == "/" && wants_html(head.accept.as_deref()) {
        return dashboard::page(state.opts.token.is_some());
    }
    if head.path.starts_with("/api/") {
        if head.method != "POST" {
            let mut r = Reply::json(405, json!({"err": "method not allowed: actions are POST"}));
            r.extra.push(("Allow", "POST".into()));
            return r;
        }
        return dashboard::action(state, head).await;
    }
    if !get {
        let mut r = Reply::json(405, json!({"err": "method not allowed: use GET"}));
        r.extra.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    if let Some(r) = refusal(state, head) {
        return r;
    }
    match head.path.as_str() {
        "/events" => {
            Reply { status: 200, content_type: "text/event-stream; charset=utf-8", body: vec![], extra: vec![] }
        }
        "/" | "/metrics" => match state.snapshot(CACHE_TTL).await {
            Ok(s) if head.path == "/" => Reply {
                status: 200,
                content_type: "application/json; charset=utf-8",
                body: s.root.clone(),
                extra: vec![],
            },
            Ok(s) => Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: s.metrics.clone(),
                extra: vec![],
            },
            Err(e) => Reply::json(503, json!({"err": e})),
        },
        _ => Reply::json(404, json!({"err": "404"})),
    }
}
