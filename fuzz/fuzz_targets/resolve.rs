//! The option resolver (`config::resolve_app`): any JSON app object (as JSON5 text, so the corpus can
//! be written by hand), no panic. Paths resolve against a scratch folder holding `app.js`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rpm2_core::config::ecosystem::{parse_text, shape, Kind};
use rpm2_core::config::{resolve_app, ResolveCtx};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rpm2-fuzz-resolve-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        let _ = std::fs::write(d.join("app.js"), "setInterval(() => {}, 1000)\n");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(v) = parse_text(text, Kind::Json5) else { return };
    let Ok(eco) = shape(v, Path::new("fuzz.json")) else { return };
    let ctx = ResolveCtx {
        cwd: scratch().clone(),
        env: BTreeMap::from([("HOME".to_string(), "/nonexistent".to_string())]),
        env_name: Some("production".into()),
    };
    for app in eco.apps.iter().take(8) {
        let _ = resolve_app(app, &ctx);
    }
});
