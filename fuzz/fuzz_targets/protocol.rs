//! The control-socket protocol: a request line into protocol::Request, then a typed Method.
//! The body is `rpm2_core::fuzz::protocol`, which a stable `cargo test` also runs (see that module).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rpm2_core::fuzz::protocol(data));
