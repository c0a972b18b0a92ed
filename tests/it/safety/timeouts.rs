//! Connections that do nothing are closed, connections that are busy or merely between requests are not:
//! a socket that never sends, a head that trickles in (slowloris), an idle HTTP/1.1 keep-alive connection
//! past `limits.idle_timeout`, an idle HTTP/2 connection (GOAWAY); while a keep-alive connection idle for
//! longer than the head timeout, and a request whose response takes longer than either, go on.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::*;

async fn proxy_with(limits: &str) -> Proxy {
    let up = upstream().await;
    proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nlimits: {limits}\n"
    ))
    .await
}

/// How long until the server closes `s` (reads return 0 or fail); `None` if not within `limit`.
async fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Silent sockets fill `max_connections` only until the head timeout closes them: a real client behind
/// them is served once they are gone, not never.
#[tokio::test]
async fn silent_sockets_are_closed_and_free_their_slots() {
    let proxy = proxy_with("{ max_connections: 4, header_read_timeout: 1s }").await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(proxy.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let reply = get(&client(), &proxy.url("/")).await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() < Duration::from_secs(4), "served after {:?}", started.elapsed());
    for s in &mut silent {
        let closed = closed_after(s, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "a silent socket stayed open");
    }
}

#[tokio::test]
async fn a_trickling_head_is_closed_at_the_head_timeout() {
    let proxy = proxy_with("{ header_read_timeout: 1s }").await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
    let started = Instant::now();
    let closed = loop {
        if s.write_all(b"x").await.is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(5), "a byte every 200 ms kept the head open");
    };
    assert!(closed >= Duration::from_millis(900), "closed after {closed:?}");
}

/// The head timeout is not an idle timeout: a keep-alive connection idle for longer than it is reused;
/// idle for longer than `idle_timeout`, it is closed.
#[tokio::test]
async fn keep_alive_connections_live_until_the_idle_timeout() {
    let proxy = proxy_with("{ header_read_timeout: 1s, idle_timeout: 3s }").await;
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
    let conn = tokio::spawn(conn);
    let get_once = |send: &mut hyper::client::conn::http1::SendRequest<BoxBody>| {
        let req = request("GET", "/").header("host", "x").body(body("")).expect("request");
        send.send_request(req)
    };
    assert_eq!(
        get_once(&mut send).await.expect("first").into_body().collect().await.expect("body").to_bytes(),
        "upstream ok"
    );
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    send.ready().await.expect("still open after 2 s idle (> header_read_timeout)");
    assert_eq!(get_once(&mut send).await.expect("reused").status(), 200);
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), conn).await.expect("closed by the idle timeout").expect("join").ok();
    let after = idle_from.elapsed();
    assert!(after >= Duration::from_millis(2_900) && after < Duration::from_secs(5), "closed after {after:?}");
}

/// An idle HTTP/2 connection gets a GOAWAY after `idle_timeout`; one with a stream in progress does not,
/// however long the stream takes.
#[tokio::test]
async fn idle_http2_connections_are_closed_but_busy_ones_are_not() {
    let proxy = proxy_with("{ header_read_timeout: 1s, idle_timeout: 1s }").await;
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    // A response that takes 2.5 s: longer than both timeouts.
    let req = request("GET", &proxy.url("/slow?ms=2500")).body(body("")).expect("request");
    let resp = send.send_request(req).await.expect("answered");
    assert_eq!(resp.into_body().collect().await.expect("body").to_bytes(), "slow ok");
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn).await.expect("closed when idle").expect("join").ok();
    assert!(idle_from.elapsed() >= Duration::from_millis(900), "{:?}", idle_from.elapsed());
}

#[tokio::test]
async fn a_slow_response_outlives_the_timeouts_on_http1() {
    let proxy = proxy_with("{ header_read_timeout: 1s, idle_timeout: 1s }").await;
    let reply = get(&client(), &proxy.url("/slow?ms=2500")).await;
    assert_eq!((reply.status.as_u16(), &reply.body[..]), (200, &b"slow ok"[..]));
}

#[test]
fn timeouts_out_of_range_are_refused() {
    let e = edgefault::config::Config::from_yaml(
        "listeners: [{ name: web, bind: \"127.0.0.1:0\", routes: [{ name: d, upstream: \"http://127.0.0.1:1\" }] }]\nlimits: { header_read_timeout: 0s, idle_timeout: 2d }\n",
        "t",
        &edgefault::config::Overrides::default(),
    )
    .expect_err("refused");
    let text = e.to_string();
    assert!(text.contains("limits.header_read_timeout: from 1s to 5m, got 0s"), "{text}");
    assert!(text.contains("limits.idle_timeout: from 1s to 1day, got 2days"), "{text}");
}

/// A frame header (RFC 9113 §4.1) with a zeroed payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: usize) -> Vec<u8> {
    let len = u32::try_from(payload).expect("small").to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend((stream & 0x7fff_ffff).to_be_bytes());
    f.resize(9 + payload, 0);
    f
}

/// An HTTP/2 client that floods PINGs (or SETTINGS) is closed once past its budget and counted; a normal
/// HTTP/2 client, on a connection of its own opened before the floods, is served on.
#[tokio::test]
async fn control_frame_floods_close_the_flooder_only() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let admin = proxy.server.admin_addr().expect("admin");
    // A normal HTTP/2 client, kept open across the flood.
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut normal, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2 handshake");
    tokio::spawn(conn);

    for (kind, flags, payload) in [(0x6u8, 0u8, 8usize), (0x4, 0, 0)] {
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        flood.extend(h2_frame(0x4, 0, 0, 0));
        for _ in 0..5_000 {
            flood.extend(h2_frame(kind, flags, 0, payload));
        }
        // The server may close while the flood is still being written.
        let _ = s.write_all(&flood).await;
        let closed = closed_after(&mut s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a flood of frame type {kind} left the connection open");
    }
    assert_eventually!(
        metric_value(admin, r#"edgefault_connection_floods_total{listener="web",reason="h2_control_frames"}"#).await
            == 2.0,
        "both floods are counted"
    );
    let req = request("GET", &proxy.url("/")).body(body("")).expect("request");
    let resp = normal.send_request(req).await.expect("the normal client is served");
    assert_eq!(resp.status(), 200);
}

async fn metric_value(admin: std::net::SocketAddr, series: &str) -> f64 {
    let text =
        String::from_utf8(get(&client(), &format!("http://{admin}/metrics")).await.body.to_vec()).expect("utf-8");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
