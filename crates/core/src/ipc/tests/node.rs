//! The channel against real child processes (fd 3 set-up, Node itself).

use super::*;

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
