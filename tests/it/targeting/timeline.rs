//! Timelines seen by real clients: `flap` switches injection on and off on schedule, `ramp` moves the
//! percentage, and GetExperiment shows where the timeline stands. (The exact boundaries are tested on
//! tokio's paused clock in `experiment::timeline`.)

use std::time::{Duration, Instant};

use crate::support::*;
use edgefault::pb::v1;

async fn status_at(proxy: &Proxy, start: Instant, at_ms: u64) -> u16 {
    tokio::time::sleep_until((start + Duration::from_millis(at_ms)).into()).await;
    get(&client(), &proxy.url("/")).await.status.as_u16()
}

#[tokio::test]
async fn flap_switches_injection_on_and_off() {
    let proxy = proxy(upstream().await).await;
    let start = Instant::now();
    let e =
        proxy.start("name: flap\nflap: { period: 1s, on: 500ms }\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    assert_eq!(status_at(&proxy, start, 200).await, 503, "cycle 0, on");
    assert_eq!(status_at(&proxy, start, 750).await, 200, "cycle 0, off");
    let got = proxy.control().await.get_experiment(v1::GetExperimentRequest { id: e.id.clone() }).await.expect("get");
    assert_eq!(got.into_inner().timeline_state, "flap off (cycle 0), 0 %");
    assert_eq!(status_at(&proxy, start, 1200).await, 503, "cycle 1, on");
    let got = proxy.control().await.get_experiment(v1::GetExperimentRequest { id: e.id }).await.expect("get");
    assert_eq!(got.into_inner().timeline_state, "flap on (cycle 1), 100 %");
}

#[tokio::test]
async fn ramp_moves_the_percentage() {
    let proxy = proxy(upstream().await).await;
    let start = Instant::now();
    proxy
        .start("name: ramp-down\nramp: { from: 100, to: 0, after: 700ms, over: 500ms }\nfaults: [{ abort: { http_status: 500 } }]\n")
        .await;
    assert_eq!(status_at(&proxy, start, 100).await, 500, "before the ramp: 100 %");
    assert_eq!(status_at(&proxy, start, 1600).await, 200, "after the ramp: 0 %");
}

#[tokio::test]
async fn experiments_without_a_timeline_show_no_state() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: plain\nfaults: [{ abort: {} }]\n").await;
    assert_eq!(e.timeline_state, "");
}

#[tokio::test]
async fn bad_timelines_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let bad =
        "name: x\npercentage: 50\nramp: { from: -1, to: 101 }\nflap: { period: 1s, on: 2s }\nfaults: [{ abort: {} }]\n";
    let fields = violation_fields(&proxy, bad).await;
    assert_eq!(fields, ["ramp.from", "ramp.to", "ramp.over", "flap.on"]);
    let fields = violation_fields(
        &proxy,
        "name: x\npercentage: 50\nramp: { from: 0, to: 10, over: 1s }\nflap: { period: 0s }\nfaults: [{ abort: {} }]\n",
    )
    .await;
    assert_eq!(fields, ["percentage", "flap.period"]);
}

#[tokio::test]
async fn time_scale_compresses_the_timeline() {
    let proxy = proxy(upstream().await).await;
    let start = Instant::now();
    // An hour-scale flap (on 30 s of every minute) for 2 minutes, at 60x: on 0.5 s of every second, 2 s.
    let e = proxy
        .start("name: fast\ntime_scale: 60\nduration: 2m\nflap: { period: 1m, on: 30s }\nfaults: [{ abort: { http_status: 503 } }]\n")
        .await;
    let d = e.effective_duration.expect("effective duration");
    assert_eq!((d.seconds, d.nanos), (2, 0));
    assert_eq!(status_at(&proxy, start, 200).await, 503, "cycle 0, on");
    assert_eq!(status_at(&proxy, start, 750).await, 200, "cycle 0, off");
    assert_eq!(status_at(&proxy, start, 1200).await, 503, "cycle 1, on");
    // Over after 2 s of real time.
    let id = e.id.clone();
    assert_eventually!(
        proxy
            .control()
            .await
            .get_experiment(v1::GetExperimentRequest { id: id.clone() })
            .await
            .expect("get")
            .into_inner()
            .state
            == v1::ExperimentState::Completed as i32,
        "the experiment completes after 2 s"
    );
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);

    let fields = violation_fields(&proxy, "name: x\ntime_scale: 0\nfaults: [{ abort: {} }]\n").await;
    assert_eq!(fields, ["time_scale"]);
}
