//! TCP listeners (`mode: tcp`): a real echo server behind a TCP listener, with each toxic in each shape
//! users know from Toxiproxy. Time bounds are lower bounds only (a toxic makes things at least this slow).

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A proxy with TCP listener `db` in front of an echo server, beside an HTTP listener `web`.
async fn tcp_proxy() -> (Proxy, SocketAddr) {
    let echo = FakeUpstream::tcp_echo().start().await;
    let http = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: api, upstream: \"http://{http}\" }}]\n  - {{ name: db, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"{echo}\", connect_timeout: 2s }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let db = proxy.server.listener_addr("db").expect("tcp listener db");
    (proxy, db)
}

const LIMIT: Duration = Duration::from_secs(10);

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(LIMIT, TcpStream::connect(addr)).await.expect("connect in time").expect("connect")
}

/// Reads until `n` bytes or end of stream; also returns how many reads it took.
async fn read_up_to(s: &mut TcpStream, n: usize) -> io::Result<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(n);
    let mut reads = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while out.len() < n {
        let got = tokio::time::timeout(LIMIT, s.read(&mut buf)).await.map_err(|_| io::ErrorKind::TimedOut)??;
        if got == 0 {
            break;
        }
        reads += 1;
        out.extend_from_slice(&buf[..got]);
    }
    Ok((out, reads))
}

/// One round trip of `msg`; the reply and how long it took.
async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    s.write_all(msg).await.expect("write");
    let (got, _) = read_up_to(s, msg.len()).await.expect("read");
    (got, t.elapsed())
}

fn payload(n: usize) -> Vec<u8> {
    (0..n as u64).map(pattern).collect()
}

async fn metrics(proxy: &Proxy) -> String {
    let admin = proxy.server.admin_addr().expect("admin");
    String::from_utf8(get(&client(), &format!("http://{admin}/metrics")).await.body.to_vec()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_payload_passes_byte_exact_and_http_experiments_leave_it_alone() {
    let (proxy, db) = tcp_proxy().await;
    // An HTTP experiment on every listener: the TCP listener is not its business.
    proxy.start("name: all-5xx\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);

    let data = payload(4 * 1024 * 1024);
    let mut s = connect(db).await;
    let (mut r, mut w) = s.split();
    let ((), got) = tokio::join!(
        async {
            w.write_all(&data).await.expect("write");
            w.shutdown().await.expect("half-close");
        },
        async {
            let mut got = Vec::new();
            tokio::time::timeout(LIMIT, r.read_to_end(&mut got)).await.expect("in time").expect("read");
            got
        }
    );
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the payload came back altered");
    drop(s);

    assert_eventually!(
        metrics(&proxy).await.contains("edgefault_tcp_connections_total{listener=\"db\",outcome=\"passed\"} 1"),
        "the connection is counted as passed"
    );
    let text = metrics(&proxy).await;
    for line in [
        "edgefault_tcp_bytes_total{listener=\"db\",direction=\"upstream\"} 4194304",
        "edgefault_tcp_bytes_total{listener=\"db\",direction=\"downstream\"} 4194304",
        "edgefault_tcp_connections_open{listener=\"db\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_direction() {
    let (proxy, db) = tcp_proxy().await;
    for direction in ["downstream", "upstream"] {
        let e = proxy
            .start(&format!(
                "name: slow-{direction}\nmatch: {{ listeners: [db] }}\nfaults: [{{ toxic: {{ direction: {direction}, latency: {{ latency: 200ms, jitter: 20ms }} }} }}]\n"
            ))
            .await;
        let mut s = connect(db).await;
        for msg in [&b"ping"[..], b"pong"] {
            let (got, took) = round_trip(&mut s, msg).await;
            assert_eq!(got, msg);
            assert!(took >= Duration::from_millis(180), "{direction}: round trip took {took:?}");
        }
        proxy.stop(&e.id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_the_rate() {
    let (proxy, db) = tcp_proxy().await;
    proxy
        .start(
            "name: thin\nmatch: { listeners: [db] }\nfaults: [{ toxic: { bandwidth: { bytes_per_second: 50000 } } }]\n",
        )
        .await;
    let data = payload(40_000);
    let mut s = connect(db).await;
    let (got, took) = round_trip(&mut s, &data).await;
    assert!(got == data, "altered");
    // 40 000 bytes at 50 000 B/s: at least 0.8 s, so at most 50 000 B/s (with 5 % for clock granularity).
    let rate = data.len() as f64 / took.as_secs_f64();
    assert!(rate <= 52_500.0, "{rate:.0} B/s over {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_cuts_data_into_many_reads() {
    let (proxy, db) = tcp_proxy().await;
    proxy
        .start("name: sliced\nmatch: { routes: [db] }\nfaults: [{ toxic: { slicer: { average_size: 10, size_variation: 3, delay: 10ms } } }]\n")
        .await;
    let data = payload(200);
    let mut s = connect(db).await;
    s.write_all(&data).await.expect("write");
    let (got, reads) = read_up_to(&mut s, data.len()).await.expect("read");
    assert!(got == data, "altered");
    // 200 bytes in pieces of 7 to 13, 10 ms apart: about 20 reads; one read without the toxic.
    assert!(reads >= 8, "only {reads} reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_the_client() {
    let (proxy, db) = tcp_proxy().await;
    proxy
        .start("name: rst\nmatch: { listeners: [db] }\nfaults: [{ toxic: { reset_peer: { timeout: 150ms } } }]\n")
        .await;
    let mut s = connect(db).await;
    let t = Instant::now();
    s.write_all(b"hello").await.expect("write");
    let err = read_up_to(&mut s, 5).await.expect_err("the connection is reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert!(t.elapsed() >= Duration::from_millis(150), "reset after {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_stops_data_then_closes() {
    let (proxy, db) = tcp_proxy().await;
    proxy
        .start("name: stall\nmatch: { listeners: [db] }\nfaults: [{ toxic: { direction: upstream, timeout: { timeout: 300ms } } }]\n")
        .await;
    // The timeout counts from the connection's start, which the proxy may see before `connect` returns.
    let t = Instant::now();
    let mut s = connect(db).await;
    s.write_all(b"hello").await.expect("write");
    let (got, _) = read_up_to(&mut s, 5).await.unwrap_or_else(|e| panic!("closed, not {e}"));
    assert!(got.is_empty(), "data passed: {got:?}");
    assert!(t.elapsed() >= Duration::from_millis(300), "closed after {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_data_closes_after_exactly_n_bytes() {
    let (proxy, db) = tcp_proxy().await;
    proxy.start("name: cut\nmatch: { listeners: [db] }\nfaults: [{ toxic: { limit_data: { bytes: 1000 } } }]\n").await;
    let data = payload(5000);
    let mut s = connect(db).await;
    s.write_all(&data).await.expect("write");
    let (got, _) = read_up_to(&mut s, data.len()).await.expect("read");
    assert_eq!(got.len(), 1000);
    assert!(got == data[..1000], "altered");
}

/// Whether a fresh connection is cut by a `limit_data: 0` toxic (closed at its first data).
async fn cut(db: SocketAddr) -> bool {
    let mut s = connect(db).await;
    s.write_all(b"x").await.expect("write");
    match read_up_to(&mut s, 1).await {
        Ok((got, _)) => got.is_empty(),
        Err(_) => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_is_chosen_per_connection() {
    let (proxy, db) = tcp_proxy().await;
    let toxic = "faults: [{ toxic: { limit_data: { bytes: 0 } } }]";
    let none = proxy.start(&format!("name: none\nmatch: {{ listeners: [db] }}\npercentage: 0\n{toxic}\n")).await;
    for _ in 0..10 {
        assert!(!cut(db).await, "0 %: a connection was cut");
    }
    proxy.stop(&none.id).await;

    let all = proxy.start(&format!("name: all\nmatch: {{ listeners: [db] }}\n{toxic}\n")).await;
    for _ in 0..10 {
        assert!(cut(db).await, "100 %: a connection passed");
    }
    proxy.stop(&all.id).await;

    // Out of the client network: not in scope.
    let elsewhere = proxy
        .start(&format!("name: elsewhere\nmatch: {{ listeners: [db], client_cidrs: [10.0.0.0/8] }}\n{toxic}\n"))
        .await;
    assert!(!cut(db).await, "a client outside client_cidrs was cut");
    proxy.stop(&elsewhere.id).await;

    // A seeded share: the same connections are chosen on every run. Each run starts once the proxy has
    // closed the connections before it: an open one would be matched by the new experiment too (toxics
    // apply to open connections).
    let mut runs = Vec::new();
    for run in 0..2 {
        assert_eventually!(
            metrics(&proxy).await.contains("edgefault_tcp_connections_open{listener=\"db\"} 0"),
            "the earlier connections are closed"
        );
        let e = proxy
            .start(&format!("name: half-{run}\nmatch: {{ listeners: [db] }}\npercentage: 30\nseed: 7\n{toxic}\n"))
            .await;
        let mut picks = Vec::new();
        for _ in 0..100 {
            picks.push(cut(db).await);
        }
        let stats = proxy.stop(&e.id).await.stats.unwrap_or_default();
        assert_eq!(stats.matched, 100);
        let n = picks.iter().filter(|p| **p).count() as u64;
        assert_eq!(stats.injected, n);
        // Binomial(100, 0.3): sd 4.6; 10..=50 is beyond 4 sd.
        assert!((10..=50).contains(&n), "{n} of 100 cut");
        runs.push(picks);
    }
    assert_eq!(runs[0], runs[1], "the same seed chose other connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_started_while_a_connection_is_open_applies_to_it() {
    let (proxy, db) = tcp_proxy().await;
    let mut s = connect(db).await;
    let (got, _) = round_trip(&mut s, b"before").await;
    assert_eq!(got, b"before");

    let e = proxy
        .start("name: late\nmatch: { listeners: [db] }\nfaults: [{ toxic: { latency: { latency: 300ms } } }]\n")
        .await;
    let (got, took) = round_trip(&mut s, b"during").await;
    assert_eq!(got, b"during");
    assert!(took >= Duration::from_millis(300), "round trip took {took:?}");
    let stats = proxy.stop(&e.id).await.stats.unwrap_or_default();
    assert_eq!((stats.matched, stats.injected), (1, 1));

    // A timeout with no limit holds the data until the experiment ends; then it flows, intact.
    let hold = proxy.start("name: hold\nmatch: { listeners: [db] }\nfaults: [{ toxic: { timeout: {} } }]\n").await;
    s.write_all(b"held").await.expect("write");
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(600), s.read(&mut buf)).await.is_err(),
        "data passed a timeout toxic"
    );
    proxy.stop(&hold.id).await;
    let (got, _) = read_up_to(&mut s, 4).await.expect("released");
    assert_eq!(got, b"held");
    let (got, _) = round_trip(&mut s, b"after").await;
    assert_eq!(got, b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_closes_the_client_and_counts() {
    let dead = closed_port().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - {{ name: db, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"{dead}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let mut s = connect(proxy.addr).await;
    let closed = read_up_to(&mut s, 1).await.map(|(got, _)| got.is_empty()).unwrap_or(true);
    assert!(closed);
    assert_eventually!(
        metrics(&proxy).await.contains("edgefault_tcp_connections_total{listener=\"db\",outcome=\"upstream_error\"} 1"),
        "the connection is counted as an upstream error"
    );
}

/// "field: description" of each violation.
async fn described(proxy: &Proxy, yaml: &str) -> Vec<String> {
    violations(proxy, yaml).await.into_iter().map(|v| format!("{}: {}", v.field, v.description)).collect()
}

fn has(found: &[String], field: &str) -> bool {
    found.iter().any(|v| v.starts_with(&format!("{field}: ")))
}

#[tokio::test]
async fn tcp_and_http_do_not_mix() {
    let (proxy, _) = tcp_proxy().await;
    let cases: &[(&str, &[&str])] = &[
        // HTTP conditions on a TCP experiment.
        (
            "name: a\nmatch: { listeners: [db], methods: [GET], path_prefix: /x, hosts: [a.example] }\nfaults: [{ toxic: { latency: { latency: 1s } } }]\n",
            &["match.methods", "match.path_prefix", "match.hosts"],
        ),
        // Toxics on an HTTP listener, or on no named listener.
        ("name: b\nmatch: { listeners: [web] }\nfaults: [{ toxic: { latency: { latency: 1s } } }]\n", &["match.listeners[0]"]),
        ("name: c\nmatch: { routes: [api] }\nfaults: [{ toxic: { limit_data: { bytes: 1 } } }]\n", &["match.routes[0]"]),
        ("name: d\nfaults: [{ toxic: { limit_data: { bytes: 1 } } }]\n", &["faults[0].toxic"]),
        // HTTP faults on a TCP listener, beside a toxic or alone.
        (
            "name: e\nmatch: { listeners: [db] }\nfaults: [{ toxic: { limit_data: { bytes: 1 } } }, { abort: { http_status: 503 } }]\n",
            &["faults[1]"],
        ),
        ("name: f\nmatch: { routes: [db] }\nfaults: [{ delay: { fixed: 1s } }]\n", &["faults[0]"]),
        // Toxics themselves.
        (
            "name: g\nmatch: { listeners: [db] }\nfaults:\n  - toxic: { direction: sideways, bandwidth: { bytes_per_second: 0 } }\n  - toxic: { slicer: { average_size: 4, size_variation: 4 } }\n  - toxic: { latency: { jitter: 1s } }\n  - toxic: { direction: upstream }\n  - toxic: { timeout: { timeout: 3h } }\n",
            &[
                "faults[0].toxic.direction",
                "faults[0].toxic.bandwidth.bytes_per_second",
                "faults[1].toxic.slicer.size_variation",
                "faults[2].toxic.latency.latency",
                "faults[3].toxic",
                "faults[4].toxic.timeout.timeout",
            ],
        ),
        (
            "name: h\nmatch: { listeners: [db] }\nsticky: { header: x-user }\nfaults: [{ toxic: { latency: { latency: 1s } } }]\n",
            &["sticky"],
        ),
        // Phases: an HTTP fault in a phase of a TCP experiment, and toxics that phases would have to change.
        (
            "name: i\nmatch: { listeners: [db] }\nduration: 10m\nfaults: [{ toxic: { latency: { latency: 1s } } }]\nphases:\n  - { name: calm, start: 0s }\n  - { name: storm, start: 1m, faults: [{ abort: { http_status: 503 } }] }\n",
            &["phases[1].faults[0]", "phases"],
        ),
    ];
    for (yaml, fields) in cases {
        let found = described(&proxy, yaml).await;
        for field in *fields {
            assert!(has(&found, field), "{field} missing for:\n{yaml}\nfound: {found:#?}");
        }
        assert_eq!(found.len(), fields.len(), "unexpected violations for:\n{yaml}\n{found:#?}");
    }
    // And the good shapes pass.
    for yaml in [
        "name: ok\nmatch: { listeners: [db], client_cidrs: [127.0.0.0/8] }\nsticky: { client_ip: true }\nfaults: [{ toxic: { latency: { latency: 1s } } }, { toxic: { direction: upstream, slicer: { average_size: 5 } } }]\n",
        "name: http-everywhere\nfaults: [{ abort: { http_status: 503 } }]\n",
    ] {
        let found = described(&proxy, yaml).await;
        assert!(found.is_empty(), "{yaml}: {found:#?}");
    }
}

/// Stop means now on TCP listeners too: data held by a `timeout` or a long `latency` toxic goes on at
/// once when the experiment stops, and the connection lives on untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_an_experiment_lets_held_data_through_at_once() {
    let (proxy, db) = tcp_proxy().await;
    for toxic in ["timeout: {}", "latency: { latency: 20s }"] {
        let e = proxy
            .start(&format!(
                "name: hold\nmatch: {{ listeners: [db] }}\nfaults: [{{ toxic: {{ direction: upstream, {toxic} }} }}]\n"
            ))
            .await;
        let mut s = connect(db).await;
        s.write_all(b"held").await.expect("write");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = Instant::now();
        proxy.stop(&e.id).await;
        let (got, _) = read_up_to(&mut s, 4).await.expect("read");
        assert_eq!(got, b"held", "{toxic}");
        assert!(stopped.elapsed() < Duration::from_secs(1), "{toxic}: {:?} after the stop", stopped.elapsed());
        s.write_all(b"after").await.expect("write");
        let (got, _) = read_up_to(&mut s, 5).await.expect("read");
        assert_eq!(got, b"after", "{toxic}: untouched from then on");
    }
}
