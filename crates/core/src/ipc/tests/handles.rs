//! Handles passed with messages: ACK/NACK, pipelining, the channel hook, the write backlog.

use super::*;

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
