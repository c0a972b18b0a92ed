//! The fleet stays safe when the controller is gone, and a restarted controller converges.

use std::time::{Duration, Instant};

use edgefault::pb::v1;

use super::{abort_503, faulted, local_ids, sidecars, start};
use crate::support::{self, fleet};

const FIVE: &[(&str, &[(&str, &str)])] = &[
    ("s1", &[("app", "web")]),
    ("s2", &[("app", "web")]),
    ("s3", &[("app", "web")]),
    ("s4", &[("app", "web")]),
    ("s5", &[("app", "web")]),
];

/// Killed, the controller takes its fleet experiments with it after each sidecar's grace: requests held
/// by a long delay are let go too. Until the grace is over the experiment keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_ends_fleet_experiments_after_the_grace() {
    let grace = Duration::from_secs(2);
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let sidecars = sidecars(&url, FIVE, grace).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 5).await;
    let e = start(&mut c, &abort_503("{}").replace("sidecars:", "match: { routes: [default] }\nsidecars:")).await;
    assert_eq!(fleet::targets(&e, v1::SidecarTargetState::Applied).len(), 5);
    let held =
        start(&mut c, "name: slow\nduration: 60s\nmatch: { routes: [api] }\nfaults: [ { delay: { fixed: 50s } } ]\n")
            .await;
    let http = support::client();
    let waiting = support::get_later(&http, &sidecars[0].1.url("/api/held"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killed = Instant::now();
    controller.shutdown().await;
    // Within the grace, nothing changes.
    assert_eq!(faulted(&sidecars).await.len(), 5);
    assert_eventually_within(Duration::from_secs(15), || async { faulted(&sidecars).await.is_empty() }).await;
    let took = killed.elapsed();
    assert!(took >= grace, "ended after {took:?}, before the grace of {grace:?}");
    let (reply, at) = waiting.await.expect("held request");
    assert_eq!(reply.status, 200, "the held request goes on to the upstream once the fault ends");
    assert!(at.duration_since(killed) < Duration::from_secs(20));
    for (id, p) in &sidecars {
        for exp in [&e.id, &held.id] {
            let local = local_ids(p, exp).await;
            assert_eq!(local[0].state, v1::ExperimentState::Aborted as i32, "{id}");
            assert!(local[0].end_reason.contains("lost the controller"), "{id}: {}", local[0].end_reason);
        }
    }
}

/// `--controller-grace 0`: the fleet experiments end as soon as the stream is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_of_zero_ends_them_at_once() {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let sidecars = sidecars(&url, &FIVE[..2], Duration::ZERO).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 2).await;
    start(&mut c, &abort_503("{}")).await;
    assert_eq!(faulted(&sidecars).await.len(), 2);
    controller.shutdown().await;
    assert_eventually!(faulted(&sidecars).await.is_empty(), "ended at once");
}

/// Restarted (same address), the controller rebuilds its view from the sidecars: the same experiment,
/// same id, on the same five sidecars, started nowhere twice; and it can stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_converges_without_duplicates() {
    let controller = fleet::controller().await;
    let addr = controller.control_addr();
    let url = fleet::url(&controller);
    let sidecars = sidecars(&url, FIVE, Duration::from_secs(30)).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 5).await;
    let e = start(&mut c, &abort_503("{ match_labels: { app: web }, percentage: 100 }")).await;
    let before: Vec<v1::Experiment> = {
        let mut v = Vec::new();
        for (_, p) in &sidecars {
            v.push(local_ids(p, &e.id).await.remove(0));
        }
        v
    };
    controller.shutdown().await;
    drop(c);

    let controller = fleet::controller_on(addr).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 5).await;
    let list = c.list_experiments(v1::ListExperimentsRequest::default()).await.expect("list").into_inner();
    let ids: Vec<&str> = list.experiments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [e.id.as_str()], "one experiment, its id kept");
    let rebuilt = fleet::wait_settled(&mut c, &e.id).await;
    assert_eq!(fleet::targets(&rebuilt, v1::SidecarTargetState::Applied), ["s1", "s2", "s3", "s4", "s5"]);
    assert_eq!(rebuilt.spec.as_ref().map(|s| s.name.as_str()), Some("fleet"));
    let ends = |e: &v1::Experiment| e.ends_at.expect("ends_at").seconds;
    assert!((ends(&rebuilt) - ends(&e)).abs() <= 1, "the same clock: {rebuilt:?}");
    for ((id, p), was) in sidecars.iter().zip(&before) {
        let now = local_ids(p, &e.id).await;
        assert_eq!(now.len(), 1, "{id}");
        assert_eq!(now[0].created_at, was.created_at, "{id}: not started again");
        assert_eq!(now[0].state, v1::ExperimentState::Running as i32, "{id}");
    }
    assert_eq!(faulted(&sidecars).await.len(), 5);
    // Adopted on the sidecars' word, it stays on them: a sidecar joining now does not get it (a new start
    // does).
    let late = super::sidecars(&fleet::url(&controller), &[("s6", &[("app", "web")])], Duration::from_secs(30)).await;
    fleet::wait_connected(&mut c, 6).await;
    assert!(faulted(&late).await.is_empty());
    let got = c.get_experiment(v1::GetExperimentRequest { id: e.id.clone() }).await.expect("get").into_inner();
    assert_eq!(got.sidecars.len(), 5);
    c.stop_experiment(v1::StopExperimentRequest { id: e.id.clone(), reason: "after restart".into() })
        .await
        .expect("the restarted controller stops it");
    assert_eventually!(faulted(&sidecars).await.is_empty(), "stopped everywhere");
}

/// AbortAll on the controller ends the sidecars' own experiments too; a sidecar's own AbortAll works with
/// the controller gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_all_reaches_every_sidecar_and_local_abort_all_needs_no_controller() {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let sidecars = sidecars(&url, &FIVE[..3], Duration::from_secs(30)).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 3).await;
    start(&mut c, &abort_503("{}")).await;
    let local = sidecars[0].1.start("name: local\nduration: 60s\nfaults: [ { abort: { http_status: 500 } } ]\n").await;
    c.abort_all(v1::AbortAllRequest { reason: "game over".into() }).await.expect("abort");
    assert_eventually!(faulted(&sidecars).await.is_empty(), "every fleet experiment ended");
    assert_eventually!(
        local_ids(&sidecars[0].1, &local.id).await[0].state == v1::ExperimentState::Aborted as i32,
        "the sidecar's local experiment too"
    );

    let e = start(&mut c, &abort_503("{}")).await;
    controller.shutdown().await;
    assert_eq!(faulted(&sidecars).await.len(), 3, "kept within the grace");
    assert_eq!(sidecars[1].1.abort_all().await, 1, "the sidecar's own kill switch");
    assert_eq!(local_ids(&sidecars[1].1, &e.id).await[0].state, v1::ExperimentState::Aborted as i32);
}

async fn assert_eventually_within<F, Fut>(limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fleet experiment's lease is held by the controller: renewed there, it runs; not renewed, it ends on
/// every sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_not_renewed_on_the_controller_ends_the_experiment_everywhere() {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let sidecars = sidecars(&url, &FIVE[..2], Duration::from_secs(30)).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 2).await;
    let e = start(&mut c, &abort_503("{}").replace("duration: 60s", "duration: 60s\nlease: 1s")).await;
    assert!(e.lease_expires_at.is_some());
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.renew_lease(v1::RenewLeaseRequest { id: e.id.clone() }).await.expect("renewed on the controller");
    }
    assert_eq!(faulted(&sidecars).await.len(), 2, "renewed, it runs past its first lease");
    let local = local_ids(&sidecars[0].1, &e.id).await.remove(0);
    assert!(local.lease_expires_at.is_none(), "the sidecar holds no lease of its own");
    assert_eventually_within(Duration::from_secs(5), || async { faulted(&sidecars).await.is_empty() }).await;
    let ended = c.get_experiment(v1::GetExperimentRequest { id: e.id.clone() }).await.expect("get").into_inner();
    assert_eq!(ended.state, v1::ExperimentState::Aborted as i32);
    assert_eq!(ended.end_reason, "lease expired");
    assert_eq!(local_ids(&sidecars[1].1, &e.id).await[0].end_reason, "lease expired");
}

/// A silent partition (the stream's packets stop, nothing is closed: a `timeout` toxic both ways on a TCP
/// listener between the sidecar and the controller): HTTP/2 pings notice it, the grace runs, the fleet
/// experiments end. The controller notices too and shows the sidecar lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_and_ends_fleet_experiments_after_the_grace() {
    let controller = fleet::controller().await;
    let link = support::proxy_yaml(&format!(
        "listeners:\n  - {{ name: link, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"{}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n",
        controller.control_addr()
    ))
    .await;
    let upstream = crate::support::FakeUpstream::app().start().await;
    let mut p = support::proxy(upstream).await;
    p.server.join_fleet(edgefault::fleet::sidecar::SidecarOptions {
        keepalive: Duration::from_millis(500),
        ..fleet::options(&format!("http://{}", link.addr), "behind-link", &[("app", "web")], Duration::from_secs(1))
    });
    let sidecars = vec![("behind-link".to_string(), p)];
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 1).await;
    let e = start(&mut c, &abort_503("{}")).await;
    assert_eq!(faulted(&sidecars).await.len(), 1);
    link.start(
        "name: partition\nduration: 60s\nmatch: { listeners: [link] }\nfaults:\n  - toxic: { direction: upstream, timeout: {} }\n  - toxic: { direction: downstream, timeout: {} }\n",
    )
    .await;
    let cut = Instant::now();
    assert_eventually_within(Duration::from_secs(15), || async { faulted(&sidecars).await.is_empty() }).await;
    let local = local_ids(&sidecars[0].1, &e.id).await.remove(0);
    assert!(local.end_reason.contains("lost the controller"), "{}", local.end_reason);
    assert!(cut.elapsed() >= Duration::from_secs(1), "not before the grace");
    // The controller shows it lost: the link closes its side once the sidecar gives up the stream (without
    // that, the controller's own pings, every 10 s, would).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = c.list_sidecars(v1::ListSidecarsRequest {}).await.expect("list").into_inner().sidecars;
        if list.iter().all(|s| !s.connected) {
            break;
        }
        assert!(Instant::now() < deadline, "the controller never noticed: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = c.get_experiment(v1::GetExperimentRequest { id: e.id.clone() }).await.expect("get").into_inner();
    assert_eq!(fleet::targets(&shown, v1::SidecarTargetState::Lost), ["behind-link"]);
}
