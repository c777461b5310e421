//! `GET /metrics`: the Prometheus text format (0.0.4).

use super::*;

/// The daemon's own figures for /metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DaemonFigures {
    /// Daemon pid.
    pub pid: u32,
    /// Resident memory, bytes.
    pub memory: u64,
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Seconds since the daemon started.
    pub uptime: f64,
    /// The daemon's version.
    pub version: String,
}

impl DaemonFigures {
    pub(super) fn read(info: &Value) -> DaemonFigures {
        let pid = info.get("pid").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        let started = info.get("started_at").and_then(|v| v.as_u64()).unwrap_or(0);
        let st = crate::base::procinfo::stat(pid);
        DaemonFigures {
            pid,
            memory: st.map(|s| s.rss).unwrap_or(0),
            cpu_seconds: st.map(|s| s.ticks as f64 / clock_ticks() as f64).unwrap_or(0.0),
            uptime: if started > 0 { now_ms().saturating_sub(started) as f64 / 1000.0 } else { 0.0 },
            version: info.get("version").and_then(|v| v.as_str()).unwrap_or(crate::VERSION).to_string(),
        }
    }
}

/// Every status a process can have (the `status` label of `rpm2_process_status`).
pub const STATUSES: [&str; 6] = ["launching", "online", "stopping", "stopped", "waiting restart", "errored"];

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

pub(super) fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

pub(super) struct Family {
    pub(super) name: &'static str,
    pub(super) kind: &'static str,
    pub(super) help: &'static str,
    pub(super) samples: Vec<(String, f64)>,
}

impl Family {
    pub(super) fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family { name, kind, help, samples: Vec::new() }
    }
    pub(super) fn add(&mut self, labels: &str, v: f64) {
        self.samples.push((labels.to_string(), v));
    }
    pub(super) fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (l, v) in &self.samples {
            if l.is_empty() {
                let _ = writeln!(out, "{} {}", self.name, num(*v));
            } else {
                let _ = writeln!(out, "{}{{{}}} {}", self.name, l, num(*v));
            }
        }
    }
}

/// Renders the Prometheus text exposition (format 0.0.4) of the list and the daemon's figures.
/// The metric names are stable (documented in the README's "Monitoring" section).
pub fn render_metrics(list: &[Pm2Process], daemon: &DaemonFigures) -> String {
    let now = now_ms();
    let mut up = Family::new("rpm2_up", "gauge", "1 when the rpm2 daemon answered this scrape.");
    up.add("", 1.0);
    let mut info = Family::new("rpm2_info", "gauge", "Version of the rpm2 daemon (always 1).");
    info.add(&format!("version=\"{}\"", escape_label(&daemon.version)), 1.0);
    let mut d_mem = Family::new("rpm2_daemon_memory_bytes", "gauge", "Resident memory of the rpm2 daemon, bytes.");
    d_mem.add("", daemon.memory as f64);
    let mut d_cpu =
        Family::new("rpm2_daemon_cpu_seconds_total", "counter", "CPU time (user + system) used by the rpm2 daemon.");
    d_cpu.add("", daemon.cpu_seconds);
    let mut d_up = Family::new("rpm2_daemon_uptime_seconds", "gauge", "Seconds since the rpm2 daemon started.");
    d_up.add("", daemon.uptime);
    let mut d_pid = Family::new("rpm2_daemon_pid", "gauge", "Process id of the rpm2 daemon.");
    d_pid.add("", daemon.pid as f64);
    let mut count = Family::new("rpm2_processes", "gauge", "Managed processes, by status.");

    let mut cpu = Family::new(
        "rpm2_process_cpu_percent",
        "gauge",
        "CPU use of the process and its children, in % of one core (as `rpm2 list`).",
    );
    let mut mem =
        Family::new("rpm2_process_memory_bytes", "gauge", "Resident memory of the process and its children, bytes.");
    let mut restarts = Family::new(
        "rpm2_process_restarts",
        "gauge",
        "Restarts since the process was created (reset by `rpm2 reset`).",
    );
    let mut unstable =
        Family::new("rpm2_process_unstable_restarts", "gauge", "Restarts counted by the crash-loop rule (min_uptime).");
    let mut uptime = Family::new(
        "rpm2_process_uptime_seconds",
        "gauge",
        "Seconds since the process was (re)started; 0 when not running.",
    );
    let mut pid = Family::new("rpm2_process_pid", "gauge", "Process id of the running process; 0 when not running.");
    let mut status = Family::new(
        "rpm2_process_status",
        "gauge",
        "1 for the process's current status, 0 for the others (launching, online, stopping, stopped, waiting restart, errored).",
    );
    let mut custom = Family::new(
        "rpm2_process_custom_metric",
        "gauge",
        "Numeric custom metrics an app pushes with process.send({type: 'axm:monitor', data}).",
    );
    let mut runtime = RuntimeFamilies::new();
    let mut by_status: std::collections::BTreeMap<&str, u64> = STATUSES.iter().map(|s| (*s, 0)).collect();
    for p in list {
        let env = &p.pm2_env;
        let st = env.status.as_str();
        *by_status.entry(STATUSES.iter().find(|s| **s == st).copied().unwrap_or("stopped")).or_default() += 1;
        let mode = if env.exec_mode == "cluster_mode" { "cluster" } else { "fork" };
        let labels = format!(
            "pm_id=\"{}\",name=\"{}\",namespace=\"{}\",exec_mode=\"{}\"",
            p.pm_id,
            escape_label(&p.name),
            escape_label(&env.namespace),
            mode
        );
        let running = st == "online" || st == "launching";
        cpu.add(&labels, p.monit.cpu);
        mem.add(&labels, p.monit.memory as f64);
        restarts.add(&labels, f64::from(env.restart_time));
        unstable.add(&labels, f64::from(env.unstable_restarts));
        let up_ms = if running { now.saturating_sub(env.pm_uptime) } else { 0 };
        uptime.add(&labels, up_ms as f64 / 1000.0);
        pid.add(&labels, f64::from(p.pid));
        for s in STATUSES {
            status.add(&format!("{labels},status=\"{s}\""), if s == st { 1.0 } else { 0.0 });
        }
        for (k, v) in env.axm_monitor.as_object().into_iter().flatten() {
            let value = v.get("value").unwrap_or(v);
            let x = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                _ => None,
            };
            let Some(x) = x else { continue };
            if let Some(kind) = v.get("type").and_then(Value::as_str).filter(|t| t.starts_with("internal/")) {
                runtime.add(kind, &labels, x);
                continue;
            }
            let unit = v.get("unit").and_then(|u| u.as_str()).unwrap_or("");
            custom.add(&format!("{labels},metric=\"{}\",unit=\"{}\"", escape_label(k), escape_label(unit)), x);
        }
    }
    for (s, n) in &by_status {
        count.add(&format!("status=\"{s}\""), *n as f64);
    }
    let mut out = String::new();
    for f in [up, info, d_mem, d_cpu, d_up, d_pid, count, cpu, mem, restarts, unstable, uptime, pid, status] {
        f.render(&mut out);
    }
    for f in runtime.into_families() {
        f.render(&mut out);
    }
    custom.render(&mut out);
    out
}

/// The built-in runtime metrics of Node apps (the metrics preload's, or @pm2/io's: recognized by
/// their `internal/...` type), as gauges in base units.
struct RuntimeFamilies {
    heap_size: Family,
    heap_used: Family,
    loop_delay: Family,
    handles: Family,
    requests: Family,
}

impl RuntimeFamilies {
    fn new() -> RuntimeFamilies {
        RuntimeFamilies {
            heap_size: Family::new(
                "rpm2_process_heap_size_bytes",
                "gauge",
                "V8 heap size of a Node app, bytes (its 'Heap Size' code metric).",
            ),
            heap_used: Family::new(
                "rpm2_process_heap_used_bytes",
                "gauge",
                "V8 heap in use in a Node app, bytes (its 'Used Heap Size' code metric).",
            ),
            loop_delay: Family::new(
                "rpm2_process_event_loop_delay_seconds",
                "gauge",
                "Event-loop delay of a Node app over its last seconds, by quantile (0.5, 0.95).",
            ),
            handles: Family::new("rpm2_process_active_handles", "gauge", "Active libuv handles of a Node app."),
            requests: Family::new("rpm2_process_active_requests", "gauge", "Active libuv requests of a Node app."),
        }
    }

    /// Adds the metric of type `kind` (e.g. `internal/v8/heap/total`); other types are left out
    /// (the heap usage in % is the ratio of the two heap gauges).
    fn add(&mut self, kind: &str, labels: &str, x: f64) {
        const MIB: f64 = 1024.0 * 1024.0;
        match kind {
            "internal/v8/heap/total" => self.heap_size.add(labels, (x * MIB).round()),
            "internal/v8/heap/used" => self.heap_used.add(labels, (x * MIB).round()),
            "internal/libuv/latency/p50" => self.loop_delay.add(&format!("{labels},quantile=\"0.5\""), x / 1000.0),
            "internal/libuv/latency/p95" => self.loop_delay.add(&format!("{labels},quantile=\"0.95\""), x / 1000.0),
            "internal/libuv/handles" => self.handles.add(labels, x),
            "internal/libuv/requests" => self.requests.add(labels, x),
            _ => {}
        }
    }

    fn into_families(self) -> [Family; 5] {
        [self.heap_size, self.heap_used, self.loop_delay, self.handles, self.requests]
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    #[test]
    fn built_in_metrics_get_their_own_gauges() {
        let mut p = crate::protocol::process::tests::sample();
        p.pm2_env.status = "online".into();
        p.pm2_env.axm_monitor = json!({
            "Heap Size": {"historic": true, "unit": "MiB", "type": "internal/v8/heap/total", "value": "2.00"},
            "Used Heap Size": {"historic": true, "unit": "MiB", "type": "internal/v8/heap/used", "value": "1.50"},
            "Heap Usage": {"historic": true, "unit": "%", "type": "internal/v8/heap/usage", "value": 75},
            "Active handles": {"historic": true, "type": "internal/libuv/handles", "value": 3},
            "Active requests": {"historic": true, "type": "internal/libuv/requests", "value": 0},
            "Event Loop Latency": {"historic": true, "unit": "ms", "type": "internal/libuv/latency/p50", "value": "0.50"},
            "Event Loop Latency p95": {"historic": true, "unit": "ms", "type": "internal/libuv/latency/p95", "value": "2.00"},
            "Requests": {"value": 7, "unit": "req/min"},
        });
        let t = render_metrics(&[p], &DaemonFigures::default());
        let line = |name: &str| t.lines().find(|l| l.starts_with(name)).map(String::from).unwrap_or_default();
        assert!(line("rpm2_process_heap_size_bytes{").ends_with("} 2097152"), "{t}");
        assert!(line("rpm2_process_heap_used_bytes{").ends_with("} 1572864"), "{t}");
        assert!(t.contains("quantile=\"0.5\"} 0.0005\n"), "{t}");
        assert!(t.contains("quantile=\"0.95\"} 0.002\n"), "{t}");
        assert!(line("rpm2_process_active_handles{").ends_with("} 3"), "{t}");
        assert!(line("rpm2_process_active_requests{").ends_with("} 0"), "{t}");
        assert!(t.contains("# TYPE rpm2_process_event_loop_delay_seconds gauge\n"), "{t}");
        // Only the app's own metrics stay custom.
        assert!(t.contains("metric=\"Requests\",unit=\"req/min\"} 7\n"), "{t}");
        assert!(!t.contains("metric=\"Heap Size\""), "{t}");
    }
}
