//! `rpm2d`: the daemon (`rpm2d --daemon`) and the CLI (`rpm2d <command>`, which the `rpm2` launcher
//! runs), in one small native executable.

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let code =
        if rpm2_core::cli::is_daemon_mode(&argv) { rpm2_core::cli::run_daemon() } else { rpm2_core::cli::run(argv) };
    std::process::exit(code);
}
