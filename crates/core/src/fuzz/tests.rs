//! The stable driver of the fuzz targets (it runs in every `cargo test`, so in CI): for each target,
//! the seed corpus `fuzz/corpus/<target>/seed-*` is replayed, then inputs made from it by stacked
//! mutations (bit flips, interesting bytes, dictionary tokens, splices, repeats, deep nesting, long
//! lines) from a seeded PRNG are fed to the body for `RPM2_FUZZ_SECS` seconds (3 by default). No
//! coverage feedback as libFuzzer has, but a mutated input is kept as a parent now and then, so
//! mutations stack up over the run. The seed is `RPM2_FUZZ_SEED` (fixed by default, so a run is
//! repeatable; the failure message gives the seed and the input).
//!
//! A panic fails the test, and an input that runs longer than 30 s aborts it (a hang); either way the
//! input is written to `target/fuzz-failures/<target>-<hash>` and the message says how to keep it as
//! a seed (a regression test from then on).

use super::{run, TARGETS};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest input made by the ordinary mutations (as `scripts/fuzz.sh`'s `-max_len`).
const MAX_LEN: usize = 1 << 20;
/// Inputs kept as parents, besides the seeds.
const POOL: usize = 256;

/// splitmix64: small, fast, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// FNV-1a, for seeds from names and names of saved inputs.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed seed corpus of `target` (`seed-*`; libFuzzer's local finds are left out), in
/// file-name order.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = repo_root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the seed corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().map(|n| n.to_string_lossy().starts_with("seed-")).unwrap_or(false))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))).collect()
}

/// Tokens the mutations insert, per target: the words its format is made of.
fn dictionary(target: &str) -> &'static [&'static [u8]] {
    const JSON: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b"\"",
        b"'",
        b"null",
        b"true",
        b"false",
        b"-1",
        b"0",
        b"1e309",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"\"\\u0000\"",
        b"\"\\ud800\"",
        b"NaN",
        b"Infinity",
        b"// c\n",
        b"/* c */",
        b"0x1F",
        b".5",
        b"\"\"",
        b"{}",
        b"[]",
    ];
    const APP: &[&[u8]] = &[
        b"\"apps\"",
        b"\"name\"",
        b"\"script\"",
        b"\"app.js\"",
        b"\"instances\"",
        b"\"max\"",
        b"\"-1\"",
        b"\"exec_mode\"",
        b"\"cluster\"",
        b"\"env\"",
        b"\"env_production\"",
        b"\"args\"",
        b"\"node_args\"",
        b"\"interpreter\"",
        b"\"cron_restart\"",
        b"\"*/5 * * * *\"",
        b"\"max_memory_restart\"",
        b"\"10G\"",
        b"\"watch\"",
        b"\"ignore_watch\"",
        b"\"watch_delay\"",
        b"\"kill_timeout\"",
        b"\"listen_timeout\"",
        b"\"restart_delay\"",
        b"\"exp_backoff_restart_delay\"",
        b"\"max_restarts\"",
        b"\"min_uptime\"",
        b"\"1h\"",
        b"\"cwd\"",
        b"\"../..\"",
        b"\"log_date_format\"",
        b"\"merge_logs\"",
        b"\"increment_var\"",
        b"\"PORT\"",
        b"\"stop_exit_codes\"",
        b"\"namespace\"",
        b"\"out_file\"",
        b"\"/dev/null\"",
        b"\"error_file\"",
        b"\"pid_file\"",
        b"\"shutdown_with_message\"",
        b"\"wait_ready\"",
        b"\"autorestart\"",
        b"\"deploy\"",
        b"- ",
        b"\n  ",
        b": ",
        b"&a ",
        b"*a",
        b"<<: ",
        b"!!binary ",
        b"---\n",
        b"|\n",
        b"? ",
    ];
    const IPC: &[&[u8]] = &[
        b"\n",
        b"{\"cmd\":\"NODE_CLUSTER\",",
        b"\"act\":\"queryServer\"",
        b"\"act\":\"listening\"",
        b"\"act\":\"close\"",
        b"\"act\":\"exitedAfterDisconnect\"",
        b"\"ack\":",
        b"\"accepted\":true",
        b"\"seq\":",
        b"\"key\":",
        b"{\"type\":\"axm:monitor\",\"data\":",
        b"{\"type\":\"axm:action\",\"data\":",
        b"\"ready\"",
        b"\"NODE_HANDLE\"",
        b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":",
        b"\xff\xfe",
        b"\xc3",
        b"\"node_version\"",
        b"{\"a\":1}\n",
    ];
    const PROTO: &[&[u8]] = &[
        b"\"method\"",
        b"\"params\"",
        b"\"id\"",
        b"\"start\"",
        b"\"stop\"",
        b"\"scale\"",
        b"\"send\"",
        b"\"hello\"",
        b"\"delete\"",
        b"\"reload\"",
        b"\"signal\"",
        b"\"trigger\"",
        b"\"targets\"",
        b"\"all\"",
        b"\"apps\"",
        b"\"number\"",
        b"\"+3\"",
        b"\"name\"",
        b"\"packet\"",
        b"\"lines\"",
        b"\"SIGUSR2\"",
        b"\"version\"",
        b"\"update_env\"",
        b"\"spec\"",
        b"\"patch\"",
        b"\"namespace\"",
    ];
    const HTTP: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b" HTTP/1.1\r\n",
        b" HTTP/1.0\r\n",
        b"\r\n",
        b"\r\n\r\n",
        b"\n",
        b"Host: x\r\n",
        b"Authorization: Bearer token\r\n",
        b"Authorization: Basic ",
        b"Content-Length: 99999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b": ",
        b"/api/processes",
        b"/metrics",
        b"?token=",
        b"%00",
        b"%zz",
        b"\x00",
        b"\xff",
    ];
    const UNITS: &[&[u8]] = &[
        b"*",
        b"*/",
        b"/",
        b"-",
        b",",
        b" ",
        b"?",
        b"L",
        b"W",
        b"#",
        b"MON",
        b"JAN",
        b"0",
        b"59",
        b"60",
        b"99999999999",
        b"-1",
        b"1K",
        b"1M",
        b"1G",
        b"1T",
        b"1.5G",
        b"1e400",
        b"ms",
        b"s",
        b"'",
        b"\"",
        b"\\",
        b"\n",
        b"\t",
        b"\x1b",
        b"+",
        b"18446744073709551616",
        b"@reboot",
        b"@daily",
        b"0 0 29 2 *",
    ];
    match target {
        "ecosystem" | "resolve" => {
            // Both speak JSON5/YAML; the app keys matter most to the resolver.
            static BOTH: OnceLockList = OnceLockList::new();
            BOTH.get(JSON, APP)
        }
        "ipc" => IPC,
        "protocol" => {
            static P: OnceLockList = OnceLockList::new();
            P.get(JSON, PROTO)
        }
        "http" => HTTP,
        _ => UNITS,
    }
}

/// Two token lists joined once.
struct OnceLockList(std::sync::OnceLock<Vec<&'static [u8]>>);

impl OnceLockList {
    const fn new() -> Self {
        OnceLockList(std::sync::OnceLock::new())
    }

    fn get(&'static self, a: &'static [&'static [u8]], b: &'static [&'static [u8]]) -> &'static [&'static [u8]] {
        self.0.get_or_init(|| a.iter().chain(b.iter()).copied().collect())
    }
}

const INTERESTING: [u8; 16] =
    [0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b'"', b'\\', b'{', b'[', b':', b',', 0xc3, 0xe2, b' '];

/// One to eight stacked mutations of `input`; `pool` gives splice partners.
fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>], dict: &[&[u8]], target: &str) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = v.len();
        match rng.below(13) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 => {
                let t = dict[rng.below(dict.len())];
                let at = rng.below(len + 1);
                v.splice(at..at, t.iter().copied());
            }
            4 if len > 0 => {
                // Overwrite a run with a token (keeps the length roughly).
                let t = dict[rng.below(dict.len())];
                let at = rng.below(len);
                let end = (at + t.len()).min(len);
                v.splice(at..end, t.iter().copied());
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                v.drain(at..at + n);
            }
            6 => {
                let n = 1 + rng.below(16);
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            7 if len > 0 => {
                // Repeat a slice many times (long lines, many entries, floods).
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(256));
                let most = if rng.chance(8) { 4096 } else { 16 };
                let times = 1 + rng.below(most);
                let chunk = v[at..at + n].repeat(times);
                let to = rng.below(len + 1);
                v.splice(to..to, chunk);
            }
            8 if !pool.is_empty() => {
                // Splice: our head, another input's tail.
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            9 if len > 0 => v.truncate(rng.below(len)),
            10 => {
                // Deep nesting, where a parser might recurse without a limit: opened only, or
                // closed too around a value (a valid document when it replaces the input).
                let (open, close): (&[u8], &[u8]) =
                    [(&b"["[..], &b"]"[..]), (b"{\"a\":", b"}"), (b"- ", b""), (b"[{a:", b"}]"), (b"{ a: ", b" }")]
                        [rng.below(5)];
                let most = if rng.chance(4) { 20_000 } else { 200 };
                let depth = 1 + rng.below(most);
                let mut nest = open.repeat(depth);
                if rng.chance(2) {
                    nest.extend_from_slice(b"1");
                    nest.extend_from_slice(&close.repeat(depth));
                    if rng.chance(2) {
                        v.clear();
                    }
                }
                let at = rng.below(v.len() + 1);
                v.splice(at..at, nest);
            }
            11 if len > 1 => {
                // Swap two bytes far apart (reorders tokens).
                let (i, j) = (rng.below(len), rng.below(len));
                v.swap(i, j);
            }
            12 if target == "ipc" && rng.chance(64) => {
                // One line longer than the channel's limit (a child's 100 MB line, cut to what
                // proves the bound): the decoder must fault, not buffer it all.
                let fill = if rng.chance(2) { b'a' } else { 0xff };
                let at = rng.below(len + 1);
                let line = vec![fill; crate::ipc::MAX_LINE + 1 + rng.below(4096)];
                v.splice(at..at, line);
            }
            _ => {}
        }
    }
    let cap = if target == "ipc" { crate::ipc::MAX_LINE * 2 } else { MAX_LEN };
    v.truncate(cap);
    v
}

/// Runs the body on `input`; a panic fails the test, with the input saved and shown.
fn check(target: &str, input: &[u8], seed: u64, case: u64) {
    let r = std::panic::catch_unwind(|| run(target, input));
    if r.is_err() {
        let dir = repo_root().join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{target}-{:016x}", fnv(input)));
        let _ = std::fs::write(&file, input);
        let shown: String = String::from_utf8_lossy(&input[..input.len().min(300)]).escape_debug().collect();
        panic!(
            "fuzz target '{target}' panicked on case {case} (RPM2_FUZZ_SEED={seed}), {} bytes: \"{shown}\"{}\n\
             input saved as {}; fix the panic, then copy the file to fuzz/corpus/{target}/seed-crash-<what> \
             so it stays a regression test",
            input.len(),
            if input.len() > 300 { "..." } else { "" },
            file.display()
        );
    }
}

/// Longest one input may take: past it the run is ended as a hang (a loop that never ends would
/// otherwise hang `cargo test`, and CI with it).
const HANG: Duration = Duration::from_secs(30);

/// The input being run and since when, for the hang watchdog.
type Current = std::sync::Arc<std::sync::Mutex<(Instant, Vec<u8>, bool)>>;

/// Starts the watchdog of one target's run: when an input runs longer than [`HANG`], it is saved and
/// shown, and the test process aborts (a hang cannot be unwound). Set the flag to end the watchdog.
fn watchdog(target: &'static str, seed: u64) -> Current {
    let cur: Current = std::sync::Arc::new(std::sync::Mutex::new((Instant::now(), Vec::new(), false)));
    let c = cur.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(g) = c.lock() else { return };
        if g.2 {
            return;
        }
        if g.0.elapsed() > HANG {
            let file = repo_root().join("target/fuzz-failures").join(format!("{target}-hang-{:016x}", fnv(&g.1)));
            let _ = std::fs::create_dir_all(repo_root().join("target/fuzz-failures"));
            let _ = std::fs::write(&file, &g.1);
            let shown: String = String::from_utf8_lossy(&g.1[..g.1.len().min(300)]).escape_debug().collect();
            eprintln!(
                "fuzz target '{target}' still runs after {HANG:?} on one input (RPM2_FUZZ_SEED={seed}), {} bytes: \
                 \"{shown}\"; saved as {}: a hang, aborting",
                g.1.len(),
                file.display()
            );
            std::process::abort();
        }
    });
    cur
}

/// Seconds per target: `RPM2_FUZZ_SECS`, else 3.
fn budget() -> Duration {
    let secs = std::env::var("RPM2_FUZZ_SECS").ok().and_then(|s| s.trim().parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
}

/// Replays the seeds of `target`, then fuzzes it for the budget. Returns (seeds, cases).
fn fuzz(target: &'static str) -> (usize, u64) {
    let seed = std::env::var("RPM2_FUZZ_SEED").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0x5eed);
    let seed = seed ^ fnv(target.as_bytes());
    let mut pool = seeds(target);
    assert!(!pool.is_empty(), "fuzz/corpus/{target}/ has no seed");
    let n_seeds = pool.len();
    let current = watchdog(target, seed);
    let watch = |input: &[u8]| {
        if let Ok(mut g) = current.lock() {
            *g = (Instant::now(), input.to_vec(), false);
        }
    };
    for (i, s) in pool.iter().enumerate() {
        watch(s);
        check(target, s, seed, i as u64);
    }
    let dict = dictionary(target);
    let mut rng = Rng(seed);
    let deadline = Instant::now() + budget();
    let mut case = 0u64;
    while Instant::now() < deadline {
        let parent = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, parent, &pool, dict, target);
        watch(&input);
        check(target, &input, seed, case);
        case += 1;
        // Keep some children as parents, so that mutations stack up (small ones only).
        if input.len() <= 64 * 1024 && rng.chance(16) {
            if pool.len() < n_seeds + POOL {
                pool.push(input);
            } else {
                let i = n_seeds + rng.below(POOL);
                pool[i] = input;
            }
        }
    }
    if let Ok(mut g) = current.lock() {
        g.2 = true;
    }
    eprintln!("fuzz {target}: {n_seeds} seeds, {case} mutated inputs in {:?}, no panic", budget());
    (n_seeds, case)
}

#[test]
fn every_target_has_a_seed_corpus_and_a_cargo_fuzz_file() {
    for t in TARGETS {
        assert!(!seeds(t).is_empty(), "fuzz/corpus/{t}/");
        assert!(repo_root().join(format!("fuzz/fuzz_targets/{t}.rs")).is_file(), "fuzz/fuzz_targets/{t}.rs");
    }
    assert!(!run("nope", b""));
}

#[test]
fn the_mutations_are_repeatable() {
    let pool = vec![b"{\"apps\": []}".to_vec()];
    let a: Vec<Vec<u8>> = {
        let mut r = Rng(7);
        (0..50).map(|_| mutate(&mut r, &pool[0], &pool, dictionary("ecosystem"), "ecosystem")).collect()
    };
    let mut r = Rng(7);
    let b: Vec<Vec<u8>> =
        (0..50).map(|_| mutate(&mut r, &pool[0], &pool, dictionary("ecosystem"), "ecosystem")).collect();
    assert_eq!(a, b);
    assert!(a.iter().any(|x| x != &pool[0]));
}

#[test]
fn fuzz_ecosystem() {
    fuzz("ecosystem");
}

#[test]
fn fuzz_resolve() {
    fuzz("resolve");
}

#[test]
fn fuzz_ipc() {
    fuzz("ipc");
}

#[test]
fn fuzz_protocol() {
    fuzz("protocol");
}

#[test]
fn fuzz_http() {
    fuzz("http");
}

#[test]
fn fuzz_units() {
    fuzz("units");
}
