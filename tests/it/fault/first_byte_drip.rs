//! `first_byte_delay` and `drip`, seen by a real client: the head (or only the first body byte) comes late
//! while the upstream answered at once, and a dripped body arrives chunk by chunk with pauses between.
//! Real time, short and bounded; only lower bounds are asserted.

use std::time::{Duration, Instant};

use crate::support::*;
use http_body_util::BodyExt;

async fn head_and_body(proxy: &Proxy, path: &str) -> (http::StatusCode, Duration, Duration, Vec<u8>) {
    let start = Instant::now();
    let req = http::Request::get(proxy.url(path)).body(body("")).expect("request");
    let resp =
        tokio::time::timeout(Duration::from_secs(10), client().request(req)).await.expect("in time").expect("head");
    let head = start.elapsed();
    let status = resp.status();
    let data = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, head, start.elapsed(), data)
}

#[tokio::test]
async fn the_head_is_held_while_the_upstream_answered_at_once() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: ttfb\nfaults: [{ first_byte_delay: { fixed: 300ms } }]\n").await;
    let (status, head, _, data) = head_and_body(&proxy, "/").await;
    assert_eq!(status, 200);
    assert_eq!(data, b"upstream ok");
    assert!(head >= Duration::from_millis(300), "head after {head:?}");
}

#[tokio::test]
async fn head_first_holds_only_the_first_body_byte() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: ttfb\nfaults: [{ first_byte_delay: { fixed: 400ms, head_first: true } }]\n").await;
    let (status, head, total, data) = head_and_body(&proxy, "/big?n=5000").await;
    assert_eq!(status, 200);
    assert_eq!(data, (0..5000).map(pattern).collect::<Vec<u8>>());
    // The head came before the wait: the body took the wait after it.
    assert!(total - head >= Duration::from_millis(350), "head {head:?}, body done {total:?}");
}

#[tokio::test]
async fn a_sampled_first_byte_delay_stays_within_its_distribution() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: ttfb\nseed: 3\nfaults: [{ first_byte_delay: { uniform: { min: 100ms, max: 200ms } } }]\n").await;
    for _ in 0..3 {
        let (status, head, _, _) = head_and_body(&proxy, "/").await;
        assert_eq!(status, 200);
        assert!(head >= Duration::from_millis(100), "{head:?}");
    }
}

#[tokio::test]
async fn drip_spaces_out_chunks_of_the_body() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: drip\nfaults: [{ drip: { chunk_bytes: 100, interval: 50ms } }]\n").await;
    let start = Instant::now();
    let req = http::Request::get(proxy.url("/big?n=1000")).body(body("")).expect("request");
    let resp = client().request(req).await.expect("head");
    let mut b = resp.into_body();
    let mut data = Vec::new();
    let mut frames = 0;
    while let Some(f) = b.frame().await {
        if let Ok(d) = f.expect("frame").into_data() {
            assert!(d.len() <= 100, "a frame of {} bytes", d.len());
            frames += 1;
            data.extend_from_slice(&d);
        }
    }
    // Ten chunks, nine pauses.
    assert_eq!(data, (0..1000).map(pattern).collect::<Vec<u8>>());
    assert!(frames >= 10, "{frames} frames");
    assert!(start.elapsed() >= Duration::from_millis(450), "{:?}", start.elapsed());
}

#[tokio::test]
async fn drip_and_first_byte_delay_combine() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start(
            "name: both\nfaults:\n  - first_byte_delay: { fixed: 200ms, head_first: true }\n  - drip: { chunk_bytes: 500, interval: 100ms }\n",
        )
        .await;
    let (_, head, total, data) = head_and_body(&proxy, "/big?n=1500").await;
    assert_eq!(data.len(), 1500);
    // 200 ms before the first chunk, then two pauses of 100 ms.
    assert!(total - head >= Duration::from_millis(380), "head {head:?}, total {total:?}");
}

#[tokio::test]
async fn bad_first_byte_delays_and_drips_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let bad = "name: bad\nfaults:\n  - first_byte_delay: {}\n  - first_byte_delay: { normal: { mean: 1s, stddev: 1s } }\n  - drip: { interval: 1s }\n  - drip: { chunk_bytes: 10, interval: 0s }\n";
    let fields = violation_fields(&proxy, bad).await;
    assert_eq!(
        fields,
        [
            "faults[0].first_byte_delay",
            "faults[1].first_byte_delay.max",
            "faults[2].drip.chunk_bytes",
            "faults[3].drip.interval"
        ]
    );
}
