//! `rpm2d`: the daemon (`rpm2d --daemon`), the CLI (`rpm2d <command>`, which the `rpm2` launcher
//! runs) and the container runtime (`rpm2d --runtime`, which `rpm2-runtime` runs), in one small
//! native executable.

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Installed by npm as both `rpm2` and `rpm2-runtime` (links to this executable): the name says which.
    let invoked_as = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    if invoked_as == "rpm2-runtime" {
        let mut args = vec![argv.first().cloned().unwrap_or_default(), "--runtime".into()];
        args.extend(argv.iter().skip(1).cloned());
        std::process::exit(rpm2_core::runtime::run(args));
    }
    let code = match argv.get(1).and_then(|a| a.to_str()) {
        Some("--daemon") => rpm2_core::cli::run_daemon(),
        Some("--runtime") => rpm2_core::runtime::run(argv),
        _ => {
            // A CLI whose output is piped into `head` or `true` ends quietly on EPIPE, like any Unix
            // tool (Rust ignores SIGPIPE by default, which turns that into a panic in println!).
            // SAFETY: resetting a signal disposition before any thread exists.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            rpm2_core::cli::run(argv)
        }
    };
    std::process::exit(code);
}
