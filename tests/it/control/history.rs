//! GetHistory: what clients saw per route and per experiment, second by second, from real requests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgefault::pb::v1;

use crate::support::*;

async fn history(proxy: &Proxy, since: SystemTime) -> v1::GetHistoryResponse {
    let mut c = proxy.control().await;
    let secs = since.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    c.get_history(v1::GetHistoryRequest {
        since: Some(pbjson_types::Timestamp { seconds: secs, nanos: 0 }),
        resolution: v1::HistoryResolution::Second as i32,
    })
    .await
    .expect("GetHistory")
    .into_inner()
}

/// Sums a route's points: requests, each status class, injected.
fn sums(h: &v1::GetHistoryResponse, route: &str) -> (u64, Vec<u64>, u64, f64) {
    let r = h.routes.iter().find(|r| r.route == route).expect("the route's series");
    let mut status = vec![0; 6];
    let (mut requests, mut injected, mut p50) = (0, 0, 0.0f64);
    for p in &r.points {
        requests += p.requests;
        injected += p.injected;
        for (a, b) in status.iter_mut().zip(&p.status) {
            *a += b;
        }
        p50 = p50.max(p.p50_ms);
    }
    (requests, status, injected, p50)
}

#[tokio::test]
async fn the_history_counts_what_clients_got_second_by_second() {
    let proxy = proxy(upstream().await).await;
    let since = SystemTime::now() - Duration::from_secs(1);
    let e = proxy
        .start("name: half-503\nmatch: { routes: [api] }\npercentage: 50\nseed: 7\nfaults: [{ abort: { http_status: 503 } }]\n")
        .await;
    proxy.start("name: slow-dashboard\nmatch: { routes: [dashboard] }\nfaults: [{ delay: { fixed: 150ms } }]\n").await;
    let c = client();
    let (mut ok, mut failed) = (0u64, 0u64);
    for _ in 0..200 {
        match get(&c, &proxy.url("/api/x")).await.status.as_u16() {
            200 => ok += 1,
            503 => failed += 1,
            other => panic!("{other}"),
        }
    }
    for _ in 0..5 {
        let req = request("GET", &proxy.url("/")).header("host", "dash.example.com").body(body("")).unwrap();
        assert_eq!(send(&c, req).await.status, 200);
    }
    assert!(failed > 50 && ok > 50, "{ok} ok, {failed} failed");
    // The second in which the last request was answered is closed at the next whole second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let h = history(&proxy, since).await;
    assert_eq!(h.resolution_seconds, 1);
    let (requests, status, injected, _) = sums(&h, "api");
    assert_eq!((requests, status[1], status[4], injected), (200, ok, failed, failed));
    let (dash, _, delayed, p50) = sums(&h, "dashboard");
    assert_eq!((dash, delayed), (5, 5));
    assert!(p50 >= 150.0, "clients saw the injected delay: p50 {p50} ms");
    let exp = h.experiments.iter().find(|x| x.id == e.id).expect("the experiment's series");
    let (matched, hit): (u64, u64) = exp.points.iter().fold((0, 0), |(m, i), p| (m + p.matched, i + p.injected));
    assert_eq!((matched, hit), (200, failed));
    // Points are one a second, oldest first.
    let times: Vec<u64> = h.routes[0].points.iter().map(|p| p.time).collect();
    assert!(times.windows(2).all(|w| w[1] == w[0] + 1), "{times:?}");

    let minutes = proxy
        .control()
        .await
        .get_history(v1::GetHistoryRequest { since: None, resolution: v1::HistoryResolution::Minute as i32 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(minutes.resolution_seconds, 60);
    let bad = proxy.control().await.get_history(v1::GetHistoryRequest { since: None, resolution: 9 }).await;
    assert!(bad.is_err_and(|s| s.code() == tonic::Code::InvalidArgument && s.message().contains("resolution")));
}

#[tokio::test]
async fn a_dropped_connection_is_counted_as_dropped() {
    let proxy = proxy(upstream().await).await;
    let since = SystemTime::now() - Duration::from_secs(1);
    proxy.start("name: reset\nmatch: { routes: [api] }\nfaults: [{ reset: {} }]\n").await;
    for _ in 0..3 {
        let r = client().request(request("GET", &proxy.url("/api/r")).body(body("")).unwrap()).await;
        assert!(r.is_err(), "the connection is reset");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (requests, status, injected, _) = sums(&history(&proxy, since).await, "api");
    assert_eq!((requests, status[5], injected), (3, 3, 3));
}
