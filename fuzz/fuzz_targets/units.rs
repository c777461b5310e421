//! Small parsers of user text: cron patterns (and their next fire time), sizes, watch delays, shell
//! words, names and ids.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(sched) = rpm2_core::config::cron::Schedule::parse(s) {
        let _ = sched.next_after(&chrono::Local::now());
    }
    let _ = rpm2_core::config::cron::validate(s);
    let v = Value::String(s.to_string());
    let _ = rpm2_core::config::parse_size(&v);
    let _ = rpm2_core::config::watch_options::delay_ms(Some(&v));
    let _ = rpm2_core::config::watch_options::poll_option(Some(&v));
    let _ = rpm2_core::config::shell_split(s);
    let _ = rpm2_core::config::names::check_name(s);
    let _ = rpm2_core::config::names::parse_id(s, "id");
    let _ = rpm2_core::config::names::parse_scale(s);
});

