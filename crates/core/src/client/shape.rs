//! The shapes of the flow's results that PM2's API returns.

use crate::base::paths::Home;
use serde_json::{json, Value};

/// PM2's `_operate` result item: `{name, namespace, pm_id, status, restart_time, pid, pm2_env}`.
pub fn operate_shape(p: &Value) -> Value {
    let env = json!({
        "name": p["name"],
        "namespace": p["namespace"],
        "pm_id": p["pm_id"],
        "status": p["status"],
        "restart_time": p["restart_time"],
    });
    json!({
        "name": p["name"],
        "namespace": p["namespace"],
        "pm_id": p["pm_id"],
        "status": p["status"],
        "restart_time": p["restart_time"],
        "pid": p["pid"],
        "pm2_env": env,
    })
}

/// PM2's `connect()` result for the daemon of `home`: `info` is the daemon's `info` reply and
/// `started` whether this connection started the daemon. rpm2 always runs a separate daemon, and
/// one socket serves both PM2's RPC and its pub/sub.
pub fn connect_shape(home: &Home, started: bool, info: &Value) -> Value {
    let sock = home.socket();
    json!({
        "daemon_mode": true,
        "new_pm2_instance": started,
        "rpc_socket_file": sock,
        "pub_socket_file": sock,
        "pm2_home": home.root(),
        "rpm2_home": home.root(),
        "daemon_pid": info["pid"],
        "version": info["version"],
    })
}
