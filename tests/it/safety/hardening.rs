//! Data-plane bounds: the request head size and the number of open connections per listener.

use std::time::Duration;

use crate::support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn config(up: std::net::SocketAddr, limits: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nlimits: {limits}\n"
    )
}

/// Sends one HTTP/1.1 request on `s` and reads the status line.
async fn status_line(s: &mut TcpStream, extra_header: &str) -> String {
    s.write_all(format!("GET / HTTP/1.1\r\nhost: x\r\n{extra_header}\r\n").as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431() {
    let proxy = proxy_yaml(&config(upstream().await, "{ max_header_bytes: 16384 }")).await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let big = format!("x-big: {}\r\n", "a".repeat(32 * 1024));
    assert_eq!(status_line(&mut s, &big).await, "HTTP/1.1 431 Request Header Fields Too Large");

    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let fits = format!("x-big: {}\r\n", "a".repeat(8 * 1024));
    assert_eq!(status_line(&mut s, &fits).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    let proxy = proxy_yaml(&config(upstream().await, "{ max_connections: 1 }")).await;
    let mut first = TcpStream::connect(proxy.addr).await.expect("connect");
    assert_eq!(status_line(&mut first, "").await, "HTTP/1.1 200 OK");

    let mut second = TcpStream::connect(proxy.addr).await.expect("the kernel accepts into the backlog");
    let waiting = tokio::spawn(async move { status_line(&mut second, "").await });
    // While the first connection stays open, the second is not served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "served past the connection limit");

    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("served").expect("join");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[test]
fn bad_bounds_are_refused() {
    let e = edgefault::config::Config::from_yaml(
        &config("127.0.0.1:9".parse().expect("addr"), "{ max_connections: 0, max_header_bytes: 100 }"),
        "t",
        &edgefault::config::Overrides::default(),
    )
    .expect_err("bad");
    let text = e.to_string();
    assert!(text.contains("limits.max_connections") && text.contains("limits.max_header_bytes"), "{text}");
}
