use super::*;
use crate::cluster::round_robin::parse_newconn_reply;

#[test]
fn keys_match_node() {
    let q = json!({"act":"queryServer","index":0,"data":null,"address":null,"port":8123,"addressType":4,"backlog":0,"seq":1});
    assert_eq!(server_key(&q), "null:8123:4:undefined:0");
    let q = json!({"address":"0.0.0.0","port":8126,"addressType":"udp4","fd":-1,"flags":0, "index": 0});
    assert_eq!(server_key(&q), "0.0.0.0:8126:udp4:-1:0");
    let q = json!({"address":"/tmp/x.sock","port":-1,"addressType":-1,"index":1});
    assert_eq!(server_key(&q), "/tmp/x.sock:-1:-1:undefined:1");
}

#[test]
fn round_robin_alternates_and_waits_for_acks() {
    let mut st: RrState<u32> = RrState::default();
    st.add_worker(1);
    st.add_worker(2);
    for c in 0..4 {
        st.queue.push_back(c);
    }
    let (w1, c1) = st.next(1).unwrap();
    st.sent(100, w1, c1);
    let (w2, c2) = st.next(1).unwrap();
    st.sent(101, w2, c2);
    assert_eq!((w1, w2), (1, 2));
    // Both busy until they answer (one in flight each, as Node).
    assert!(st.next(1).is_none());
    st.reply(100, true);
    let (w, c) = st.next(1).unwrap();
    assert_eq!((w, c), (1, 2));
    st.sent(102, w, c);
    // A refusal puts the connection back at the front and the worker is not free at once.
    assert_eq!(st.reply(101, false), Some((2, false)));
    assert_eq!(st.queue.front(), Some(&1));
    assert!(st.next(1).is_none());
    st.free_again(2);
    assert_eq!(st.next(1), Some((2, 1)));
}

#[test]
fn batching_pipelines_up_to_the_limit_evenly() {
    let mut st: RrState<u32> = RrState::default();
    for w in [1, 2, 3] {
        st.add_worker(w);
    }
    for c in 0..10 {
        st.queue.push_back(c);
    }
    let mut got = Vec::new();
    let mut seq = 0;
    while let Some((w, c)) = st.next(3) {
        seq += 1;
        st.sent(seq, w, c);
        got.push(w);
    }
    // Three each, in turn; the tenth waits for an answer.
    assert_eq!(got, vec![1, 2, 3, 1, 2, 3, 1, 2, 3]);
    assert_eq!(st.queue.len(), 1);
    st.reply(5, true); // worker 2
    assert_eq!(st.next(3), Some((2, 9)));
}

#[test]
fn a_leaving_worker_still_answers_and_refusals_go_elsewhere() {
    let mut st: RrState<u32> = RrState::default();
    st.add_worker(1);
    st.add_worker(2);
    st.queue.push_back(10);
    let (w, c) = st.next(1).unwrap();
    assert_eq!(w, 1);
    st.sent(1, w, c);
    // Worker 1 is being reloaded: no more routing, but its hand-off stays in flight.
    assert!(st.remove_worker(1, false).is_empty());
    assert!(st.inflight.contains_key(&1));
    // It refuses (its server closed meanwhile): the connection goes to worker 2.
    assert_eq!(st.reply(1, false), None);
    assert_eq!(st.next(1), Some((2, 10)));
}

#[test]
fn newconn_replies_parse_without_json() {
    let ok = br#"{"cmd":"NODE_CLUSTER","ack":17,"accepted":true,"seq":3}"#;
    assert_eq!(parse_newconn_reply(ok), Some((17, true)));
    let no = br#"{"cmd":"NODE_CLUSTER","ack":18446744073709551615,"accepted":false,"seq":0}"#;
    assert_eq!(parse_newconn_reply(no), Some((u64::MAX, false)));
    // Anything else takes the general (JSON) path.
    for other in [
        &br#"{"cmd":"NODE_CLUSTER","ack":1,"seq":2}"#[..],
        br#"{"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":2,"x":1}"#,
        br#"{"cmd":"NODE_CLUSTER","ack":,"accepted":true,"seq":2}"#,
        br#"{"cmd":"NODE_CLUSTER","ack":99999999999999999999,"accepted":true,"seq":2}"#,
        br#"{"cmd":"NODE_CLUSTER","ack":1,"accepted":truex,"seq":2}"#,
        br#"{"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":}"#,
        br#"{"cmd":"NODE_CLUSTER","act":"listening","seq":2}"#,
        b"",
    ] {
        assert_eq!(parse_newconn_reply(other), None, "{}", String::from_utf8_lossy(other));
    }
}

#[test]
fn newconn_seq_reads_back_the_lines_rpm2d_writes() {
    let line = br#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"null:80:4:undefined:0","seq":42}}"#;
    assert_eq!(newconn_seq(line), Some(42));
    let mut nl = line.to_vec();
    nl.push(b'\n');
    assert_eq!(newconn_seq(&nl), Some(42));
    assert_eq!(newconn_seq(br#"{"cmd":"NODE_HANDLE","msg":{}}"#), None);
}

#[test]
fn dead_worker_releases_unacked_connections() {
    let mut st: RrState<u32> = RrState::default();
    st.add_worker(7);
    st.queue.push_back(42);
    let (w, c) = st.next(1).unwrap();
    st.sent(5, w, c);
    let lost = st.remove_worker(7, true);
    assert_eq!(lost, vec![(5, 42)]);
    assert!(st.reply(5, true).is_none());
    assert!(st.next(1).is_none());
}

#[test]
fn balance_names() {
    assert_eq!(Balance::parse("shared"), Some(Balance::Shared));
    assert_eq!(Balance::parse("rr"), Some(Balance::RoundRobin));
    assert_eq!(Balance::parse("x"), None);
}

#[tokio::test(flavor = "current_thread")]
async fn bind_errors_are_negative_errnos() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let q = json!({"address": "127.0.0.1", "port": port, "addressType": 4, "index": 0});
    let e = bind(&q).err().unwrap();
    assert_eq!(neg_errno(&e), -98);
    let q = json!({"address": null, "port": 0, "addressType": 4, "fd": 5, "index": 0});
    assert_eq!(neg_errno(&bind(&q).err().unwrap()), -22);
}
