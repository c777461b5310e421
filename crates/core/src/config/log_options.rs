//! The log options of an app declaration (`max_size`, `retain`, `compress`, `log_type`,
//! `disable_logs`, `log_date_format`) and the `RPM2_LOG_*` variables, parsed here so that a declaration
//! that passes validation always works in [`crate::logs`].

use crate::config::spec::{AppSpec, LogSettings, RotationOptions};
use serde_json::Value;
use std::collections::BTreeMap;

/// Default rotation threshold of every log file (10 MiB, as pm2-logrotate).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Default number of rotated files kept per log file (as pm2-logrotate).
pub const DEFAULT_RETAIN: usize = 30;
// ---------------------------------------------------------------------------------------------------
// Options

/// Size-based rotation of one log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when a file reaches this many bytes; 0 = never.
    pub max_size: u64,
    /// Rotated files kept (oldest removed first).
    pub retain: usize,
    /// Gzip rotated files (`<name>.gz`).
    pub compress: bool,
}

fn off_word(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "off" | "false" | "0" | "no" | "none" | "disabled")
}

fn size_of(v: &Value, what: &str) -> Result<u64, String> {
    match v {
        Value::Bool(false) => Ok(0),
        Value::String(s) if off_word(s) => Ok(0),
        v => super::parse_size(v).map_err(|e| format!("field '{what}' has a bad value {v}: {e}")),
    }
}

fn count_of(v: &Value, what: &str) -> Result<usize, String> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) if s.trim() == "all" => Some(usize::MAX),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("field '{what}' must be a whole number of files (or \"all\"), got {v}"))
}

fn flag_of(v: &Value, what: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        _ => Err(format!("field '{what}' must be true or false, got {v}")),
    }
}

impl Rotation {
    #[cfg(test)]
    /// No rotation.
    pub fn off() -> Rotation {
        Rotation { max_size: 0, retain: DEFAULT_RETAIN, compress: false }
    }

    /// The defaults: 10 MiB, 30 files, no gzip; overridden by the variables `RPM2_LOG_ROTATE`
    /// (`off` disables), `RPM2_LOG_MAX_SIZE`, `RPM2_LOG_RETAIN` and `RPM2_LOG_COMPRESS`, looked up with
    /// `var`. Bad values are ignored (the default stays).
    pub fn defaults(var: &dyn Fn(&str) -> Option<String>) -> Rotation {
        let mut r = Rotation { max_size: DEFAULT_MAX_SIZE, retain: DEFAULT_RETAIN, compress: false };
        if let Some(v) = var("RPM2_LOG_MAX_SIZE") {
            if let Ok(n) = size_of(&Value::String(v), "RPM2_LOG_MAX_SIZE") {
                r.max_size = n;
            }
        }
        if let Some(v) = var("RPM2_LOG_RETAIN") {
            if let Ok(n) = count_of(&Value::String(v), "RPM2_LOG_RETAIN") {
                r.retain = n;
            }
        }
        if let Some(v) = var("RPM2_LOG_COMPRESS") {
            r.compress = matches!(v.trim(), "1" | "true" | "on" | "yes");
        }
        if var("RPM2_LOG_ROTATE").map(|v| off_word(&v)).unwrap_or(false) {
            r.max_size = 0;
        }
        r
    }

    #[cfg(test)]
    /// An app's rotation from its `max_size` (`"10M"`, `"100K"`, bytes; `0`/`false` = off), `retain`
    /// (a count, or `"all"`) and `compress` options, over [`Rotation::defaults`]. `RPM2_LOG_ROTATE=off`
    /// wins over the app's `max_size` (a kill switch for every app). Errors name the field.
    pub fn resolve(
        max_size: Option<&Value>,
        retain: Option<&Value>,
        compress: Option<&Value>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Rotation, String> {
        Ok(Rotation::for_options(&rotation_options(max_size, retain, compress)?, var))
    }

    /// An app's rotation from its parsed options, over [`Rotation::defaults`] (same rules as
    /// [`Rotation::resolve`]).
    pub fn for_options(o: &RotationOptions, var: &dyn Fn(&str) -> Option<String>) -> Rotation {
        let mut r = Rotation::defaults(var);
        let kill_switch = r.max_size == 0 && var("RPM2_LOG_ROTATE").map(|v| off_word(&v)).unwrap_or(false);
        if let Some(n) = o.max_size {
            r.max_size = n;
        }
        if let Some(n) = o.retain {
            r.retain = n;
        }
        if let Some(c) = o.compress {
            r.compress = c;
        }
        if kill_switch {
            r.max_size = 0;
        }
        r
    }
}

/// Parses an app's `max_size`, `retain` and `compress` (`null`, or `max_size: true`, keeps the
/// default). Errors name the field.
pub fn rotation_options(
    max_size: Option<&Value>,
    retain: Option<&Value>,
    compress: Option<&Value>,
) -> Result<RotationOptions, String> {
    let mut o = RotationOptions::default();
    match max_size {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {}
        Some(v) => o.max_size = Some(size_of(v, "max_size")?),
    }
    match retain {
        None | Some(Value::Null) => {}
        Some(v) => o.retain = Some(count_of(v, "retain")?),
    }
    match compress {
        None | Some(Value::Null) => {}
        Some(v) => o.compress = Some(flag_of(v, "compress")?),
    }
    Ok(o)
}

/// Parses the log options of an app declaration (`max_size`, `retain`, `compress`, `log_type`,
/// `disable_logs`); the message names the field.
pub fn parse_settings(o: &serde_json::Map<String, Value>) -> Result<LogSettings, String> {
    let rotation = rotation_options(o.get("max_size"), o.get("retain"), o.get("compress"))?;
    let json = match o.get("log_type") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => s == "json",
        Some(v) => return Err(format!("field 'log_type' must be \"json\" or \"raw\", got {v}")),
    };
    let disabled = match o.get("disable_logs").filter(|v| !v.is_null()) {
        Some(v) => flag_of(v, "disable_logs")?,
        None => false,
    };
    Ok(LogSettings { json, disabled, rotation })
}

/// The log options kept in `extra` by an rpm2 that did not store [`LogSettings`], read as it read them:
/// leniently (they were validated when declared; anything unreadable keeps its default).
pub fn settings_from_extra(x: &BTreeMap<String, Value>) -> LogSettings {
    let truthy = |v: Option<&Value>| matches!(v, Some(Value::Bool(true))) || v.and_then(|v| v.as_str()) == Some("true");
    LogSettings {
        json: x.get("log_type").and_then(|v| v.as_str()) == Some("json"),
        disabled: truthy(x.get("disable_logs")),
        rotation: rotation_options(x.get("max_size"), x.get("retain"), x.get("compress")).unwrap_or_default(),
    }
}

/// How one process's output is written.
#[derive(Debug, Clone, PartialEq)]
pub struct LogOptions {
    /// `log_date_format` / `--time`: every line prefixed `<date>: `.
    pub date_format: Option<String>,
    /// `log_type: json`: one JSON object per line.
    pub json: bool,
    /// `disable_logs`: output is read and dropped (no files, no bus).
    pub disabled: bool,
    /// Size rotation.
    pub rotation: Rotation,
    /// `app_name` of JSON lines.
    pub app_name: String,
    /// `process_id` of JSON lines.
    pub pm_id: u32,
}

impl LogOptions {
    #[cfg(test)]
    /// Raw lines, no rotation (tests, tools).
    pub fn plain() -> LogOptions {
        LogOptions {
            date_format: None,
            json: false,
            disabled: false,
            rotation: Rotation::off(),
            app_name: String::new(),
            pm_id: 0,
        }
    }

    /// The options of process `pm_id` of `spec` (its parsed [`LogSettings`]). The rotation variables
    /// are looked up in the app's environment, then the daemon's.
    pub fn for_app(spec: &AppSpec, pm_id: u32) -> LogOptions {
        let var = |k: &str| spec.env.get(k).cloned().or_else(|| std::env::var(k).ok());
        let settings = spec.log_settings();
        LogOptions {
            date_format: spec.log_date_format.clone(),
            json: settings.json,
            disabled: settings.disabled,
            rotation: Rotation::for_options(&settings.rotation, &var),
            app_name: spec.name.clone(),
            pm_id,
        }
    }
}
