//! Deterministic triggers beside the percentage: the first N matching requests, every Nth, a time window.

use std::time::{Duration, Instant};

use crate::support::*;
use edgefault::pb::v1;

async fn statuses(proxy: &Proxy, path: &str, n: usize) -> Vec<u16> {
    let c = client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get(&c, &proxy.url(path)).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn first_n_fails_exactly_the_first_requests() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: first3\nmatch: { path_prefix: /api/ }\ntrigger: { first: 3 }\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    // Requests outside the match do not count.
    assert_eq!(statuses(&proxy, "/", 2).await, [200, 200]);
    assert_eq!(statuses(&proxy, "/api/x", 6).await, [503, 503, 503, 200, 200, 200]);
}

#[tokio::test]
async fn every_nth_fails_the_nth_requests() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: every4\ntrigger: { every: 4 }\nfaults: [{ abort: { http_status: 502 } }]\n").await;
    assert_eq!(statuses(&proxy, "/", 9).await, [200, 200, 200, 502, 200, 200, 200, 502, 200]);
    let got =
        proxy.control().await.get_experiment(v1::GetExperimentRequest { id: e.id }).await.expect("get").into_inner();
    let s = got.stats.expect("stats");
    assert_eq!((s.matched, s.aborted), (9, 2));
}

#[tokio::test]
async fn a_window_fails_requests_only_inside_it() {
    let proxy = proxy(upstream().await).await;
    let start = Instant::now();
    proxy
        .start("name: window\ntrigger: { after: 600ms, until: 1800ms }\nfaults: [{ abort: { http_status: 500 } }]\n")
        .await;
    assert_eq!(statuses(&proxy, "/", 1).await, [200], "before the window");
    tokio::time::sleep_until((start + Duration::from_millis(1000)).into()).await;
    assert_eq!(statuses(&proxy, "/", 1).await, [500], "inside the window");
    tokio::time::sleep_until((start + Duration::from_millis(2300)).into()).await;
    assert_eq!(statuses(&proxy, "/", 1).await, [200], "after the window");
}

#[tokio::test]
async fn bad_triggers_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let fields = violation_fields(
        &proxy,
        "name: x\ntrigger: { first: 0, every: 0, after: 2s, until: 1s }\nfaults: [{ abort: {} }]\n",
    )
    .await;
    assert_eq!(fields, ["trigger.first", "trigger.every", "trigger.until"]);
}
