//! `rpm2 web`: the JSON web API (PM2's `HttpInterface`, Listing 4-4 of the seed) and Prometheus
//! metrics, served by a process of its own (`rpm2d --web-server`), managed like any app under the
//! name [`APP_NAME`]. The server is a client of the daemon: it holds no daemon lock, and a flood of
//! HTTP requests costs the daemon at most two `list` calls a second (answers are cached briefly and
//! concurrent requests share one fetch).
//!
//! Safe by default: binds 127.0.0.1; a bearer token (`--token` or `RPM2_WEB_TOKEN`) is optional on
//! loopback and required anywhere else; env values are hidden unless `--show-env`; no CORS headers.
//!
//! Routes: `GET /` (PM2's payload), `GET /metrics` (Prometheus text format 0.0.4), anything else 404
//! `{"err":"404"}`. HTTP/1.1 with keep-alive, request heads of at most 16 KiB read within 10 s,
//! at most [`MAX_CONNECTIONS`] connections at once (the rest wait in the listen backlog).

use crate::base::fmt::now_ms;
use crate::base::paths::Home;
use crate::client::Client;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The process-list name of the web server, as PM2's (`pm2-http-interface`).
pub const APP_NAME: &str = "rpm2-http-interface";
/// The default port, as PM2's.
pub const DEFAULT_PORT: u16 = 9615;
/// The environment variable that holds the bearer token.
pub const TOKEN_ENV: &str = "RPM2_WEB_TOKEN";
/// The hidden argument that runs the server (`rpm2d --web-server --port P --host H [--show-env]`).
pub const SERVER_FLAG: &str = "--web-server";
/// The line the server prints on stdout once it listens (`rpm2 web` waits for it).
pub const READY_LINE: &str = "rpm2 web: listening on";

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
const MAX_HEAD: usize = 16 * 1024;
const MAX_REQUESTS_PER_CONN: usize = 1000;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const CACHE_TTL: Duration = Duration::from_millis(500);
const HIDDEN: &str = "[hidden]";

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

fn fmt_addr(host: IpAddr, port: u16) -> String {
    match host {
        IpAddr::V6(h) => format!("[{h}]:{port}"),
        IpAddr::V4(h) => format!("{h}:{port}"),
    }
}

/// Parses the server's argv (after [`SERVER_FLAG`]); the token comes from [`TOKEN_ENV`].
pub fn parse_server_args(args: &[String], token_env: Option<String>) -> Result<ServerOpts> {
    let mut opts = ServerOpts {
        host: IpAddr::from([127, 0, 0, 1]),
        port: DEFAULT_PORT,
        token: token_env.filter(|t| !t.is_empty()),
        show_env: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                let v = it.next().ok_or_else(|| anyhow!("--port needs a value"))?;
                opts.port = v.parse().map_err(|_| anyhow!("--port must be a port number (0-65535), got '{v}'"))?;
            }
            "--host" => opts.host = parse_host(it.next().ok_or_else(|| anyhow!("--host needs a value"))?)?,
            "--show-env" => opts.show_env = true,
            other => bail!("unknown web server argument '{other}'"),
        }
    }
    Ok(opts)
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

fn run_server(opts: ServerOpts) -> Result<()> {
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
        });
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

struct State {
    opts: ServerOpts,
    home: Home,
    cache: tokio::sync::Mutex<Cache>,
}

struct Cache {
    at: Option<Instant>,
    snap: Option<Arc<Snapshot>>,
    client: Option<Client>,
}

/// Rendered bodies, shared by every request within [`CACHE_TTL`].
struct Snapshot {
    root: Vec<u8>,
    metrics: Vec<u8>,
}

impl State {
    /// The current snapshot: cached, or fetched once for every waiting request.
    async fn snapshot(&self) -> std::result::Result<Arc<Snapshot>, String> {
        let mut c = self.cache.lock().await;
        if let (Some(at), Some(s)) = (c.at, &c.snap) {
            if at.elapsed() < CACHE_TTL {
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
fn fetch(
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
                let metrics = render_metrics(&list, &daemon).into_bytes();
                return (Some(c), Ok(Snapshot { root, metrics }));
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
        for (k, v) in env.iter_mut() {
            if !show_env || k == TOKEN_ENV {
                *v = Value::String(HIDDEN.into());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The payload of GET / (PM2's HttpInterface: system_info, monit, processes).

/// `{system_info, monit, processes}` as PM2's HttpInterface (Listing 4-4).
pub fn root_payload(list: &Value) -> Value {
    json!({
        "system_info": {"hostname": hostname(), "uptime": uptime_secs()},
        "monit": {
            "loadavg": loadavg(),
            "total_mem": meminfo("MemTotal:"),
            "free_mem": meminfo("MemAvailable:"),
            "cpu": cpus(),
            "interfaces": interfaces(),
        },
        "processes": list,
    })
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

fn uptime_secs() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn loadavg() -> Vec<f64> {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = s.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
    if v.len() == 3 {
        v
    } else {
        vec![0.0, 0.0, 0.0]
    }
}

/// A `/proc/meminfo` figure in bytes (0 when absent).
fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Node's `os.cpus()`: model, speed (MHz) and times (ms) per CPU.
fn cpus() -> Vec<Value> {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut models = Vec::new();
    let mut speeds = Vec::new();
    for l in info.lines() {
        let Some((k, v)) = l.split_once(':') else { continue };
        match k.trim() {
            "model name" => models.push(v.trim().to_string()),
            "cpu MHz" => speeds.push(v.trim().parse::<f64>().map(|f| f.floor() as u64).unwrap_or(0)),
            _ => {}
        }
    }
    let ms = 1000 / clock_ticks().max(1);
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut out = Vec::new();
    for l in stat.lines() {
        let mut f = l.split_whitespace();
        let Some(name) = f.next() else { continue };
        if !name.starts_with("cpu") || name == "cpu" {
            continue;
        }
        let n: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
        let t = |i: usize| n.get(i).copied().unwrap_or(0) * ms;
        let i = out.len();
        out.push(json!({
            "model": models.get(i).cloned().unwrap_or_else(|| "unknown".into()),
            "speed": speeds.get(i).copied().unwrap_or(0),
            "times": {"user": t(0), "nice": t(1), "sys": t(2), "idle": t(3), "irq": t(5)},
        }));
    }
    out
}

/// Node's `os.networkInterfaces()`: per interface, `{address, netmask, family, mac, internal, cidr}`
/// (and `scopeid` for IPv6).
fn interfaces() -> Value {
    use nix::net::if_::InterfaceFlags;
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return json!({}) };
    let addrs: Vec<_> = addrs.collect();
    let mut macs: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for a in &addrs {
        if let Some(mac) = a.address.as_ref().and_then(|s| s.as_link_addr()).and_then(|l| l.addr()) {
            let m = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            macs.insert(a.interface_name.clone(), m);
        }
    }
    let mut out = Map::new();
    for a in &addrs {
        let Some(addr) = &a.address else { continue };
        let internal = a.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let mac = macs.get(&a.interface_name).cloned().unwrap_or_else(|| "00:00:00:00:00:00".into());
        let entry = if let Some(v4) = addr.as_sockaddr_in() {
            let ip = v4.ip();
            let mask = a.netmask.as_ref().and_then(|m| m.as_sockaddr_in()).map(|m| m.ip());
            let prefix = mask.map(|m| u32::from(m).count_ones()).unwrap_or(0);
            json!({
                "address": ip.to_string(),
                "netmask": mask.map(|m| m.to_string()).unwrap_or_default(),
                "family": "IPv4",
                "mac": mac,
                "internal": internal,
                "cidr": format!("{ip}/{prefix}"),
            })
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            let ip = v6.ip();
            let mask = a.netmask.as_ref().and_then(|m| m.as_sockaddr_in6()).map(|m| m.ip());
            let prefix = mask.map(|m| u128::from(m).count_ones()).unwrap_or(0);
            json!({
                "address": ip.to_string(),
                "netmask": mask.map(|m| m.to_string()).unwrap_or_default(),
                "family": "IPv6",
                "mac": mac,
                "internal": internal,
                "cidr": format!("{ip}/{prefix}"),
                "scopeid": v6.scope_id(),
            })
        } else {
            continue;
        };
        if let Value::Array(v) = out.entry(a.interface_name.clone()).or_insert_with(|| json!([])) {
            v.push(entry);
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------------
// Prometheus text format.

/// The daemon's own figures for /metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DaemonFigures {
    /// Daemon pid.
    pub pid: u32,
    /// Resident memory, bytes.
    pub memory: u64,
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Seconds since the daemon started.
    pub uptime: f64,
    /// The daemon's version.
    pub version: String,
}

impl DaemonFigures {
    fn read(info: &Value) -> DaemonFigures {
        let pid = info.get("pid").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        let started = info.get("started_at").and_then(|v| v.as_u64()).unwrap_or(0);
        let st = crate::base::procinfo::stat(pid);
        DaemonFigures {
            pid,
            memory: st.map(|s| s.rss).unwrap_or(0),
            cpu_seconds: st.map(|s| s.ticks as f64 / clock_ticks() as f64).unwrap_or(0.0),
            uptime: if started > 0 { now_ms().saturating_sub(started) as f64 / 1000.0 } else { 0.0 },
            version: info.get("version").and_then(|v| v.as_str()).unwrap_or(crate::VERSION).to_string(),
        }
    }
}

/// Every status a process can have (the `status` label of `rpm2_process_status`).
pub const STATUSES: [&str; 6] = ["launching", "online", "stopping", "stopped", "waiting restart", "errored"];

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family { name, kind, help, samples: Vec::new() }
    }
    fn add(&mut self, labels: &str, v: f64) {
        self.samples.push((labels.to_string(), v));
    }
    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (l, v) in &self.samples {
            if l.is_empty() {
                let _ = writeln!(out, "{} {}", self.name, num(*v));
            } else {
                let _ = writeln!(out, "{}{{{}}} {}", self.name, l, num(*v));
            }
        }
    }
}

/// Renders the Prometheus text exposition (format 0.0.4) of the list and the daemon's figures.
/// The metric names are stable (documented in the README's "Monitoring" section).
pub fn render_metrics(list: &Value, daemon: &DaemonFigures) -> String {
    let now = now_ms();
    let mut up = Family::new("rpm2_up", "gauge", "1 when the rpm2 daemon answered this scrape.");
    up.add("", 1.0);
    let mut info = Family::new("rpm2_info", "gauge", "Version of the rpm2 daemon (always 1).");
    info.add(&format!("version=\"{}\"", escape_label(&daemon.version)), 1.0);
    let mut d_mem = Family::new("rpm2_daemon_memory_bytes", "gauge", "Resident memory of the rpm2 daemon, bytes.");
    d_mem.add("", daemon.memory as f64);
    let mut d_cpu =
        Family::new("rpm2_daemon_cpu_seconds_total", "counter", "CPU time (user + system) used by the rpm2 daemon.");
    d_cpu.add("", daemon.cpu_seconds);
    let mut d_up = Family::new("rpm2_daemon_uptime_seconds", "gauge", "Seconds since the rpm2 daemon started.");
    d_up.add("", daemon.uptime);
    let mut d_pid = Family::new("rpm2_daemon_pid", "gauge", "Process id of the rpm2 daemon.");
    d_pid.add("", daemon.pid as f64);
    let mut count = Family::new("rpm2_processes", "gauge", "Managed processes, by status.");

    let mut cpu = Family::new(
        "rpm2_process_cpu_percent",
        "gauge",
        "CPU use of the process and its children, in % of one core (as `rpm2 list`).",
    );
    let mut mem =
        Family::new("rpm2_process_memory_bytes", "gauge", "Resident memory of the process and its children, bytes.");
    let mut restarts = Family::new(
        "rpm2_process_restarts",
        "gauge",
        "Restarts since the process was created (reset by `rpm2 reset`).",
    );
    let mut unstable =
        Family::new("rpm2_process_unstable_restarts", "gauge", "Restarts counted by the crash-loop rule (min_uptime).");
    let mut uptime = Family::new(
        "rpm2_process_uptime_seconds",
        "gauge",
        "Seconds since the process was (re)started; 0 when not running.",
    );
    let mut pid = Family::new("rpm2_process_pid", "gauge", "Process id of the running process; 0 when not running.");
    let mut status = Family::new(
        "rpm2_process_status",
        "gauge",
        "1 for the process's current status, 0 for the others (launching, online, stopping, stopped, waiting restart, errored).",
    );
    let mut custom = Family::new(
        "rpm2_process_custom_metric",
        "gauge",
        "Numeric custom metrics an app pushes with process.send({type: 'axm:monitor', data}).",
    );
    let mut by_status: std::collections::BTreeMap<&str, u64> = STATUSES.iter().map(|s| (*s, 0)).collect();
    for p in list.as_array().into_iter().flatten() {
        let env = &p["pm2_env"];
        let st = env["status"].as_str().unwrap_or("");
        *by_status.entry(STATUSES.iter().find(|s| **s == st).copied().unwrap_or("stopped")).or_default() += 1;
        let mode = if env["exec_mode"] == "cluster_mode" { "cluster" } else { "fork" };
        let labels = format!(
            "pm_id=\"{}\",name=\"{}\",namespace=\"{}\",exec_mode=\"{}\"",
            p["pm_id"].as_u64().unwrap_or(0),
            escape_label(p["name"].as_str().unwrap_or("")),
            escape_label(env["namespace"].as_str().unwrap_or("default")),
            mode
        );
        let running = st == "online" || st == "launching";
        cpu.add(&labels, p["monit"]["cpu"].as_f64().unwrap_or(0.0));
        mem.add(&labels, p["monit"]["memory"].as_f64().unwrap_or(0.0));
        restarts.add(&labels, env["restart_time"].as_f64().unwrap_or(0.0));
        unstable.add(&labels, env["unstable_restarts"].as_f64().unwrap_or(0.0));
        let up_ms = env["pm_uptime"].as_u64().filter(|_| running).map(|t| now.saturating_sub(t)).unwrap_or(0);
        uptime.add(&labels, up_ms as f64 / 1000.0);
        pid.add(&labels, p["pid"].as_f64().unwrap_or(0.0));
        for s in STATUSES {
            status.add(&format!("{labels},status=\"{s}\""), if s == st { 1.0 } else { 0.0 });
        }
        for (k, v) in env["axm_monitor"].as_object().into_iter().flatten() {
            let value = v.get("value").unwrap_or(v);
            let x = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                _ => None,
            };
            let Some(x) = x else { continue };
            let unit = v.get("unit").and_then(|u| u.as_str()).unwrap_or("");
            custom.add(&format!("{labels},metric=\"{}\",unit=\"{}\"", escape_label(k), escape_label(unit)), x);
        }
    }
    for (s, n) in &by_status {
        count.add(&format!("status=\"{s}\""), *n as f64);
    }
    let mut out = String::new();
    for f in [up, info, d_mem, d_cpu, d_up, d_pid, count, cpu, mem, restarts, unstable, uptime, pid, status, custom] {
        f.render(&mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// HTTP/1.1

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
            _ => {}
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    Ok(Head { method: method.to_string(), path, keep_alive, has_body, authorization })
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
fn head_end(buf: &[u8]) -> Option<usize> {
    let a = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let b = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    extra: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(&v).unwrap_or_default(),
            extra: vec![],
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
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

async fn write_reply(stream: &mut TcpStream, r: &Reply, head_only: bool, keep_alive: bool) -> bool {
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

async fn serve_conn(state: Arc<State>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for served in 0..MAX_REQUESTS_PER_CONN {
        // Read one head: the first within HEAD_TIMEOUT, later ones after at most IDLE_TIMEOUT idle.
        let deadline = tokio::time::Instant::now() + if served == 0 { HEAD_TIMEOUT } else { IDLE_TIMEOUT };
        let end = loop {
            let found = head_end(&buf);
            if found.map(|e| e > MAX_HEAD).unwrap_or(buf.len() > MAX_HEAD) {
                let r = Reply::json(431, json!({"err": "request head too large"}));
                let _ = write_reply(&mut stream, &r, false, false).await;
                return;
            }
            if found.is_some() {
                break found;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => break None,
            }
        };
        let Some(end) = end else {
            if !buf.is_empty() {
                let r = Reply::json(408, json!({"err": "request head not received in time"}));
                let _ = write_reply(&mut stream, &r, false, false).await;
            }
            return;
        };
        let head = match parse_head(&buf[..end]) {
            Ok(h) => h,
            Err(e) => {
                let r = match e {
                    HeadError::Bad(why) => Reply::json(400, json!({"err": why})),
                    HeadError::Version => Reply::json(505, json!({"err": "only HTTP/1.0 and HTTP/1.1 are served"})),
                };
                let _ = write_reply(&mut stream, &r, false, false).await;
                return;
            }
        };
        buf.drain(..end);
        // We never read bodies: answer, then close so leftover body bytes are not taken for a request.
        let keep_alive = head.keep_alive && !head.has_body && served + 1 < MAX_REQUESTS_PER_CONN;
        let reply = respond(&state, &head).await;
        if !write_reply(&mut stream, &reply, head.method == "HEAD", keep_alive).await || !keep_alive {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

async fn respond(state: &State, head: &Head) -> Reply {
    if head.method != "GET" && head.method != "HEAD" {
        let mut r = Reply::json(405, json!({"err": "method not allowed: use GET"}));
        r.extra.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    if let Some(t) = &state.opts.token {
        if !authorized(head.authorization.as_deref(), t) {
            let mut r = Reply::json(401, json!({"err": "unauthorized: send Authorization: Bearer <token>"}));
            r.extra.push(("WWW-Authenticate", "Bearer realm=\"rpm2\"".into()));
            return r;
        }
    }
    match head.path.as_str() {
        "/" | "/metrics" => match state.snapshot().await {
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

// ---------------------------------------------------------------------------------------------------
// `rpm2 web [port]`: starts (or re-starts with new options) the server as a managed app.

/// `rpm2 web [port]`.
#[derive(clap::Args, Debug)]
pub struct WebArgs {
    /// Port to listen on.
    #[arg(default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to bind (default 127.0.0.1; any other address needs a token).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Require `Authorization: Bearer <token>` (default: $RPM2_WEB_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Show environment values in the payload (hidden by default; the token is always hidden).
    #[arg(long = "show-env")]
    pub show_env: bool,
}

/// Starts [`APP_NAME`] and waits until it listens (Ok(0)) or says why it cannot (an error).
pub fn command(
    home: &Home,
    paint: &crate::base::fmt::Paint,
    silent: bool,
    a: WebArgs,
    client: &dyn Fn() -> Result<Client>,
) -> Result<i32> {
    let host = parse_host(&a.host)?;
    let token = a.token.clone().or_else(|| std::env::var(TOKEN_ENV).ok()).filter(|t| !t.is_empty());
    check_exposure(host, a.port, token.as_deref())?;
    // The server is this very executable (or the daemon's, when the CLI runs inside the addon).
    let exe = match std::env::var_os("RPM2_DAEMON_EXE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe().context("cannot find the rpm2 executable")?,
    };
    let mut args =
        vec![SERVER_FLAG.to_string(), "--port".into(), a.port.to_string(), "--host".into(), host.to_string()];
    if a.show_env {
        args.push("--show-env".into());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| home.root().to_path_buf());
    let mut env = crate::client::env::client_env();
    env.remove(TOKEN_ENV);
    if let Some(t) = &token {
        // Passed in the environment, never on the command line (`ps` shows arguments to everyone).
        env.insert(TOKEN_ENV.into(), t.clone());
    }
    env.insert("RPM2_HOME".into(), home.root().display().to_string());
    let raw = json!({
        "name": APP_NAME,
        "script": exe,
        "interpreter": "none",
        "exec_mode": "fork",
        "args": args,
        // A server that cannot bind exits at once: give up after a few tries, as `errored`.
        "max_restarts": 3,
        "restart_delay": 200,
    });
    let ctx = crate::config::ResolveCtx { cwd, env, env_name: None };
    let spec = crate::config::resolve_app(&raw, &ctx)?.spec;

    let mut c = client()?;
    // Subscribe first, so the server's first line cannot be missed.
    let sub_client = client()?;
    sub_client.set_timeout(Some(Duration::from_secs(15)));
    let sub = sub_client.subscribe(&["log:out", "log:err", "process:event"], &[])?;
    let exists =
        c.call("describe", json!({"targets": [APP_NAME]})).ok().and_then(|v| v.as_array().map(|a| !a.is_empty()));
    if exists == Some(true) {
        c.call("restart", json!({"targets": [APP_NAME], "spec": spec}))?;
    } else {
        c.call("start", json!({"apps": [spec]}))?;
    }
    let mut errors: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ok_line = None;
    for (topic, data) in sub {
        if Instant::now() > deadline {
            break;
        }
        if data["process"]["name"].as_str() != Some(APP_NAME) {
            continue;
        }
        match topic.as_str() {
            "log:out" => {
                if let Some(l) = data["data"].as_str().and_then(|t| t.lines().find(|l| l.contains(READY_LINE))) {
                    ok_line = Some(l.to_string());
                    break;
                }
            }
            "log:err" => {
                for l in data["data"].as_str().unwrap_or("").lines() {
                    let l = l.trim();
                    if !l.is_empty() && !errors.iter().any(|e| e == l) {
                        errors.push(l.to_string());
                    }
                }
                if !errors.is_empty() {
                    break;
                }
            }
            _ => {
                let ev = data["event"].as_str().unwrap_or("");
                if ev == "errored" || ev == "restart overlimit" {
                    break;
                }
            }
        }
    }
    match ok_line {
        Some(l) => {
            if !silent {
                let url = l.split("listening on ").nth(1).unwrap_or("").split(' ').next().unwrap_or("");
                println!("{} Web API started as `{APP_NAME}` on {url} (GET / and /metrics)", paint.cyan("[rpm2]"));
                if token.is_some() {
                    println!("{} Clients must send `Authorization: Bearer <token>`", paint.cyan("[rpm2]"));
                }
                println!(
                    "{} Stop it with `rpm2 stop {APP_NAME}`, remove it with `rpm2 delete {APP_NAME}`",
                    paint.cyan("[rpm2]")
                );
            }
            Ok(0)
        }
        None => {
            let why =
                errors.iter().map(|e| e.trim_start_matches("rpm2 web: ").to_string()).next().unwrap_or_else(|| {
                    "it did not report listening in time (see `rpm2 logs rpm2-http-interface`)".into()
                });
            bail!(
                "the web API could not start: {why}. `{APP_NAME}` will be errored after its restarts: \
                 `rpm2 delete {APP_NAME}` to remove it"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn renders_metrics() {
        let list = json!([{"pid": 42, "name": "a\"b", "pm_id": 3, "monit": {"memory": 1000, "cpu": 1.5},
            "pm2_env": {"status": "online", "namespace": "default", "exec_mode": "fork_mode", "restart_time": 2,
                        "unstable_restarts": 0, "pm_uptime": now_ms(),
                        "axm_monitor": {"Heap Size": {"value": "5.73", "unit": "MiB"}, "txt": {"value": "n/a"}}}}]);
        let t = render_metrics(&list, &DaemonFigures { pid: 1, version: "x".into(), ..Default::default() });
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
}
