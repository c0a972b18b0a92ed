//! The fleet view on the controller: summed counters with per-sidecar detail, the sidecars' events, `ctl
//! top`.

use std::{process::Command, time::Duration};

use edgefault::pb::v1::{self, event::Kind};
use tokio_stream::StreamExt;

use super::{abort_503, sidecars, start};
use crate::support::{self, fleet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_sums_the_fleet_passes_on_its_events_and_top_shows_it() {
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
