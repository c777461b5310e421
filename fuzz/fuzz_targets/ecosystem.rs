//! Ecosystem data formats (JSON, JSON5, YAML) and the shaping into apps: any text, no panic.
//! The body is `rpm2_core::fuzz::ecosystem`, which a stable `cargo test` also runs (see that module).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rpm2_core::fuzz::ecosystem(data));
