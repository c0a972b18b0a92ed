//! The fleet view on the controller: summed counters with per-sidecar detail, the sidecars' events, `ctl
//! top`.

use std::{process::Command, time::Duration};

use edgefault::pb::v1::{self, event::Kind};
use tokio_stream::StreamExt;

use super::{abort_503, sidecars, start};
use crate::support::{self, fleet};

/// A controller and three connected sidecars: s1 and s2 labelled app=web, s3 app=api.
async fn three_sidecars() -> (edgefault::app::Controller, String, Vec<(String, support::Proxy)>, super::Client) {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let sidecars = sidecars(
        &url,
        &[("s1", &[("app", "web")]), ("s2", &[("app", "web")]), ("s3", &[("app", "api")])],
        Duration::from_secs(30),
    )
    .await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 3).await;
    (controller, url, sidecars, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_sums_the_fleet_passes_on_its_events_and_top_shows_it() {
    let (_controller, url, sidecars, mut c) = three_sidecars().await;
    let http = support::client();
    for (n, (_, p)) in [5, 3, 0].into_iter().zip(&sidecars) {
        for _ in 0..n {
            assert_eq!(support::get(&http, &p.url("/")).await.status, 200);
        }
    }
    let mut events = c
        .watch_events(v1::WatchEventsRequest { no_stats: true, ..Default::default() })
        .await
        .expect("watch")
        .into_inner();
    let e = start(&mut c, &abort_503("{ match_labels: { app: web } }")).await;
    for (n, (_, p)) in [4, 2, 0].into_iter().zip(&sidecars) {
        for _ in 0..n {
            assert_eq!(support::get(&http, &p.url("/")).await.status, 503);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = c.get_stats(v1::GetStatsRequest::default()).await.expect("stats").into_inner();
        let p = s.proxy.clone().unwrap_or_default();
        if p.passed == 8 && p.injected == 6 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "never summed: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut per: Vec<(String, u64, u64)> = stats
        .sidecars
        .iter()
        .map(|s| {
            let p = s.proxy.clone().unwrap_or_default();
            (s.sidecar_id.clone(), p.passed, p.injected)
        })
        .collect();
    per.sort();
    assert_eq!(per, [("s1".into(), 5, 4), ("s2".into(), 3, 2), ("s3".into(), 0, 0)]);
    let counters = stats.experiments.iter().find(|x| x.id == e.id).expect("the experiment's counters");
    assert_eq!(counters.stats.map(|s| s.injected), Some(6));
    assert_eq!(counters.injected_by_kind.get("abort"), Some(&6));
    let got = c.get_experiment(v1::GetExperimentRequest { id: e.id.clone() }).await.expect("get").into_inner();
    let s1 = got.sidecars.iter().find(|t| t.sidecar_id == "s1").expect("s1");
    assert_eq!(s1.stats.map(|s| s.injected), Some(4));

    // `ctl top --once` against the controller: the experiment and one line per sidecar.
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_edgefault"))
            .args(["ctl", "--control", &url, "top", "--once", "--interval", "200ms"])
            .env_remove("EDGEFAULT_TOKEN")
            .output()
            .expect("runs")
    });
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(top.contains(&e.id) && top.contains("SIDECAR") && top.contains("fleet: 3 sidecars"), "{top}");
    assert!(top.lines().any(|l| l.starts_with("s1 ")) && top.lines().any(|l| l.starts_with("s3 ")), "{top}");

    c.stop_experiment(v1::StopExperimentRequest { id: e.id.clone(), reason: "seen".into() }).await.expect("stop");
    let mut seen: Vec<(String, &'static str)> = Vec::new();
    while seen.len() < 6 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("events in time")
            .expect("open")
            .expect("ok");
        if ev.experiment_id != e.id {
            continue;
        }
        let kind = match ev.kind {
            Some(Kind::Started(_)) => "started",
            Some(Kind::Stopped(_)) => "stopped",
            _ => continue,
        };
        seen.push((ev.sidecar_id, kind));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("".into(), "started"),
            ("".into(), "stopped"),
            ("s1".into(), "started"),
            ("s1".into(), "stopped"),
            ("s2".into(), "started"),
            ("s2".into(), "stopped")
        ],
        "the controller's own events, and each sidecar's"
    );
}

/// What one route's points add up to: requests, 2xx, 5xx, injected.
fn route_sums(h: &v1::GetHistoryResponse, route: &str) -> (u64, u64, u64, u64) {
    let Some(r) = h.routes.iter().find(|r| r.route == route) else { return (0, 0, 0, 0) };
    r.points.iter().fold((0, 0, 0, 0), |(n, ok, five, inj), p| {
        (n + p.requests, ok + p.status[1], five + p.status[4], inj + p.injected)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_history_adds_up_what_every_sidecar_saw_and_ctl_report_draws_it() {
    let (_controller, url, sidecars, mut c) = three_sidecars().await;
    let e = start(&mut c, &abort_503("{ match_labels: { app: web } }")).await;
    let http = support::client();
    for (n, want, (_, p)) in [(4, 503, &sidecars[0]), (2, 503, &sidecars[1]), (3, 200, &sidecars[2])] {
        for _ in 0..n {
            assert_eq!(support::get(&http, &p.url("/api/x")).await.status, want);
        }
    }
    for _ in 0..2 {
        assert_eq!(support::get(&http, &sidecars[2].1.url("/")).await.status, 200);
    }
    // Each sidecar reports a second once it is closed; the controller adds up what came in.
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() - 60;
    let query = |resolution: v1::HistoryResolution| v1::GetHistoryRequest {
        since: Some(pbjson_types::Timestamp { seconds: since as i64, nanos: 0 }),
        resolution: resolution as i32,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let history = loop {
        let h = c.get_history(query(v1::HistoryResolution::Second)).await.expect("GetHistory").into_inner();
        if route_sums(&h, "api").0 == 9 && route_sums(&h, "default").0 == 2 {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "the fleet's history never added up: {h:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(history.resolution_seconds, 1);
    assert_eq!(route_sums(&history, "api"), (9, 3, 6, 6), "requests, 2xx, 5xx, injected over three sidecars");
    assert_eq!(route_sums(&history, "default"), (2, 2, 0, 0));
    let api = history.routes.iter().find(|r| r.route == "api").expect("api");
    assert!(api.points.iter().any(|p| p.requests > 0 && p.p50_ms > 0.0 && p.p99_ms >= p.p50_ms), "{api:?}");
    let series = history.experiments.iter().find(|x| x.id == e.id).expect("the fleet experiment's series");
    let (matched, injected) = series.points.iter().fold((0, 0), |(m, i), p| (m + p.matched, i + p.injected));
    assert_eq!((series.name.as_str(), matched, injected), ("fleet", 6, 6), "s1 and s2 ran it, s3 did not");
    // Minutes are closed once whole, like a sidecar's.
    let minutes = c.get_history(query(v1::HistoryResolution::Minute)).await.expect("minutes").into_inner();
    assert_eq!(minutes.resolution_seconds, 60);

    // `ctl report` against the controller: the fleet experiment and the summed routes.
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_edgefault"))
            .args(["ctl", "--control", &url, "report", "--since", "5m", "--format", "json"])
            .env_remove("EDGEFAULT_TOKEN")
            .output()
            .expect("runs")
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["experiments"][0]["id"], serde_json::json!(e.id));
    let routes = json["history"]["routes"].as_array().expect("routes");
    let api = routes.iter().find(|r| r["route"] == "api").expect("api in the report");
    let requests: u64 = api["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["requests"].as_str().and_then(|s| s.parse().ok()).or(p["requests"].as_u64()).unwrap_or(0))
        .sum();
    assert!(requests >= 9, "the report's api requests: {requests}");
}
