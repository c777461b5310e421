//! The IPC codec: whatever a child writes on its channel, split into reads at arbitrary points.
//! The body is `rpm2_core::fuzz::ipc`, which a stable `cargo test` also runs (see that module).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rpm2_core::fuzz::ipc(data));
