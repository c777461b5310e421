use super::*;
use crate::ipc::tx::{spawn, Outbound};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use std::io::IoSliceMut;
use std::os::unix::process::CommandExt;

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

#[tokio::test(flavor = "current_thread")]
async fn handle_parks_later_messages_until_ack() {
    let (daemon, raw) = pair();
    let (tx, mut rx) = spawn(daemon, "h".into());
    let (passed, keep) = socketpair().expect("socketpair");
    let mut acc = Vec::new();
    assert!(tx.send(json!("before")));
    let (l, fds) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, "\"before\"");
    assert!(fds.is_empty());
    assert!(tx.send_handle("net.Native", json!({"cmd": "NODE_CLUSTER", "ack": 1}), passed));
    assert!(tx.send(json!("after")));
    let (l, fds) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","ack":1}}"#);
    assert_eq!(fds.len(), 1, "the handle line carries exactly one fd");
    // The passed fd is the other end of `keep`: prove it by writing through it.
    nix::unistd::write(&fds[0], b"z").expect("write via passed fd");
    let mut one = [0u8; 1];
    nix::unistd::read(&keep, &mut one).expect("read");
    assert_eq!(&one, b"z");
    // "after" is parked until the ACK.
    assert!(acc.is_empty());
    raw_quiet(&raw).await;
    raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n", None).await;
    let (l, fds) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, "\"after\"");
    assert!(fds.is_empty());
    // A second ACK is unsolicited: Fault, channel keeps going.
    raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n\"still here\"\n", None).await;
    expect_fault(&mut rx, "no handle is waiting").await;
    expect_msg(&mut rx, json!("still here")).await;
    // Graceful close: what was sent before close() is still written, then EOF.
    assert!(tx.send(json!("last")));
    tx.close();
    assert!(!tx.send(json!("refused")));
    let (l, _) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, "\"last\"");
    expect_closed(&mut rx).await;
    let (data, _) = raw_try_recv(&raw).expect("EOF is readable");
    assert!(data.is_empty(), "child sees EOF");
}

#[tokio::test(flavor = "current_thread")]
async fn handle_nack_retransmits_then_drops() {
    let (daemon, raw) = pair();
    let (tx, mut rx) = spawn(daemon, "nack".into());
    let (passed, _keep) = socketpair().expect("socketpair");
    assert!(tx.send_outbound(Outbound {
        msg: json!({"cmd": "NODE_HANDLE", "type": "dgram.Socket", "msg": "s", "dgramType": "udp4"}),
        fd: Some(passed),
    }));
    assert!(tx.send(json!("queued")));
    let mut acc = Vec::new();
    for attempt in 0..=MAX_HANDLE_RETRANSMISSIONS {
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert!(l.contains("\"dgramType\":\"udp4\""), "attempt {attempt}: {l}");
        assert_eq!(fds.len(), 1, "attempt {attempt} carries the fd again");
        raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n", None).await;
    }
    expect_fault(&mut rx, "NACKed a handle 4 times").await;
    let (l, fds) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, "\"queued\"");
    assert!(fds.is_empty());
    // Handshake messages and malformed envelopes are refused at the API.
    assert!(!tx.send(json!({"cmd": "NODE_HANDLE_ACK"})));
    assert!(!tx.send(json!({"cmd": "NODE_HANDLE", "type": "net.Native"})));
    let (fd, _other) = socketpair().expect("socketpair");
    assert!(!tx.send_outbound(Outbound { msg: json!({"type": "x"}), fd: Some(fd) }));
}

/// Records what a [`ChannelHook`] is told.
#[derive(Clone, Default)]
struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

impl ChannelHook for Recorder {
    fn on_line(&mut self, line: &[u8]) -> bool {
        let consumed = line.starts_with(b"{\"hot\"");
        if consumed {
            self.0.lock().expect("lock").push(format!("line {}", String::from_utf8_lossy(line)));
        }
        consumed
    }
    fn on_handle_dropped(&mut self, line: &[u8]) {
        self.0.lock().expect("lock").push(format!("dropped {}", String::from_utf8_lossy(line).trim_end()));
    }
    fn on_closed(&mut self) {
        self.0.lock().expect("lock").push("closed".into());
    }
}

fn handle_line(id: usize) -> Vec<u8> {
    format!("{{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{{\"id\":{id}}}}}\n").into_bytes()
}

#[tokio::test(flavor = "current_thread")]
async fn pipelined_handles_go_out_without_waiting_acks_are_fifo_and_bounded() {
    let (daemon, raw) = pair();
    let (tx, _rx) = spawn(daemon, "pipe".into());
    let mut keep = Vec::new();
    for id in 0..MAX_PIPELINED + 2 {
        let (give, k) = socketpair().expect("socketpair");
        keep.push(k);
        assert!(tx.send_handle_line(handle_line(id), Arc::new(give), true));
    }
    assert!(tx.send(json!("after")));
    // MAX_PIPELINED lines arrive before any ACK, each with exactly its own fd.
    let mut acc = Vec::new();
    for (id, ours) in keep.iter().enumerate().take(MAX_PIPELINED) {
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert_eq!(format!("{l}\n").into_bytes(), handle_line(id));
        assert_eq!(fds.len(), 1, "line {id} carries one fd");
        // It is the fd we passed with that line: write through it, read at our end.
        nix::unistd::write(&fds[0], b"k").expect("write");
        let mut one = [0u8; 1];
        nix::unistd::read(ours, &mut one).expect("read");
    }
    raw_quiet(&raw).await;
    // Each ACK lets one more handle go; the plain message waits for the last ACK.
    for id in MAX_PIPELINED..MAX_PIPELINED + 2 {
        raw_write(&raw, ACK_LINE, None).await;
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert_eq!(format!("{l}\n").into_bytes(), handle_line(id));
        assert_eq!(fds.len(), 1);
    }
    // 18 handles: 2 ACKed so far; 15 more, then the last one releases "after".
    for _ in 0..MAX_PIPELINED - 1 {
        raw_write(&raw, ACK_LINE, None).await;
    }
    raw_quiet(&raw).await;
    raw_write(&raw, ACK_LINE, None).await;
    let (l, fds) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, "\"after\"");
    assert!(fds.is_empty());
    // A plain handle (not pipelined) waits for the one before it, as in Node.
    let (a, _ka) = socketpair().expect("socketpair");
    let (b, _kb) = socketpair().expect("socketpair");
    assert!(tx.send_handle_line(handle_line(100), Arc::new(a), false));
    assert!(tx.send_handle_line(handle_line(101), Arc::new(b), true));
    let (l, _) = raw_line(&raw, &mut acc).await;
    assert!(l.contains("100"));
    raw_quiet(&raw).await;
    raw_write(&raw, ACK_LINE, None).await;
    let (l, _) = raw_line(&raw, &mut acc).await;
    assert!(l.contains("101"));
    // Malformed lines are refused at the API.
    let (c, _kc) = socketpair().expect("socketpair");
    assert!(!tx.send_handle_line(b"{\"cmd\":\"x\"}\n".to_vec(), Arc::new(c), true));
}

#[tokio::test(flavor = "current_thread")]
async fn pipelining_waits_when_unread_bytes_exceed_the_window() {
    let (daemon, raw) = pair();
    let (tx, _rx) = spawn(daemon, "window".into());
    let (a, _ka) = socketpair().expect("socketpair");
    assert!(tx.send_handle_line(handle_line(1), Arc::new(a), true));
    let mut acc = Vec::new();
    let (l, _) = raw_line(&raw, &mut acc).await;
    assert!(l.contains("\"id\":1"));
    // A big message goes out before the next handle (after the first ACK), so the child may
    // not have read PIPELINE_WINDOW bytes: the following handles wait for ACKs.
    raw_write(&raw, ACK_LINE, None).await;
    let big = "x".repeat(PIPELINE_WINDOW);
    assert!(tx.send(json!(big)));
    let (b, _kb) = socketpair().expect("socketpair");
    let (c, _kc) = socketpair().expect("socketpair");
    assert!(tx.send_handle_line(handle_line(2), Arc::new(b), true));
    assert!(tx.send_handle_line(handle_line(3), Arc::new(c), true));
    let (l, fds_big) = raw_line(&raw, &mut acc).await;
    assert_eq!(l.len(), PIPELINE_WINDOW + 2);
    let (l, fds) = raw_line(&raw, &mut acc).await;
    // (One read may bring both lines, so the fd can come back with the first of them.)
    assert!(l.contains("\"id\":2") && fds_big.len() + fds.len() == 1, "{l}");
    raw_quiet(&raw).await;
    raw_write(&raw, ACK_LINE, None).await;
    let (l, fds) = raw_line(&raw, &mut acc).await;
    assert!(l.contains("\"id\":3") && fds.len() == 1);
}

#[tokio::test(flavor = "current_thread")]
async fn hook_consumes_hot_lines_hears_dropped_pipelined_handles_and_the_close() {
    let (daemon, raw) = pair();
    let rec = Recorder::default();
    let (tx, mut rx) = spawn_hooked(daemon, "hook".into(), Some(Box::new(rec.clone())));
    raw_write(&raw, b"{\"hot\":1}\n\"cold\"\n", None).await;
    expect_msg(&mut rx, json!("cold")).await;
    let (a, _ka) = socketpair().expect("socketpair");
    let (b, _kb) = socketpair().expect("socketpair");
    assert!(tx.send_handle_line(handle_line(1), Arc::new(a), true));
    assert!(tx.send_handle_line(handle_line(2), Arc::new(b), true));
    let mut acc = Vec::new();
    raw_line(&raw, &mut acc).await;
    raw_line(&raw, &mut acc).await;
    // The first is NACKed: dropped (reported, not sent again); the second is ACKed.
    raw_write(&raw, NACK_LINE, None).await;
    raw_write(&raw, ACK_LINE, None).await;
    expect_fault(&mut rx, "NACKed").await;
    raw_quiet(&raw).await;
    drop(raw);
    expect_closed(&mut rx).await;
    let seen = rec.0.lock().expect("lock").clone();
    let want = vec![
        "line {\"hot\":1}".to_string(),
        format!("dropped {}", String::from_utf8_lossy(&handle_line(1)).trim_end()),
        "closed".to_string(),
    ];
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "current_thread")]
async fn hook_hears_a_lone_handle_dropped_after_retransmissions_and_unsent_ones_at_close() {
    let (daemon, raw) = pair();
    let rec = Recorder::default();
    let (tx, mut rx) = spawn_hooked(daemon, "drops".into(), Some(Box::new(rec.clone())));
    let (a, _ka) = socketpair().expect("socketpair");
    assert!(tx.send_handle_line(handle_line(1), Arc::new(a), false));
    let mut acc = Vec::new();
    for _ in 0..=MAX_HANDLE_RETRANSMISSIONS {
        let (l, fds) = raw_line(&raw, &mut acc).await;
        assert!(l.contains("\"id\":1") && fds.len() == 1);
        raw_write(&raw, NACK_LINE, None).await;
    }
    expect_fault(&mut rx, "NACKed a handle 4 times").await;
    // Now fill the pipeline and park some: at close, only the handles whose fd never left are
    // reported (the sent ones may have reached the child).
    let mut keep = Vec::new();
    for id in 10..10 + MAX_PIPELINED + 2 {
        let (g, k) = socketpair().expect("socketpair");
        keep.push(k);
        assert!(tx.send_handle_line(handle_line(id), Arc::new(g), true));
    }
    for _ in 0..MAX_PIPELINED {
        raw_line(&raw, &mut acc).await;
    }
    drop(raw);
    expect_closed(&mut rx).await;
    let seen = rec.0.lock().expect("lock").clone();
    let mut want = vec![format!("dropped {}", String::from_utf8_lossy(&handle_line(1)).trim_end())];
    for id in 10 + MAX_PIPELINED..10 + MAX_PIPELINED + 2 {
        want.push(format!("dropped {}", String::from_utf8_lossy(&handle_line(id)).trim_end()));
    }
    want.push("closed".into());
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "current_thread")]
async fn node_pairs_each_pipelined_handle_with_its_own_message() {
    // The child writes each message's id through the handle that came with it.
    let script = r#"
        process.on('message', (m, h) => {
          if (m && m.id !== undefined) h.end(String(m.id));
          if (m === 'bye') process.disconnect();
        });
        process.send('ready');
    "#;
    let (mut child, daemon) = node_child(script);
    let (tx, mut rx) = spawn(daemon, "node-pipe".into());
    expect_msg(&mut rx, json!("ready")).await;
    let n = 3 * MAX_PIPELINED;
    let mut keep = Vec::new();
    for id in 0..n {
        let (give, k) = socketpair().expect("socketpair");
        set_nonblocking(&k).expect("nonblock");
        keep.push(k);
        let line = format!("{{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{{\"id\":{id}}}}}\n");
        assert!(tx.send_handle_line(line.into_bytes(), Arc::new(give), true));
    }
    for (id, k) in keep.iter().enumerate() {
        let mut got = Vec::new();
        let deadline = Instant::now() + T;
        loop {
            match raw_try_recv(k) {
                Some((d, _)) if d.is_empty() => break,
                Some((d, _)) => got.extend(d),
                None => {
                    assert!(Instant::now() < deadline, "handle {id}: nothing written through it");
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
            }
        }
        assert_eq!(String::from_utf8_lossy(&got), id.to_string(), "handle {id} came with message {id}");
    }
    drop(keep); // lets the child's sockets finish
    assert!(tx.send(json!("bye")));
    expect_closed(&mut rx).await;
    let st = wait_exit(&mut child, Duration::from_secs(10)).await;
    assert_eq!(st.code(), Some(0));
}

#[tokio::test(flavor = "current_thread")]
async fn incoming_handle_ack_nack_and_unsolicited_ack() {
    let (daemon, raw) = pair();
    let (_tx, mut rx) = spawn(daemon, "in".into());
    let (give, keep) = socketpair().expect("socketpair");
    raw_write(
        &raw,
        b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"x\":1},\"key\":\"k\"}\n",
        Some(give.as_raw_fd()),
    )
    .await;
    drop(give);
    match next(&mut rx).await {
        ChannelEvent::Handle { msg, envelope, fd } => {
            assert_eq!(msg, json!({"x": 1}));
            assert_eq!(envelope["type"], "net.Socket");
            assert_eq!(envelope["key"], "k");
            // SAFETY: F_GETFD on an fd we own.
            let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert!(fl & libc::FD_CLOEXEC != 0, "received fds are CLOEXEC");
            nix::unistd::write(&fd, b"q").expect("write via received fd");
            let mut one = [0u8; 1];
            nix::unistd::read(&keep, &mut one).expect("read");
            assert_eq!(&one, b"q");
        }
        other => panic!("expected Handle, got {other:?}"),
    }
    let mut acc = Vec::new();
    let (l, _) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, r#"{"cmd":"NODE_HANDLE_ACK"}"#);

    // NODE_HANDLE without an fd: NACK + Fault.
    raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":2}\n", None).await;
    expect_fault(&mut rx, "without a file descriptor").await;
    let (l, _) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, r#"{"cmd":"NODE_HANDLE_NACK"}"#);

    // Unsolicited ACK and NACK: Faults, nothing written back, channel alive.
    raw_write(&raw, b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n{\"cmd\":\"NODE_HANDLE_NACK\"}\n3\n", None).await;
    expect_fault(&mut rx, "NODE_HANDLE_ACK received").await;
    expect_fault(&mut rx, "NODE_HANDLE_NACK received").await;
    expect_msg(&mut rx, json!(3)).await;
    raw_quiet(&raw).await;

    // An fd stuck to a plain message: closed and reported.
    let (stray, _peer) = socketpair().expect("socketpair");
    raw_write(&raw, b"\"plain\"\n", Some(stray.as_raw_fd())).await;
    expect_msg(&mut rx, json!("plain")).await;
    expect_fault(&mut rx, "not attached to a NODE_HANDLE").await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_sender_and_receiver_closes_the_channel() {
    let (daemon, raw) = pair();
    let (tx, rx) = spawn(daemon, "drop".into());
    let tx2 = tx.clone();
    drop(tx);
    drop(rx);
    // A clone still alive keeps the channel writable.
    assert!(tx2.send(json!("still")));
    let mut acc = Vec::new();
    let (l, _) = raw_line(&raw, &mut acc).await;
    assert_eq!(l, "\"still\"");
    drop(tx2);
    let deadline = Instant::now() + T;
    loop {
        match raw_try_recv(&raw) {
            Some((d, _)) if d.is_empty() => break,
            Some((d, _)) => panic!("unexpected {d:?}"),
            None => {
                assert!(Instant::now() < deadline, "no EOF");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn write_backlog_is_bounded() {
    let (daemon, raw) = pair();
    let (tx, mut rx) = spawn(daemon, "full".into());
    let big = json!("w".repeat(1024 * 1024));
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..40 {
        if tx.send(big.clone()) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(accepted <= MAX_QUEUED / (1024 * 1024), "accepted {accepted}");
    assert!(refused > 0);
    expect_fault(&mut rx, "not reading").await;
    // Only one fault per episode.
    assert!(!tx.send(big.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err(), "a second overflow fault");
    drop(raw);
}

#[tokio::test(flavor = "current_thread")]
async fn install_child_fd_dup2_and_already_fd3() {
    for already_three in [false, true] {
        let (daemon, child_end) = socketpair().expect("socketpair");
        set_nonblocking(&daemon).expect("nonblock");
        let raw = child_end.as_raw_fd();
        assert!(raw > 2, "socketpair keeps clear of stdio");
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg("echo hi >&3");
        // SAFETY: only async-signal-safe calls (dup3, fcntl) in the closure.
        unsafe {
            cmd.pre_exec(move || {
                if already_three {
                    // Put the channel on fd 3 *with* CLOEXEC, to exercise the fcntl path.
                    if raw != CHILD_CHANNEL_FD && libc::dup3(raw, CHILD_CHANNEL_FD, libc::O_CLOEXEC) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    install_child_fd(CHILD_CHANNEL_FD)
                } else {
                    install_child_fd(raw)
                }
            });
        }
        let mut child = cmd.spawn().expect("spawn sh");
        drop(child_end);
        let st = wait_exit(&mut child, Duration::from_secs(5)).await;
        assert!(st.success(), "fd 3 not inherited (already_three={already_three})");
        let mut acc = Vec::new();
        let (line, _) = raw_line(&daemon, &mut acc).await;
        assert_eq!(line, "hi");
    }
    let env = child_env();
    assert_eq!(env[0], ("NODE_CHANNEL_FD", "3".to_string()));
    assert_eq!(env[1], ("NODE_CHANNEL_SERIALIZATION_MODE", "json".to_string()));
}

// ----- real Node -----

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

#[tokio::test(flavor = "current_thread")]
async fn node_echo_roundtrip() {
    let script = "process.on('message', m => { process.send({echo: m}); \
                  if (m === 'bye') process.disconnect() }); process.send('ready')";
    let (mut child, daemon) = node_child(script);
    let (tx, mut rx) = spawn(daemon, "node".into());
    expect_msg(&mut rx, json!("ready")).await;
    assert!(tx.send(json!({"a": "é"})));
    expect_msg(&mut rx, json!({"echo": {"a": "é"}})).await;
    assert!(tx.send(json!("shutdown")));
    expect_msg(&mut rx, json!({"echo": "shutdown"})).await;
    assert!(tx.send(json!("bye")));
    loop {
        match next(&mut rx).await {
            ChannelEvent::Closed => break,
            ChannelEvent::Message(v) => assert_eq!(v, json!({"echo": "bye"})),
            other => panic!("unexpected {other:?}"),
        }
    }
    let st = wait_exit(&mut child, Duration::from_secs(10)).await;
    assert_eq!(st.code(), Some(0));
}

#[tokio::test(flavor = "current_thread")]
async fn node_without_listener_exits_while_channel_open() {
    let (mut child, daemon) = node_child("console.log('no listener here')");
    let (tx, mut rx) = spawn(daemon, "plain".into());
    let st = wait_exit(&mut child, Duration::from_secs(5)).await;
    assert_eq!(st.code(), Some(0));
    expect_closed(&mut rx).await;
    assert!(tx.is_closed());
}

#[tokio::test(flavor = "current_thread")]
async fn node_handles_both_ways() {
    // The child receives a net.Socket from us and writes through it, then sends us a net.Server;
    // its next process.send only arrives because the channel ACKed the server.
    let script = r#"
        const net = require('net');
        process.on('message', (m, h) => {
          if (m && m.sock) {
            h.end('hello from child');
            const srv = net.createServer();
            srv.listen(0, '127.0.0.1', () => {
              process.send({srv: srv.address().port}, srv);
              process.send('after-handle');
            });
            process.once('message', () => { srv.close(); process.disconnect(); });
          }
        });
        process.send('ready');
    "#;
    let (mut child, daemon) = node_child(script);
    let (tx, mut rx) = spawn(daemon, "node-h".into());
    expect_msg(&mut rx, json!("ready")).await;
    let (give, keep) = socketpair().expect("socketpair");
    assert!(tx.send_handle("net.Socket", json!({"sock": 1}), give));
    // Read what the child writes through the passed socket.
    set_nonblocking(&keep).expect("nonblock");
    let mut got = Vec::new();
    loop {
        match raw_try_recv(&keep) {
            Some((d, _)) if d.is_empty() => break,
            Some((d, _)) => got.extend(d),
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    assert_eq!(got, b"hello from child");
    drop(keep); // lets the child's socket finish
    let port = match next(&mut rx).await {
        ChannelEvent::Handle { msg, envelope, fd } => {
            assert_eq!(envelope["type"], "net.Server");
            let addr = std::net::TcpListener::from(fd).local_addr().expect("local_addr");
            assert_eq!(Some(addr.port() as u64), msg["srv"].as_u64());
            addr.port()
        }
        other => panic!("expected Handle, got {other:?}"),
    };
    assert!(port > 0);
    expect_msg(&mut rx, json!("after-handle")).await;
    assert!(tx.send(json!("done")));
    expect_closed(&mut rx).await;
    let st = wait_exit(&mut child, Duration::from_secs(10)).await;
    assert_eq!(st.code(), Some(0));
}
