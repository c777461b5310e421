//! The IPC codec: whatever a child writes on its channel (garbage, long lines, invalid UTF-8, handle
//! lines without fds), split into reads at arbitrary points. No panic, bounded buffering.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so lines are split across reads in many ways.
    let Some((&k, rest)) = data.split_first() else { return };
    let size = 1 + k as usize * 7;
    let chunks: Vec<&[u8]> = rest.chunks(size).collect();
    let _ = rpm2_core::ipc::decode_child_bytes(&chunks);
});
