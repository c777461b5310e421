//! Every method the daemon answers, with typed params.
//!
//! On the wire a request is `{"id":N,"method":"stop","params":{"targets":["api"]}}`: [`Method`] is
//! that `method`/`params` pair (serde's adjacent tagging). Parsing is as lenient as the daemon has
//! always been, so that old and hand-written clients keep working:
//! - `params` may be missing, `null` or not an object: every parameter then takes its default;
//! - a parameter of the wrong type takes its default (e.g. `"env": "yes"` is `false`), except where
//!   a field's doc says otherwise (ids and counts given as strings are read as numbers);
//! - unknown parameters are ignored.
//!
//! Only an unknown method fails to parse ([`Method::parse`]).

use super::error::ErrorCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One method call: the method and its params. Serializes to `{"method":"...","params":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "camelCase")]
pub enum Method {
    /// `hello`: the first exchange of every connection; checks the protocol version.
    Hello(HelloParams),
    /// `subscribe`: streams bus events to this connection until it closes.
    Subscribe(SubscribeParams),
    /// `ping`: answers `{"msg":"pong"}`.
    Ping(NoParams),
    /// `version`: the daemon's version string.
    Version(NoParams),
    /// `info`: the daemon's version, pid, home and start time.
    Info(NoParams),
    /// `list`: every process, as PM2 `jlist` objects.
    List(ListParams),
    /// `describe`: the processes of some targets, as PM2 `jlist` objects.
    Describe(DescribeParams),
    /// `start`: starts apps from declarations.
    Start(StartParams),
    /// `stop`: stops processes (and turns their watching off).
    Stop(ControlParams),
    /// `restart`: restarts processes, optionally with a new declaration or env.
    Restart(ControlParams),
    /// `reload`: zero-downtime reload, one instance at a time.
    Reload(ControlParams),
    /// `delete`: stops processes and forgets them.
    Delete(ControlParams),
    /// `reset`: zeroes restart counters.
    Reset(ControlParams),
    /// `signal`: sends a signal to processes.
    Signal(SignalParams),
    /// `send`: sends a message to one process over its IPC channel.
    Send(SendParams),
    /// `flush`: empties log files.
    Flush(FlushParams),
    /// `reloadLogs`: reopens every log file (after an outside rotation).
    ReloadLogs(NoParams),
    /// `kill`: deletes every process and stops the daemon.
    Kill(NoParams),
    /// `scale`: changes the number of instances of an app.
    Scale(ScaleParams),
    /// `dump`: saves the app list to `dump.rpm2`.
    Dump(DumpParams),
    /// `shutdown`: stops every process, keeps the app table, stops the daemon.
    Shutdown(NoParams),
    /// `sendLine`: writes a line to one process's stdin (PM2's `sendLineToStdin`).
    SendLine(SendLineParams),
    /// `trigger`: runs an action the app declared (`axm:action`) and collects its `axm:reply`s.
    Trigger(TriggerParams),
    /// `monitor`: sets or clears PM2's `_km_monitored` flag of processes (`monitor`/`unmonitor`).
    Monitor(MonitorParams),
    /// `inspect`: restarts processes with Node's inspector on.
    Inspect(FlushParams),
}

/// The name of every method [`Method`] knows, as on the wire.
pub const METHOD_NAMES: &[&str] = &[
    "hello",
    "subscribe",
    "ping",
    "version",
    "info",
    "list",
    "describe",
    "start",
    "stop",
    "restart",
    "reload",
    "delete",
    "reset",
    "signal",
    "send",
    "flush",
    "reloadLogs",
    "kill",
    "scale",
    "dump",
    "shutdown",
    "sendLine",
    "trigger",
    "monitor",
    "inspect",
];

impl Method {
    /// Parses a method name and its params (any JSON value). Fails only on an unknown method, with
    /// [`ErrorCode::BadRequest`] and the message `unknown method 'NAME'`.
    pub fn parse(method: &str, params: Value) -> Result<Method, (ErrorCode, String)> {
        let params = match params {
            Value::Object(o) => Value::Object(o),
            _ => Value::Object(Map::new()),
        };
        let mut wire = Map::new();
        wire.insert("method".into(), Value::String(method.into()));
        wire.insert("params".into(), params);
        serde_json::from_value(Value::Object(wire)).map_err(|e| {
            if METHOD_NAMES.contains(&method) {
                (ErrorCode::BadRequest, format!("malformed params for '{method}': {e}"))
            } else {
                (ErrorCode::BadRequest, format!("unknown method '{method}'"))
            }
        })
    }

    /// The method's wire name, e.g. `reloadLogs`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Hello(_) => "hello",
            Method::Subscribe(_) => "subscribe",
            Method::Ping(_) => "ping",
            Method::Version(_) => "version",
            Method::Info(_) => "info",
            Method::List(_) => "list",
            Method::Describe(_) => "describe",
            Method::Start(_) => "start",
            Method::Stop(_) => "stop",
            Method::Restart(_) => "restart",
            Method::Reload(_) => "reload",
            Method::Delete(_) => "delete",
            Method::Reset(_) => "reset",
            Method::Signal(_) => "signal",
            Method::Send(_) => "send",
            Method::Flush(_) => "flush",
            Method::ReloadLogs(_) => "reloadLogs",
            Method::Kill(_) => "kill",
            Method::Scale(_) => "scale",
            Method::Dump(_) => "dump",
            Method::Shutdown(_) => "shutdown",
            Method::SendLine(_) => "sendLine",
            Method::Trigger(_) => "trigger",
            Method::Monitor(_) => "monitor",
            Method::Inspect(_) => "inspect",
        }
    }

    /// Whether the method only reads (the daemon then skips re-syncing its restart triggers).
    pub fn is_read_only(&self) -> bool {
        matches!(self, Method::List(_) | Method::Describe(_) | Method::Ping(_) | Method::Version(_) | Method::Info(_))
    }
}

/// Params of a method that takes none (any given are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoParams {}

/// `hello {protocol, version}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HelloParams {
    /// The client's protocol version; 0 when missing or not an unsigned integer.
    #[serde(deserialize_with = "lenient::u64_or_zero")]
    pub protocol: u64,
    /// The client's version, informative only.
    #[serde(deserialize_with = "lenient::opt_string", skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `subscribe {topics, targets}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeParams {
    /// Topics to receive (`*`, `process:*`, `log:out`, ...); empty (or not a list of strings) for all.
    #[serde(deserialize_with = "lenient::strings")]
    pub topics: Vec<String>,
    /// Only events of these targets' processes; empty (or not a list of strings) for all.
    #[serde(deserialize_with = "lenient::strings")]
    pub targets: Vec<String>,
}

/// `list {env, no_env}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListParams {
    /// Show env values (otherwise `[hidden]`); false unless `true`.
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub env: bool,
    /// Leave the environment out: `pm2_env.env` is `{}` and no env key is copied to the top level
    /// of `pm2_env` (for readers that show none: the process table, monit, report). False unless
    /// `true`; PM2's shape (`jlist`) has it off.
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub no_env: bool,
}

/// `describe {targets, env}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DescribeParams {
    /// Targets: see [`ControlParams::targets`].
    #[serde(deserialize_with = "lenient::targets")]
    pub targets: Vec<String>,
    /// Show env values (otherwise `[hidden]`); false unless `true`.
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub env: bool,
}

/// `start {apps, force, skip_existing}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartParams {
    /// The app declarations (a list of `AppSpec`), kept as JSON here: the daemon parses them and
    /// answers `bad_request` with the reason when one is malformed.
    pub apps: Value,
    /// Start another copy of an app whose name already runs.
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub force: bool,
    /// Silently skip apps whose name already exists.
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub skip_existing: bool,
}

/// A change of watching asked with `restart`/`reload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchChange {
    /// `"toggle"`: turn it on where off and off where on (per app).
    Toggle,
    /// `true`/`false`: set it.
    Set(bool),
}

impl Serialize for WatchChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WatchChange::Toggle => s.serialize_str("toggle"),
            WatchChange::Set(b) => s.serialize_bool(*b),
        }
    }
}

/// `stop`/`restart`/`reload`/`delete`/`reset {targets, update_env, env, spec, watch}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlParams {
    /// Ids, names, namespaces or `all`. A list (non-string items are read as their JSON text), a
    /// single string or a single number.
    #[serde(deserialize_with = "lenient::targets")]
    pub targets: Vec<String>,
    /// Merge [`ControlParams::env`] over each process's stored env (`--update-env`).
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub update_env: bool,
    /// The shell env for `update_env`; ignored unless an object of strings.
    #[serde(deserialize_with = "lenient::opt_env", skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// A new declaration (`AppSpec` JSON) for every target; the daemon answers `bad_request` when it
    /// is malformed. `null` is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Value>,
    /// `"toggle"` or a boolean; anything else is no change.
    #[serde(deserialize_with = "lenient::watch", skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchChange>,
    /// Declaration fields set on every target before it restarts (`restart app --node-args=...`),
    /// keyed and shaped as the `AppSpec` JSON; `null` or not an object is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
}

/// `signal {signal, targets}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignalParams {
    /// A name (`SIGUSR2`, `usr2`) or a number as a string; empty when missing or not a string.
    #[serde(deserialize_with = "lenient::string_or_empty")]
    pub signal: String,
    /// Targets: see [`ControlParams::targets`].
    #[serde(deserialize_with = "lenient::targets")]
    pub targets: Vec<String>,
}

/// `send {id, packet}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendParams {
    /// The pm_id: a number or a numeric string; `None` when missing or not one.
    #[serde(deserialize_with = "lenient::opt_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// The message, written to the process as one JSON line.
    pub packet: Value,
}

/// `flush {targets}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlushParams {
    /// Targets (see [`ControlParams::targets`]); empty for every process.
    #[serde(deserialize_with = "lenient::targets")]
    pub targets: Vec<String>,
}

/// `scale {name, number}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScaleParams {
    /// The app name; `None` when missing or not a string.
    #[serde(deserialize_with = "lenient::opt_string", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `N`, `+N` or `-N`: a string (trimmed) or a number; `None` when missing or neither.
    #[serde(deserialize_with = "lenient::number_text", skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// `dump {force, node}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DumpParams {
    /// Replace a non-empty saved list even when no app runs.
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub force: bool,
    /// The client's Node.js details, stored as they are in the dump.
    pub node: Value,
}

/// `sendLine {id, line}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendLineParams {
    /// The pm_id: a number or a numeric string; `None` when missing or not one.
    #[serde(deserialize_with = "lenient::opt_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// The text written to stdin as is (the client adds the separator, `\n` by default); empty
    /// when missing or not a string.
    #[serde(deserialize_with = "lenient::string_or_empty")]
    pub line: String,
}

/// `trigger {target, action, params, timeout}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TriggerParams {
    /// A pm_id, a name, a namespace, a script file name, or `all` (a number given as such is read
    /// as its text); empty when missing.
    #[serde(deserialize_with = "lenient::target")]
    pub target: String,
    /// The declared action's name; empty when missing or not a string.
    #[serde(deserialize_with = "lenient::string_or_empty")]
    pub action: String,
    /// The parameter passed to the action (`{msg, opts}` is sent); `null` sends the bare name.
    pub params: Value,
    /// How long to wait for the replies, in ms (default 10 000, at most 600 000).
    #[serde(deserialize_with = "lenient::opt_u64", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `inspect {targets}`: the same shape as [`FlushParams`].
pub type InspectParams = FlushParams;

/// `monitor {targets, on}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorParams {
    /// Targets: see [`ControlParams::targets`].
    #[serde(deserialize_with = "lenient::targets")]
    pub targets: Vec<String>,
    /// `true` for `monitor`, `false` (also when missing) for `unmonitor`.
    #[serde(deserialize_with = "lenient::bool_or_false")]
    pub on: bool,
}

/// Deserializers that never fail: a value of the wrong type becomes the default.
mod lenient {
    use super::WatchChange;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;
    use std::collections::BTreeMap;

    pub(super) fn bool_or_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(Value::deserialize(d)?.as_bool().unwrap_or(false))
    }

    pub(super) fn u64_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Ok(Value::deserialize(d)?.as_u64().unwrap_or(0))
    }

    pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Value::deserialize(d)?.as_str().map(String::from))
    }

    pub(super) fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(opt_string(d)?.unwrap_or_default())
    }

    pub(super) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(serde_json::from_value(Value::deserialize(d)?).unwrap_or_default())
    }

    pub(super) fn targets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(a) => {
                a.iter().map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())).collect()
            }
            Value::String(s) => vec![s],
            Value::Number(n) => vec![n.to_string()],
            _ => vec![],
        })
    }

    pub(super) fn target<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        })
    }

    pub(super) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(Value::deserialize(d)?.as_u64())
    }

    pub(super) fn number_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }

    pub(super) fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).and_then(|n| u32::try_from(n).ok()))
    }

    pub(super) fn opt_env<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
        Ok(serde_json::from_value(Value::deserialize(d)?).ok())
    }

    pub(super) fn watch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WatchChange>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(t) if t == "toggle" => Some(WatchChange::Toggle),
            Value::Bool(b) => Some(WatchChange::Set(b)),
            _ => None,
        })
    }
}

impl<'de> Deserialize<'de> for WatchChange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WatchChange, D::Error> {
        lenient::watch(d)?.ok_or_else(|| serde::de::Error::custom("expected \"toggle\" or a boolean"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(method: &str, params: Value) -> Method {
        Method::parse(method, params).unwrap()
    }

    #[test]
    fn every_method_parses_from_its_wire_form() {
        for name in METHOD_NAMES {
            let m = parse(name, Value::Null);
            assert_eq!(m.name(), *name);
            assert_eq!(parse(name, json!({})).name(), *name);
            assert_eq!(parse(name, json!({"unknown": 1})).name(), *name);
            // And back: the typed form serializes to the same method name.
            let wire = serde_json::to_value(&m).unwrap();
            assert_eq!(wire["method"], json!(name));
        }
        assert_eq!(
            parse("hello", json!({"protocol": 1, "version": "0.1.0"})),
            Method::Hello(HelloParams { protocol: 1, version: Some("0.1.0".into()) })
        );
        assert_eq!(
            parse("subscribe", json!({"topics": ["log:*"], "targets": ["api"]})),
            Method::Subscribe(SubscribeParams { topics: vec!["log:*".into()], targets: vec!["api".into()] })
        );
        assert_eq!(parse("list", json!({"env": true})), Method::List(ListParams { env: true, no_env: false }));
        assert_eq!(parse("list", json!({"no_env": true})), Method::List(ListParams { env: false, no_env: true }));
        assert_eq!(
            parse("describe", json!({"targets": "api", "env": false})),
            Method::Describe(DescribeParams { targets: vec!["api".into()], env: false })
        );
        let Method::Start(s) = parse("start", json!({"apps": [{"name": "a"}], "force": true})) else { panic!() };
        assert!(s.force && !s.skip_existing);
        assert_eq!(s.apps, json!([{"name": "a"}]));
        let Method::Restart(c) = parse(
            "restart",
            json!({"targets": ["api", 3], "update_env": true, "env": {"A": "1"}, "watch": "toggle", "spec": null}),
        ) else {
            panic!()
        };
        assert_eq!(c.targets, vec!["api".to_string(), "3".into()]);
        assert!(c.update_env);
        assert_eq!(c.env.unwrap()["A"], "1");
        assert_eq!(c.watch, Some(WatchChange::Toggle));
        assert_eq!(c.spec, None);
        assert_eq!(
            parse("signal", json!({"signal": "SIGUSR2", "targets": 0})),
            Method::Signal(SignalParams { signal: "SIGUSR2".into(), targets: vec!["0".into()] })
        );
        assert_eq!(
            parse("send", json!({"id": "4", "packet": {"x": 1}})),
            Method::Send(SendParams { id: Some(4), packet: json!({"x": 1}) })
        );
        assert_eq!(
            parse("scale", json!({"name": "api", "number": " +2 "})),
            Method::Scale(ScaleParams { name: Some("api".into()), number: Some("+2".into()) })
        );
        assert_eq!(
            parse("scale", json!({"number": 3})),
            Method::Scale(ScaleParams { name: None, number: Some("3".into()) })
        );
        assert_eq!(
            parse("dump", json!({"force": true, "node": {"v": 22}})),
            Method::Dump(DumpParams { force: true, node: json!({"v": 22}) })
        );
        assert_eq!(parse("reloadLogs", Value::Null), Method::ReloadLogs(NoParams {}));
        assert_eq!(
            parse("sendLine", json!({"id": "2", "line": "hi\n"})),
            Method::SendLine(SendLineParams { id: Some(2), line: "hi\n".into() })
        );
        assert_eq!(
            parse("trigger", json!({"target": 0, "action": "hello", "params": {"a": 1}, "timeout": 500})),
            Method::Trigger(TriggerParams {
                target: "0".into(),
                action: "hello".into(),
                params: json!({"a": 1}),
                timeout: Some(500)
            })
        );
        assert_eq!(
            parse("monitor", json!({"targets": "api", "on": true})),
            Method::Monitor(MonitorParams { targets: vec!["api".into()], on: true })
        );
    }

    #[test]
    fn wrong_types_fall_back_to_defaults_as_before() {
        assert_eq!(parse("list", json!({"env": "yes"})), Method::List(ListParams::default()));
        assert_eq!(parse("list", json!([1, 2])), Method::List(ListParams::default()));
        assert_eq!(parse("hello", json!({"protocol": "1"})), Method::Hello(HelloParams::default()));
        let Method::Stop(c) = parse("stop", json!({"targets": {"a": 1}, "env": [1], "watch": 3})) else { panic!() };
        assert_eq!(c, ControlParams::default());
        assert_eq!(parse("send", json!({"id": -1})), Method::Send(SendParams { id: None, packet: Value::Null }));
        assert_eq!(parse("send", json!({"id": 5_000_000_000u64})), Method::Send(SendParams::default()));
        assert_eq!(
            parse("subscribe", json!({"topics": ["a", 1], "targets": null})),
            Method::Subscribe(SubscribeParams::default())
        );
        assert_eq!(parse("signal", json!({"signal": 9})), Method::Signal(SignalParams::default()));
    }

    #[test]
    fn unknown_method_is_a_bad_request() {
        let (code, msg) = Method::parse("frobnicate", json!({})).unwrap_err();
        assert_eq!(code, ErrorCode::BadRequest);
        assert_eq!(msg, "unknown method 'frobnicate'");
        // Names are case-sensitive, as before.
        assert!(Method::parse("Ping", Value::Null).is_err());
        assert!(Method::parse("reload_logs", Value::Null).is_err());
    }
}
