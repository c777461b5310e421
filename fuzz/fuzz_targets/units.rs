//! Small parsers of user text: cron, sizes, watch delays, shell words, names, ids, scale counts.
//! The body is `rpm2_core::fuzz::units`, which a stable `cargo test` also runs (see that module).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rpm2_core::fuzz::units(data));
