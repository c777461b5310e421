//! The web server's request head parser, token check and Accept negotiation.
//! The body is `rpm2_core::fuzz::http`, which a stable `cargo test` also runs (see that module).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rpm2_core::fuzz::http(data));
