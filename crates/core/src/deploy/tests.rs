//! Unit tests: the arguments, the `deploy.<env>` section and the planned commands.

use super::config::{parse, Host};
use super::plan::{branch_of, list_lines, nth_from_end, sq, Remote};
use super::*;
use serde_json::json;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn args_follow_pm2s_forms() {
    let a = parse_args(&words("ecosystem.config.js production setup")).unwrap();
    assert_eq!(a.file.as_deref(), Some("ecosystem.config.js"));
    assert_eq!(a.env.as_deref(), Some("production"));
    assert_eq!(a.action, Action::Setup);
    let a = parse_args(&words("production")).unwrap();
    assert_eq!((a.file, a.env.as_deref(), a.action), (None, Some("production"), Action::Update(None)));
    assert_eq!(parse_args(&words("production update")).unwrap().action, Action::Update(None));
    assert_eq!(parse_args(&words("production revert")).unwrap().action, Action::Revert(1));
    assert_eq!(parse_args(&words("production revert 3")).unwrap().action, Action::Revert(3));
    assert_eq!(parse_args(&words("production curr")).unwrap().action, Action::Current);
    assert_eq!(parse_args(&words("production previous")).unwrap().action, Action::Previous);
    assert_eq!(parse_args(&words("production list")).unwrap().action, Action::List);
    assert_eq!(parse_args(&words("p exec rpm2 reload all")).unwrap().action, Action::Exec("rpm2 reload all".into()));
    assert_eq!(parse_args(&words("p ref origin/v2")).unwrap().action, Action::Update(Some("origin/v2".into())));
    assert_eq!(parse_args(&words("p origin/v2")).unwrap().action, Action::Update(Some("origin/v2".into())));
    let x = parse_args(&words("-f p exec rm -f x")).unwrap();
    assert!(x.force);
    assert_eq!(x.action, Action::Exec("rm -f x".into()));
    let f = parse_args(&words("p --force")).unwrap();
    assert!(f.force);
    assert_eq!(f.action, Action::Update(None));
    // No environment, or `help`: the help.
    assert_eq!(parse_args(&[]).unwrap().env, None);
    assert_eq!(parse_args(&words("help")).unwrap().env, None);
    assert_eq!(parse_args(&words("app.yml")).unwrap().env, None);
}

#[test]
fn bad_args_are_one_line_errors() {
    assert!(parse_args(&words("p revert x")).unwrap_err().contains("revert takes a number"));
    assert!(parse_args(&words("p revert 0")).is_err());
    assert!(parse_args(&words("p exec")).unwrap_err().contains("exec needs a command"));
    assert!(parse_args(&words("p ref")).unwrap_err().contains("ref needs a ref"));
    assert!(parse_args(&words("p list extra")).unwrap_err().contains("unexpected \"extra\""));
}

#[test]
fn config_files_are_recognised_as_pm2_does() {
    assert!(is_config_file("ecosystem.config.js"));
    assert!(is_config_file("deploy.json5"));
    assert!(is_config_file("x/app.yaml"));
    assert!(!is_config_file("production"));
    assert!(!is_config_file("app.js"));
}

fn section() -> serde_json::Value {
    json!({
        "production": {
            "user": "deploy",
            "host": ["a.example", {"host": "b.example", "port": "2222", "path": "/srv/b", "env": {"port": 9}}],
            "port": 22,
            "ref": "origin/main",
            "repo": "git@github.com:me/app.git",
            "path": "/var/www/app",
            "ssh_options": "StrictHostKeyChecking=no",
            "key": "/k/id",
            "post-deploy": "npm ci && rpm2 startOrReload ecosystem.config.js --env production",
            "env": {"node_env": "production", "port": 8},
            "forward-agent": "yes",
            "fetch": "fast"
        }
    })
}

#[test]
fn a_full_section_parses_into_typed_hosts() {
    let e = parse(&section(), "production", None).unwrap();
    assert_eq!(e.name, "production");
    assert_eq!(e.git_ref, "origin/main");
    assert!(e.fetch_fast);
    assert!(e.warnings.is_empty());
    assert_eq!(e.hosts.len(), 2);
    let a = &e.hosts[0];
    assert_eq!((a.host.as_str(), a.port, a.path.as_str()), ("a.example", Some(22), "/var/www/app"));
    assert_eq!(a.user.as_deref(), Some("deploy"));
    assert!(a.forward_agent);
    assert_eq!(a.ssh_options, vec!["StrictHostKeyChecking=no"]);
    assert_eq!(a.env, vec![("NODE_ENV".to_string(), "production".to_string()), ("PORT".to_string(), "8".to_string())]);
    let b = &e.hosts[1];
    assert_eq!((b.host.as_str(), b.port, b.path.as_str()), ("b.example", Some(2222), "/srv/b"));
    // The host's env is merged over the section's.
    assert_eq!(b.env, vec![("NODE_ENV".to_string(), "production".to_string()), ("PORT".to_string(), "9".to_string())]);
    assert_eq!(b.label(), "b.example:2222");
}

#[test]
fn the_default_post_deploy_applies_only_when_none_is_set() {
    let mut s = section();
    let e = parse(&s, "production", Some("rpm2 startOrRestart f --env production".into())).unwrap();
    assert!(e.hooks.post_deploy.unwrap().starts_with("npm ci"));
    s["production"].as_object_mut().unwrap().remove("post-deploy");
    let e = parse(&s, "production", Some("rpm2 startOrRestart f --env production".into())).unwrap();
    assert_eq!(e.hooks.post_deploy.as_deref(), Some("rpm2 startOrRestart f --env production"));
}

fn err_of(patch: serde_json::Value) -> String {
    let mut s = section();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            s["production"].as_object_mut().unwrap().remove(k);
        } else {
            s["production"][k] = v.clone();
        }
    }
    parse(&s, "production", None).unwrap_err()
}

#[test]
fn errors_name_the_environment_and_the_field() {
    assert_eq!(
        err_of(json!({"ref": null})),
        "deploy.production.ref: missing (the ref to deploy, e.g. \"origin/main\")"
    );
    assert!(err_of(json!({"repo": null})).starts_with("deploy.production.repo: missing"));
    assert!(err_of(json!({"host": null})).starts_with("deploy.production.host: missing"));
    assert!(err_of(json!({"host": []})).starts_with("deploy.production.host: the list is empty"));
    assert!(err_of(json!({"host": 5})).starts_with("deploy.production.host: must be a host name"));
    assert!(err_of(json!({"host": [{"port": 1}]})).starts_with("deploy.production.host[0].host: missing"));
    assert!(err_of(json!({"host": [{"host": "x", "hots": 1}]}))
        .starts_with("deploy.production.host[0].hots: unknown field"));
    assert!(err_of(json!({"path": null})).starts_with("deploy.production.path: missing"));
    assert!(err_of(json!({"path": "rel/dir"})).contains("must be absolute"));
    assert!(err_of(json!({"port": 70000})).starts_with("deploy.production.port: must be a port number"));
    assert!(err_of(json!({"port": "ssh"})).starts_with("deploy.production.port: must be a port number"));
    assert!(err_of(json!({"ref": ["a"]})).starts_with("deploy.production.ref: must be a string"));
    assert!(err_of(json!({"ssh_options": 3})).starts_with("deploy.production.ssh_options: must be a string or a list"));
    assert!(err_of(json!({"env": "x"})).starts_with("deploy.production.env: must be an object"));
    assert!(err_of(json!({"env": {"a-b": 1}})).contains("not a valid variable name"));
    let missing = parse(&section(), "staging", None).unwrap_err();
    assert_eq!(missing, "deploy.staging: no such deploy environment (defined: production)");
    let not_obj = parse(&json!({"p": 3}), "p", None).unwrap_err();
    assert!(not_obj.starts_with("deploy.p: must be an object"));
}

#[test]
fn unknown_fields_are_warnings_with_a_hint() {
    let mut s = section();
    s["production"]["post_deploy"] = json!("x");
    let e = parse(&s, "production", None).unwrap();
    assert_eq!(e.warnings, vec!["deploy.production.post_deploy: unknown field, ignored (did you mean `post-deploy`?)"]);
}

fn host(path: &str) -> Host {
    Host {
        host: "h".into(),
        user: None,
        port: None,
        key: None,
        ssh_options: vec![],
        forward_agent: false,
        needs_tty: false,
        path: path.into(),
        env: vec![("A".into(), "it's".into())],
    }
}

#[test]
fn ssh_argv_is_pm2s_order() {
    let e = parse(&section(), "production", None).unwrap();
    let r = Remote { env: &e, host: &e.hosts[1] };
    assert_eq!(
        r.ssh_argv("true"),
        ["ssh", "-o", "StrictHostKeyChecking=no", "-A", "-p", "2222", "-i", "/k/id", "deploy@b.example", "true"]
    );
    let h = host("/p");
    let r = Remote { env: &e, host: &h };
    assert_eq!(r.ssh_argv("true"), ["ssh", "h", "true"]);
}

#[test]
fn remote_commands_keep_pm2s_layout() {
    let e = parse(&section(), "production", None).unwrap();
    let h = host("/var/www/my app/");
    let r = Remote { env: &e, host: &h };
    assert_eq!(
        r.mkdirs(),
        "mkdir -p '/var/www/my app'/shared/logs '/var/www/my app'/shared/pids '/var/www/my app'/source"
    );
    assert_eq!(r.link(), "ln -sfn '/var/www/my app'/source '/var/www/my app'/current");
    assert_eq!(r.fetch(), "cd '/var/www/my app'/source && git fetch --depth=5 --all --tags");
    assert_eq!(
        r.reset("origin/main"),
        "cd '/var/www/my app'/source && git reset --hard origin/main >/dev/null && git rev-parse HEAD"
    );
    assert_eq!(r.record(), "cd '/var/www/my app'/source && git rev-parse HEAD >> '/var/www/my app'/.deploys");
    assert_eq!(
        r.clone_source(),
        "git clone --depth=5 --branch main git@github.com:me/app.git '/var/www/my app'/source"
    );
    assert!(r
        .check_not_set_up()
        .starts_with("if [ -e '/var/www/my app'/source/.git ]; then echo 'already set up: /var/www/my app/source"));
    assert_eq!(
        r.hook("npm ci", true),
        "cd '/var/www/my app'/current && SHARED='/var/www/my app'/shared && export SHARED && A='it'\\''s' && export A && ( npm ci\n)"
    );
    assert_eq!(
        r.hook("x", false),
        "cd '/var/www/my app'/current && SHARED='/var/www/my app'/shared && export SHARED && ( x\n)"
    );
    assert_eq!(r.deploys(), "if [ -f '/var/www/my app'/.deploys ]; then cat '/var/www/my app'/.deploys; fi");
    let home = host("~/apps/x");
    let r = Remote { env: &e, host: &home };
    assert_eq!(r.link(), "ln -sfn \"$HOME\"/apps/x/source \"$HOME\"/apps/x/current");
}

#[test]
fn quoting_and_refs() {
    assert_eq!(sq("plain/path-1.2"), "plain/path-1.2");
    assert_eq!(sq(""), "''");
    assert_eq!(sq("a b"), "'a b'");
    assert_eq!(sq("$(x)'"), "'$(x)'\\'''");
    assert_eq!(branch_of("origin/main"), "main");
    assert_eq!(branch_of("origin/feature/x"), "feature/x");
    assert_eq!(branch_of("main"), "main");
}

#[test]
fn deploy_log_reading() {
    let log = "aaa\nbbb\nccc\n";
    assert_eq!(nth_from_end(log, 0).as_deref(), Some("ccc"));
    assert_eq!(nth_from_end(log, 1).as_deref(), Some("bbb"));
    assert_eq!(nth_from_end(log, 2).as_deref(), Some("aaa"));
    assert_eq!(nth_from_end(log, 3), None);
    assert_eq!(nth_from_end("", 1), None);
    assert_eq!(list_lines(log), vec!["0\tccc", "1\tbbb", "2\taaa"]);
}

#[test]
fn the_summary_names_each_host() {
    let hosts = vec![
        HostOutcome { host: "a:22".into(), git_ref: "origin/main 1234567".into(), result: Ok(()), seconds: 1.25 },
        HostOutcome {
            host: "b".into(),
            git_ref: "origin/main".into(),
            result: Err("b: cannot reach b over ssh".into()),
            seconds: 0.0,
        },
    ];
    let t = summary(&hosts, Paint { enabled: false });
    assert!(t.contains("│ host │ ref"), "{t}");
    assert!(t.contains("│ a:22 │ origin/main 1234567 │ ok"), "{t}");
    assert!(t.contains("failed: cannot reach b over ssh"), "{t}");
    assert!(t.contains("1.2") || t.contains("1.3"), "{t}");
}

#[test]
fn the_outcome_says_which_hosts_failed() {
    let ok = HostOutcome { host: "a".into(), git_ref: "r".into(), result: Ok(()), seconds: 0.5 };
    let bad = HostOutcome { host: "b:2".into(), git_ref: "r".into(), result: Err("b:2: boom".into()), seconds: 1.0 };
    let o = Outcome::Ran { env: "p".into(), hosts: vec![ok.clone()] };
    assert!(o.ok());
    assert_eq!(o.failure(), None);
    let o = Outcome::Ran { env: "p".into(), hosts: vec![ok, bad] };
    assert!(!o.ok());
    assert_eq!(o.failure().as_deref(), Some("Deploy failed on 1 of 2 host(s): b:2"));
    let j = o.to_json();
    assert_eq!(j["env"], "p");
    assert_eq!(j["hosts"][0]["error"], serde_json::Value::Null);
    assert_eq!(j["hosts"][1]["ok"], false);
    assert_eq!(j["hosts"][1]["error"], "b:2: boom");
    assert_eq!(Outcome::Help.to_json(), json!({"help": true}));
}

#[test]
fn a_pre_setup_naming_a_local_file_pipes_that_script() {
    let dir = std::env::temp_dir().join(format!("rpm2-deploy-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prepare.sh"), "echo hi\n").unwrap();
    let mut e = parse(&section(), "production", None).unwrap();
    e.hooks.pre_setup = Some("prepare.sh one 'two".into());
    let h = host("/p");
    let r = Remote { env: &e, host: &h };
    let (script, remote) = r.pre_setup_script(&dir).unwrap();
    assert_eq!(script, dir.join("prepare.sh"));
    assert_eq!(remote, "bash -s -- one ''\\''two'");
    e.hooks.pre_setup = Some("apt-get install -y git".into());
    let r = Remote { env: &e, host: &h };
    assert_eq!(r.pre_setup_script(&dir), None);
    let _ = std::fs::remove_dir_all(&dir);

}

#[test]
fn api_arguments_become_the_cli_words() {
    let w = |f, c| api_words(&json!(f), &c);
    assert_eq!(w("eco.js", json!(["production", "setup"])), ["eco.js", "production", "setup"]);
    assert_eq!(w("eco.js", json!({"rawArgs": ["node", "pm2", "deploy", "eco.js", "prod"]})), ["eco.js", "prod"]);
    assert_eq!(w("eco.js", json!("prod")), ["eco.js", "prod"]);
    assert_eq!(w("prod", json!(null)), ["prod"]);
    assert_eq!(w("help", json!(null)), ["help"]);
}
