use super::*;
use crate::config::log_options::{DEFAULT_MAX_SIZE, DEFAULT_RETAIN};
use crate::config::{resolve_app, ResolveCtx};
use crate::logs::rotation::{gzip_file, prune, rotated_files};
use serde_json::Value;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rpm2-logs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn opts(date: Option<&str>, json: bool, rotation: Rotation) -> LogOptions {
    LogOptions {
        date_format: date.map(|s| s.to_string()),
        json,
        disabled: false,
        rotation,
        app_name: "app".into(),
        pm_id: 7,
    }
}

fn paths(d: &Path, combined: bool) -> ProcPaths {
    ProcPaths {
        out: Some(d.join("o.log")),
        err: Some(d.join("e.log")),
        combined: if combined { Some(d.join("c.log")) } else { None },
        pid: d.join("p"),
    }
}

#[test]
fn paths_like_pm2() {
    let d = tmp("paths");
    std::fs::write(d.join("a.js"), "").unwrap();
    let ctx = ResolveCtx { cwd: d.clone(), env: Default::default(), env_name: None };
    let home = Home::at(d.join("home"));
    let s = resolve_app(&serde_json::json!({"script": "a.js", "name": "my app"}), &ctx).unwrap().spec;
    let p = proc_paths(&home, &s, 3);
    assert_eq!(p.out.unwrap(), d.join("home/logs/my-app-out.log"));
    assert_eq!(p.pid, d.join("home/pids/my-app-3.pid"));
    let s = resolve_app(
        &serde_json::json!({"script": "a.js", "merge_logs": false, "out_file": "o.log", "error_file": "NULL"}),
        &ctx,
    )
    .unwrap()
    .spec;
    let p = proc_paths(&home, &s, 4);
    assert_eq!(p.out.unwrap(), d.join("o-4.log"));
    assert!(p.err.is_none());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn assembler_holds_partial_lines() {
    let mut a = LineAssembler::new();
    assert_eq!(&*a.push(b"a\nb"), b"a\n");
    assert!(a.deadline().is_some());
    assert_eq!(&*a.push(b"c"), b"");
    assert_eq!(&*a.push(b"d\ne\n"), b"bcd\ne\n");
    assert!(a.deadline().is_none());
    assert_eq!(&*a.push(b"tail"), b"");
    assert_eq!(a.take(), b"tail");
    assert!(a.deadline().is_none());
    // A very long line is let through in pieces.
    let big = vec![b'x'; MAX_PARTIAL];
    assert_eq!(a.push(&big).len(), MAX_PARTIAL);
    assert!(a.take().is_empty());
}

#[test]
fn prefixes_each_line_and_continues_partials() {
    let d = tmp("write");
    let mut lf = LogFiles::open(paths(&d, true), opts(Some("[T]"), false, Rotation::off()));
    let (s1, s2) = (next_source(), next_source());
    assert_eq!(&*lf.write(s1, Stream::Out, b"a\nb"), b"T: a\nT: b");
    // The same source continues its line: no second prefix.
    assert_eq!(&*lf.write(s1, Stream::Out, b"c\n"), b"c\n");
    lf.write(s1, Stream::Out, b"part");
    // Another source (a new child after a restart) ends the dangling line first.
    lf.write(s2, Stream::Out, b"x\n");
    lf.write(s2, Stream::Err, b"oops\n");
    let s = std::fs::read_to_string(d.join("o.log")).unwrap();
    assert_eq!(s, "T: a\nT: bc\nT: part\nT: x\n");
    assert_eq!(std::fs::read_to_string(d.join("e.log")).unwrap(), "T: oops\n");
    assert_eq!(std::fs::read_to_string(d.join("c.log")).unwrap(), "T: a\nT: bc\nT: part\nT: x\nT: oops\n");
    // Invalid UTF-8 passes through to files.
    lf.write(s1, Stream::Err, b"\xff\xfe\n");
    assert!(std::fs::read(d.join("e.log")).unwrap().ends_with(b"T: \xff\xfe\n"));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn raw_lines_and_shared_files() {
    let d = tmp("raw");
    let p = ProcPaths { out: Some(d.join("x.log")), err: Some(d.join("x.log")), combined: None, pid: d.join("p") };
    // A file that ended mid-line before we opened it: the next line starts on its own line.
    std::fs::write(d.join("x.log"), "old").unwrap();
    let mut lf = LogFiles::open(p, LogOptions::plain());
    let s = next_source();
    assert!(matches!(lf.write(s, Stream::Out, b"one\n"), Cow::Borrowed(_)));
    lf.write(s, Stream::Err, b"two\n");
    assert_eq!(std::fs::read_to_string(d.join("x.log")).unwrap(), "old\none\ntwo\n");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn json_lines_have_pm2_shape() {
    let d = tmp("json");
    let mut lf = LogFiles::open(paths(&d, false), opts(None, true, Rotation::off()));
    let s = next_source();
    lf.write(s, Stream::Err, b"first\nsecond \xff\n");
    let text = std::fs::read_to_string(d.join("e.log")).unwrap();
    let objs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objs.len(), 2);
    let keys: Vec<&String> = objs[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["message", "timestamp", "type", "process_id", "app_name"]);
    assert_eq!(objs[0]["message"], "first\n");
    assert_eq!(objs[1]["message"], "second \u{fffd}\n");
    assert_eq!(objs[0]["type"], "err");
    assert_eq!(objs[0]["process_id"], 7);
    assert_eq!(objs[0]["app_name"], "app");
    assert!(objs[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    // With a date format the timestamp uses it.
    let mut lf = LogFiles::open(paths(&d, false), opts(Some("[day]"), true, Rotation::off()));
    lf.write(s, Stream::Out, b"x\n");
    let last = std::fs::read_to_string(d.join("o.log")).unwrap();
    let v: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(v["timestamp"], "day");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn rotation_keeps_every_line_in_order_and_prunes() {
    let d = tmp("rotate");
    let rot = Rotation { max_size: 1000, retain: 3, compress: false };
    let mut lf = LogFiles::open(paths(&d, false), opts(None, false, rot));
    let s = next_source();
    let mut all = String::new();
    for i in 0..100 {
        let line = format!("line {i:04} ..........\n");
        all.push_str(&line);
        lf.write(s, Stream::Out, line.as_bytes());
    }
    let groups = rotated_files(&d.join("o.log"));
    assert_eq!(groups.len(), 2, "{groups:?}");
    let mut seen = String::new();
    for g in &groups {
        seen.push_str(&std::fs::read_to_string(&g[0]).unwrap());
    }
    seen.push_str(&std::fs::read_to_string(d.join("o.log")).unwrap());
    assert_eq!(seen, all, "two rotations and the current file hold every line once");
    // Pruning keeps the newest `retain`.
    let mut lf = LogFiles::open(paths(&d, false), opts(None, false, Rotation { retain: 3, ..Rotation::off() }));
    lf.opts.rotation.max_size = 100;
    for i in 0..40 {
        lf.write(s, Stream::Out, format!("more {i:04} ..........\n").as_bytes());
    }
    let groups = rotated_files(&d.join("o.log"));
    assert_eq!(groups.len(), 3);
    let newest = std::fs::read_to_string(&groups[2][0]).unwrap();
    assert!(newest.contains("more 00"), "{newest}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn rotation_waits_for_a_line_end() {
    let d = tmp("rotmid");
    let mut lf =
        LogFiles::open(paths(&d, false), opts(None, false, Rotation { max_size: 10, retain: 5, compress: false }));
    let s = next_source();
    lf.write(s, Stream::Out, b"0123456789abcdef");
    assert!(rotated_files(&d.join("o.log")).is_empty(), "no rotation inside a line");
    lf.write(s, Stream::Out, b" end\n");
    let groups = rotated_files(&d.join("o.log"));
    assert_eq!(groups.len(), 1);
    assert_eq!(std::fs::read_to_string(&groups[0][0]).unwrap(), "0123456789abcdef end\n");
    assert_eq!(std::fs::read_to_string(d.join("o.log")).unwrap(), "");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn rotated_names_and_gzip() {
    let d = tmp("names");
    let p = d.join("app-out.log");
    let off = fmt::local_time(1795593600000).offset_secs;
    let ms = (1795593600000i64 - off * 1000) as u64; // 2026-11-25 08:00:00 local
    let r = rotated_path(&p, ms);
    assert_eq!(r, d.join("app-out__2026-11-25_08-00-00.log"));
    std::fs::write(&r, "x\n").unwrap();
    assert_eq!(rotated_path(&p, ms), d.join("app-out__2026-11-25_08-00-00-1.log"));
    std::fs::write(d.join("app-out__2026-11-25_08-00-00-1.log"), "y\n").unwrap();
    std::fs::write(d.join("app-out__2026-11-24_23-59-59.log.gz"), "").unwrap();
    std::fs::write(d.join("app-out-3__2026-11-24_23-59-59.log"), "").unwrap(); // another file's
    std::fs::write(d.join("app-out__junk.log"), "").unwrap();
    let names: Vec<String> =
        rotated_files(&p).iter().map(|g| g[0].file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "app-out__2026-11-24_23-59-59.log.gz",
            "app-out__2026-11-25_08-00-00.log",
            "app-out__2026-11-25_08-00-00-1.log"
        ]
    );
    let gz = gzip_file(&r).unwrap();
    assert!(!r.exists());
    let mut s = String::new();
    flate2::read::GzDecoder::new(File::open(&gz).unwrap()).read_to_string(&mut s).unwrap();
    assert_eq!(s, "x\n");
    prune(&p, 1);
    let left = rotated_files(&p);
    assert_eq!(left.len(), 1);
    assert!(left[0][0].ends_with("app-out__2026-11-25_08-00-00-1.log"));
    assert!(d.join("app-out-3__2026-11-24_23-59-59.log").exists());
    // After pruning, a rotation in the same second still sorts last.
    assert_eq!(rotated_path(&p, ms), d.join("app-out__2026-11-25_08-00-00-2.log"));
    // A counter at u64::MAX (anyone can create such a name) neither overflows nor loops forever.
    std::fs::write(d.join(format!("app-out__2026-11-25_08-00-00-{}.log", u64::MAX)), "").unwrap();
    let r = rotated_path(&p, ms);
    assert!(!r.exists(), "{}", r.display());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn rotation_options() {
    let none = |_: &str| None;
    let r = Rotation::resolve(None, None, None, &none).unwrap();
    assert_eq!(r, Rotation { max_size: DEFAULT_MAX_SIZE, retain: DEFAULT_RETAIN, compress: false });
    let r = Rotation::resolve(Some(&"100K".into()), Some(&5.into()), Some(&true.into()), &none).unwrap();
    assert_eq!(r, Rotation { max_size: 102400, retain: 5, compress: true });
    assert_eq!(Rotation::resolve(Some(&false.into()), None, None, &none).unwrap().max_size, 0);
    assert_eq!(Rotation::resolve(Some(&0.into()), None, None, &none).unwrap().max_size, 0);
    let off = |k: &str| (k == "RPM2_LOG_ROTATE").then(|| "off".to_string());
    assert_eq!(Rotation::resolve(None, None, None, &off).unwrap().max_size, 0);
    assert_eq!(Rotation::resolve(Some(&"1M".into()), None, None, &off).unwrap().max_size, 0);
    assert!(Rotation::resolve(Some(&"10X".into()), None, None, &none).unwrap_err().contains("max_size"));
    assert!(Rotation::resolve(None, Some(&"many".into()), None, &none).unwrap_err().contains("retain"));
    assert!(Rotation::resolve(None, None, Some(&"yes".into()), &none).unwrap_err().contains("compress"));
}

#[test]
fn unwritable_path_is_reported_once_and_retried() {
    let d = tmp("fault");
    std::fs::write(d.join("blocker"), "a file, not a folder").unwrap();
    let p = ProcPaths { out: Some(d.join("blocker/o.log")), err: None, combined: None, pid: d.join("p") };
    let mut lf = LogFiles::open(p, LogOptions::plain());
    assert_eq!(lf.errors.len(), 1);
    assert!(lf.errors[0].contains("blocker/o.log"), "{:?}", lf.errors);
    let s = next_source();
    lf.write(s, Stream::Out, b"lost\n");
    lf.write(s, Stream::Out, b"lost\n");
    assert_eq!(lf.errors.len(), 1, "reported once");
    std::fs::remove_file(d.join("blocker")).unwrap();
    lf.slots[0].retry_at = Some(Instant::now());
    lf.write(s, Stream::Out, b"back\n");
    assert_eq!(std::fs::read_to_string(d.join("blocker/o.log")).unwrap(), "back\n");
    assert!(lf.errors[1].contains("resumed"), "{:?}", lf.errors);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn tails_without_reading_everything() {
    let d = tmp("tail");
    let mut big = String::new();
    for i in 0..100_000 {
        big.push_str(&format!("line {i}\n"));
    }
    std::fs::write(d.join("big.log"), &big).unwrap();
    let t = tail_lines(&d.join("big.log"), 3).unwrap();
    assert_eq!(t, vec!["line 99997", "line 99998", "line 99999"]);
    let t = tail_lines(&d.join("big.log"), 20_000).unwrap();
    assert_eq!(t.len(), 20_000);
    assert_eq!(t[0], "line 80000");
    std::fs::write(d.join("small.log"), "a\nb").unwrap();
    assert_eq!(tail_lines(&d.join("small.log"), 5).unwrap(), vec!["a", "b"]);
    assert_eq!(tail_lines(&d.join("small.log"), 1).unwrap(), vec!["b"]);
    std::fs::remove_dir_all(d).unwrap();
}
