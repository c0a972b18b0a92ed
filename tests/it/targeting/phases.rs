//! Phases seen by real clients on tokio's paused clock: each phase's percentage and faults apply from its
//! offset exactly, GetExperiment shows the current phase and the next change, time_scale compresses the
//! offsets, and bad phases are refused with their field paths.

use std::time::{Duration, SystemTime};

use crate::support::*;
use edgefault::pb::v1;

const REPLAY: &str = "\
name: replay
duration: 1h
faults: [{ abort: { http_status: 503 } }]
phases:
  - { name: healthy, percentage: 0 }
  - { name: storm, start: 10m, faults: [{ abort: { http_status: 500 } }] }
  - { name: flapping, start: 20m, flap: { period: 5m, on: 150s }, faults: [{ abort: { http_status: 502 } }] }
  - { name: degraded, start: 30m, percentage: 100 }
  - { name: recovery, start: 40m, percentage: 0 }
";

async fn status(proxy: &Proxy) -> u16 {
    get(&client(), &proxy.url("/")).await.status.as_u16()
}

async fn phase(proxy: &Proxy, id: &str) -> (v1::PhaseState, String) {
    let e = proxy
        .control()
        .await
        .get_experiment(v1::GetExperimentRequest { id: id.into() })
        .await
        .expect("get")
        .into_inner();
    (e.phase.expect("a running experiment with phases has a phase"), e.timeline_state)
}

fn secs_from_now(t: &pbjson_types::Timestamp) -> f64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs_f64();
    t.seconds as f64 + f64::from(t.nanos) / 1e9 - now
}

#[tokio::test(start_paused = true)]
async fn phases_change_exactly_at_their_offsets() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let e = proxy.start(REPLAY).await;
    let (p, summary) = phase(&proxy, &e.id).await;
    assert_eq!((p.index, p.name.as_str(), p.next_name.as_str()), (0, "healthy", "storm"));
    let next = secs_from_now(p.next_change_at.as_ref().expect("a next change"));
    assert!((598.0..=600.5).contains(&next), "storm begins in 10 min, got {next} s");
    assert_eq!(summary, "phase \"healthy\" (1 of 5), 0 %");
    assert_eq!(status(&proxy).await, 200, "healthy: nothing injected");

    tokio::time::advance(Duration::from_secs(600) - Duration::from_millis(1)).await;
    assert_eq!(status(&proxy).await, 200, "1 ms before the storm");
    assert_eq!(phase(&proxy, &e.id).await.0.name, "healthy");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status(&proxy).await, 500, "the storm's own fault, from its first instant");
    let (p, _) = phase(&proxy, &e.id).await;
    assert_eq!((p.index, p.name.as_str(), p.next_name.as_str()), (1, "storm", "flapping"));

    // Flapping: on the first 150 s of every 5 min from the phase's start.
    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(status(&proxy).await, 502, "flapping, cycle 0 on");
    let (p, summary) = phase(&proxy, &e.id).await;
    assert_eq!(p.name, "flapping");
    assert_eq!(summary, "phase \"flapping\" (3 of 5), flap on (cycle 0), 100 %");
    tokio::time::advance(Duration::from_secs(200)).await;
    assert_eq!(status(&proxy).await, 200, "flapping, cycle 0 off");
    tokio::time::advance(Duration::from_secs(100)).await;
    assert_eq!(status(&proxy).await, 502, "flapping, cycle 1 on");

    // A phase without faults takes the experiment's.
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(status(&proxy).await, 503, "degraded: the experiment's abort");

    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(status(&proxy).await, 200, "recovery");
    let (p, _) = phase(&proxy, &e.id).await;
    assert_eq!((p.index, p.name.as_str(), p.next_name.as_str()), (4, "recovery", ""));
    assert!(p.next_change_at.is_none(), "the last phase has no next change");
}

#[tokio::test(start_paused = true)]
async fn time_scale_compresses_phase_offsets() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    // 30 minutes of incident time at 60x: 30 s; the storm begins after 10 s.
    let e = proxy
        .start(
            "name: fast\ntime_scale: 60\nduration: 30m\nfaults: [{ abort: { http_status: 500 } }]\nphases:\n  - { name: calm, percentage: 0 }\n  - { name: storm, start: 10m }\n",
        )
        .await;
    let d = e.effective_duration.expect("effective duration");
    assert_eq!((d.seconds, d.nanos), (30, 0));
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(status(&proxy).await, 200);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status(&proxy).await, 500);
    assert_eq!(phase(&proxy, &e.id).await.0.name, "storm");
}

#[tokio::test]
async fn experiments_without_phases_show_none() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: plain\nfaults: [{ abort: {} }]\n").await;
    assert!(e.phase.is_none());
}

#[tokio::test]
async fn bad_phases_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let fields = |r: v1::ValidateExperimentResponse| -> Vec<String> {
        assert!(!r.valid);
        r.violations.into_iter().map(|v| v.field).collect()
    };
    let bad = "\
name: x
duration: 10m
flap: { period: 1m }
phases:
  - { name: a, start: 1m, faults: [{ abort: {} }] }
  - { name: a, start: 30s, percentage: 101, faults: [{ abort: { http_status: 42 } }] }
  - { name: '', start: 10m, faults: [{ delay: {} }], ramp: { from: 0, to: 10 } }
";
    let r = ctl
        .validate_experiment(v1::ValidateExperimentRequest { spec: Some(spec(bad)) })
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(
        fields(r),
        [
            "flap",
            "phases[0].start",
            "phases[1].name",
            "phases[1].start",
            "phases[1].percentage",
            "phases[1].faults[0].abort.http_status",
            "phases[2].name",
            "phases[2].start",
            "phases[2].ramp.over",
            "phases[2].faults[0].delay",
        ]
    );
    // Faults are required somewhere: here, or in every phase.
    let r = ctl
        .validate_experiment(v1::ValidateExperimentRequest {
            spec: Some(spec(
                "name: x\nphases:\n  - { name: a, faults: [{ abort: {} }] }\n  - { name: b, start: 1m }\n",
            )),
        })
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(fields(r), ["faults"]);
    // Every phase with its own faults: the experiment needs none.
    let r = ctl
        .validate_experiment(v1::ValidateExperimentRequest {
            spec: Some(spec("name: x\nphases:\n  - { name: a, percentage: 0, faults: [{ abort: {} }] }\n  - { name: b, start: 1m, faults: [{ delay: { fixed: 1s } }] }\n")),
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(r.valid, "{:?}", r.violations);
}
