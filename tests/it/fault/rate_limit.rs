//! `rate_limit` seen by real clients: a burst passes, the rest get 429 with retry-after, and tokens come
//! back at the rate. (The bucket's arithmetic is tested on the paused clock in `fault::rate_limit`.)

use std::time::Duration;

use crate::support::*;
use edgefault::pb::v1;

#[tokio::test]
async fn beyond_the_rate_clients_get_429_with_retry_after() {
    let proxy = proxy(upstream().await).await;
    let e = proxy
        .start("name: limit\nmatch: { path_prefix: /api/ }\nfaults: [{ rate_limit: { requests_per_second: 2, burst: 4 } }]\n")
        .await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = get(&c, &proxy.url("/api/x")).await;
        if r.status == 429 {
            assert_eq!(r.headers["retry-after"], "1");
            assert_eq!(&r.body[..], b"429 Too Many Requests\n");
            assert!(r.headers.get("x-upstream").is_none());
        } else {
            assert_eq!(r.headers["x-upstream"], "test", "within the limit the upstream answers");
        }
        statuses.push(r.status.as_u16());
    }
    // The burst of 4 passes (a fifth may, if the loop took over half a second); the rest is limited.
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((4..=5).contains(&passed), "{statuses:?}");
    assert_eq!(&statuses[..4], [200; 4]);
    // Other paths are not limited.
    assert_eq!(get(&c, &proxy.url("/")).await.status, 200);

    // Tokens come back at 2 per second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&c, &proxy.url("/api/x")).await.status, 200);

    let got = proxy.control().await.get_experiment(v1::GetExperimentRequest { id: e.id }).await.expect("get");
    let s = got.into_inner().stats.expect("stats");
    assert_eq!(s.aborted as usize, 10 - passed, "limited requests count as aborted");
}

#[tokio::test]
async fn faults_after_a_rate_limit_apply_within_the_limit() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start("name: limit-then-slow\nfaults: [{ rate_limit: { requests_per_second: 0.5, burst: 1 } }, { delay: { fixed: 300ms } }]\n")
        .await;
    let c = client();
    let start = std::time::Instant::now();
    assert_eq!(get(&c, &proxy.url("/")).await.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300), "within the limit the delay applies");
    let start = std::time::Instant::now();
    let r = get(&c, &proxy.url("/")).await;
    assert_eq!((r.status.as_u16(), r.headers["retry-after"].to_str().ok()), (429, Some("2")));
    assert!(start.elapsed() < Duration::from_millis(300), "beyond it the request ends at once");
}

#[tokio::test]
async fn bad_rates_are_refused() {
    let proxy = proxy(upstream().await).await;
    let fields = violation_fields(&proxy, "name: x\nfaults: [{ rate_limit: { requests_per_second: 0 } }]\n").await;
    assert_eq!(fields, ["faults[0].rate_limit.requests_per_second"]);
}
