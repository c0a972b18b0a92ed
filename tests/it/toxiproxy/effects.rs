//! What toxics added through the API do to a real TCP echo server's connections, and that removing or
//! updating one changes an open connection from its next data on. Time bounds are lower bounds for the
//! toxic's effect, upper bounds only where nothing holds the data.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

/// One round trip of `msg` on `s`: how long it took.
async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let t = Instant::now();
    s.write_all(msg).await.expect("write");
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(LIMIT, s.read_exact(&mut got)).await.expect("echo in time").expect("echo");
    assert_eq!(got, msg);
    t.elapsed()
}

/// Reads until end of stream (or `LIMIT`): the bytes and when the end came.
async fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut out)).await.expect("end of stream in time");
    (out, Instant::now())
}

#[tokio::test]
async fn latency_added_updated_and_removed_acts_on_an_open_connection() {
    let echo = FakeUpstream::tcp_echo().start().await;
    let (_proxy, api) = server("").await;
    let listen = create(&api, "echo", echo).await;
    let mut conn = TcpStream::connect(listen).await.expect("connect");
    assert!(round_trip(&mut conn, b"before").await < Duration::from_millis(200));

    let toxics = format!("{api}/proxies/echo/toxics");
    let (status, _) =
        call("POST", &toxics, Some(json!({ "name": "slow", "type": "latency", "attributes": { "latency": 300 } })))
            .await;
    assert_eq!(status, StatusCode::OK);
    // Toxics apply to open connections from their next data on.
    assert!(round_trip(&mut conn, b"slow").await >= Duration::from_millis(300));
    call("PATCH", &format!("{toxics}/slow"), Some(json!({ "attributes": { "latency": 600 } }))).await;
    assert!(round_trip(&mut conn, b"slower").await >= Duration::from_millis(600));
    call("DELETE", &format!("{toxics}/slow"), None).await;
    assert!(round_trip(&mut conn, b"after").await < Duration::from_millis(200));

    // Upstream: the client's data waits on its way to the server.
    call("POST", &toxics, Some(json!({ "type": "latency", "stream": "upstream", "attributes": { "latency": 300 } })))
        .await;
    assert!(round_trip(&mut conn, b"up").await >= Duration::from_millis(300));
    // Toxicity 0: a new connection is never selected.
    call("POST", &format!("{api}/reset"), None).await;
    call("POST", &toxics, Some(json!({ "type": "latency", "toxicity": 0, "attributes": { "latency": 500 } }))).await;
    let mut fresh = TcpStream::connect(listen).await.expect("connect");
    assert!(round_trip(&mut fresh, b"never").await < Duration::from_millis(400));
}

#[tokio::test]
async fn slow_close_limit_data_and_timeout_end_connections_as_toxiproxy_s_do() {
    let echo = FakeUpstream::tcp_echo().start().await;
    let (_proxy, api) = server("").await;
    let listen = create(&api, "echo", echo).await;
    let toxics = format!("{api}/proxies/echo/toxics");

    // slow_close: the echo server's close reaches the client 400 ms after the client's own.
    call("POST", &toxics, Some(json!({ "type": "slow_close", "attributes": { "delay": 400 } }))).await;
    let mut conn = TcpStream::connect(listen).await.expect("connect");
    round_trip(&mut conn, b"bye").await;
    let closed = Instant::now();
    conn.shutdown().await.expect("half close");
    let (rest, end) = read_to_end(&mut conn).await;
    assert!(rest.is_empty());
    assert!(end - closed >= Duration::from_millis(400), "the close came after {:?}", end - closed);
    call("POST", &format!("{api}/reset"), None).await;

    // limit_data: the connection closes once 10 bytes went downstream.
    call("POST", &toxics, Some(json!({ "type": "limit_data", "attributes": { "bytes": 10 } }))).await;
    let mut conn = TcpStream::connect(listen).await.expect("connect");
    conn.write_all(b"0123456789abcdef").await.expect("write");
    let (got, _) = read_to_end(&mut conn).await;
    assert_eq!(got, b"0123456789");
    call("POST", &format!("{api}/reset"), None).await;

    // timeout: nothing passes, and the connection closes after 300 ms.
    call("POST", &toxics, Some(json!({ "type": "timeout", "attributes": { "timeout": 300 } }))).await;
    let start = Instant::now();
    let mut conn = TcpStream::connect(listen).await.expect("connect");
    conn.write_all(b"held").await.expect("write");
    let (got, end) = read_to_end(&mut conn).await;
    assert!(got.is_empty(), "the timeout toxic let {got:?} through");
    assert!(end - start >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_new_upstream_closes_the_proxy_s_connections_and_takes_the_next() {
    let first = FakeUpstream::tcp_echo().start().await;
    let second = FakeUpstream::tcp_bytes(5).start().await;
    let (_proxy, api) = server("").await;
    let listen = create(&api, "dep", first).await;
    let mut open = TcpStream::connect(listen).await.expect("connect");
    round_trip(&mut open, b"hi").await;
    let (status, moved) =
        call("POST", &format!("{api}/proxies/dep"), Some(json!({ "upstream": second.to_string() }))).await;
    assert_eq!((status, moved["upstream"].clone()), (StatusCode::OK, json!(second.to_string())), "{moved}");
    assert_eq!(moved["listen"], json!(listen.to_string()), "it listens where it did");
    let (rest, _) = read_to_end(&mut open).await;
    assert!(rest.is_empty(), "the open connection is closed");
    let mut next = TcpStream::connect(listen).await.expect("connect");
    let mut got = [0u8; 5];
    tokio::time::timeout(LIMIT, next.read_exact(&mut got)).await.expect("in time").expect("read");
    assert_eq!(got.to_vec(), (0..5).map(pattern).collect::<Vec<u8>>(), "the new upstream answers");
}

#[tokio::test]
async fn toxicity_is_the_share_of_connections_a_toxic_takes() {
    let echo = FakeUpstream::tcp_echo().start().await;
    let (_proxy, api) = server("").await;
    let listen = create(&api, "echo", echo).await;
    // limit_data 0 at toxicity 0.3: a selected connection closes at its first data, the others echo.
    let toxic = json!({ "type": "limit_data", "toxicity": 0.3, "attributes": { "bytes": 0 } });
    assert_eq!(call("POST", &format!("{api}/proxies/echo/toxics"), Some(toxic)).await.0, StatusCode::OK);
    let n = 200;
    let mut cut = 0;
    for _ in 0..n {
        let mut s = TcpStream::connect(listen).await.expect("connect");
        s.write_all(b"x").await.expect("write");
        let mut b = [0u8; 1];
        match tokio::time::timeout(LIMIT, s.read(&mut b)).await.expect("in time") {
            Ok(1) => {}
            _ => cut += 1,
        }
    }
    // 30 % of 200 is 60, sd 6.5: within 4 sd.
    assert!((34..=86).contains(&cut), "{cut} of {n} connections were cut");
}
