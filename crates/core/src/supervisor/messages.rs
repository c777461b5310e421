//! What the child says on its IPC channel: `ready`, custom messages and metrics for the bus, and the
//! cluster protocol (`NODE_CLUSTER`) of a cluster worker.

use super::{Actor, Sig};
use crate::base::dlog;
use crate::base::fmt::now_ms;
use crate::ipc::{ChannelEvent, ChannelTx};
use serde_json::{json, Value};

impl Actor {
    /// Handles one IPC event of the child of generation `gen`.
    pub(super) fn on_ipc(&mut self, gen: u64, ev: ChannelEvent) -> Sig {
        let who = if self.is_current(gen) {
            self.running.as_ref()
        } else if self.is_retiring(gen) {
            self.retiring.as_ref()
        } else {
            return Sig::None;
        };
        let (wid, tx) = match who {
            Some(r) => (r.wid, r.ipc.clone()),
            None => return Sig::None,
        };
        if matches!(ev, ChannelEvent::Message(_) | ChannelEvent::Handle { .. }) {
            // Any message proves the child's event loop turns (the preload's `axm:monitor` every second).
            if let Some(r) = who {
                r.heartbeat.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
            }
        }
        let current = self.is_current(gen);
        let sig = match ev {
            ChannelEvent::Message(v) => self.on_message(wid, tx.as_ref(), v, current),
            ChannelEvent::Handle { msg, .. } => {
                // A handle the app sent us (e.g. process.send(m, server)): ACKed by the channel and
                // closed here (the fd drops); the message itself is delivered.
                self.on_message(wid, tx.as_ref(), msg, current)
            }
            ChannelEvent::Fault(f) => {
                dlog(format!("App {} IPC: {f}", self.label()));
                Sig::None
            }
            ChannelEvent::Closed => {
                if let Some(c) = &self.ctx.cluster {
                    if wid != 0 {
                        c.worker_gone(wid);
                    }
                }
                for r in [self.running.as_mut(), self.retiring.as_mut()].into_iter().flatten() {
                    if r.gen == gen {
                        r.ipc = None;
                    }
                }
                Sig::None
            }
        };
        if sig == Sig::Listening {
            for r in [self.running.as_mut(), self.retiring.as_mut()].into_iter().flatten() {
                if r.gen == gen {
                    r.listened = true;
                }
            }
        }
        sig
    }

    fn on_cluster(&mut self, wid: u64, tx: Option<&ChannelTx>, o: &serde_json::Map<String, Value>) -> Sig {
        let Some(cluster) = self.ctx.cluster.clone() else { return Sig::None };
        if let Some(ack) = o.get("ack").and_then(|v| v.as_u64()) {
            let accepted = o.get("accepted").and_then(|v| v.as_bool()).unwrap_or(false);
            cluster.on_ack(ack, accepted);
            return Sig::None;
        }
        match o.get("act").and_then(|v| v.as_str()) {
            Some("queryServer") => {
                if let Some(tx) = tx {
                    cluster.query_server(wid, tx, &Value::Object(o.clone()));
                }
                Sig::None
            }
            Some("listening") => Sig::Listening,
            Some("close") => {
                if let Some(k) = o.get("key").and_then(|v| v.as_str()) {
                    cluster.worker_close(wid, k);
                }
                Sig::None
            }
            Some("exitedAfterDisconnect") => {
                if let (Some(tx), Some(seq)) = (tx, o.get("seq")) {
                    tx.send(json!({"cmd": "NODE_CLUSTER", "ack": seq, "seq": crate::cluster::next_seq()}));
                }
                cluster.worker_gone(wid);
                Sig::None
            }
            _ => Sig::None,
        }
    }

    /// Handles one message of a child (`current`: of the running child, not of one being retired).
    fn on_message(&mut self, wid: u64, tx: Option<&ChannelTx>, v: Value, current: bool) -> Sig {
        if let Some(o) = v.as_object() {
            if o.get("cmd").and_then(|c| c.as_str()) == Some("NODE_CLUSTER") {
                return self.on_cluster(wid, tx, o);
            }
        }
        // The preload's metrics, every second from every Node app: merged by moving the parsed
        // values (no copy of the message), and a bus event only when someone listens.
        let v = match v {
            Value::Object(mut o) if current && o.get("type").and_then(Value::as_str) == Some("axm:monitor") => {
                match o.remove("data") {
                    Some(Value::Object(data)) => {
                        let event = (self.ctx.bus.receiver_count() > 0).then(|| Value::Object(data.clone()));
                        self.merge_metrics(data);
                        if let Some(data) = event {
                            let process = self.process_json();
                            self.emit("axm:monitor", json!({"at": now_ms(), "data": data, "process": process}));
                        }
                        return Sig::None;
                    }
                    Some(other) => {
                        o.insert("data".into(), other);
                        Value::Object(o)
                    }
                    None => Value::Object(o),
                }
            }
            v => v,
        };
        let at = now_ms();
        let process = self.process_json();
        if v.as_str() == Some("ready") {
            self.emit("process:msg", json!({"at": at, "raw": "ready", "process": process}));
            return Sig::Ready;
        }
        if let Some(o) = v.as_object() {
            let truthy = |x: Option<&Value>| !matches!(x, None | Some(Value::Null) | Some(Value::Bool(false)));
            if let (Some(Value::String(t)), true) = (o.get("type"), truthy(o.get("data"))) {
                if t == "axm:action" {
                    self.declare_action(o.get("data"));
                }
                self.emit(t, json!({"at": at, "data": o.get("data"), "process": process}));
                return Sig::None;
            }
            if o.contains_key("node_version") {
                return Sig::None;
            }
        }
        self.emit("process:msg", json!({"at": at, "raw": v, "process": process}));
        Sig::None
    }

    /// Merges metrics into `axm_monitor` by name (PM2's `Object.assign`: the preload's built-in
    /// metrics and the app's own sit side by side) and publishes them. Not saved to the app table:
    /// metrics arrive every second from every Node app.
    fn merge_metrics(&mut self, data: serde_json::Map<String, Value>) {
        merge_into(&mut self.st.axm_monitor, data);
        // Only the metrics change: the published copy gets them alone, not a copy of all the state.
        let metrics = &self.st.axm_monitor;
        self.state_tx.send_modify(|s| s.axm_monitor.clone_from(metrics));
    }

    /// Records an action declared with `axm:action` (once per name, as PM2).
    fn declare_action(&mut self, data: Option<&Value>) {
        let Some(d) = data.filter(|d| d.is_object()) else { return };
        let Some(name) = d.get("action_name").and_then(|n| n.as_str()) else { return };
        if !self.st.axm_actions.iter().any(|a| a.get("action_name").and_then(|n| n.as_str()) == Some(name)) {
            self.st.axm_actions.push(d.clone());
            self.publish();
        }
    }
}

/// `Object.assign(target, data)`: each metric of `data` replaces the one of the same name or is added
/// after the others; metrics `data` does not name are kept. A missing target starts as `data`.
fn merge_into(target: &mut Option<Value>, data: serde_json::Map<String, Value>) {
    match target {
        Some(Value::Object(m)) => {
            for (k, v) in data {
                m.insert(k, v);
            }
        }
        other => *other = Some(Value::Object(data)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_merge_by_name_as_object_assign() {
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        let mut m = None;
        merge_into(&mut m, obj(json!({"Heap Size": {"value": "1.00"}, "Active handles": {"value": 1}})));
        merge_into(&mut m, obj(json!({"Requests": {"value": 42, "unit": "req/min"}})));
        merge_into(&mut m, obj(json!({"Heap Size": {"value": "2.00"}})));
        let m = m.unwrap_or_default();
        assert_eq!(
            m.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            ["Heap Size", "Active handles", "Requests"]
        );
        assert_eq!(m["Heap Size"]["value"], "2.00");
        assert_eq!(m["Requests"]["value"], 42);
    }
}
