//! HTTP as a proxy must handle it (RFC 9112, RFC 9113): an ambiguous `Host` is refused rather than
//! forwarded, an absolute-form target wins over `Host`, `Connection` cannot take `Host` away, CONNECT is
//! refused on a reverse listener, and a client's broken request body is the client's error (400,
//! `client_error`), never the upstream's (502, `upstream_error`, fed to guards).

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::*;

/// Sends raw bytes on a new connection and reads what comes back until the server closes or 3 s pass.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

async fn metrics_proxy(up: SocketAddr) -> Proxy {
    proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: dashboard, hosts: [dash.example.com], upstream: \"http://{up}\" }}\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await
}

async fn metric(proxy: &Proxy, line_start: &str) -> u64 {
    let admin = proxy.server.admin_addr().expect("admin");
    let text = String::from_utf8_lossy(&get(&client(), &format!("http://{admin}/metrics")).await.body).into_owned();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn ambiguous_hosts_are_refused_and_never_forwarded() {
    let (up, accepted) = counting_upstream(true).await;
    let proxy = metrics_proxy(up).await;
    let two =
        raw(proxy.addr, "GET / HTTP/1.1\r\nhost: a.example\r\nhost: dash.example.com\r\nconnection: close\r\n\r\n")
            .await;
    assert_eq!(status_of(&two), 400, "{two}");
    assert!(two.contains("x-edgefault-error: ambiguous-host") && two.contains("more than one Host"), "{two}");
    let none = raw(proxy.addr, "GET / HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert_eq!(status_of(&none), 400, "{none}");
    assert!(none.contains("needs a Host header"), "{none}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the upstream");
    // HTTP/1.0 has no Host requirement.
    let old = raw(proxy.addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&old), 200, "{old}");
}

#[tokio::test]
async fn an_absolute_form_target_replaces_host_and_connection_cannot_remove_it() {
    let proxy = metrics_proxy(upstream().await).await;
    let r = raw(
        proxy.addr,
        "GET http://dash.example.com/echo HTTP/1.1\r\nhost: other.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.contains("x-seen-host: dash.example.com"), "the upstream sees the target's host: {r}");
    let r = raw(proxy.addr, "GET /echo HTTP/1.1\r\nhost: a.example\r\nconnection: close, host\r\n\r\n").await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.contains("x-seen-host: a.example"), "{r}");
}

#[tokio::test]
async fn connect_is_refused_on_a_reverse_listener() {
    let (up, accepted) = counting_upstream(true).await;
    let proxy = metrics_proxy(up).await;
    let r = raw(proxy.addr, &format!("CONNECT {up} HTTP/1.1\r\nhost: {up}\r\n\r\n")).await;
    assert_eq!(status_of(&r), 405, "{r}");
    assert!(r.contains("x-edgefault-error: connect-refused"), "{r}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A malformed chunked body and a client that leaves mid-upload are counted `client_error`, answered 400
/// (when the client is still there), and kept out of guards: twenty of them do not trip one.
#[tokio::test]
async fn a_broken_request_body_is_the_clients_error() {
    let proxy = metrics_proxy(upstream().await).await;
    let guarded = proxy
        .start("name: guarded\nfaults: [{ delay: { fixed: 1ms } }]\npercentage: 1\nguards: [{ upstream_error_rate: { max: 0.1, window: 10s, min_requests: 5 } }]\n")
        .await;
    for _ in 0..20 {
        let r = raw(
            proxy.addr,
            "POST /echo HTTP/1.1\r\nhost: a.example\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\nZZ\r\n",
        )
        .await;
        assert!(r.is_empty() || status_of(&r) == 400, "{r}");
        assert!(!r.contains("upstream-request"), "{r}");
    }
    // Ten clients that send half their body and leave.
    for _ in 0..10 {
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: a.example\r\ncontent-length: 1000\r\n\r\nonly ten b")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(s);
    }
    assert_eventually!(
        metric(&proxy, "edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"client_error\"}").await
            >= 25,
        "client errors counted"
    );
    assert_eq!(
        metric(&proxy, "edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"upstream_error\"}").await,
        0
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let e = proxy.server.registry().get(&guarded.id).expect("kept");
    assert_eq!(e.state.as_str(), "running", "the guard saw no upstream failure: {}", e.end_reason);
}
