//! The forward (egress) listener: absolute-form HTTP requests and CONNECT tunnels, with faults matched by
//! destination.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use crate::support::*;
use bytes::Bytes;
use edgefault::config::{Config, Overrides};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// A forward listener named `egress` with a route `provider` for `localhost:<provider_port>`; every other
/// destination takes the implicit `default` route.
async fn forward_proxy(provider_port: u16) -> Proxy {
    proxy_yaml(&format!(
        "listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n    mode: forward\n    routes:\n      - {{ name: provider, hosts: [\"localhost:{provider_port}\"] }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await
}

/// Sends one request through the proxy as an HTTP_PROXY client does: the absolute URI in the request line.
async fn via_proxy(proxy: SocketAddr, uri: &str) -> Result<Reply, hyper::Error> {
    let stream = TcpStream::connect(proxy).await.expect("connect to proxy");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let authority =
        uri.parse::<http::Uri>().ok().and_then(|u| u.authority().map(|a| a.to_string())).unwrap_or_default();
    let req = Request::get(uri).header("host", authority).body(Empty::<Bytes>::new()).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await.expect("no timeout")?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply { status: parts.status, headers: parts.headers, body })
}

/// Sends `CONNECT target` and returns the status line's code and the stream (positioned after the head).
async fn connect(proxy: SocketAddr, target: &str) -> (u16, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.expect("connect to proxy");
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert!(n == 1, "connection closed in the head: {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status code");
    (code, s)
}

/// Reads until EOF, error or `limit`; returns the bytes and how the read ended.
async fn read_all(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Result<(), std::io::ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, Err(std::io::ErrorKind::TimedOut)),
            Ok(Ok(0)) => return (got, Ok(())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return (got, Err(e.kind())),
        }
    }
}

#[tokio::test]
async fn absolute_form_requests_go_to_their_own_destination() {
    let a = upstream().await;
    let b = upstream().await;
    let proxy = forward_proxy(b.port()).await;
    for up in [a, b] {
        let r = via_proxy(proxy.addr, &format!("http://127.0.0.1:{}/echo", up.port())).await.expect("response");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-seen-host"], format!("127.0.0.1:{}", up.port()).as_str());
    }
    // Not a proxy request: said so, with the proxy's marker.
    let r = get(&client(), &proxy.url("/echo")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["x-edgefault-error"], "not-a-proxy-request");
    assert!(String::from_utf8_lossy(&r.body).contains("HTTP_PROXY"));
}

#[tokio::test]
async fn http_faults_are_matched_by_destination() {
    let a = upstream().await;
    let b = upstream().await;
    let proxy = forward_proxy(b.port()).await;
    proxy.start("name: provider-down\nmatch: { routes: [provider] }\nfaults: [{ abort: { http_status: 500, page: edge } }]\n").await;
    let hit = via_proxy(proxy.addr, &format!("http://localhost:{}/api", b.port())).await.expect("response");
    assert_eq!(hit.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(hit.headers.get("x-edgefault-error").is_none());
    // Same host, another port: another destination, untouched.
    let other = via_proxy(proxy.addr, &format!("http://localhost:{}/api", a.port())).await.expect("response");
    assert_eq!(other.status, StatusCode::OK);

    // `match.hosts` sees the destination's host.
    proxy.start("name: by-host\nmatch: { listeners: [egress], hosts: [\"127.0.0.1\"] }\nfaults: [{ abort: { http_status: 429 } }]\n").await;
    let r = via_proxy(proxy.addr, &format!("http://127.0.0.1:{}/", a.port())).await.expect("response");
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_connect_tunnel_carries_tls_end_to_end() {
    let (tls, ca) = tls_upstream(&["localhost"]).await;
    let proxy = forward_proxy(1).await;
    let (code, stream) = connect(proxy.addr, &format!("localhost:{}", tls.port())).await;
    assert_eq!(code, 200);

    // The client's own TLS session through the tunnel: the proxy sees only bytes.
    let mut roots = rustls::RootCertStore::empty();
    for cert in edgefault::tls::read_certificates(&ca).expect("ca") {
        roots.add(cert).expect("add ca");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls_stream = connector.connect(name, stream).await.expect("TLS through the tunnel");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls_stream)).await.expect("h1");
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::get("/echo").header("host", "localhost").body(Empty::<Bytes>::new()).expect("req"))
        .await
        .expect("response through the tunnel");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refused_connect_gets_the_status() {
    let dest = FakeUpstream::tcp_bytes(10).start().await;
    let proxy = forward_proxy(dest.port()).await;
    proxy.start("name: refuse\nmatch: { routes: [provider] }\nfaults: [{ abort: { http_status: 403 } }]\n").await;
    let (code, _) = connect(proxy.addr, &format!("localhost:{}", dest.port())).await;
    assert_eq!(code, 403);
    let (code, _) = connect(proxy.addr, &format!("127.0.0.1:{}", dest.port())).await;
    assert_eq!(code, 200, "another destination is not refused");
}

#[tokio::test]
async fn a_delayed_connect_answers_late() {
    let dest = FakeUpstream::tcp_bytes(10).start().await;
    let proxy = forward_proxy(dest.port()).await;
    proxy.start("name: slow\nmatch: { routes: [provider] }\nfaults: [{ delay: { fixed: 300ms } }]\n").await;
    let t = Instant::now();
    let (code, mut s) = connect(proxy.addr, &format!("localhost:{}", dest.port())).await;
    assert_eq!(code, 200);
    assert!(t.elapsed() >= Duration::from_millis(300), "answered after {:?}", t.elapsed());
    let (got, _) = read_all(&mut s, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 10, "the tunnel works once open");
}

#[tokio::test]
async fn tunnels_are_cut_reset_and_throttled_after_bytes() {
    let dest = FakeUpstream::tcp_bytes(100_000).start().await;
    let target = format!("localhost:{}", dest.port());
    let proxy = forward_proxy(dest.port()).await;

    let e =
        proxy.start("name: cut\nmatch: { routes: [provider] }\nfaults: [{ truncate: { after_bytes: 1000 } }]\n").await;
    let (_, mut s) = connect(proxy.addr, &target).await;
    let (got, end) = read_all(&mut s, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1000);
    assert_eq!(end, Ok(()), "closed with FIN");
    assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)));
    proxy.stop(&e.id).await;

    let e = proxy.start("name: rst\nmatch: { routes: [provider] }\nfaults: [{ reset: { after_bytes: 1000 } }]\n").await;
    let (_, mut s) = connect(proxy.addr, &target).await;
    let (got, end) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(got.len() <= 1000, "{} bytes", got.len());
    assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
    proxy.stop(&e.id).await;

    proxy
        .start("name: slow\nmatch: { routes: [provider] }\nfaults: [{ throttle: { bytes_per_second: 50000 } }]\n")
        .await;
    let (_, mut s) = connect(proxy.addr, &target).await;
    let t = Instant::now();
    let mut got = vec![0u8; 25_000];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got)).await.expect("in time").expect("read");
    // 25 kB at 50 kB/s: at least half a second (less one 50 ms piece sent at once).
    assert!(t.elapsed() >= Duration::from_millis(440), "25 kB took {:?}", t.elapsed());
}

#[tokio::test]
async fn a_hung_connect_closes_after_its_hold() {
    let dest = FakeUpstream::tcp_bytes(10).start().await;
    let proxy = forward_proxy(dest.port()).await;
    proxy.start("name: hang\nmatch: { routes: [provider] }\nfaults: [{ hang: { duration: 300ms } }]\n").await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let target = format!("localhost:{}", dest.port());
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes()).await.expect("write");
    let t = Instant::now();
    let (got, end) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(got.is_empty(), "no answer: {:?}", String::from_utf8_lossy(&got));
    assert_eq!(end, Ok(()));
    assert!(t.elapsed() >= Duration::from_millis(290), "closed after {:?}", t.elapsed());
}

#[tokio::test]
async fn a_blackholed_tunnel_opens_and_never_answers() {
    let dest = FakeUpstream::tcp_bytes(10).start().await;
    let proxy = forward_proxy(dest.port()).await;
    proxy.start("name: void\nmatch: { routes: [provider] }\nfaults: [{ blackhole: { duration: 400ms } }]\n").await;
    let t = Instant::now();
    let (code, mut s) = connect(proxy.addr, &format!("localhost:{}", dest.port())).await;
    assert_eq!(code, 200, "the tunnel seems to open");
    s.write_all(b"hello?").await.expect("the proxy takes what is sent");
    let (got, end) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(got.is_empty(), "nothing comes back, not even the destination's bytes");
    assert_eq!(end, Ok(()), "closed when the blackhole's time is over");
    assert!(t.elapsed() >= Duration::from_millis(390), "after {:?}", t.elapsed());
}

#[tokio::test]
async fn a_blackholed_request_is_never_answered() {
    let up = upstream().await;
    let proxy = forward_proxy(up.port()).await;
    proxy.start("name: void\nmatch: { routes: [provider] }\nfaults: [{ blackhole: { duration: 300ms } }]\n").await;
    let t = Instant::now();
    let r = via_proxy(proxy.addr, &format!("http://localhost:{}/", up.port())).await;
    assert!(r.is_err(), "the connection closes without a response");
    assert!(t.elapsed() >= Duration::from_millis(290), "after {:?}", t.elapsed());
}

#[tokio::test]
async fn an_unresolvable_destination_is_a_502_for_requests_and_tunnels() {
    let up = upstream().await;
    let proxy = forward_proxy(up.port()).await;
    proxy.start("name: dns\nmatch: { routes: [provider] }\nfaults: [{ unresolvable: {} }]\n").await;
    let r = via_proxy(proxy.addr, &format!("http://localhost:{}/", up.port())).await.expect("response");
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&r.body).contains("could not resolve host localhost"), "{:?}", r.body);
    let (code, _) = connect(proxy.addr, &format!("localhost:{}", up.port())).await;
    assert_eq!(code, 502);
}

#[tokio::test]
async fn a_destination_that_refuses_is_a_502_marked_as_the_proxys() {
    let closed = closed_port().await;
    let proxy = forward_proxy(1).await;
    let (code, _) = connect(proxy.addr, &closed.to_string()).await;
    assert_eq!(code, 502);
    let r = via_proxy(proxy.addr, &format!("http://{closed}/")).await.expect("response");
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.headers["x-edgefault-error"], "upstream-connect");
}

#[test]
fn forward_listener_config_errors_say_where() {
    let cases = [
        (
            "mode: forward\n    routes:\n      - { name: a, upstream: \"http://x:1\" }",
            "listeners[0].routes[0].upstream: a forward listener",
        ),
        (
            "mode: forward\n    routes:\n      - { name: a, hosts: [\"x:http\"] }",
            "listeners[0].routes[0].hosts[0]: \"x:http\"",
        ),
        (
            "routes:\n      - { name: a, hosts: [\"x:443\"], upstream: \"http://x:1\" }",
            "listeners[0].routes[0].hosts[0]: \"x:443\": a port is only for forward listeners",
        ),
        ("routes:\n      - { name: a }", "listeners[0].routes[0].upstream: missing"),
    ];
    for (listener, expected) in cases {
        let yaml = format!("listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n    {listener}\n");
        let e = Config::from_yaml(&yaml, "test.yaml", &Overrides::default()).expect_err("refused");
        assert!(e.to_string().contains(expected), "expected {expected:?} in:\n{e}");
    }
    let ok = Config::from_yaml(
        "listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n    mode: forward\n",
        "t",
        &Overrides::default(),
    )
    .expect("a forward listener needs no route");
    assert_eq!(ok.listeners[0].routes[0].name, "default");
}

#[tokio::test]
async fn a_tunnel_is_closed_or_reset_after_a_time() {
    let dest = FakeUpstream::tcp_bytes(10).start().await;
    let target = format!("localhost:{}", dest.port());
    let proxy = forward_proxy(dest.port()).await;
    let e =
        proxy.start("name: drop\nmatch: { routes: [provider] }\nfaults: [{ disconnect: { after: 300ms } }]\n").await;
    let t = Instant::now();
    let (_, mut s) = connect(proxy.addr, &target).await;
    let (got, end) = read_all(&mut s, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 10, "the tunnel works until then");
    assert_eq!(end, Ok(()), "closed with FIN");
    assert!(t.elapsed() >= Duration::from_millis(290), "after {:?}", t.elapsed());
    proxy.stop(&e.id).await;

    proxy
        .start("name: rst\nmatch: { routes: [provider] }\nfaults: [{ disconnect: { after: 300ms, reset: true } }]\n")
        .await;
    let (_, mut s) = connect(proxy.addr, &target).await;
    let (_, end) = read_all(&mut s, Duration::from_secs(5)).await;
    assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
}

/// Stop means now for egress holds too: a blackholed request is forwarded, a blackholed tunnel opens to
/// its destination with what the client had sent, both within a moment of the stop.
#[tokio::test]
async fn stopping_a_blackhole_lets_requests_and_tunnels_through() {
    let up = upstream().await;
    let proxy = forward_proxy(up.port()).await;
    let e = proxy.start("name: void\nmatch: { routes: [provider] }\nfaults: [{ blackhole: {} }]\n").await;
    let uri = format!("http://localhost:{}/", up.port());
    let request = tokio::spawn({
        let addr = proxy.addr;
        async move { (via_proxy(addr, &uri).await, Instant::now()) }
    });
    let (code, mut tunnel) = connect(proxy.addr, &format!("localhost:{}", up.port())).await;
    assert_eq!(code, 200);
    tunnel.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = Instant::now();
    proxy.stop(&e.id).await;
    let (reply, at) = request.await.expect("joined");
    assert_eq!(reply.expect("answered").status, StatusCode::OK);
    assert!(at.duration_since(stopped) < Duration::from_secs(1), "{:?}", at.duration_since(stopped));
    let (got, end) = read_all(&mut tunnel, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("upstream ok"), "{text}");
    assert_eq!(end, Ok(()));
}

#[tokio::test]
async fn stopping_a_throttled_tunnel_lets_the_rest_through_at_once() {
    let dest = FakeUpstream::tcp_bytes(200_000).start().await;
    let proxy = forward_proxy(dest.port()).await;
    let e = proxy
        .start("name: slow\nmatch: { routes: [provider] }\nfaults: [{ throttle: { bytes_per_second: 2000 } }]\n")
        .await;
    let (code, mut s) = connect(proxy.addr, &format!("localhost:{}", dest.port())).await;
    assert_eq!(code, 200);
    let mut first = [0u8; 100];
    s.read_exact(&mut first).await.expect("the first bytes");
    let stopped = Instant::now();
    proxy.stop(&e.id).await;
    let mut rest = vec![0u8; 200_000 - 100];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut rest)).await.expect("in time").expect("read");
    assert!(stopped.elapsed() < Duration::from_secs(2), "{:?}", stopped.elapsed());
    let all: Vec<u8> = first.iter().chain(&rest).copied().collect();
    assert!(all.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)), "byte-exact");
}
