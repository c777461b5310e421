//! Unit tests of the IPC channel: helpers, the codec and the socket; handles and hooks in
//! `handles.rs`; real child processes in `node.rs`.

use super::*;
use crate::ipc::tx::{spawn, Outbound};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use std::io::IoSliceMut;
use std::os::unix::process::CommandExt;

mod handles;
mod node;

const T: Duration = Duration::from_secs(10);

fn pair() -> (OwnedFd, OwnedFd) {
    let (daemon, child) = socketpair().expect("socketpair");
    set_nonblocking(&child).expect("nonblock");
    (daemon, child)
}

async fn next(rx: &mut mpsc::Receiver<ChannelEvent>) -> ChannelEvent {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("event channel ended without Closed")
}

async fn expect_msg(rx: &mut mpsc::Receiver<ChannelEvent>, want: Value) {
    match next(rx).await {
        ChannelEvent::Message(v) => assert_eq!(v, want),
        other => panic!("expected Message({want}), got {other:?}"),
    }
}

async fn expect_fault(rx: &mut mpsc::Receiver<ChannelEvent>, needle: &str) {
    match next(rx).await {
        ChannelEvent::Fault(s) => assert!(s.contains(needle), "fault {s:?} lacks {needle:?}"),
        other => panic!("expected Fault({needle}), got {other:?}"),
    }
}

async fn expect_closed(rx: &mut mpsc::Receiver<ChannelEvent>) {
    match next(rx).await {
        ChannelEvent::Closed => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(rx.recv().await.is_none(), "events after Closed");
}

/// Writes all of `data` on the raw (non-blocking) child end, attaching `fd` to the first chunk.
async fn raw_write(sock: &OwnedFd, data: &[u8], fd: Option<RawFd>) {
    let mut off = 0;
    let mut fd = fd;
    while off < data.len() {
        let iov = [IoSlice::new(&data[off..])];
        let fds: Vec<RawFd> = fd.into_iter().collect();
        let cmsgs: Vec<ControlMessage> = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(&fds)] };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => {
                off += n;
                fd = None;
            }
            Err(nix::errno::Errno::EAGAIN) => tokio::time::sleep(Duration::from_millis(2)).await,
            Err(e) => panic!("raw write: {e}"),
        }
    }
}

/// One non-blocking recvmsg on the raw end (None = nothing available).
fn raw_try_recv(sock: &OwnedFd) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let r = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(cmsg.as_mut_slice()), MsgFlags::MSG_CMSG_CLOEXEC);
    match r {
        Ok(m) => {
            let mut fds = Vec::new();
            for c in m.cmsgs().expect("cmsgs") {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: fds just received, owned by nobody else.
                    fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                }
            }
            let n = m.bytes;
            buf.truncate(n);
            Some((buf, fds))
        }
        Err(nix::errno::Errno::EAGAIN) => None,
        Err(e) => panic!("raw recv: {e}"),
    }
}

/// Reads from the raw end until `acc` holds a full line; returns it and the fds that came with it.
async fn raw_line(sock: &OwnedFd, acc: &mut Vec<u8>) -> (String, Vec<OwnedFd>) {
    let mut fds = Vec::new();
    let deadline = Instant::now() + T;
    loop {
        if let Some(i) = acc.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = acc.drain(..=i).collect();
            return (String::from_utf8(line[..i].to_vec()).expect("utf8"), fds);
        }
        assert!(Instant::now() < deadline, "timed out reading the raw end");
        match raw_try_recv(sock) {
            Some((data, more)) => {
                assert!(!data.is_empty(), "raw end got EOF");
                acc.extend_from_slice(&data);
                fds.extend(more);
            }
            None => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Asserts nothing arrives on the raw end for a while (letting the channel task run meanwhile).
async fn raw_quiet(sock: &OwnedFd) {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if let Some((data, _)) = raw_try_recv(sock) {
            panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&data));
        }
    }
}

fn test_task() -> Task {
    Task::new("t".into(), Arc::new(Shared::default()))
}

fn drain_events(t: &mut Task) -> Vec<String> {
    t.events
        .drain(..)
        .map(|e| match e {
            ChannelEvent::Message(v) => format!("msg {v}"),
            ChannelEvent::Handle { msg, .. } => format!("handle {msg}"),
            ChannelEvent::Fault(f) => format!("fault {f}"),
            ChannelEvent::Closed => "closed".into(),
        })
        .collect()
}

// ----- codec (pure, deterministic) -----

#[test]
fn codec_partial_lines_and_split_utf8() {
    let mut t = test_task();
    let line = "{\"a\":\"é€😀\"}\n".as_bytes();
    // Split at every byte position, including inside each multi-byte character.
    for cut in 1..line.len() {
        t.ingest(&line[..cut], vec![], false);
        assert!(t.events.is_empty(), "event before the newline (cut {cut})");
        t.ingest(&line[cut..], vec![], false);
        assert_eq!(drain_events(&mut t), vec![r#"msg {"a":"é€😀"}"#]);
    }
    assert!(t.rbuf.is_empty());
}

#[test]
fn codec_several_messages_in_one_read_and_any_json_value() {
    let mut t = test_task();
    t.ingest(
        b"\"ready\"\n1\nnull\n[1,{\"b\":true}]\n{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\n{\"x\"",
        vec![],
        false,
    );
    assert_eq!(
        drain_events(&mut t),
        vec![
            r#"msg "ready""#,
            "msg 1",
            "msg null",
            r#"msg [1,{"b":true}]"#,
            r#"msg {"cmd":"NODE_CLUSTER","act":"online","seq":0}"#,
        ]
    );
    t.ingest(b":2}\n", vec![], false);
    assert_eq!(drain_events(&mut t), vec![r#"msg {"x":2}"#]);
}

#[test]
fn codec_malformed_line_is_a_fault_then_continues() {
    let mut t = test_task();
    t.ingest(b"{\"a\":1}\n{nope\n\n\"ok\"\n", vec![], false);
    let ev = drain_events(&mut t);
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert_eq!(ev[0], r#"msg {"a":1}"#);
    assert!(ev[1].starts_with("fault ipc[t]: malformed JSON") && ev[1].contains("{nope"));
    assert!(ev[2].starts_with("fault ipc[t]: malformed JSON"));
    assert_eq!(ev[3], r#"msg "ok""#);
    assert!(!t.done);
}

#[test]
fn codec_over_long_line_is_fatal_and_bounded() {
    // Without a newline: fatal as soon as the buffer passes MAX_LINE.
    let mut t = test_task();
    let chunk = vec![b'x'; READ_CHUNK];
    let mut fed = 0;
    while !t.done {
        t.ingest(&chunk, vec![], false);
        fed += chunk.len();
        assert!(t.rbuf.len() <= MAX_LINE, "buffer grew past MAX_LINE");
        assert!(fed <= MAX_LINE + READ_CHUNK, "never closed");
    }
    let ev = drain_events(&mut t);
    assert_eq!(ev.len(), 1);
    assert!(ev[0].contains("longer than"), "{ev:?}");

    // A complete line that is too long, arriving in one read.
    let mut t = test_task();
    let mut big = vec![b'"'; 1];
    big.extend(std::iter::repeat_n(b'y', MAX_LINE));
    big.extend_from_slice(b"\"\n\"after\"\n");
    t.ingest(&big, vec![], false);
    assert!(t.done);
    let ev = drain_events(&mut t);
    assert_eq!(ev.len(), 1, "nothing after a fatal fault: {ev:?}");

    // Exactly MAX_LINE is fine.
    let mut t = test_task();
    let mut ok = vec![b'"'];
    ok.extend(std::iter::repeat_n(b'z', MAX_LINE - 2));
    ok.extend_from_slice(b"\"\n");
    t.ingest(&ok, vec![], false);
    assert!(!t.done);
    assert!(matches!(t.events.pop_front(), Some(ChannelEvent::Message(Value::String(s))) if s.len() == MAX_LINE - 2));
}

#[test]
fn stray_fds_are_closed_and_reported() {
    let mut t = test_task();
    let (a, b) = socketpair().expect("socketpair");
    // An fd stuck to a plain message that ends in the same read: nobody can claim it.
    t.ingest(b"\"plain\"\n", vec![a, b], false);
    let ev = drain_events(&mut t);
    assert_eq!(ev[0], r#"msg "plain""#);
    assert!(ev[1].contains("closed 2 received fd(s)"), "{ev:?}");
    assert!(t.rfds.is_empty());
    // An fd whose NODE_HANDLE line is still partial is kept for it.
    let (c, _d) = socketpair().expect("socketpair");
    t.ingest(b"{\"cmd\":\"NODE_HAN", vec![c], false);
    assert_eq!(t.rfds.len(), 1);
    t.ingest(b"DLE\",\"type\":\"net.Native\",\"msg\":7}\n", vec![], false);
    assert_eq!(drain_events(&mut t), vec!["handle 7"]);
    // MSG_CTRUNC: the lost fd makes the next NODE_HANDLE a NACK.
    t.ingest(b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":8}\n", vec![], true);
    let ev = drain_events(&mut t);
    assert!(ev[0].contains("MSG_CTRUNC") && ev[1].contains("NACKed"), "{ev:?}");
    let lines: Vec<&[u8]> = t.wq.iter().map(|i| i.bytes.as_slice()).collect();
    assert_eq!(lines, vec![ACK_LINE, NACK_LINE]);
}

// ----- over a real socketpair, the raw end acting as the child -----

#[tokio::test(flavor = "current_thread")]
async fn socket_codec_split_reads_and_eof() {
    let (daemon, raw) = pair();
    let (_tx, mut rx) = spawn(daemon, "codec".into());
    let all = "\"ready\"\n{\"a\":\"é\"}\n{bad\n[1,2]\n".as_bytes();
    // Cut inside the "é" (2 bytes) and inside the first line.
    let e_at = all.iter().position(|&b| b == 0xC3).expect("é");
    for part in [&all[..3], &all[3..e_at + 1], &all[e_at + 1..]] {
        raw_write(&raw, part, None).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    expect_msg(&mut rx, json!("ready")).await;
    expect_msg(&mut rx, json!({"a": "é"})).await;
    expect_fault(&mut rx, "malformed JSON").await;
    expect_msg(&mut rx, json!([1, 2])).await;
    drop(raw);
    expect_closed(&mut rx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn socket_over_long_line_closes_channel() {
    let (daemon, raw) = pair();
    let (tx, mut rx) = spawn(daemon, "long".into());
    let big = vec![b'x'; MAX_LINE + 2 * READ_CHUNK];
    let writer = async {
        let mut off = 0;
        while off < big.len() {
            match nix::sys::socket::send(raw.as_raw_fd(), &big[off..], MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => off += n,
                Err(nix::errno::Errno::EAGAIN) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(_) => break, // channel closed on us: expected
            }
        }
    };
    let reader = async {
        expect_fault(&mut rx, "longer than").await;
        expect_closed(&mut rx).await;
    };
    tokio::join!(writer, reader);
    assert!(tx.is_closed());
    assert!(!tx.send(json!(1)));
}

fn node_child(script: &str) -> (std::process::Child, OwnedFd) {
    let (daemon, child_end) = socketpair().expect("socketpair");
    let raw = child_end.as_raw_fd();
    let mut cmd = std::process::Command::new("node");
    cmd.arg("-e").arg(script).envs(child_env()).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
    // SAFETY: install_child_fd is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || install_child_fd(raw));
    }
    let child = cmd.spawn().expect("spawn node");
    drop(child_end);
    (child, daemon)
}

async fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node child did not exit within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
