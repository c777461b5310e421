//! `rpm2 serve [path] [port]`: static files over HTTP as a managed app (PM2's `serve`), named
//! `static-page-server-<port>` as PM2 names it. The server is this executable
//! (`rpm2d --serve-static --path P --port N --host H [--spa]`); basic-auth credentials travel in its
//! environment (`PM2_SERVE_BASIC_AUTH_USERNAME`/`_PASSWORD`, PM2's names), never on its command line.
//!
//! Serving: `GET`/`HEAD` only; a folder serves its `index.html`; `--spa` serves the root
//! `index.html` for any path that is not a file; paths are percent-decoded and may not leave the
//! folder (`..` and symlinks out of it are 404); files larger than [`MAX_FILE`] are refused (413).

use super::*;
use crate::client::env::client_env;
use std::path::{Path, PathBuf};

/// The hidden argument that runs the static server.
pub const SERVE_FLAG: &str = "--serve-static";
/// The line the server prints once it listens.
pub const SERVE_READY: &str = "rpm2 serve: listening on";
/// PM2's default port for `serve`.
pub const SERVE_DEFAULT_PORT: u16 = 8080;
/// Largest file served (bytes).
pub const MAX_FILE: u64 = 256 * 1024 * 1024;

/// `rpm2 serve [path] [port]`.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Folder to serve (default: the current folder).
    pub path: Option<String>,
    /// Port (default 8080, or $PM2_SERVE_PORT).
    pub port: Option<u16>,
    /// Port, as an option.
    #[arg(long = "port", id = "port_opt")]
    pub port_opt: Option<u16>,
    /// Address to bind (default 127.0.0.1; PM2 binds every address).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Serve index.html for any path that is not a file (single-page apps).
    #[arg(long)]
    pub spa: bool,
    /// Basic-auth user name (with --basic-auth-password).
    #[arg(long = "basic-auth-username")]
    pub basic_auth_username: Option<String>,
    /// Basic-auth password (with --basic-auth-username).
    #[arg(long = "basic-auth-password")]
    pub basic_auth_password: Option<String>,
    /// App name (default static-page-server-<port>).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
}

/// What `serve` resolved: the app declaration to start and what to tell the user.
pub struct ServePlan {
    /// The app's name.
    pub name: String,
    /// The absolute folder served.
    pub path: PathBuf,
    /// The port.
    pub port: u16,
    /// The app declaration (PM2 JSON, resolved by the daemon's start flow).
    pub app: Value,
}

/// Resolves `serve`'s arguments (relative to `cwd`, with PM2's `PM2_SERVE_PORT`/`PM2_SERVE_PATH`
/// overrides from `env`) into the app to start, run by `exe` (default: `RPM2_DAEMON_EXE`, else this
/// executable). The folder must exist.
pub fn plan(
    a: &ServeArgs,
    cwd: &Path,
    env: &std::collections::BTreeMap<String, String>,
    exe: Option<&Path>,
) -> Result<ServePlan> {
    let port = match env.get("PM2_SERVE_PORT").filter(|p| !p.is_empty()) {
        Some(p) => p.parse::<u16>().with_context(|| format!("PM2_SERVE_PORT is not a port: {p}"))?,
        None => a.port.or(a.port_opt).unwrap_or(SERVE_DEFAULT_PORT),
    };
    let raw = env.get("PM2_SERVE_PATH").cloned().or_else(|| a.path.clone()).unwrap_or_else(|| ".".into());
    let path = cwd.join(&raw);
    let path = path.canonicalize().with_context(|| format!("cannot serve {}: no such folder", path.display()))?;
    if !path.is_dir() {
        bail!("cannot serve {}: it is not a folder", path.display());
    }
    let host = parse_host(&a.host)?;
    let exe = match (exe, std::env::var_os("RPM2_DAEMON_EXE")) {
        (Some(e), _) => e.to_path_buf(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => std::env::current_exe().context("cannot find the rpm2 executable")?,
    };
    let name = a.name.clone().unwrap_or_else(|| format!("static-page-server-{port}"));
    let mut args = vec![
        SERVE_FLAG.to_string(),
        "--path".into(),
        path.display().to_string(),
        "--port".into(),
        port.to_string(),
        "--host".into(),
        host.to_string(),
    ];
    if a.spa {
        args.push("--spa".into());
    }
    let mut app_env = Map::new();
    app_env.insert("PM2_SERVE_PORT".into(), json!(port.to_string()));
    app_env.insert("PM2_SERVE_PATH".into(), json!(path.display().to_string()));
    app_env.insert("PM2_SERVE_SPA".into(), json!(a.spa.to_string()));
    match (&a.basic_auth_username, &a.basic_auth_password) {
        (Some(u), Some(p)) => {
            app_env.insert("PM2_SERVE_BASIC_AUTH".into(), json!("true"));
            app_env.insert("PM2_SERVE_BASIC_AUTH_USERNAME".into(), json!(u));
            app_env.insert("PM2_SERVE_BASIC_AUTH_PASSWORD".into(), json!(p));
        }
        (None, None) => {}
        _ => bail!("basic auth needs both --basic-auth-username and --basic-auth-password"),
    }
    let app = json!({
        "name": name, "script": exe, "interpreter": "none", "exec_mode": "fork", "args": args,
        "cwd": path, "env": app_env, "max_restarts": 3, "restart_delay": 200,
    });
    Ok(ServePlan { name, path, port, app })
}

/// `rpm2 serve`: starts the planned app (see [`plan`]; `exe` runs the server) or restarts it with the
/// new declaration when one of that name exists. Answers the plan.
pub fn command(a: &ServeArgs, exe: Option<&Path>, client: &dyn Fn() -> Result<Client>) -> Result<ServePlan> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let env = client_env();
    let p = plan(a, &cwd, &env, exe)?;
    let spec = crate::config::resolve_app(&p.app, &crate::config::ResolveCtx { cwd, env, env_name: None })?.spec;
    let mut c = client()?;
    let exists =
        c.call("describe", json!({"targets": [p.name]})).ok().and_then(|v| v.as_array().map(|a| !a.is_empty()));
    if exists == Some(true) {
        c.call("restart", json!({"targets": [p.name], "spec": spec}))?;
    } else {
        c.call("start", json!({"apps": [spec]}))?;
    }
    Ok(p)
}

/// The server's options (from its command line and environment).
struct Opts {
    root: PathBuf,
    host: IpAddr,
    port: u16,
    spa: bool,
    /// `Basic base64(user:password)`, when basic auth is on.
    auth: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        root: PathBuf::from("."),
        host: parse_host("127.0.0.1")?,
        port: SERVE_DEFAULT_PORT,
        spa: false,
        auth: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--path" => o.root = PathBuf::from(val()?),
            "--port" => o.port = val()?.parse().context("--port is not a port")?,
            "--host" => o.host = parse_host(&val()?)?,
            "--spa" => o.spa = true,
            other => bail!("unknown argument {other}"),
        }
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some("true"), Some(u), Some(p)) = (
        var("PM2_SERVE_BASIC_AUTH").as_deref(),
        var("PM2_SERVE_BASIC_AUTH_USERNAME"),
        var("PM2_SERVE_BASIC_AUTH_PASSWORD"),
    ) {
        o.auth = Some(format!("Basic {}", base64(format!("{u}:{p}").as_bytes())));
    }
    o.root = o.root.canonicalize().with_context(|| format!("cannot serve {}", o.root.display()))?;
    Ok(o)
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for ch in data.chunks(3) {
        let b = [ch[0], ch.get(1).copied().unwrap_or(0), ch.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= ch.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `rpm2d --serve-static ...`: runs the static server until killed. Exit code 2 for bad arguments,
/// 1 when it cannot listen.
pub fn serve_main(args: &[String]) -> i32 {
    let opts = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rpm2 serve: {e:#}");
            return 2;
        }
    };
    match run(opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rpm2 serve: {e:#}");
            1
        }
    }
}

fn run(opts: Opts) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot build the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((opts.host, opts.port))
            .await
            .map_err(|e| anyhow!("cannot listen on {}: {e}", server::fmt_addr(opts.host, opts.port)))?;
        println!("{SERVE_READY} http://{} serving {}", server::fmt_addr(opts.host, opts.port), opts.root.display());
        let opts = Arc::new(opts);
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let opts = opts.clone();
                    tokio::spawn(async move {
                        conn(&opts, stream).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    eprintln!("rpm2 serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Ok(())
    })
}

async fn conn(opts: &Opts, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    for served in 0..MAX_REQUESTS_PER_CONN {
        let Some(head) = read_head(&mut stream, &mut buf, served).await else { return };
        let keep_alive = head.keep_alive && !head.has_body && served + 1 < MAX_REQUESTS_PER_CONN;
        let reply = respond(opts, &head).await;
        if !write_reply(&mut stream, &reply, head.method == "HEAD", keep_alive).await || !keep_alive {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn text(status: u16, body: &str) -> Reply {
    Reply { status, content_type: "text/plain; charset=utf-8", body: body.as_bytes().to_vec(), extra: vec![] }
}

/// Percent-decodes a URL path; None when it is not valid UTF-8 after decoding.
fn decode(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return None;
            }
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file for a request path inside `root`, or None (not found, or outside the root).
fn locate(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = decode(url_path)?;
    let mut p = root.to_path_buf();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            x if x.contains('\0') => return None,
            x => p.push(x),
        }
    }
    if p.is_dir() {
        p.push("index.html");
    }
    let real = p.canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

fn mime(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json; charset=utf-8",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("xml") => "application/xml",
        _ => "application/octet-stream",
    }
}

async fn respond(opts: &Opts, head: &Head) -> Reply {
    if head.method != "GET" && head.method != "HEAD" {
        let mut r = text(405, "method not allowed: use GET\n");
        r.extra.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    if let Some(want) = &opts.auth {
        let ok = head.authorization.as_deref().map(|h| authorized_basic(h, want)).unwrap_or(false);
        if !ok {
            let mut r = text(401, "unauthorized\n");
            r.extra.push(("WWW-Authenticate", "Basic realm=\"rpm2 serve\"".into()));
            return r;
        }
    }
    let found = locate(&opts.root, &head.path).or_else(|| if opts.spa { locate(&opts.root, "/") } else { None });
    let Some(file) = found else { return text(404, "404 Not Found\n") };
    match std::fs::metadata(&file) {
        Ok(m) if m.len() > MAX_FILE => return text(413, "file too large\n"),
        Ok(_) => {}
        Err(_) => return text(404, "404 Not Found\n"),
    }
    let ctype = mime(&file);
    // Read off the runtime's thread: a slow disk must not stall other connections.
    match tokio::task::spawn_blocking(move || std::fs::read(file)).await {
        Ok(Ok(body)) => Reply { status: 200, content_type: ctype, body, extra: vec![] },
        _ => text(403, "403 Forbidden\n"),
    }
}

/// Constant-time comparison of the Authorization header with the expected `Basic ...` value.
fn authorized_basic(header: &str, want: &str) -> bool {
    let (a, b) = (header.trim().as_bytes(), want.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn paths_decode_and_stay_inside_the_root() {
        assert_eq!(decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(decode("/x%zz"), None);
        let dir = std::env::temp_dir().join(format!("rpm2-serve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "hi").unwrap();
        std::fs::write(dir.join("sub/a b.txt"), "x").unwrap();
        let root = dir.canonicalize().unwrap();
        assert_eq!(locate(&root, "/"), Some(root.join("index.html")));
        assert_eq!(locate(&root, "/sub/a%20b.txt"), Some(root.join("sub/a b.txt")));
        assert_eq!(locate(&root, "/../etc/passwd"), None);
        assert_eq!(locate(&root, "/sub/%2e%2e/%2e%2e/x"), None);
        assert_eq!(locate(&root, "/nope"), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
