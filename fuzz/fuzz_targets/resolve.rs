//! The option resolver (config::resolve_app) on any app object written as JSON5.
//! The body is `rpm2_core::fuzz::resolve`, which a stable `cargo test` also runs (see that module).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rpm2_core::fuzz::resolve(data));
