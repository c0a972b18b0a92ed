//! `delay`: measured by a real client.

use std::time::{Duration, Instant};

use crate::support::*;

async fn timed_get(c: &HttpClient, url: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = get(c, url).await;
    (r.status.as_u16(), t.elapsed())
}

#[tokio::test]
async fn fixed_delay_holds_the_request_then_forwards_it() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    let (_, base) = timed_get(&c, &proxy.url("/")).await;
    proxy.start("name: slow\nfaults: [{ delay: { fixed: 200ms } }]\n").await;
    for _ in 0..3 {
        let (status, took) = timed_get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200, "a delay alone forwards the request");
        assert!(took >= Duration::from_millis(200), "{took:?}");
        // Loose upper bound: the delay is not applied twice or wildly late.
        assert!(took < Duration::from_millis(200) + base + Duration::from_millis(300), "{took:?}");
    }
}

#[tokio::test]
async fn uniform_delay_stays_in_its_range() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    proxy.start("name: slow\nfaults: [{ delay: { uniform: { min: 50ms, max: 120ms } } }]\n").await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (status, took) = timed_get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
        assert!(took >= Duration::from_millis(50), "{took:?}");
        seen.push(took);
    }
    assert!(seen.iter().any(|d| *d < Duration::from_millis(119)), "{seen:?}");
}

#[tokio::test]
async fn delays_of_several_experiments_add_and_the_first_abort_wins() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    proxy.start("name: a\nfaults: [{ delay: { fixed: 100ms } }, { abort: { http_status: 502 } }]\n").await;
    proxy.start("name: b\nfaults: [{ delay: { fixed: 100ms } }, { abort: { http_status: 504 } }]\n").await;
    let (status, took) = timed_get(&c, &proxy.url("/")).await;
    assert_eq!(status, 502, "the earlier experiment's abort answers");
    assert!(took >= Duration::from_millis(200), "both delays apply: {took:?}");
}

#[tokio::test]
async fn lognormal_delay_is_capped() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    proxy.start("name: tail\nfaults: [{ delay: { lognormal: { median: 1s, sigma: 1 }, max: 80ms } }]\n").await;
    for _ in 0..5 {
        let (status, took) = timed_get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(80 + 400), "capped at 80ms: {took:?}");
    }
}
