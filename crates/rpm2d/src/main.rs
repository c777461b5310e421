//! `rpm2d`: the daemon (`rpm2d --daemon`), the CLI (`rpm2d <command>`, which the `rpm2` launcher
//! runs) and the container runtime (`rpm2d --runtime`, which `rpm2-runtime` runs), in one small
//! native executable.

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let code = match argv.get(1).and_then(|a| a.to_str()) {
        Some("--daemon") => rpm2_core::cli::run_daemon(),
        Some("--runtime") => rpm2_core::runtime::run(argv),
        _ => rpm2_core::cli::run(argv),
    };
    std::process::exit(code);
}
