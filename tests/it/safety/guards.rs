//! Guards: an experiment is aborted, with the reason recorded, when the real upstream fails too often or
//! when it has injected enough.

use std::net::SocketAddr;

use crate::support::*;
use edgefault::pb::v1;

fn config(route_upstream: SocketAddr, healthy: SocketAddr) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: shaky, path_prefix: /shaky/, upstream: \"http://{route_upstream}\" }}\n      - {{ name: default, upstream: \"http://{healthy}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    )
}

const GUARDED: &str = "name: guarded\nmatch: { routes: [shaky] }\npercentage: 10\nseed: 3\nfaults: [{ delay: { fixed: 1ms } }]\nguards: [{ upstream_error_rate: { max: 0.5, window: 10s, min_requests: 10 } }]\n";

fn state(proxy: &Proxy, id: &str) -> (String, String) {
    let e = proxy.server.registry().get(id).expect("kept");
    (e.state.as_str().to_owned(), e.end_reason)
}

#[tokio::test]
async fn the_guard_trips_when_the_upstream_cannot_be_reached() {
    let proxy = proxy_yaml(&config(closed_port().await, upstream().await)).await;
    let e = proxy.start(GUARDED).await;
    let c = client();
    for _ in 0..40 {
        get(&c, &proxy.url("/shaky/x")).await;
    }
    assert_eventually!(state(&proxy, &e.id).0 == "aborted", "the guard trips");
    let reason = state(&proxy, &e.id).1;
    assert!(
        reason.starts_with("guard tripped: upstream error rate 100.0%") && reason.contains("exceeds 50.0%"),
        "{reason}"
    );
}

#[tokio::test]
async fn the_guard_trips_on_real_5xx_answers() {
    // The upstream is another edgefault answering 503 to everything: real 5xx as far as this proxy sees.
    let failing = proxy(upstream().await).await;
    failing.start("name: upstream-down\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    let proxy = proxy_yaml(&config(failing.addr, upstream().await)).await;
    let e = proxy.start(GUARDED).await;
    let c = client();
    for _ in 0..40 {
        assert_eq!(get(&c, &proxy.url("/shaky/x")).await.status, 503);
    }
    assert_eventually!(state(&proxy, &e.id).0 == "aborted", "the guard trips");
    assert!(state(&proxy, &e.id).1.contains("upstream error rate"), "{:?}", state(&proxy, &e.id));
}

#[tokio::test]
async fn a_healthy_upstream_and_other_routes_do_not_trip_it() {
    let dead = closed_port().await;
    let up = upstream().await;
    // Route shaky is healthy here; the failing upstream is on route default, outside the experiment.
    let proxy = proxy_yaml(&config(up, dead)).await;
    let e = proxy.start(GUARDED).await;
    let c = client();
    for _ in 0..40 {
        assert_eq!(get(&c, &proxy.url("/shaky/x")).await.status, 200);
        assert_eq!(get(&c, &proxy.url("/other")).await.status, 502);
    }
    // Several guard ticks later it still runs.
    tokio::time::sleep(edgefault::experiment::guard::TICK * 4).await;
    assert_eq!(state(&proxy, &e.id).0, "running");
}

#[tokio::test]
async fn max_injected_ends_the_experiment() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: five\nfaults: [{ abort: { http_status: 503 } }]\nguards: [{ max_injected: 5 }]\n").await;
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, &proxy.url("/")).await.status, 503);
    }
    assert_eventually!(state(&proxy, &e.id).0 == "aborted", "the guard trips");
    assert_eq!(state(&proxy, &e.id).1, "guard tripped: 5 faults injected, the guard's maximum is 5");
    assert_eq!(get(&c, &proxy.url("/")).await.status, 200);
}

#[tokio::test]
async fn bad_guards_are_refused_with_their_field() {
    let proxy = proxy(upstream().await).await;
    let mut c = proxy.control().await;
    let e = c
        .start_experiment(v1::StartExperimentRequest {
            spec: Some(spec(
                "name: x\nfaults: [{ abort: {} }]\nguards: [{ upstream_error_rate: { max: 1.5, window: 100ms } }, { max_injected: 0 }, {}]\n",
            )),
        })
        .await
        .expect_err("invalid");
    for field in [
        "guards[0].upstream_error_rate.max",
        "guards[0].upstream_error_rate.window",
        "guards[1].max_injected",
        "guards[2]",
    ] {
        assert!(e.message().contains(&format!("{field}: ")), "{field} missing: {}", e.message());
    }
}

/// A dry run watches a route whose real upstream answers in 300 ms: the p90 guard at 100 ms trips, with
/// the reason recorded and a guard-tripped event; fast answers on the same route before did not trip it.
#[tokio::test]
async fn the_latency_guard_trips_on_a_slow_real_upstream() {
    let proxy = proxy(upstream().await).await;
    let mut events = proxy
        .control()
        .await
        .watch_events(v1::WatchEventsRequest { no_stats: true, ..Default::default() })
        .await
        .expect("watch")
        .into_inner();
    let e = proxy
        .start("name: latency\ndry_run: true\nmatch: { routes: [default] }\nfaults: [{ abort: { http_status: 503 } }]\nguards: [{ upstream_latency: { max: 100ms, percentile: 90, window: 10s, min_requests: 5 } }]\n")
        .await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(get(&c, &proxy.url("/fast")).await.status, 200);
    }
    tokio::time::sleep(edgefault::experiment::guard::TICK * 3).await;
    assert_eq!(state(&proxy, &e.id).0, "running", "fast answers do not trip it");
    // Ten answers of 300 ms each, five at a time: the 90th percentile of the 20 is slow.
    let slow_url = proxy.url("/slow?ms=300");
    for _ in 0..2 {
        let slow: Vec<_> = (0..5).map(|_| get(&c, &slow_url)).collect();
        for r in futures_util::future::join_all(slow).await {
            assert_eq!(r.status, 200);
        }
    }
    assert_eventually!(state(&proxy, &e.id).0 == "aborted", "the guard trips");
    let reason = state(&proxy, &e.id).1;
    assert!(
        reason.starts_with("guard tripped: upstream p90 latency 3") && reason.contains("exceeds 100ms"),
        "{reason}"
    );
    let mut tripped = None;
    while let Ok(Ok(Some(ev))) = tokio::time::timeout(std::time::Duration::from_secs(5), events.message()).await {
        if let Some(v1::event::Kind::GuardTripped(g)) = ev.kind {
            tripped = Some(g.reason);
            break;
        }
    }
    assert_eq!(tripped.as_deref(), Some(reason.as_str()));
}

#[tokio::test]
async fn bad_latency_guards_are_refused_with_their_field() {
    let proxy = proxy(upstream().await).await;
    let mut c = proxy.control().await;
    let e = c
        .validate_experiment(v1::ValidateExperimentRequest {
            spec: Some(spec(
                "name: x\nfaults: [{ abort: {} }]\nguards: [{ upstream_latency: { percentile: 100, window: 2h } }, { upstream_latency: { max: 0s } }]\n",
            )),
        })
        .await
        .expect("validates")
        .into_inner();
    let fields: Vec<&str> = e.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "guards[0].upstream_latency.max",
            "guards[0].upstream_latency.percentile",
            "guards[0].upstream_latency.window",
            "guards[1].upstream_latency.max"
        ],
        "{:?}",
        e.violations
    );
}
