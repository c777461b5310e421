//! The payload of `GET /` (PM2's HttpInterface: system_info, monit, processes).

use super::*;

/// `{system_info, monit, processes}` as PM2's HttpInterface (`pm2 web`) answers.
pub fn root_payload(list: &Value) -> Value {
    json!({
        "system_info": {"hostname": hostname(), "uptime": uptime_secs()},
        "monit": {
            "loadavg": loadavg(),
            "total_mem": meminfo("MemTotal:"),
            "free_mem": meminfo("MemAvailable:"),
            "cpu": cpus(),
            "interfaces": interfaces(),
        },
        "processes": list,
    })
}

pub(super) fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

pub(super) fn uptime_secs() -> f64 {
    crate::base::platform::proc_text("uptime")
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

pub(super) fn loadavg() -> Vec<f64> {
    crate::base::platform::loadavg().to_vec()
}

/// A `/proc/meminfo` figure in bytes (0 when absent).
pub(super) fn meminfo(key: &str) -> u64 {
    crate::base::platform::proc_text("meminfo")
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

pub(super) fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => 100,
    }
}

/// Node's `os.cpus()`: model, speed (MHz) and times (ms) per CPU.
pub(super) fn cpus() -> Vec<Value> {
    let info = crate::base::platform::proc_text("cpuinfo").unwrap_or_default();
    let mut models = Vec::new();
    let mut speeds = Vec::new();
    for l in info.lines() {
        let Some((k, v)) = l.split_once(':') else { continue };
        match k.trim() {
            "model name" => models.push(v.trim().to_string()),
            "cpu MHz" => speeds.push(v.trim().parse::<f64>().map(|f| f.floor() as u64).unwrap_or(0)),
            _ => {}
        }
    }
    let ms = 1000 / clock_ticks().max(1);
    let stat = crate::base::platform::proc_text("stat").unwrap_or_default();
    let mut out = Vec::new();
    for l in stat.lines() {
        let mut f = l.split_whitespace();
        let Some(name) = f.next() else { continue };
        if !name.starts_with("cpu") || name == "cpu" {
            continue;
        }
        let n: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
        let t = |i: usize| n.get(i).copied().unwrap_or(0) * ms;
        let i = out.len();
        out.push(json!({
            "model": models.get(i).cloned().unwrap_or_else(|| "unknown".into()),
            "speed": speeds.get(i).copied().unwrap_or(0),
            "times": {"user": t(0), "nice": t(1), "sys": t(2), "idle": t(3), "irq": t(5)},
        }));
    }
    out
}

/// Node's `os.networkInterfaces()`: per interface, `{address, netmask, family, mac, internal, cidr}`
/// (and `scopeid` for IPv6).
pub(super) fn interfaces() -> Value {
    use nix::net::if_::InterfaceFlags;
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return json!({}) };
    let addrs: Vec<_> = addrs.collect();
    let mut macs: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for a in &addrs {
        if let Some(mac) = a.address.as_ref().and_then(|s| s.as_link_addr()).and_then(|l| l.addr()) {
            let m = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            macs.insert(a.interface_name.clone(), m);
        }
    }
    let mut out = Map::new();
    for a in &addrs {
        let Some(addr) = &a.address else { continue };
        let internal = a.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let mac = macs.get(&a.interface_name).cloned().unwrap_or_else(|| "00:00:00:00:00:00".into());
        let entry = if let Some(v4) = addr.as_sockaddr_in() {
            let ip = v4.ip();
            let mask = a.netmask.as_ref().and_then(|m| m.as_sockaddr_in()).map(|m| m.ip());
            let prefix = mask.map(|m| u32::from(m).count_ones()).unwrap_or(0);
            json!({
                "address": ip.to_string(),
                "netmask": mask.map(|m| m.to_string()).unwrap_or_default(),
                "family": "IPv4",
                "mac": mac,
                "internal": internal,
                "cidr": format!("{ip}/{prefix}"),
            })
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            let ip = v6.ip();
            let mask = a.netmask.as_ref().and_then(|m| m.as_sockaddr_in6()).map(|m| m.ip());
            let prefix = mask.map(|m| u128::from(m).count_ones()).unwrap_or(0);
            json!({
                "address": ip.to_string(),
                "netmask": mask.map(|m| m.to_string()).unwrap_or_default(),
                "family": "IPv6",
                "mac": mac,
                "internal": internal,
                "cidr": format!("{ip}/{prefix}"),
                "scopeid": v6.scope_id(),
            })
        } else {
            continue;
        };
        if let Value::Array(v) = out.entry(a.interface_name.clone()).or_insert_with(|| json!([])) {
            v.push(entry);
        }
    }
    Value::Object(out)
}
