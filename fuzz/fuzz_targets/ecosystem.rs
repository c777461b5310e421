//! Ecosystem data formats (JSON5, YAML) and the shaping into apps: any text, no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rpm2_core::config::ecosystem::{parse_text, shape, Kind};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for kind in [Kind::Json5, Kind::Yaml] {
        if let Ok(v) = parse_text(text, kind) {
            let _ = shape(v, Path::new("fuzz.json"));
        }
    }
});
