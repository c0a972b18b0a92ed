//! With no experiment, the proxy is invisible: bodies byte-exact both ways, headers as a proxy should
//! treat them, HTTP/2 trailers, WebSocket upgrades; a dead upstream is a proxy error, not a fault.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;

#[tokio::test]
async fn request_and_response_bodies_are_byte_exact() {
    let proxy = proxy(upstream().await).await;
    for c in [client(), h2_client()] {
        let payload: Vec<u8> = (0..3_000_000u64).map(pattern).collect();
        let r = send(&c, request("POST", &proxy.url("/echo")).body(body(payload.clone())).expect("req")).await;
        assert_eq!(r.status, 200);
        assert!(r.body == payload, "echoed body differs ({} bytes back)", r.body.len());
    }
}

#[tokio::test]
async fn a_large_body_streams_through() {
    let proxy = proxy(upstream().await).await;
    let n: u64 = 256 * 1024 * 1024;
    let resp = client()
        .request(Request::get(proxy.url(&format!("/big?n={n}"))).body(body("")).expect("req"))
        .await
        .expect("resp");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut offset = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("frame");
        if let Some(data) = frame.data_ref() {
            for (i, b) in data.iter().enumerate() {
                assert_eq!(*b, pattern(offset + i as u64), "byte {}", offset + i as u64);
            }
            offset += data.len() as u64;
        }
    }
    assert_eq!(offset, n);
}

#[tokio::test]
async fn headers_are_forwarded_as_a_proxy_should() {
    let proxy = proxy(upstream().await).await;
    let r = send(
        &client(),
        request("GET", &proxy.url("/echo"))
            .header("host", "shop.example.com")
            .header("x-custom", "kept")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "dropped")
            .header("keep-alive", "timeout=5")
            .header("proxy-authorization", "Basic Zm9v")
            .header("x-forwarded-for", "203.0.113.7")
            .body(body(""))
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, 200);
    let h = &r.headers;
    assert_eq!(h["x-seen-x-custom"], "kept");
    assert_eq!(h["x-seen-host"], "shop.example.com", "the client's host is kept");
    assert_eq!(h["x-seen-x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-seen-x-forwarded-proto"], "http");
    for gone in ["x-seen-x-hop", "x-seen-keep-alive", "x-seen-proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(h["x-upstream-version"], "1", "response headers come back");
}

#[tokio::test]
async fn the_upstream_protocol_follows_the_client_by_default() {
    let proxy = proxy(upstream().await).await;
    let r = get(&client(), &proxy.url("/echo")).await;
    assert_eq!(r.headers["x-seen-version"], "HTTP/1.1");
    let r = get(&h2_client(), &proxy.url("/echo")).await;
    assert_eq!(r.headers["x-seen-version"], "HTTP/2.0");
}

#[tokio::test]
async fn a_route_can_fix_the_upstream_protocol() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: h2, path_prefix: /echo, upstream: \"http://{up}\", protocol: http2 }}\n      - {{ name: h1, upstream: \"http://{up}\", protocol: http1 }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let r = get(&client(), &proxy.url("/echo")).await;
    assert_eq!(r.headers["x-seen-version"], "HTTP/2.0");
    let r = get(&h2_client(), &proxy.url("/")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn http2_trailers_pass_through() {
    let proxy = proxy(upstream().await).await;
    let resp =
        h2_client().request(Request::get(proxy.url("/trailers")).body(body("")).expect("req")).await.expect("resp");
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["x-checksum"], "42");
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"data"));
}

#[tokio::test]
async fn websocket_upgrades_are_tunnelled() {
    let ws = ws_upstream().await;
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: ws, path_prefix: /ws, upstream: \"http://{ws}\" }}\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let (mut socket, resp) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/chat", proxy.addr)).await.expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    for i in 0..50 {
        echo_once(&mut socket, &format!("message {i}")).await;
    }
    socket.close(None).await.expect("close");
}

#[tokio::test]
async fn upstream_down_is_a_502_from_the_proxy() {
    let proxy = proxy(closed_port().await).await;
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.headers["x-edgefault-error"], "upstream-connect");
    assert!(String::from_utf8_lossy(&r.body).starts_with("edgefault: upstream connection failed"));
}

#[tokio::test]
async fn upstream_timeout_is_a_504_from_the_proxy() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - {{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\", timeout: 200ms }}] }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let r = get(&client(), &proxy.url("/slow?ms=2000")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.headers["x-edgefault-error"], "upstream-timeout");

    // Counted as upstream_error, never as injected.
    let admin = proxy.server.admin_addr().expect("admin");
    let metrics = get(&client(), &format!("http://{admin}/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"upstream_error\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"injected\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn admin_reports_health_and_readiness() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - {{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\" }}] }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let admin = proxy.server.admin_addr().expect("admin");
    let c = client();
    assert_eq!(get(&c, &format!("http://{admin}/healthz")).await.status, 200);
    assert_eq!(get(&c, &format!("http://{admin}/readyz")).await.status, 200);
    assert_eq!(get(&c, &format!("http://{admin}/nope")).await.status, 404);
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    use std::sync::atomic::Ordering;
    let (up, accepted) = counting_upstream(true).await;
    let proxy = proxy(up).await;
    let c = client();
    for _ in 0..50 {
        assert_eq!(get(&c, &proxy.url("/")).await.status, 200);
        assert_eq!(get(&c, &proxy.url("/big?n=100000")).await.body.len(), 100_000);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one HTTP/1.1 connection serves every sequential request");

    let h2 = h2_client();
    for _ in 0..20 {
        assert_eq!(get(&h2, &proxy.url("/")).await.status, 200);
    }
    // `protocol: auto` asks once, on a connection of its own, whether the upstream speaks HTTP/2.
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "then one probe, and one HTTP/2 connection for every h2 request");
}

#[tokio::test]
async fn an_upstream_that_closes_every_connection_still_gets_every_request() {
    use std::sync::atomic::Ordering;
    let (up, accepted) = counting_upstream(false).await;
    let proxy = proxy(up).await;
    let c = client();
    for i in 0..20 {
        assert_eq!(get(&c, &proxy.url(&format!("/r{i}"))).await.status, 200, "request {i}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
}
