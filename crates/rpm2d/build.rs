//! Link arguments of the `rpm2d` executable on Linux:
//! - `hot.ld` (written by `scripts/hot-order.js`), in release builds, places the functions rpm2d
//!   runs together at the start of its code, so the daemon touches few code pages (its RSS is mostly
//!   those pages). Names it lists that a build does not have match nothing. `RPM2_NO_ORDER=1` leaves
//!   it out (to measure it).
//! - `--strip-all`, in place of the profile's `strip` (see the workspace Cargo.toml), unless
//!   `RPM2_KEEP_SYMBOLS=1` (for profiling and for `scripts/hot-order.js`).
fn main() {
    println!("cargo:rerun-if-changed=hot.ld");
    println!("cargo:rerun-if-env-changed=RPM2_NO_ORDER");
    println!("cargo:rerun-if-env-changed=RPM2_KEEP_SYMBOLS");
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty() && v != "0");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        if release && !set("RPM2_KEEP_SYMBOLS") {
            println!("cargo:rustc-link-arg-bins=-Wl,-x");
        }
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hot.ld");
    // A debug build's functions have other names: the list would only slow its link down.
    if release && script.exists() && !set("RPM2_NO_ORDER") {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    if release && !set("RPM2_KEEP_SYMBOLS") {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
}
