//! `rpm2 logs`: the last lines of each log file, then the live stream from the daemon; `flush` and
//! `reloadLogs`.

use super::args::LogsArgs;
use super::Ui;
use crate::base::fmt::{iso_utc, now_ms, Paint};
use crate::client::Subscription;
use anyhow::Result;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// `rpm2 flush [targets...]`: empties log files (and the daemon's log when no target is given).
pub(super) fn flush(ui: &Ui, targets: &[String]) -> Result<i32> {
    let mut c = ui.client()?;
    let files = crate::client::actions::flush(&mut c, targets, &super::cwd()?)?;
    ui.info("Flushing:");
    for f in files {
        ui.info(&f);
    }
    ui.info("Logs flushed");
    Ok(0)
}

/// `rpm2 reloadLogs`: reopens every log file.
pub(super) fn reload_logs(ui: &Ui) -> Result<i32> {
    let mut c = ui.client()?;
    println!("Reloading all logs...");
    c.call("reloadLogs", json!({}))?;
    println!("All logs reloaded");
    Ok(0)
}

/// How `rpm2 logs` prints one line.
struct LogPrinter<'a> {
    a: &'a LogsArgs,
    paint: Paint,
    /// Width of the `<id>|<name>` column (grows as longer names appear, as PM2's does).
    width: usize,
}

const LOG_COLOURS: [&str; 8] = ["36", "32", "35", "33", "34", "96", "92", "95"];

impl LogPrinter<'_> {
    /// The line as `rpm2 logs` prints it. `at` is the event time (ms) for streamed lines; `recorded`
    /// the time prefix a log file line carries (see [`split_recorded`]).
    fn line(
        &mut self,
        id: u64,
        name: &str,
        is_err: bool,
        text: &str,
        at: Option<u64>,
        recorded: Option<&str>,
    ) -> String {
        let kind = if is_err { "err" } else { "out" };
        if self.a.json || self.a.format {
            // A line of a `log_type: json` file is already an object: use its fields.
            let parsed = serde_json::from_str::<Value>(text).ok().filter(|v| v.get("message").is_some());
            let (message, ts) = match &parsed {
                Some(v) => (
                    v["message"].as_str().unwrap_or("").trim_end_matches('\n').to_string(),
                    v.get("timestamp").cloned().unwrap_or(Value::Null),
                ),
                None => (
                    text.to_string(),
                    at.map(|t| json!(iso_utc(t))).or_else(|| recorded.map(|r| json!(r))).unwrap_or(Value::Null),
                ),
            };
            if self.a.json {
                return json!({"message": message, "timestamp": ts, "type": kind, "process_id": id, "app_name": name})
                    .to_string();
            }
            let ts = ts.as_str().map(|s| s.to_string()).unwrap_or_default();
            return format!("timestamp={ts} app={name} id={id} type={kind} message={message}");
        }
        let ts = match (&self.a.timestamp, at) {
            (Some(f), Some(t)) => format!("{} ", crate::base::fmt::format_date(t, f)),
            _ => String::new(),
        };
        if self.a.raw {
            return format!("{ts}{text}");
        }
        let tag = format!("{id}|{name}");
        self.width = self.width.max(tag.chars().count());
        let tag = format!("{tag:<w$}", w = self.width);
        if self.paint.enabled {
            let code = LOG_COLOURS[(id as usize) % LOG_COLOURS.len()];
            let sep = if is_err { "\x1b[31m|\x1b[0m" } else { "|" };
            format!("{ts}\x1b[{code}m{tag}\x1b[0m {sep} {text}")
        } else {
            format!("{ts}{tag} | {text}")
        }
    }
}

/// A log file line written with `log_date_format` (`<date>: <text>`) as (text, Some(date)); the line
/// itself and None when it does not start with a date of that format.
fn split_recorded<'a>(line: &'a str, format: &str) -> (&'a str, Option<&'a str>) {
    let n = crate::base::fmt::format_date(0, format).len();
    match (line.get(..n), line.get(n..).and_then(|r| r.strip_prefix(": "))) {
        (Some(date), Some(text)) if !date.trim().is_empty() => (text, Some(date)),
        _ => (line, None),
    }
}

/// `rpm2 logs [target]`.
pub(super) fn logs(ui: &Ui, a: LogsArgs) -> Result<i32> {
    let mut c = ui.client()?;
    let target = a.target.clone().filter(|t| t != "all");
    let procs = match &target {
        Some(t) => c.describe(&[t], false)?,
        None => c.processes()?,
    };
    let (want_out, want_err) = match (a.out, a.err) {
        (true, false) => (true, false),
        (false, true) => (false, true),
        _ => (true, true),
    };
    // Subscribe before reading the files, so that no line falls between the tail and the stream.
    let sub = if a.nostream {
        None
    } else {
        let mut topics = vec![];
        if want_out {
            topics.push("log:out");
        }
        if want_err {
            topics.push("log:err");
        }
        let targets: Vec<String> = target.iter().cloned().collect();
        Some(ui.client()?.subscribe(&topics, &targets)?)
    };
    c.close();
    let decorated = !a.raw && !a.json && !a.format;
    let width = procs.iter().map(|p| format!("{}|{}", p.pm_id, p.name).chars().count()).max().unwrap_or(0);
    let mut pr = LogPrinter { a: &a, paint: ui.paint, width };
    let mut out = std::io::stdout().lock();
    if decorated {
        let _ = writeln!(
            out,
            "{} Tailing last {} lines for [{}] process{} (change the value with --lines option)",
            ui.paint.cyan("[TAILING]"),
            a.lines,
            target.clone().unwrap_or_else(|| "all".into()),
            if target.is_none() { "es" } else { "" }
        );
        if target.is_none() && want_out && want_err && a.lines > 0 {
            let path = ui.home.daemon_log();
            let lines = crate::logs::tail_lines(&path, a.lines).unwrap_or_default();
            let _ = writeln!(out, "{}", ui.paint.grey(&format!("{} last {} lines:", path.display(), a.lines)));
            let w = pr.width.max(4);
            for l in lines {
                let _ = writeln!(out, "{} | {l}", ui.paint.grey(&format!("{:<w$}", "rpm2")));
            }
            let _ = writeln!(out);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &procs {
        let (id, name, env) = (u64::from(p.pm_id), p.name.as_str(), &p.pm2_env);
        for (path, is_err) in [(&env.pm_err_log_path, true), (&env.pm_out_log_path, false)] {
            if (is_err && !want_err) || (!is_err && !want_out) {
                continue;
            }
            if path.is_empty() || path == "/dev/null" || !seen.insert(path.to_string()) {
                continue;
            }
            if decorated {
                let _ = writeln!(out, "{}", ui.paint.grey(&format!("{path} last {} lines:", a.lines)));
            }
            if a.lines == 0 {
                continue;
            }
            let date_format = env.log_date_format.as_deref().filter(|_| a.json || a.format);
            for l in crate::logs::tail_lines(Path::new(path), a.lines).unwrap_or_default() {
                let (text, recorded) = match date_format {
                    Some(f) => split_recorded(&l, f),
                    None => (l.as_str(), None),
                };
                let line = pr.line(id, name, is_err, text, None, recorded);
                if writeln!(out, "{line}").is_err() {
                    return Ok(0);
                }
            }
        }
    }
    if decorated && !procs.is_empty() {
        let _ = writeln!(out);
    }
    let _ = out.flush();
    if let Some(sub) = sub {
        stream(ui, sub, &mut pr, &mut out);
    }
    Ok(0)
}

/// Prints streamed log events until the daemon goes away or stdout is closed.
fn stream(ui: &Ui, sub: Subscription, pr: &mut LogPrinter, out: &mut impl Write) {
    for (topic, data) in sub {
        if topic == "rpm2:lagged" {
            let n = data["dropped"].as_u64().unwrap_or(0);
            ui.warn(&format!("{n} log events were dropped: this terminal reads slower than the apps write"));
            continue;
        }
        let is_err = topic == "log:err";
        let id = data["process"]["pm_id"].as_u64().unwrap_or(0);
        let name = data["process"]["name"].as_str().unwrap_or("");
        let at = data["at"].as_u64().unwrap_or_else(now_ms);
        let text = data["data"].as_str().unwrap_or("");
        for piece in text.split_inclusive('\n') {
            let piece = piece.strip_suffix('\n').unwrap_or(piece);
            let line = pr.line(id, name, is_err, piece, Some(at), None);
            if writeln!(out, "{line}").is_err() {
                return;
            }
        }
        if out.flush().is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_recorded;

    #[test]
    fn recorded_dates_are_split_off() {
        assert_eq!(
            split_recorded("2026-01-02T03:04:05: hello", "YYYY-MM-DDTHH:mm:ss"),
            ("hello", Some("2026-01-02T03:04:05"))
        );
        assert_eq!(split_recorded("hello", "YYYY-MM-DDTHH:mm:ss"), ("hello", None));
        assert_eq!(
            split_recorded("2026-01-02T03:04:05 no colon", "YYYY-MM-DDTHH:mm:ss"),
            ("2026-01-02T03:04:05 no colon", None)
        );
    }
}
