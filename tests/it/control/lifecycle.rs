//! Lifecycle: expiry, stop, abort-all, pending starts, bounded history, reads by id.

use std::time::{Duration, Instant};

use crate::support::*;
use edgefault::pb::v1::{self as v1, ExperimentState};

const ABORT: &str = "faults: [{ abort: { http_status: 503 } }]\n";

#[tokio::test]
async fn expiry_is_exact() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    let sent = Instant::now();
    let e = proxy.start(&format!("name: short\nduration: 700ms\n{ABORT}")).await;
    let returned = Instant::now();
    assert_eq!(e.effective_duration.map(|d| (d.seconds, d.nanos)), Some((0, 700_000_000)));

    // Requests sent well before the end are injected…
    while sent.elapsed() < Duration::from_millis(550) {
        assert_eq!(get(&c, &proxy.url("/")).await.status, 503, "at {:?}", sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …and any request sent after the end is not: the proxy checks the end instant itself.
    tokio::time::sleep_until((returned + Duration::from_millis(700)).into()).await;
    assert_eq!(get(&c, &proxy.url("/")).await.status, 200);

    let mut ctl = proxy.control().await;
    assert_eventually!(
        ctl.get_experiment(v1::GetExperimentRequest { id: e.id.clone() }).await.expect("get").into_inner().state
            == ExperimentState::Completed as i32,
        "the experiment is recorded as completed"
    );
}

#[tokio::test]
async fn stop_and_abort_all_end_injection() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    let a = proxy.start(&format!("name: a\nmatch: {{ path_prefix: /a }}\n{ABORT}")).await;
    let _b = proxy.start(&format!("name: b\nmatch: {{ path_prefix: /b }}\n{ABORT}")).await;
    let _c = proxy.start(&format!("name: c\nmatch: {{ path_prefix: /c }}\nstart_delay: 1h\n{ABORT}")).await;
    assert_eq!(get(&c, &proxy.url("/a")).await.status, 503);
    assert_eq!(get(&c, &proxy.url("/b")).await.status, 503);
    assert_eq!(get(&c, &proxy.url("/c")).await.status, 200, "pending does not inject");

    let stopped = proxy.stop(&a.id).await;
    assert_eq!(stopped.state, ExperimentState::Stopped as i32);
    assert_eq!(get(&c, &proxy.url("/a")).await.status, 200);
    assert_eq!(get(&c, &proxy.url("/b")).await.status, 503);

    let mut ctl = proxy.control().await;
    let r =
        ctl.abort_all(v1::AbortAllRequest { reason: "game day over".into() }).await.expect("abort all").into_inner();
    assert_eq!(r.count, 2, "b (running) and c (pending)");
    assert_eq!(get(&c, &proxy.url("/b")).await.status, 200);
    let list = ctl
        .list_experiments(v1::ListExperimentsRequest { states: vec![ExperimentState::Aborted as i32] })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.experiments.len(), 2);
    assert!(list.experiments.iter().all(|e| e.end_reason == "game day over" && e.ended_at.is_some()));

    // Stopping an ended experiment says so.
    let err = ctl
        .stop_experiment(v1::StopExperimentRequest { id: a.id.clone(), reason: String::new() })
        .await
        .expect_err("ended");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("already ended (stopped)"), "{}", err.message());
}

#[tokio::test]
async fn start_delay_keeps_it_pending_then_running() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    let e = proxy.start(&format!("name: later\nstart_delay: 300ms\nduration: 10s\n{ABORT}")).await;
    assert_eq!(e.state, ExperimentState::Pending as i32);
    assert_eq!(get(&c, &proxy.url("/")).await.status, 200);
    assert_eventually!(get(&c, &proxy.url("/")).await.status == 503, "injects once the start delay is over");
    let mut ctl = proxy.control().await;
    let got = ctl.get_experiment(v1::GetExperimentRequest { id: e.id }).await.expect("get").into_inner();
    assert_eq!(got.state, ExperimentState::Running as i32);
    assert!(got.started_at.is_some());
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let err = ctl.get_experiment(v1::GetExperimentRequest { id: "exp-nope".into() }).await.expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = ctl
        .stop_experiment(v1::StopExperimentRequest { id: "exp-nope".into(), reason: String::new() })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn ended_experiments_stay_readable_within_the_history_bound() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - {{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\" }}] }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ history: 3 }}\n"
    ))
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let e = proxy.start(&format!("name: e{i}\n{ABORT}")).await;
        proxy.stop(&e.id).await;
        ids.push(e.id);
    }
    let mut ctl = proxy.control().await;
    let list = ctl.list_experiments(v1::ListExperimentsRequest::default()).await.expect("list").into_inner();
    let names: Vec<String> = list.experiments.iter().map(|e| e.spec.clone().unwrap_or_default().name).collect();
    assert_eq!(names, ["e4", "e3", "e2"], "newest first, bounded");
    let err = ctl.get_experiment(v1::GetExperimentRequest { id: ids[0].clone() }).await.expect_err("evicted");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn boot_experiments_from_the_config_run_at_start() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - {{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\" }}] }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nexperiments:\n  - {{ name: boot, duration: 1m, faults: [{{ abort: {{ http_status: 500 }} }}] }}\n"
    ))
    .await;
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 500);
}

#[tokio::test]
async fn default_duration_applies_and_the_cap_holds() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - {{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\" }}] }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ default_duration: 90s, max_duration: 2m }}\n"
    ))
    .await;
    let e = proxy.start(&format!("name: d\n{ABORT}")).await;
    assert_eq!(e.effective_duration.map(|d| d.seconds), Some(90));
    let mut ctl = proxy.control().await;
    let err = ctl
        .start_experiment(v1::StartExperimentRequest {
            spec: Some(spec(&format!("name: long\nduration: 3m\n{ABORT}"))),
        })
        .await
        .expect_err("over the cap");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("duration: 3m exceeds the server's maximum of 2m"), "{}", err.message());
}
