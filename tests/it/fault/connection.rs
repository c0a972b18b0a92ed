//! The connection and body faults, seen by real clients: `hang` (then close, reset or answer), `reset`
//! (before the response or after some body bytes), `truncate` and `throttle`.

use std::{
    io,
    time::{Duration, Instant},
};

use crate::support::*;
use edgefault::pb::v1;
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// What a raw HTTP/1.1 client got: every byte read, and how the connection ended.
struct RawEnd {
    bytes: Vec<u8>,
    /// `None`: a clean close (FIN); `Some`: the read error (a reset is `ConnectionReset`).
    error: Option<io::ErrorKind>,
    elapsed: Duration,
}

async fn raw_get(proxy: &Proxy, path: &str) -> RawEnd {
    let start = Instant::now();
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nhost: site.example\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("no timeout") {
            Ok(0) => break None,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e.kind()),
        }
    };
    RawEnd { bytes, error, elapsed: start.elapsed() }
}

/// Reads a response body frame by frame until it ends; returns the data and whether it ended with an error.
async fn body_until_end(resp: http::Response<hyper::body::Incoming>) -> (Vec<u8>, bool) {
    let mut body = resp.into_body();
    let mut data = Vec::new();
    loop {
        match body.frame().await {
            None => return (data, false),
            Some(Err(_)) => return (data, true),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    data.extend_from_slice(&d);
                }
            }
        }
    }
}

fn big(n: u64) -> http::Request<BoxBody> {
    http::Request::get(format!("/big?n={n}")).body(body("")).expect("request")
}

fn at(proxy: &Proxy, req: http::Request<BoxBody>) -> http::Request<BoxBody> {
    let (mut parts, b) = req.into_parts();
    parts.uri = proxy.url(&parts.uri.to_string()).parse().expect("uri");
    http::Request::from_parts(parts, b)
}

#[tokio::test]
async fn reset_before_the_response_is_a_connection_reset() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: reset\nmatch: { path_prefix: /api/ }\nfaults: [{ reset: {} }]\n").await;
    let end = raw_get(&proxy, "/api/x").await;
    assert_eq!(end.error, Some(io::ErrorKind::ConnectionReset), "got {} bytes", end.bytes.len());
    assert!(end.bytes.is_empty(), "no response: {:?}", String::from_utf8_lossy(&end.bytes));

    // A real HTTP client reports an error, not a status.
    let err = client().request(at(&proxy, request("GET", "/api/y").body(body("")).expect("req"))).await;
    assert!(err.is_err(), "a connection error, not a response");
    // Requests outside the match pass; the proxy is fine.
    assert_eq!(get(&client(), &proxy.url("/other")).await.status, 200);
}

#[tokio::test]
async fn reset_after_bytes_cuts_the_body_with_a_reset() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: reset-late\nfaults: [{ reset: { after_bytes: 1000 } }]\n").await;
    let end = raw_get(&proxy, "/big?n=200000").await;
    assert_eq!(end.error, Some(io::ErrorKind::ConnectionReset));
    let text = String::from_utf8_lossy(&end.bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "the head went out first: {text}");
    let head_end = text.find("\r\n\r\n").map_or(end.bytes.len(), |i| i + 4);
    // At most the 1000 body bytes, in chunked framing.
    assert!(end.bytes.len() - head_end <= 1000 + 16, "{} body bytes", end.bytes.len() - head_end);
}

#[tokio::test]
async fn truncate_delivers_exactly_n_bytes_then_ends_the_connection() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: truncate\nfaults: [{ truncate: { after_bytes: 100000 } }]\n").await;
    let resp = client().request(at(&proxy, big(300_000))).await.expect("response head");
    assert_eq!(resp.status(), 200);
    let (data, failed) = body_until_end(resp).await;
    assert!(failed, "the body ends with an error, not a clean end");
    assert_eq!(data.len(), 100_000);
    assert!(data.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)), "the bytes are the upstream's");

    // Over HTTP/1.1 the connection is closed with FIN (not reset).
    let end = raw_get(&proxy, "/big?n=300000").await;
    assert_eq!(end.error, None, "a clean close");
    assert!(!String::from_utf8_lossy(&end.bytes).ends_with("0\r\n\r\n"), "no final chunk");

    // Over HTTP/2 the stream is reset after the bytes; the connection stays usable.
    let h2 = h2_client();
    let resp = h2.request(at(&proxy, big(300_000))).await.expect("h2 response head");
    let (data, failed) = body_until_end(resp).await;
    assert!(failed && data.len() <= 100_000, "{} bytes, failed: {failed}", data.len());
    assert_eq!(h2.request(at(&proxy, big(10))).await.expect("same h2 client again").status(), 200);

    // A body shorter than the cut passes whole.
    let short = get(&client(), &proxy.url("/big?n=5000")).await;
    assert_eq!(short.body.len(), 5000);
}

#[tokio::test]
async fn throttle_holds_the_body_to_its_rate() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: throttle\nfaults: [{ throttle: { bytes_per_second: 200000 } }]\n").await;
    let c = client();
    let start = Instant::now();
    let resp = c.request(at(&proxy, big(100_000))).await.expect("response");
    let head = start.elapsed();
    let (data, failed) = body_until_end(resp).await;
    let total = start.elapsed();
    assert!(!failed);
    assert_eq!(data.len(), 100_000);
    assert!(data.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)), "the bytes are the upstream's, in order");
    assert!(head < Duration::from_millis(300), "status and headers go at once: {head:?}");
    // 100 kB at 200 kB/s: 0.5 s less the first 50 ms piece, which goes at once.
    assert!(total >= Duration::from_millis(420), "too fast: {total:?}");
    assert!(total < Duration::from_secs(3), "too slow: {total:?}");
}

#[tokio::test]
async fn hang_then_respond_answers_after_the_hold() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start("name: hang-524\nfaults: [{ hang: { duration: 300ms, respond: { http_status: 524, page: edge } } }]\n")
        .await;
    let start = Instant::now();
    let r = get(&client(), &proxy.url("/")).await;
    let took = start.elapsed();
    assert_eq!(r.status, 524);
    assert!(r.headers.contains_key("cf-ray"));
    assert!(r.headers.get("x-upstream").is_none());
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn hang_then_close_or_reset_ends_without_a_response() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: hang-close\nmatch: { path_prefix: /close }\nfaults: [{ hang: { duration: 200ms } }]\n").await;
    proxy
        .start(
            "name: hang-reset\nmatch: { path_prefix: /reset }\nfaults: [{ hang: { duration: 200ms, reset: true } }]\n",
        )
        .await;
    let closed = raw_get(&proxy, "/close").await;
    assert_eq!((closed.error, closed.bytes.len()), (None, 0), "closed with FIN and nothing sent");
    assert!(closed.elapsed >= Duration::from_millis(200), "{:?}", closed.elapsed);
    let reset = raw_get(&proxy, "/reset").await;
    assert_eq!((reset.error, reset.bytes.len()), (Some(io::ErrorKind::ConnectionReset), 0));
    assert!(reset.elapsed >= Duration::from_millis(200), "{:?}", reset.elapsed);
}

#[tokio::test]
async fn stats_count_connection_and_body_faults() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: t\nfaults: [{ truncate: { after_bytes: 10 } }]\n").await;
    let c = client();
    for _ in 0..3 {
        let resp = c.request(at(&proxy, big(1000))).await.expect("head");
        let (data, failed) = body_until_end(resp).await;
        assert_eq!((data.len(), failed), (10, true));
    }
    let got =
        proxy.control().await.get_experiment(v1::GetExperimentRequest { id: e.id }).await.expect("get").into_inner();
    let s = got.stats.expect("stats");
    assert_eq!((s.matched, s.injected, s.aborted), (3, 3, 0));
}

#[tokio::test]
async fn bad_connection_faults_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let bad = "name: bad\nfaults:\n  - throttle: {}\n  - hang: { respond: { http_status: 99 } }\n  - delay: { fixed: 1s }\n  - hang: { duration: 0s }\n  - reset: {}\n";
    let found = violations(&proxy, bad).await;
    let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "faults[0].throttle.bytes_per_second",
            "faults[1].hang.duration",
            "faults[1].hang.respond.http_status",
            "faults[2]",
            "faults[3].hang.duration",
        ]
    );
    assert!(found[3].description.contains("comes after a fault that ends the request"));
}
