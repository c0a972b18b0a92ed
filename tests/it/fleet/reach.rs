//! An experiment with a selector reaches exactly the sidecars it should.

use std::time::Duration;

use edgefault::{fleet::selector::Selector, pb::v1};

use super::{abort_503, faulted, sidecars, start};
use crate::support::{self, fleet, FakeUpstream};

const GRACE: Duration = Duration::from_secs(30);

/// Six sidecars; labels, expressions and a share each pick their exact set, seen by the controller and by
/// clients of every sidecar; stopping ends it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_reaches_exactly_the_sidecars_it_names() {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let fleet_specs: &[(&str, &[(&str, &str)])] = &[
        ("web-eu1-a", &[("app", "web"), ("zone", "eu-1")]),
        ("web-eu1-b", &[("app", "web"), ("zone", "eu-1")]),
        ("web-eu2-a", &[("app", "web"), ("zone", "eu-2")]),
        ("web-us1-canary", &[("app", "web"), ("zone", "us-1"), ("canary", "true")]),
        ("api-eu1", &[("app", "api"), ("zone", "eu-1")]),
        ("api-us1", &[("app", "api"), ("zone", "us-1")]),
    ];
    let sidecars = sidecars(&url, fleet_specs, GRACE).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 6).await;
    assert!(faulted(&sidecars).await.is_empty());

    // Labels and an expression.
    let e = start(
        &mut c,
        &abort_503(
            "{ match_labels: { app: web }, match_expressions: [ { key: zone, operator: In, values: [eu-1, eu-2] } ] }",
        ),
    )
    .await;
    let expected = ["web-eu1-a", "web-eu1-b", "web-eu2-a"];
    assert_eq!(fleet::targets(&e, v1::SidecarTargetState::Applied), expected);
    assert_eq!(e.sidecars.len(), 3, "no other sidecar is targeted: {:?}", e.sidecars);
    assert_eq!(faulted(&sidecars).await, expected);
    c.stop_experiment(v1::StopExperimentRequest { id: e.id.clone(), reason: "done".into() }).await.expect("stop");
    assert_eventually!(faulted(&sidecars).await.is_empty(), "stopping on the controller ends it on every sidecar");
    let (_, on_sidecar) = &sidecars[0];
    let local = super::local_ids(on_sidecar, &e.id).await;
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].state, v1::ExperimentState::Stopped as i32);
    assert_eq!(local[0].end_reason, "done", "the controller's reason reaches the sidecar");

    // NotIn and DoesNotExist, with Kubernetes semantics.
    let e = start(&mut c, &abort_503("{ match_expressions: [ { key: app, operator: NotIn, values: [api] }, { key: canary, operator: DoesNotExist } ] }")).await;
    assert_eq!(faulted(&sidecars).await, expected);
    c.stop_experiment(v1::StopExperimentRequest { id: e.id, reason: String::new() }).await.expect("stop");
    assert_eventually!(faulted(&sidecars).await.is_empty(), "stopped");

    // A share of the matching sidecars, chosen by id and seed: exactly the ones the hash says.
    let e = start(&mut c, &abort_503("{ percentage: 50 }").replace("name: fleet", "name: fleet\nseed: 12")).await;
    let mut chosen: Vec<String> =
        fleet_specs.iter().map(|(id, _)| id.to_string()).filter(|id| Selector::point(id, 12) < 50.0).collect();
    chosen.sort();
    assert!(!chosen.is_empty() && chosen.len() < 6, "seed 12 picks a real share: {chosen:?}");
    assert_eq!(fleet::targets(&e, v1::SidecarTargetState::Applied), chosen);
    assert_eq!(faulted(&sidecars).await, chosen);

    // A count: one of the two api sidecars.
    let e2 = start(&mut c, &abort_503("{ match_labels: { app: api }, max_sidecars: 1 }")).await;
    assert_eq!(e2.sidecars.len(), 1);
    let abort = c.abort_all(v1::AbortAllRequest { reason: "end of test".into() }).await.expect("abort").into_inner();
    assert_eq!(abort.count, 2);
    assert_eventually!(faulted(&sidecars).await.is_empty(), "AbortAll on the controller ends it everywhere");
    drop(e);
}

/// A sidecar without the route an experiment names rejects it with its reason; the others apply it, and
/// the rejecting sidecar still takes the next experiment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_cannot_apply_an_experiment_reports_why_and_the_rest_carry_on() {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let mut sidecars = sidecars(&url, &[("full-1", &[("app", "web")]), ("full-2", &[("app", "web")])], GRACE).await;
    // This one has only a default route: no "api".
    let upstream = FakeUpstream::app().start().await;
    let mut lacking = support::proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    lacking.server.join_fleet(fleet::options(&url, "no-api", &[("app", "web")], GRACE));
    sidecars.push(("no-api".into(), lacking));
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 3).await;

    let e = start(
        &mut c,
        "name: api down\nduration: 60s\nmatch: { routes: [api] }\nfaults: [ { abort: { http_status: 503 } } ]\n",
    )
    .await;
    assert_eq!(fleet::targets(&e, v1::SidecarTargetState::Applied), ["full-1", "full-2"]);
    assert_eq!(fleet::targets(&e, v1::SidecarTargetState::Rejected), ["no-api"]);
    let rejected = e.sidecars.iter().find(|t| t.sidecar_id == "no-api").expect("target");
    assert!(rejected.reason.contains("match.routes[0]") && rejected.reason.contains("api"), "{}", rejected.reason);
    let http = support::client();
    for (id, p) in &sidecars[..2] {
        assert_eq!(support::get(&http, &p.url("/api/x")).await.status, 503, "{id}");
    }
    assert_eq!(support::get(&http, &sidecars[2].1.url("/api/x")).await.status, 200);
    let list = fleet::wait_connected(&mut c, 3).await;
    let no_api = list.iter().find(|s| s.id == "no-api").expect("listed");
    assert!(no_api.last_rejection.starts_with(&e.id), "{}", no_api.last_rejection);
    assert_eq!(no_api.routes, ["default"]);

    // The rejection does not hold back what it can apply.
    let e2 = start(&mut c, &abort_503("{}")).await;
    assert_eq!(fleet::targets(&e2, v1::SidecarTargetState::Applied), ["full-1", "full-2", "no-api"]);
    assert_eq!(faulted(&sidecars).await, ["full-1", "full-2", "no-api"]);
}

/// A sidecar joining after an experiment started gets it, for what is left of its duration; one the
/// selector does not choose does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_joining_late_gets_what_is_running_for_it() {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let mut sidecars = sidecars(&url, &[("web-1", &[("app", "web")])], GRACE).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 1).await;
    let e = start(&mut c, &abort_503("{ match_labels: { app: web } }")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    sidecars.extend(
        super::sidecars(&url, &[("web-late", &[("app", "web")]), ("api-late", &[("app", "api")])], GRACE).await,
    );
    fleet::wait_connected(&mut c, 3).await;
    let e = fleet::wait_settled(&mut c, &e.id).await;
    assert_eq!(fleet::targets(&e, v1::SidecarTargetState::Applied), ["web-1", "web-late"]);
    assert_eq!(faulted(&sidecars).await, ["web-1", "web-late"]);
    // Its clock is the fleet's: it ends when the others do, not a whole duration after it joined.
    let late = super::local_ids(&sidecars[1].1, &e.id).await.remove(0);
    let first = super::local_ids(&sidecars[0].1, &e.id).await.remove(0);
    let ends = |e: &v1::Experiment| e.ends_at.expect("ends_at").seconds;
    assert!((ends(&late) - ends(&first)).abs() <= 1, "{late:?} vs {first:?}");
}

/// The controller checks every field of a selector, and refuses one that matches no connected sidecar;
/// a sidecar refuses a selector on its own port.
#[tokio::test]
async fn selectors_are_checked_field_by_field_and_sidecars_refuse_them() {
    let controller = fleet::controller().await;
    let mut c = fleet::client(&controller).await;
    let bad = support::spec(&abort_503(
        "{ match_labels: { \"bad key!\": x }, match_expressions: [ { key: zone, operator: Near }, { key: zone, operator: In }, { key: a, operator: Exists, values: [x] } ], percentage: 120 }",
    ));
    let v = c
        .validate_experiment(v1::ValidateExperimentRequest { spec: Some(bad.clone()) })
        .await
        .expect("validate")
        .into_inner();
    let fields: Vec<&str> = v.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "sidecars.match_labels[\"bad key!\"]",
            "sidecars.match_expressions[0].operator",
            "sidecars.match_expressions[1].values",
            "sidecars.match_expressions[2].values",
            "sidecars.percentage"
        ]
    );
    let err = c.start_experiment(v1::StartExperimentRequest { spec: Some(bad) }).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let none = support::spec(&abort_503("{ match_labels: { app: nothing } }"));
    let err = c.start_experiment(v1::StartExperimentRequest { spec: Some(none) }).await.expect_err("no sidecar");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("no connected sidecar matches"), "{}", err.message());

    let upstream = FakeUpstream::app().start().await;
    let p = support::proxy(upstream).await;
    let mut local = p.control().await;
    let err = local
        .start_experiment(v1::StartExperimentRequest { spec: Some(support::spec(&abort_503("{}"))) })
        .await
        .expect_err("a sidecar refuses a selector");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("sidecars: selects sidecars"), "{}", err.message());
    let err = local
        .start_scenario(v1::StartScenarioRequest {
            name: "nov-18-2025-edge-outage".into(),
            params: Default::default(),
            sidecars: Some(v1::SidecarSelector::default()),
        })
        .await
        .expect_err("and a scenario with one");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = local.list_sidecars(v1::ListSidecarsRequest {}).await.expect_err("not a controller");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

/// A replay at speed through the controller runs on each sidecar on the controller's clock: the same
/// effective duration and end, time_scale applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_at_speed_runs_on_the_fleets_clock() {
    let controller = fleet::controller().await;
    let url = fleet::url(&controller);
    let sidecars = sidecars(&url, &[("web-1", &[("app", "web")]), ("web-2", &[("app", "web")])], GRACE).await;
    let mut c = fleet::client(&controller).await;
    fleet::wait_connected(&mut c, 2).await;
    let started = c
        .start_scenario(v1::StartScenarioRequest {
            name: "nov-18-2025-edge-outage".into(),
            params: [("speed".to_string(), "600".to_string())].into(),
            sidecars: Some(v1::SidecarSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .expect("StartScenario on the controller")
        .into_inner();
    assert!(!started.experiments.is_empty());
    for e in &started.experiments {
        let e = fleet::wait_settled(&mut c, &e.id).await;
        assert_eq!(fleet::targets(&e, v1::SidecarTargetState::Applied), ["web-1", "web-2"], "{}", e.id);
        for (id, p) in &sidecars {
            let local = super::local_ids(p, &e.id).await.remove(0);
            assert_eq!(local.effective_duration, e.effective_duration, "{id}: {}", e.id);
            let ends = |x: &v1::Experiment| x.ends_at.expect("ends_at").seconds;
            assert!((ends(&local) - ends(&e)).abs() <= 1, "{id}: {local:?} vs {e:?}");
        }
    }
}
