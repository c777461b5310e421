//! The shapes of the flow's results that PM2's API returns.

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
