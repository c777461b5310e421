//! Small formatting helpers shared by the CLI and the daemon: human uptimes and sizes, dates in
//! PM2/dayjs-style formats, ANSI colours.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// PM2's uptime cell: `0s`, `6s`, `2m`, `3h`, `4D`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}D", s / 86400)
    }
}

/// Memory as the table shows it: `0b`, `512kb`, `51.9mb`, `1.2gb`.
pub fn human_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let f = b as f64;
    if b < 1024 {
        format!("{b}b")
    } else if f < K * K {
        format!("{:.1}kb", f / K)
    } else if f < K * K * K {
        format!("{:.1}mb", f / K / K)
    } else {
        format!("{:.1}gb", f / K / K / K)
    }
}

/// Broken-down local time.
#[derive(Debug, Clone, Copy)]
pub struct LocalTime {
    /// Full year.
    pub year: i32,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=60.
    pub second: u32,
    /// 0..=999.
    pub millis: u32,
    /// Offset from UTC in seconds.
    pub offset_secs: i64,
}

/// Converts epoch ms to local time (honouring `TZ`, else `/etc/localtime`, as libc does). A time
/// beyond chrono's range (year 262143) is shown as the epoch.
pub fn local_time(ms: u64) -> LocalTime {
    broken_down(&utc(ms).with_timezone(&chrono::Local))
}

/// `ms` as a UTC date-time (the epoch when out of chrono's range).
fn utc(ms: u64) -> chrono::DateTime<chrono::Utc> {
    i64::try_from(ms).ok().and_then(chrono::DateTime::from_timestamp_millis).unwrap_or_default()
}

/// The fields of `t`.
fn broken_down<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> LocalTime {
    use chrono::{Datelike, Offset, Timelike};
    LocalTime {
        year: t.year(),
        month: t.month(),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: t.second(),
        millis: t.timestamp_subsec_millis().min(999),
        offset_secs: i64::from(t.offset().fix().local_minus_utc()),
    }
}

/// Formats epoch ms with dayjs/moment tokens (`YYYY YY MM M DD D HH H hh mm m ss s SSS Z ZZ A a`);
/// text in `[brackets]` is copied as is, other characters pass through.
pub fn format_date(ms: u64, fmt: &str) -> String {
    format_time(&local_time(ms), fmt)
}

/// [`format_date`] of an already broken-down time.
fn format_time(t: &LocalTime, fmt: &str) -> String {
    let mut out = String::with_capacity(fmt.len() + 8);
    let b = fmt.as_bytes();
    let mut i = 0;
    let tz = |sep: &str| {
        let o = t.offset_secs;
        let sign = if o < 0 { '-' } else { '+' };
        let o = o.abs();
        format!("{sign}{:02}{sep}{:02}", o / 3600, (o % 3600) / 60)
    };
    while i < b.len() {
        let rest = &fmt[i..];
        let take = |tok: &str| rest.starts_with(tok);
        if b[i] == b'[' {
            if let Some(end) = rest.find(']') {
                out.push_str(&rest[1..end]);
                i += end + 1;
                continue;
            }
        }
        let (s, n) = if take("YYYY") {
            (format!("{:04}", t.year), 4)
        } else if take("YY") {
            (format!("{:02}", t.year % 100), 2)
        } else if take("MM") {
            (format!("{:02}", t.month), 2)
        } else if take("M") {
            (t.month.to_string(), 1)
        } else if take("DD") {
            (format!("{:02}", t.day), 2)
        } else if take("D") {
            (t.day.to_string(), 1)
        } else if take("HH") {
            (format!("{:02}", t.hour), 2)
        } else if take("H") {
            (t.hour.to_string(), 1)
        } else if take("hh") {
            (format!("{:02}", (t.hour + 11) % 12 + 1), 2)
        } else if take("h") {
            (((t.hour + 11) % 12 + 1).to_string(), 1)
        } else if take("mm") {
            (format!("{:02}", t.minute), 2)
        } else if take("m") {
            (t.minute.to_string(), 1)
        } else if take("ss") {
            (format!("{:02}", t.second), 2)
        } else if take("s") {
            (t.second.to_string(), 1)
        } else if take("SSS") {
            (format!("{:03}", t.millis), 3)
        } else if take("ZZ") {
            (tz(""), 2)
        } else if take("Z") {
            (tz(":"), 1)
        } else if take("A") {
            ((if t.hour < 12 { "AM" } else { "PM" }).to_string(), 1)
        } else if take("a") {
            ((if t.hour < 12 { "am" } else { "pm" }).to_string(), 1)
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            (c.to_string(), c.len_utf8())
        };
        out.push_str(&s);
        i += n;
    }
    out
}

/// ISO-8601 UTC with milliseconds (`2026-11-25T07:58:55.677Z`), as JavaScript's `toISOString`.
pub fn iso_utc(ms: u64) -> String {
    let t = broken_down(&utc(ms));
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis)
}

/// ANSI colour helper that can be switched off (`--no-color`, `NO_COLOR`, non-TTY).
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    /// Whether escape codes are emitted.
    pub enabled: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    /// Green text.
    pub fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    /// Red text.
    pub fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    /// Yellow text.
    pub fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    /// Cyan text.
    pub fn cyan(&self, s: &str) -> String {
        self.wrap("36", s)
    }
    /// Grey text.
    pub fn grey(&self, s: &str) -> String {
        self.wrap("90", s)
    }
    /// Bold text.
    pub fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    /// A status in its colour: online green, stopped/errored red, the rest yellow.
    pub fn status(&self, s: &str) -> String {
        match s {
            "online" => self.green(s),
            "stopped" | "errored" => self.red(s),
            _ => self.yellow(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(6_000), "6s");
        assert_eq!(human_duration(125_000), "2m");
        assert_eq!(human_duration(3 * 3_600_000 + 5), "3h");
        assert_eq!(human_duration(4 * 86_400_000), "4D");
        assert_eq!(human_bytes(0), "0b");
        assert_eq!(human_bytes(54_427_648), "51.9mb");
    }

    #[test]
    fn iso_and_format() {
        assert_eq!(iso_utc(1795593535677), "2026-11-25T07:58:55.677Z");
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        // Shift by the local offset so the assertion holds in any time zone.
        let off = local_time(1795593535677).offset_secs;
        let ms = (1795593535677i64 - off * 1000) as u64;
        let s = format_date(ms, "YYYY-MM-DD HH:mm:ss.SSS [at] A");
        assert_eq!(s, "2026-11-25 07:58:55.677 at AM");
    }

    #[test]
    fn formats_in_other_offsets() {
        use chrono::FixedOffset;
        let ms = 1795593535677; // 2026-11-25T07:58:55.677Z
        let at = |secs: i32| broken_down(&utc(ms).with_timezone(&FixedOffset::east_opt(secs).unwrap()));
        // India (+05:30): half-hour offsets, afternoon.
        let t = at(5 * 3600 + 1800);
        assert_eq!(format_time(&t, "YYYY-MM-DD HH:mm:ss.SSS Z ZZ"), "2026-11-25 13:28:55.677 +05:30 +0530");
        assert_eq!(format_time(&t, "h:mm a [h] A"), "1:28 pm h PM");
        // New York in winter (-05:00): the previous day in the early morning.
        let t = at(-5 * 3600);
        assert_eq!(format_time(&t, "YY-M-D H:m:s hh Z"), "26-11-25 2:58:55 02 -05:00");
        let t = broken_down(&utc(1795564800000).with_timezone(&FixedOffset::east_opt(-3600).unwrap()));
        assert_eq!(format_time(&t, "YYYY-MM-DD HH:mm"), "2026-11-24 23:00");
        // Rotated log names and the daemon log use these formats.
        let t = at(0);
        assert_eq!(format_time(&t, "YYYY-MM-DD_HH-mm-ss"), "2026-11-25_07-58-55");
        assert_eq!(format_time(&t, "YYYY-MM-DDTHH:mm:ss"), "2026-11-25T07:58:55");
    }

    #[test]
    fn iso_dates_across_eras() {
        assert_eq!(iso_utc(951782400000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_utc(253402300799999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_utc(u64::MAX), "1970-01-01T00:00:00.000Z");
    }
}
