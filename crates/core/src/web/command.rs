//! `rpm2 web [port]`: starts (or re-starts with new options) the server as a managed app.

use super::*;

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
    let spec = server_spec(home, &a, host, token.as_deref())?;

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
    let (ok_line, errors) = wait_listening(sub);
    match ok_line {
        Some(l) => {
            if !silent {
                let url = l.split("listening on ").nth(1).unwrap_or("").split(' ').next().unwrap_or("");
                println!("{} Web API started as `{APP_NAME}` on {url} (GET / and /metrics)", paint.cyan("[rpm2]"));
                println!("{} Dashboard: open {url} in a browser", paint.cyan("[rpm2]"));
                if token.is_some() {
                    println!(
                        "{} Clients must send `Authorization: Bearer <token>` (the dashboard asks for it; actions are on)",
                        paint.cyan("[rpm2]")
                    );
                } else {
                    println!(
                        "{} The dashboard is read-only: `--token <secret>` enables its actions",
                        paint.cyan("[rpm2]")
                    );
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

/// The app spec of the web server: this executable with [`SERVER_FLAG`], the token in its environment.
pub(super) fn server_spec(
    home: &Home,
    a: &WebArgs,
    host: IpAddr,
    token: Option<&str>,
) -> Result<crate::config::spec::AppSpec> {
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
    if let Some(t) = token {
        // Passed in the environment, never on the command line (`ps` shows arguments to everyone).
        env.insert(TOKEN_ENV.into(), t.to_string());
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
    Ok(crate::config::resolve_app(&raw, &ctx)?.spec)
}

/// Follows the server's output for up to 15 s: its ready line (`Some`), or the lines it printed on
/// stderr before giving up (or none, when it just failed or timed out).
pub(super) fn wait_listening(sub: impl IntoIterator<Item = (String, Value)>) -> (Option<String>, Vec<String>) {
    let mut errors: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
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
                    return (Some(l.to_string()), errors);
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
    (None, errors)
}
