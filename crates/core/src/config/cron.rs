//! `cron_restart`: patterns with 5 fields, or 6 with seconds first (as PM2's croner; this is the Rust
//! croner by the same author), and the nickname forms (`@hourly`, `@daily`, ...). Patterns are checked
//! when an app is declared ([`validate`], used by [`crate::config`]) so a bad one never reaches the
//! daemon; the daemon runs one small timer task per app with a pattern ([`run`]), which sleeps until
//! the next occurrence (re-checking the clock at least once a minute, so a clock change is followed).

use chrono::{DateTime, Local};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use std::time::Duration;

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

/// Longest single sleep: the clock is re-read at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);

impl Schedule {
    /// Parses a pattern: 5 fields (minute first), 6 fields (seconds first), or a nickname.
    /// The error is a sentence for people.
    pub fn parse(pattern: &str) -> Result<Schedule, String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Err("the pattern is empty".into());
        }
        if !p.starts_with('@') {
            let n = p.split_whitespace().count();
            if n != 5 && n != 6 {
                return Err(format!(
                    "it has {n} field{}: use 5 (minute hour day month weekday) or 6 (second first)",
                    if n == 1 { "" } else { "s" }
                ));
            }
        }
        // An empty item (`,` alone, `1,,2`) makes croner's set of values empty, and its search for
        // the next occurrence then never ends (found by fuzzing: `, * 2 * * *` hung the caller).
        if let Some((i, f)) = p.split_whitespace().enumerate().find(|(_, f)| f.split(',').any(str::is_empty)) {
            return Err(format!("field {} ('{f}') has an empty item: write values separated by single commas", i + 1));
        }
        let cron = CronParser::builder().seconds(Seconds::Optional).build().parse(p).map_err(|e| e.to_string())?;
        // A pattern that can never happen (e.g. February 31st) is an error too, not a silent no-op.
        let now = Local::now();
        cron.find_next_occurrence(&now, false).map_err(|_| "it never matches any date".to_string())?;
        Ok(Schedule { cron })
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: &DateTime<Local>) -> Option<DateTime<Local>> {
        self.cron.find_next_occurrence(t, false).ok()
    }
}

/// Checks a pattern for an app declaration; the error names what is wrong with it.
pub fn validate(pattern: &str) -> Result<(), String> {
    Schedule::parse(pattern).map(|_| ())
}

/// Runs `fire` at every occurrence of `schedule`, forever (the caller aborts the task). `fire` is
/// called with the time it was due; occurrences missed while `fire`'s work runs are not queued up.
pub async fn run(schedule: Schedule, mut fire: impl FnMut(DateTime<Local>)) {
    let Some(mut next) = schedule.next_after(&Local::now()) else { return };
    loop {
        let now = Local::now();
        if now >= next {
            fire(next);
            let base = if now > next { now } else { next };
            match schedule.next_after(&base) {
                Some(n) => next = n,
                None => return,
            }
            continue;
        }
        let wait = (next - now).to_std().unwrap_or(Duration::from_millis(10)).min(MAX_SLEEP);
        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};

    /// Found by fuzzing: these hung in croner's search for the next occurrence.
    #[test]
    fn empty_items_are_refused_at_once() {
        for p in [", * 2 * * *", "1,,2 * * * *", "* * * * 1,", ",0 * * * *"] {
            let e = Schedule::parse(p).unwrap_err();
            assert!(e.contains("has an empty item"), "{p}: {e}");
        }
        assert_eq!(
            Schedule::parse(", * 2 * * *").unwrap_err(),
            "field 1 (',') has an empty item: write values separated by single commas"
        );
    }

    #[test]
    fn five_and_six_fields() {
        let s = Schedule::parse("*/2 * * * * *").unwrap();
        let t = Local.with_ymd_and_hms(2024, 5, 1, 10, 0, 1).unwrap();
        let n = s.next_after(&t).unwrap();
        assert_eq!(n.second(), 2);
        let n2 = s.next_after(&n).unwrap();
        assert_eq!((n2 - n).num_seconds(), 2);

        let s = Schedule::parse("30 4 * * *").unwrap();
        let n = s.next_after(&t).unwrap();
        assert_eq!((n.hour(), n.minute(), n.second()), (4, 30, 0));
        assert!(n > t);

        assert!(Schedule::parse("@hourly").is_ok());
        assert!(Schedule::parse("0 0 * * MON-FRI").is_ok());
    }

    #[test]
    fn bad_patterns_say_why() {
        let e = Schedule::parse("* * * *").unwrap_err();
        assert!(e.contains("4 fields"), "{e}");
        let e = Schedule::parse("* * * * * * * *").unwrap_err();
        assert!(e.contains("8 fields"), "{e}");
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("* * * * * nope").is_err());
        assert!(Schedule::parse("").is_err());
        assert!(Schedule::parse("0 0 31 2 *").is_err(), "February 31st never happens");
        assert!(validate("*/5 * * * * *").is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_on_schedule() {
        let s = Schedule::parse("* * * * * *").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(run(s, move |t| {
            let _ = tx.send(t);
        }));
        let a = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        let b = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!((b - a).num_seconds(), 1);
        task.abort();
    }
}
