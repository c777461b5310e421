//! Handlers run for real against a [`Daemon`] with an empty registry in a temporary home.

use super::handlers::{handle, Answer, HResult};
use super::state::Daemon;
use crate::base::paths::Home;
use crate::protocol::{ErrorCode, Method};
use serde_json::{json, Value};
use std::sync::Arc;

/// A daemon state in a fresh temporary home (no socket, no background tasks).
fn daemon(tag: &str) -> Arc<Daemon> {
    let root = std::env::temp_dir().join(format!("rpm2-daemon-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let home = Home::at(root);
    home.ensure().unwrap();
    Daemon::new(home).0
}

/// Parses `method`/`params` as the connection does and answers it, on a current-thread runtime.
fn call(d: &Arc<Daemon>, method: &str, params: Value) -> HResult {
    call_on(&runtime(), d, method, params)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// [`call`] on a given runtime (supervisors live as long as the runtime they were started on).
fn call_on(rt: &tokio::runtime::Runtime, d: &Arc<Daemon>, method: &str, params: Value) -> HResult {
    let m = Method::parse(method, params).unwrap();
    rt.block_on(handle(d, m)).map(Answer::into_value)
}

fn code(r: HResult) -> ErrorCode {
    r.unwrap_err().code
}

#[test]
fn read_only_methods_on_an_empty_registry() {
    let d = daemon("read");
    assert_eq!(call(&d, "ping", Value::Null).unwrap(), json!({"msg": "pong"}));
    assert_eq!(call(&d, "version", json!({})).unwrap(), json!(crate::VERSION));
    let info = call(&d, "info", json!({})).unwrap();
    assert_eq!(info["pid"], json!(std::process::id()));
    assert!(info["started_at_iso"].is_string());
    assert_eq!(call(&d, "list", json!({"env": true})).unwrap(), json!([]));
    assert_eq!(call(&d, "describe", json!({"targets": ["all"]})).unwrap(), json!([]));
    assert_eq!(call(&d, "flush", json!({})).unwrap(), json!([]));
    assert_eq!(call(&d, "reloadLogs", json!({})).unwrap(), json!({}));
    let _ = std::fs::remove_dir_all(d.home.root());
}

#[test]
fn controls_of_unknown_targets_are_refused() {
    let d = daemon("targets");
    for m in ["stop", "restart", "reload", "delete", "reset"] {
        let e = call(&d, m, json!({"targets": ["nope"]})).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{m}");
        assert_eq!(e.message, "no process or namespace named 'nope': run `rpm2 list` to see the apps");
        let e = call(&d, m, json!({})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{m}");
        assert_eq!(e.message, format!("{m} needs a target: an id, a name, a namespace or all"));
    }
    // `all` of nothing resolves to no process.
    let e = call(&d, "stop", json!({"targets": "all"})).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::NotFound, "no process found: nothing to do"));
    assert_eq!(code(call(&d, "describe", json!({"targets": [3]}))), ErrorCode::NotFound);
    assert_eq!(code(call(&d, "signal", json!({"signal": "SIGUSR2", "targets": ["x"]}))), ErrorCode::NotFound);
    assert_eq!(code(call(&d, "signal", json!({"signal": "nope", "targets": ["x"]}))), ErrorCode::BadRequest);
    assert_eq!(code(call(&d, "send", json!({"packet": {}}))), ErrorCode::BadRequest);
    assert_eq!(code(call(&d, "send", json!({"id": 4}))), ErrorCode::NotFound);
    assert_eq!(code(call(&d, "scale", json!({"number": 2}))), ErrorCode::BadRequest);
    assert_eq!(code(call(&d, "scale", json!({"name": "api"}))), ErrorCode::BadRequest);
    assert_eq!(code(call(&d, "scale", json!({"name": "api", "number": 2}))), ErrorCode::NotFound);
    let _ = std::fs::remove_dir_all(d.home.root());
}

#[test]
fn start_refuses_a_malformed_app_list() {
    let d = daemon("start");
    let e = call(&d, "start", json!({"apps": "not a list"})).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.starts_with("malformed app list: "), "{}", e.message);
    assert_eq!(call(&d, "start", json!({"apps": []})).unwrap(), json!([]));
    let _ = std::fs::remove_dir_all(d.home.root());
}

#[test]
fn dump_of_nothing_keeps_a_saved_list() {
    let d = daemon("dump");
    let r = call(&d, "dump", json!({"node": {"version": "v22"}})).unwrap();
    assert_eq!(r["count"], json!(0));
    let path = d.home.root().join("dump.rpm2");
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["node"], json!({"version": "v22"}));
    std::fs::write(&path, r#"{"apps":[{"spec":{}}]}"#).unwrap();
    assert_eq!(code(call(&d, "dump", json!({}))), ErrorCode::Empty);
    assert_eq!(call(&d, "dump", json!({"force": true})).unwrap()["count"], json!(0));
    let _ = std::fs::remove_dir_all(d.home.root());
}

#[test]
fn start_list_and_delete_an_app_that_does_not_autostart() {
    use crate::config::{resolve_app, ResolveCtx};
    let d = daemon("apps");
    let raw = json!({"name": "t", "script": "/bin/sleep", "interpreter": "none", "args": ["30"],
        "autostart": false, "instances": 2, "env": {"A": "1"}, "vizion": false});
    let ctx = ResolveCtx { cwd: std::env::temp_dir(), env: Default::default(), env_name: None };
    let spec = resolve_app(&raw, &ctx).unwrap().spec;
    let rt = runtime();
    let started = call_on(&rt, &d, "start", json!({"apps": [spec]})).unwrap();
    let started: Vec<crate::protocol::Pm2Process> = serde_json::from_value(started).unwrap();
    assert_eq!(started.iter().map(|p| (p.pm_id, p.pm2_env.node_app_instance)).collect::<Vec<_>>(), [(0, 0), (1, 1)]);
    let list = call_on(&rt, &d, "list", json!({})).unwrap();
    let p = &list[0];
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, ["pid", "name", "pm_id", "monit", "pm2_env"]);
    assert_eq!(p["pid"], json!(0));
    assert_eq!(p["pm2_env"]["status"], json!("stopped"));
    assert_eq!(p["pm2_env"]["env"], json!({"A": "[hidden]"}));
    assert_eq!(p["pm2_env"]["A"], json!("[hidden]"), "each env key also at the top level, as PM2");
    // `no_env` (the process table, monit): no env key anywhere, the rest unchanged.
    let bare = call_on(&rt, &d, "list", json!({"no_env": true})).unwrap();
    assert_eq!(bare[0]["pm2_env"]["env"], json!({}));
    assert!(bare[0]["pm2_env"].get("A").is_none(), "{}", bare[0]["pm2_env"]);
    let mut full = list.clone();
    for q in full.as_array_mut().unwrap() {
        let e = q["pm2_env"].as_object_mut().unwrap();
        e.remove("A");
        e.insert("env".into(), json!({}));
        q["monit"] = json!(null);
    }
    let mut bare_cmp = bare.clone();
    for q in bare_cmp.as_array_mut().unwrap() {
        q["monit"] = json!(null);
    }
    assert_eq!(bare_cmp, full, "no_env leaves out the env keys and nothing else");
    assert_eq!(p["pm2_env"]["vizion"], json!(false));
    assert_eq!(p["pm2_env"]["exec_interpreter"], json!("none"));
    assert_eq!(p["pm2_env"]["pm_exec_path"], json!("/bin/sleep"));
    let env = call_on(&rt, &d, "describe", json!({"targets": "t", "env": true})).unwrap();
    assert_eq!(env.as_array().unwrap().len(), 2);
    assert_eq!(env[1]["pm2_env"]["env"], json!({"A": "1"}));
    let stopped = call_on(&rt, &d, "stop", json!({"targets": [1]})).unwrap();
    assert_eq!(
        stopped,
        json!([{"name": "t", "namespace": "default", "pm_id": 1, "status": "stopped", "restart_time": 0, "pid": 0}])
    );
    let gone = call_on(&rt, &d, "delete", json!({"targets": ["all"]})).unwrap();
    assert_eq!(gone.as_array().unwrap().len(), 2);
    assert_eq!(call_on(&rt, &d, "list", json!({})).unwrap(), json!([]));
    // Ids start again at 0 once every process is deleted.
    assert_eq!(d.registry.lock().unwrap().next_id, 0);
    let _ = std::fs::remove_dir_all(d.home.root());
}

/// Found by the stress test: a `delete` (or a scale-down) racing another delete of the same process
/// got "the supervisor has ended" for it and gave up before forgetting the others, which stayed in
/// the list as `stopping` for ever (their supervisors had ended).
#[test]
fn a_delete_racing_another_delete_forgets_every_process() {
    use crate::config::{resolve_app, ResolveCtx};
    use crate::daemon::state::handle_of;
    let d = daemon("race");
    let raw = json!({"name": "r", "script": "/bin/sleep", "interpreter": "none", "args": ["30"], "instances": 3});
    let ctx = ResolveCtx { cwd: std::env::temp_dir(), env: Default::default(), env_name: None };
    let spec = resolve_app(&raw, &ctx).unwrap().spec;
    let rt = runtime();
    call_on(&rt, &d, "start", json!({"apps": [spec]})).unwrap();
    let pids: Vec<u64> = call_on(&rt, &d, "list", json!({}))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    // Another client's delete of id 0 is queued first; then `delete all` and `scale r 1` come.
    let first = handle_of(&d, 0).unwrap().call(crate::supervisor::Op::Delete);
    let all = Method::parse("delete", json!({"targets": ["all"]})).unwrap();
    let scale = Method::parse("scale", json!({"name": "r", "number": "1"})).unwrap();
    let (a, b, c) = rt.block_on(async { tokio::join!(first, handle(&d, all), handle(&d, scale)) });
    let left: Vec<(Value, Value)> = call_on(&rt, &d, "list", json!({}))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pm_id"].clone(), p["pm2_env"]["status"].clone()))
        .collect();
    assert_eq!(left, [], "nothing is left in the list (ids and statuses shown)");
    assert_eq!(a, Ok(()));
    assert!(b.is_ok(), "delete all: {:?}", b.err().map(|e| e.message));
    // The scale-down either deleted its processes or found none left: never a failure of delete.
    if let Err(e) = c {
        assert_eq!(e.code, ErrorCode::NotFound, "{}", e.message);
    }
    for pid in pids {
        assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err(), "pid {pid} is gone");
    }
    let _ = std::fs::remove_dir_all(d.home.root());
}
