//! The `deploy.<env>` section of an ecosystem file, as PM2's deploy reads it, into typed structs.
//! Every error is one line that names the environment and the field.

use serde_json::{Map, Value};

/// One deploy environment (`deploy.<name>`), with its hosts resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployEnv {
    /// The environment's name (`production`).
    pub name: String,
    /// The hosts, each with its own connection settings, path and env (at least one).
    pub hosts: Vec<Host>,
    /// The git repository every host clones (`repo`).
    pub repo: String,
    /// The ref to deploy (`ref`, e.g. `origin/main`); setup clones the branch after the first `/`.
    pub git_ref: String,
    /// `fetch: "fast"`: shallow clone and fetch (`--depth=5`), as PM2.
    pub fetch_fast: bool,
    /// The hooks (shell commands); `None` when not set.
    pub hooks: Hooks,
    /// One line per field rpm2 does not know (PM2 ignores them too, but a typo should be seen).
    pub warnings: Vec<String>,
}

/// The hook commands of an environment. `pre_deploy_local` runs on this machine, the others on
/// each host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hooks {
    /// `pre-setup`: on the host before setup (or, when its first word is a local file, that script
    /// piped to `bash -s` on the host).
    pub pre_setup: Option<String>,
    /// `post-setup`: in `<path>/current` after the clone.
    pub post_setup: Option<String>,
    /// `pre-deploy-local`: here, before any host is contacted.
    pub pre_deploy_local: Option<String>,
    /// `pre-deploy`: in `<path>/current` before fetching.
    pub pre_deploy: Option<String>,
    /// `post-deploy`: in `<path>/current` after the checkout, with `env` exported.
    pub post_deploy: Option<String>,
}

/// One host of an environment: where to connect and what to run there with.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The host name or address (what ssh connects to).
    pub host: String,
    /// `user` (ssh's default when `None`).
    pub user: Option<String>,
    /// `port` (ssh's default when `None`).
    pub port: Option<u16>,
    /// `key`: the identity file (`~/` expanded to this user's home).
    pub key: Option<String>,
    /// `ssh_options`: each passed as `-o <option>`.
    pub ssh_options: Vec<String>,
    /// `forward-agent`: ssh `-A`.
    pub forward_agent: bool,
    /// `needs_tty`: ssh `-t`.
    pub needs_tty: bool,
    /// `path`: the deploy folder on the host (absolute, or `~/...`).
    pub path: String,
    /// `env`: exported (names upper-cased, as PM2) before `post-deploy` and `exec`.
    pub env: Vec<(String, String)>,
}

impl Host {
    /// The name lines and the summary use: `host`, with `:port` when a port is set.
    pub fn label(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

/// The section keys rpm2 reads (PM2's), for the "unknown field" hint.
const KNOWN: &[&str] = &[
    "user",
    "host",
    "port",
    "ref",
    "repo",
    "path",
    "fetch",
    "pre-setup",
    "post-setup",
    "pre-deploy-local",
    "pre-deploy",
    "post-deploy",
    "ssh_options",
    "key",
    "env",
    "forward-agent",
    "needs_tty",
];

/// The keys a host object of a `host` list may override.
const HOST_KEYS: &[&str] = &["host", "user", "port", "key", "ssh_options", "forward-agent", "needs_tty", "path", "env"];

/// The names of the environments of a `deploy` section, in file order.
pub fn env_names(deploy: &Value) -> Vec<String> {
    deploy.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Parses `deploy.<name>` of `deploy` (the whole `deploy` object). `default_post_deploy` is used
/// when the section has no `post-deploy` (PM2 then runs `pm2 startOrRestart <file> --env <name>`).
pub fn parse(deploy: &Value, name: &str, default_post_deploy: Option<String>) -> Result<DeployEnv, String> {
    let Some(section) = deploy.get(name) else {
        let names = env_names(deploy);
        let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        return Err(format!("deploy.{name}: no such deploy environment (defined: {known})"));
    };
    let Some(o) = section.as_object() else {
        return Err(format!("deploy.{name}: must be an object with host, repo, path and ref, got {section}"));
    };
    let f = Fields { env: name, obj: o, prefix: String::new() };
    let mut warnings = Vec::new();
    for k in o.keys() {
        if !KNOWN.contains(&k.as_str()) {
            let near = KNOWN.iter().find(|c| strsim::levenshtein(c, k) <= 2);
            let hint = near.map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default();
            warnings.push(format!("deploy.{name}.{k}: unknown field, ignored{hint}"));
        }
    }
    let repo = f.required_str("repo")?;
    let git_ref = f.required_str("ref")?;
    let fetch_fast = f.opt_str("fetch")?.as_deref() == Some("fast");
    let hooks = Hooks {
        pre_setup: f.opt_str("pre-setup")?,
        post_setup: f.opt_str("post-setup")?,
        pre_deploy_local: f.opt_str("pre-deploy-local")?,
        pre_deploy: f.opt_str("pre-deploy")?,
        post_deploy: f.opt_str("post-deploy")?.or(default_post_deploy),
    };
    let base = Host {
        host: String::new(),
        user: f.opt_str("user")?,
        port: f.port()?,
        key: f.opt_str("key")?,
        ssh_options: f.str_list("ssh_options")?,
        forward_agent: f.flag("forward-agent")?,
        needs_tty: f.flag("needs_tty")?,
        path: String::new(),
        env: f.env()?,
    };
    let path = f.opt_str("path")?;
    let hosts = match o.get("host") {
        None | Some(Value::Null) => return Err(format!("deploy.{name}.host: missing (a host name or a list of them)")),
        Some(Value::Array(list)) if list.is_empty() => return Err(format!("deploy.{name}.host: the list is empty")),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, h)| host_entry(name, i, h, &base, path.as_deref()))
            .collect::<Result<_, _>>()?,
        Some(h) => vec![host_entry(name, usize::MAX, h, &base, path.as_deref())?],
    };
    Ok(DeployEnv { name: name.to_string(), hosts, repo, git_ref, fetch_fast, hooks, warnings })
}

/// One entry of `host`: a name, or an object overriding the section's connection settings, `path`
/// and `env` (merged over the section's).
fn host_entry(env: &str, i: usize, v: &Value, base: &Host, path: Option<&str>) -> Result<Host, String> {
    let at = if i == usize::MAX { "host".to_string() } else { format!("host[{i}]") };
    let mut h = base.clone();
    match v {
        Value::String(s) if !s.trim().is_empty() => h.host = s.trim().to_string(),
        Value::Object(o) => {
            for k in o.keys() {
                if !HOST_KEYS.contains(&k.as_str()) {
                    return Err(format!(
                        "deploy.{env}.{at}.{k}: unknown field (a host may set {})",
                        HOST_KEYS.join(", ")
                    ));
                }
            }
            let f = Fields { env, obj: o, prefix: format!("{at}.") };
            h.host = f.required_str("host")?;
            if let Some(u) = f.opt_str("user")? {
                h.user = Some(u);
            }
            if let Some(p) = f.port()? {
                h.port = Some(p);
            }
            if let Some(k) = f.opt_str("key")? {
                h.key = Some(k);
            }
            if o.contains_key("ssh_options") {
                h.ssh_options = f.str_list("ssh_options")?;
            }
            if o.contains_key("forward-agent") {
                h.forward_agent = f.flag("forward-agent")?;
            }
            if o.contains_key("needs_tty") {
                h.needs_tty = f.flag("needs_tty")?;
            }
            if let Some(p) = f.opt_str("path")? {
                h.path = p;
            }
            for (k, v) in f.env()? {
                match h.env.iter_mut().find(|(n, _)| *n == k) {
                    Some(slot) => slot.1 = v,
                    None => h.env.push((k, v)),
                }
            }
        }
        other => return Err(format!("deploy.{env}.{at}: must be a host name or an object with `host`, got {other}")),
    }
    if h.path.is_empty() {
        h.path = path.map(str::to_string).unwrap_or_default();
    }
    if h.path.is_empty() {
        return Err(format!("deploy.{env}.path: missing (the folder on the host, e.g. \"/var/www/app\")"));
    }
    if !(h.path.starts_with('/') || h.path == "~" || h.path.starts_with("~/")) {
        return Err(format!("deploy.{env}.path: must be absolute (or start with ~/) on the host, got {:?}", h.path));
    }
    if h.host.starts_with('-') {
        return Err(format!("deploy.{env}.{at}: a host name cannot start with '-', got {:?}", h.host));
    }
    Ok(h)
}

/// Typed access to one object's fields, with errors naming `deploy.<env>.<prefix><key>`.
struct Fields<'a> {
    env: &'a str,
    obj: &'a Map<String, Value>,
    prefix: String,
}

impl Fields<'_> {
    fn err(&self, key: &str, what: &str) -> String {
        format!("deploy.{}.{}{key}: {what}", self.env, self.prefix)
    }
    fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.trim().is_empty())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.err(key, &format!("must be a string, got {other}"))),
        }
    }
    fn required_str(&self, key: &str) -> Result<String, String> {
        let what = match key {
            "repo" => "the git repository URL",
            "ref" => "the ref to deploy, e.g. \"origin/main\"",
            _ => "the host name",
        };
        self.opt_str(key)?.ok_or_else(|| self.err(key, &format!("missing ({what})")))
    }
    fn port(&self) -> Result<Option<u16>, String> {
        let bad = |v: &Value| self.err("port", &format!("must be a port number (1-65535), got {v}"));
        match self.obj.get("port") {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(n)) => {
                n.as_u64().filter(|p| (1..=65535).contains(p)).map(|p| Some(p as u16)).ok_or_else(|| bad(v))
            }
            Some(v @ Value::String(s)) => match s.trim() {
                "" => Ok(None),
                t => t.parse::<u16>().ok().filter(|p| *p > 0).map(Some).ok_or_else(|| bad(v)),
            },
            Some(v) => Err(bad(v)),
        }
    }
    fn str_list(&self, key: &str) -> Result<Vec<String>, String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()].into_iter().filter(|s| !s.trim().is_empty()).collect()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| self.err(key, &format!("must list strings, got {v}")))
                })
                .collect(),
            Some(other) => Err(self.err(key, &format!("must be a string or a list of strings, got {other}"))),
        }
    }
    fn flag(&self, key: &str) -> Result<bool, String> {
        match self.obj.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(false),
            Some(Value::Bool(true)) => Ok(true),
            Some(Value::String(s)) => Ok(!matches!(s.trim(), "" | "false" | "no" | "0")),
            Some(Value::Number(n)) => Ok(n.as_f64() != Some(0.0)),
            Some(other) => Err(self.err(key, &format!("must be true or false, got {other}"))),
        }
    }
    fn env(&self) -> Result<Vec<(String, String)>, String> {
        match self.obj.get("env") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| {
                    let name = k.to_uppercase();
                    let valid = !name.is_empty()
                        && !name.starts_with(|c: char| c.is_ascii_digit())
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(self.err("env", &format!("{k:?} is not a valid variable name")));
                    }
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        Value::Null => String::new(),
                        other => return Err(self.err("env", &format!("{k} must be a string or a number, got {other}"))),
                    };
                    Ok((name, value))
                })
                .collect(),
            Some(other) => Err(self.err("env", &format!("must be an object of variables, got {other}"))),
        }
    }
}
