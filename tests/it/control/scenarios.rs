//! The scenario catalogue over gRPC: every built-in starts and expands validly on a server with the
//! usual routes, parameters are typed and checked, a user scenario from `scenarios_dir` runs, and the
//! replays' phases (18 November 2025, 5 December 2025, 2 July 2019) are what a real client sees, on tokio's
//! paused clock.

use std::{collections::HashMap, time::Duration};

use crate::support::*;
use edgefault::{
    config::{Config, Overrides},
    pb::v1,
};

fn params(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn start(proxy: &Proxy, name: &str, kv: &[(&str, &str)]) -> Result<Vec<v1::Experiment>, tonic::Status> {
    proxy
        .control()
        .await
        .start_scenario(v1::StartScenarioRequest { name: name.into(), params: params(kv), sidecars: None })
        .await
        .map(|r| r.into_inner().experiments)
}

#[tokio::test]
async fn every_builtin_is_listed_expands_and_starts() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let list = ctl.list_scenarios(v1::ListScenariosRequest {}).await.expect("list").into_inner().scenarios;
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "edge-5xx-storm",
        "edge-flapping",
        "dashboard-api-outage",
        "origin-unreachable",
        "edge-latency",
        "regional-maintenance",
        "nov-18-2025-edge-outage",
        "oct-20-2025-cloud-region-outage",
        "dec-5-2025-global-step",
        "jul-2-2019-global-502",
        "nov-2-2023-control-plane-outage",
        "jun-21-2022-19-locations",
        "jun-12-2025-storage-dependency",
        "jun-8-2021-cdn-global-503",
        "jul-22-2021-dns-servfail",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for s in &list {
        assert!(s.builtin && !s.summary.is_empty() && !s.description.is_empty() && !s.source.is_empty(), "{}", s.name);
        assert!(s.params.iter().any(|p| p.name == "speed") && s.params.iter().any(|p| p.name == "max_percentage"));
        let shown = ctl
            .get_scenario(v1::GetScenarioRequest { name: s.name.clone(), params: HashMap::new() })
            .await
            .expect("get")
            .into_inner();
        let started = start(&proxy, &s.name, &[]).await.unwrap_or_else(|e| panic!("{}: {e:?}", s.name));
        assert_eq!(started.len(), shown.experiments.len(), "{}", s.name);
        for e in &started {
            assert_eq!(
                e.state,
                v1::ExperimentState::Running as i32,
                "{}: {}",
                s.name,
                e.spec.clone().unwrap_or_default().name
            );
        }
        ctl.abort_all(v1::AbortAllRequest { reason: "next scenario".into() }).await.expect("abort all");
    }
}

#[tokio::test]
async fn a_scenario_s_experiments_apply_to_real_traffic() {
    let proxy = proxy(upstream().await).await;
    let started =
        start(&proxy, "dashboard-api-outage", &[("api_latency", "1ms"), ("api_status", "502")]).await.expect("starts");
    let names = names(&started);
    assert_eq!(names, ["dashboard-down", "api-down"]);
    let c = client();
    let dash = send(&c, dashboard_get(&proxy)).await;
    assert_eq!(dash.status, 503, "the dashboard route fails");
    assert_eq!(get(&c, &proxy.url("/api/items")).await.status, 502, "the api route fails");
    assert_eq!(get(&c, &proxy.url("/")).await.status, 200, "the rest of the site works");

    // An empty route leaves its side out.
    let mut ctl = proxy.control().await;
    ctl.abort_all(v1::AbortAllRequest { reason: String::new() }).await.expect("abort all");
    let started = start(&proxy, "dashboard-api-outage", &[("api_route", "")]).await.expect("starts");
    assert_eq!(started.len(), 1);
}

#[tokio::test]
async fn bad_parameters_are_refused_by_name_and_nothing_starts() {
    let proxy = proxy(upstream().await).await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("edge-5xx-storm", &[("percentage", "150")], "params.percentage: must be between 0 and 100, got 150"),
        ("edge-5xx-storm", &[("status", "418")], "params.status: must be one of 500, 502, 503, 504, got 418"),
        ("edge-5xx-storm", &[("duration", "forever")], "params.duration: expected a duration"),
        ("edge-5xx-storm", &[("speeed", "2")], "params.speeed: scenario edge-5xx-storm has no such parameter"),
        ("edge-latency", &[("sigma", "x")], "params.sigma: expected a number"),
        (
            "edge-5xx-storm",
            &[("routes", "nope")],
            "experiments[0] (edge-5xx-storm).match.routes[0]: no route named \"nope\"",
        ),
        ("edge-5xx-storm", &[("duration", "2h")], "exceeds the server's maximum"),
        ("nov-18-2025-edge-outage", &[("speed", "1")], "experiments[0] (nov18-core-traffic).duration"),
    ];
    for (name, kv, want) in cases {
        let e = start(&proxy, name, kv).await.expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{name} {kv:?}: {e:?}");
        assert!(e.message().contains(want), "{name} {kv:?}: {}", e.message());
    }
    let e = start(&proxy, "no-such-outage", &[]).await.expect_err("unknown");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("edge-5xx-storm"), "names the catalogue: {}", e.message());
    let list = proxy.control().await.list_experiments(v1::ListExperimentsRequest::default()).await.expect("list");
    assert!(list.into_inner().experiments.is_empty(), "nothing started");
}

#[tokio::test]
async fn a_user_scenario_from_scenarios_dir_runs() {
    let dir = std::env::temp_dir().join(format!("edgefault-scenarios-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("teapot.yaml"),
        "name: teapot-storm\nsummary: everything is a teapot\nparams:\n  - { name: status, type: integer, default: 418, min: 400, max: 499 }\n  - { name: path, type: string, default: /brew }\nexperiments:\n  - name: \"teapot-${status}\"\n    match: { path_prefix: \"${path}\" }\n    duration: 1m\n    faults: [{ abort: { http_status: \"${status}\", body: \"I am a teapot (${status})\" } }]\n",
    )
    .expect("write");
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "scenarios_dir: {}\nlisteners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n",
        dir.display()
    ))
    .await;
    let list = proxy.control().await.list_scenarios(v1::ListScenariosRequest {}).await.expect("list").into_inner();
    let mine = list.scenarios.iter().find(|s| s.name == "teapot-storm").expect("listed");
    assert!(!mine.builtin && mine.file.ends_with("teapot.yaml"));
    let started = start(&proxy, "teapot-storm", &[("status", "451")]).await.expect("starts");
    assert_eq!(started[0].spec.clone().unwrap_or_default().name, "teapot-451");
    let r = get(&client(), &proxy.url("/brew/tea")).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (451, &b"I am a teapot (451)"[..]));
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
    let e = start(&proxy, "teapot-storm", &[("status", "500")]).await.expect_err("over max");
    assert!(e.message().contains("params.status: must be between 400 and 499, got 500"), "{}", e.message());

    // A broken scenario stops the server from starting, with the file and line.
    std::fs::write(dir.join("zz-broken.yaml"), "name: broken\nsummary: x\nexperiments:\n  - name: a\n    faults: [{ abort: {} }]\n  - name: b\n    percentage: 140\n    faults: [{ abort: {} }]\n").expect("write");
    let err = Config::from_yaml(
        &format!("scenarios_dir: {}\n", dir.display()),
        "test",
        &Overrides { upstream: Some(format!("http://{up}")), ..Overrides::default() },
    )
    .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("zz-broken.yaml") && text.contains("experiments[1] (b).percentage"), "{text}");
    std::fs::write(
        dir.join("zz-broken.yaml"),
        "name: broken\nsummary: x\nparams:\n  - { name: p, type: percentage, default: 300 }\nexperiments: []\n",
    )
    .expect("write");
    let err = Config::from_yaml(
        &format!("scenarios_dir: {}\n", dir.display()),
        "test",
        &Overrides { upstream: Some(format!("http://{up}")), ..Overrides::default() },
    )
    .expect_err("refused");
    assert!(err.to_string().contains("zz-broken.yaml:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn phase_of(proxy: &Proxy, id: &str) -> String {
    let e = proxy
        .control()
        .await
        .get_experiment(v1::GetExperimentRequest { id: id.into() })
        .await
        .expect("get")
        .into_inner();
    e.phase.map(|p| p.name).unwrap_or_default()
}

/// The 18 November replay at speed 10 (5h46m in 34m36s), on the paused clock: 5-minute builds good or
/// bad at random from the seed (runs, not a rhythm), dashboard logins refused only to visitors without a
/// session, then the steady failure and the long tail.
#[tokio::test(start_paused = true)]
async fn the_nov_18_replay_s_phases_reach_a_real_client() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started =
        start(&proxy, "nov-18-2025-edge-outage", &[("peak", "100"), ("latency", "0s"), ("routes", "default")])
            .await
            .expect("starts");
    let names = names(&started);
    assert_eq!(
        names,
        ["nov18-core-traffic", "nov18-dashboard-logins", "nov18-dashboard-backlog", "nov18-api"],
        "latency 0s leaves that one out; the 500s, not the block page"
    );
    let (core, logins, backlog) = (started[0].id.clone(), started[1].id.clone(), started[2].id.clone());
    let d = started[0].effective_duration.expect("duration");
    assert_eq!((d.seconds, d.nanos), (2076, 0), "5h46m at speed 10");
    let t0 = tokio::time::Instant::now();
    let status = || async { get(&client(), &proxy.url("/")).await.status.as_u16() };

    // Flapping until t0+1h30m (540 s): eighteen 5-minute builds (30 s each), each wholly good or bad as the
    // seed draws them, half of them bad on average.
    let build = edgefault::experiment::timeline::Flap {
        period: Duration::from_secs(30),
        on: Duration::ZERO,
        jitter: Duration::ZERO,
        seed: 1118,
        random_on: Some(0.5),
    };
    let mut seen = Vec::new();
    for cycle in 0..18u64 {
        for into in [1, 29] {
            advance_to(t0 + Duration::from_secs(30 * cycle + into)).await;
            let bad = build.at(Duration::from_secs(30 * cycle + into)).1;
            assert_eq!(status().await, if bad { 500 } else { 200 }, "build {cycle} at {into}s");
        }
        seen.push(build.at(Duration::from_secs(30 * cycle)).1);
    }
    assert!(seen.contains(&true) && seen.contains(&false), "good and bad builds: {seen:?}");
    assert!(seen.windows(2).any(|w| w[0] == w[1]), "runs of good or bad builds, not an alternation: {seen:?}");
    assert_eq!(phase_of(&proxy, &core).await, "flapping");

    // The dashboard from t0+10m (60 s) to t0+1h50m (660 s): visitors without a session get the 500 page;
    // a session cookie or header gets through.
    advance_to(t0 + Duration::from_secs(300)).await;
    assert_eq!(phase_of(&proxy, &logins).await, "logins-failing");
    let dash = |extra: Option<(&'static str, &'static str)>| {
        let mut r = request("GET", &proxy.url("/login")).header("host", "dash.example.com");
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        r.body(body("")).expect("req")
    };
    assert_eq!(send(&client(), dash(None)).await.status, 500, "no session: the login fails");
    assert_eq!(send(&client(), dash(Some(("cookie", "theme=dark; session=abc")))).await.status, 200, "a session");
    assert_eq!(send(&client(), dash(Some(("authorization", "Bearer t")))).await.status, 200, "an API token");
    assert_eq!(send(&client(), dash(Some(("cookie", "theme=dark")))).await.status, 500, "another cookie");

    // t0+1h30m (540 s): steady failure.
    advance_to(t0 + Duration::from_secs(541)).await;
    assert_eq!(phase_of(&proxy, &core).await, "steady-failure");
    for _ in 0..5 {
        assert_eq!(status().await, 500, "steady failure");
    }
    // t0+1h50m (660 s): logins work again.
    advance_to(t0 + Duration::from_secs(661)).await;
    assert_eq!(phase_of(&proxy, &logins).await, "", "the logins experiment is over");
    // t0+3h10m (1140 s): the known-good file; t0+3h20m (1200 s): the login backlog for everyone.
    advance_to(t0 + Duration::from_secs(1141)).await;
    assert_eq!(phase_of(&proxy, &core).await, "known-good-file");
    advance_to(t0 + Duration::from_secs(1201)).await;
    assert_eq!(phase_of(&proxy, &backlog).await, "login-backlog");
    // t0+5h46m: over.
    advance_to(t0 + Duration::from_secs(2077)).await;
    assert_eq!(status().await, 200, "the replay is over");
}

/// With `older_proxy=true` the site answers the block page instead of the 500: 403, error 1020, in the
/// same random steps.
#[tokio::test(start_paused = true)]
async fn the_nov_18_older_proxy_variant_answers_the_block_page() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started = start(
        &proxy,
        "nov-18-2025-edge-outage",
        &[("peak", "100"), ("latency", "0s"), ("older_proxy", "true"), ("bad_builds", "100")],
    )
    .await
    .expect("starts");
    assert_eq!(names(&started)[0], "nov18-bot-blocked");
    assert!(!names(&started).contains(&"nov18-core-traffic".to_string()));
    tokio::time::advance(Duration::from_secs(1)).await;
    let html =
        send(&client(), request("GET", &proxy.url("/")).header("accept", "text/html").body(body("")).expect("req"))
            .await;
    assert_eq!(html.status, 403);
    assert_eq!(html.headers.get("cf-error-type").map(|v| v.to_str().unwrap_or("")), Some("1020"));
    let page = String::from_utf8_lossy(&html.body);
    assert!(page.contains("Access denied") && page.contains("Error 1020") && page.contains("blocked"), "{page}");
    let json = send(
        &client(),
        request("GET", &proxy.url("/")).header("accept", "application/json").body(body("")).expect("req"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&json.body).expect("json");
    assert_eq!((v["status"].as_u64(), v["error_code"].as_u64()), (Some(403), Some(1020)), "{v}");
}

/// The names of started experiments, in order.
fn names(started: &[v1::Experiment]) -> Vec<String> {
    started.iter().map(|e| e.spec.clone().unwrap_or_default().name).collect()
}

/// A GET of `/` on the dashboard's host.
fn dashboard_get(proxy: &Proxy) -> http::Request<BoxBody> {
    request("GET", &proxy.url("/")).header("host", "dash.example.com").body(body("")).expect("req")
}

/// The status the dashboard's host gets now.
async fn dashboard_status(proxy: &Proxy) -> u16 {
    send(&client(), dashboard_get(proxy)).await.status.as_u16()
}

/// How many of `n` GETs of `path` got `status`.
async fn count_status(proxy: &Proxy, path: &str, n: usize, status: u16) -> usize {
    let c = client();
    let mut hits = 0;
    for _ in 0..n {
        if get(&c, &proxy.url(path)).await.status.as_u16() == status {
            hits += 1;
        }
    }
    hits
}

/// Moves the paused clock to `at` (never back).
async fn advance_to(at: tokio::time::Instant) {
    tokio::time::advance(at.saturating_duration_since(tokio::time::Instant::now())).await;
}

/// The 5 December 2025 replay at speed 60 (25 minutes in 25 s), on the paused clock: a step to HTTP 500 for
/// every request within the first minute, flat, the dashboard and API failing a share of requests, and a
/// step back at t0+24m..25m.
#[tokio::test(start_paused = true)]
async fn the_dec_5_replay_is_a_step_up_a_flat_top_and_a_step_down() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started =
        start(&proxy, "dec-5-2025-global-step", &[("speed", "60"), ("routes", "default")]).await.expect("starts");
    let t0 = tokio::time::Instant::now();
    let names = names(&started);
    assert_eq!(names, ["dec5-site-traffic", "dec5-dashboard", "dec5-api"]);
    let site = started[0].id.clone();
    let d = started[0].effective_duration.expect("duration");
    assert_eq!((d.seconds, d.nanos), (25, 0), "25 minutes at speed 60");

    // t0+10s of incident time: the rollout is on its way; the dashboard still works.
    advance_to(t0 + Duration::from_millis(170)).await;
    assert_eq!(phase_of(&proxy, &site).await, "rollout");
    assert_eq!(dashboard_status(&proxy).await, 200, "the dashboard's window starts at t0+1m");
    // t0+1m: full impact, every request of the site's routes gets the 500 edge page.
    advance_to(t0 + Duration::from_millis(1_100)).await;
    assert_eq!(phase_of(&proxy, &site).await, "full-impact");
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.status.as_u16(), 500);
    assert!(String::from_utf8_lossy(&r.body).contains("FRA"), "the edge page names the location");
    assert_eq!(count_status(&proxy, "/", 50, 500).await, 50, "every request at full impact");
    // The dashboard fails 30 % of its requests (binomial(200, 0.3): sd 6.5; 30..=90 is beyond 4.5 sd).
    let mut failed = 0;
    for _ in 0..200 {
        if dashboard_status(&proxy).await == 500 {
            failed += 1;
        }
    }
    assert!((30..=90).contains(&failed), "{failed} of 200 dashboard requests failed");
    // t0+24m30s: the revert is half way.
    advance_to(t0 + Duration::from_millis(24_500)).await;
    assert_eq!(phase_of(&proxy, &site).await, "revert");
    let mid = count_status(&proxy, "/", 200, 500).await;
    assert!((40..=160).contains(&mid), "half way through the revert: {mid} of 200 failed");
    // t0+25m: restored.
    advance_to(t0 + Duration::from_millis(25_100)).await;
    assert_eq!(count_status(&proxy, "/", 20, 200).await, 20, "restored at t0+25m");
    assert_eq!(dashboard_status(&proxy).await, 200);
}

/// The 2 July 2019 replay at speed 60 (27 minutes in 27 s), on the paused clock: slow 502 pages on every
/// route, the dashboard's and the API's included, until the WAF is killed at t0+25m; normal at t0+27m.
#[tokio::test(start_paused = true)]
async fn the_jul_2_replay_gives_every_route_slow_502_pages_until_the_waf_is_killed() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started = start(&proxy, "jul-2-2019-global-502", &[("speed", "60"), ("share", "100"), ("latency", "200ms")])
        .await
        .expect("starts");
    let t0 = tokio::time::Instant::now();
    let names = names(&started);
    assert_eq!(names, ["jul2-cpu-exhaustion", "jul2-slow-answers"]);
    let cpu = started[0].id.clone();
    advance_to(t0 + Duration::from_millis(100)).await;
    assert_eq!(phase_of(&proxy, &cpu).await, "cpu-exhausted");

    // Every route, the API's and the dashboard's included (they sit behind the same edge), and every answer
    // waits first: a log-normal wait (median `latency`, at most 10 s; a client waits as long per request at
    // any speed).
    let c = client();
    let mut pending: Vec<_> = (0..20).map(|_| get_later(&c, &proxy.url("/"))).collect();
    pending.push(get_later(&c, &proxy.url("/api/x")));
    let dash = dashboard_get(&proxy);
    let dash = tokio::spawn({
        let c = c.clone();
        async move { send(&c, dash).await }
    });
    // Real time for the requests to reach the proxy; the paused clock does not move meanwhile.
    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(300))).await.expect("sleep");
    assert!(pending.iter().all(|p| !p.is_finished()) && !dash.is_finished(), "every answer is held first");
    // Past every wait (the experiment is seeded; a draw beyond 2.9 s is over 5 sd of the log-normal out); at
    // speed 60 that is t0+3m of incident time, still CPU-exhausted.
    advance_to(t0 + Duration::from_millis(3_000)).await;
    for p in pending {
        let (r, _) = p.await.expect("reply");
        assert_eq!(r.status.as_u16(), 502);
        assert!(String::from_utf8_lossy(&r.body).contains("502"), "the edge's 502 page");
    }
    assert_eq!(dash.await.expect("reply").status.as_u16(), 502, "the dashboard too");

    // t0+26m: the WAF was killed at t0+25m; the recovery is half way, and the answers no longer wait.
    advance_to(t0 + Duration::from_millis(26_000)).await;
    assert_eq!(phase_of(&proxy, &cpu).await, "waf-killed");
    let mid = count_status(&proxy, "/", 200, 502).await;
    assert!((40..=160).contains(&mid), "half way through the recovery: {mid} of 200 failed");
    // t0+27m: normal.
    advance_to(t0 + Duration::from_millis(27_100)).await;
    assert_eq!(count_status(&proxy, "/", 20, 200).await, 20, "normal at t0+27m");
    assert_eq!(dashboard_status(&proxy).await, 200);
}

/// The 2 November 2023 replay at speed 600 (6h14m in 37.4 s), on the paused clock: the dashboard's 503 page
/// and the API's errors for the whole window, the site's traffic untouched throughout.
#[tokio::test(start_paused = true)]
async fn the_nov_2_replay_takes_the_dashboard_and_api_down_and_leaves_the_site_up() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started = start(&proxy, "nov-2-2023-control-plane-outage", &[("speed", "600")]).await.expect("starts");
    let t0 = tokio::time::Instant::now();
    let names = names(&started);
    assert_eq!(names, ["nov2-dashboard", "nov2-api"], "nothing targets the site's traffic");
    let d = started[0].effective_duration.expect("duration");
    assert_eq!((d.seconds, d.nanos), (37, 400_000_000), "6h14m at speed 600");

    for at in [Duration::from_secs(1), Duration::from_secs(36)] {
        advance_to(t0 + at).await;
        assert_eq!(dashboard_status(&proxy).await, 503, "the dashboard at t0+{at:?} x 600");
        let api = get(&client(), &proxy.url("/api/zones/records")).await;
        assert_eq!(api.status.as_u16(), 503, "the API");
        assert_eq!(count_status(&proxy, "/", 20, 200).await, 20, "the site keeps working");
    }
    // t0+6h14m: the control plane is back.
    advance_to(t0 + Duration::from_millis(37_500)).await;
    assert_eq!(dashboard_status(&proxy).await, 200);
    assert_eq!(get(&client(), &proxy.url("/api/zones/records")).await.status.as_u16(), 200);
}

/// A GET of `/` with `headers`, from the client address `from` (any 127.x address is loopback on Linux).
async fn get_from(proxy: &Proxy, from: std::net::IpAddr, headers: &[(&str, &str)]) -> Reply {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(from));
    let c: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let mut r = request("GET", &proxy.url("/"));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    send(&c, r.body(body("")).expect("req")).await
}

/// The 21 June 2022 replay at speed 2 (1h15m in 37m30s), on the paused clock: impact by location, sticky.
/// By hash of the client's address: about `share` of 60 clients (distinct loopback addresses), each always
/// in or always out; by a header naming the location: the 19 codes fail and others do not; locations come
/// back one by one after t0+31m; all are back at t0+1h15m.
#[tokio::test(start_paused = true)]
async fn the_jun_21_replay_fails_whole_locations_sticky_per_client() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started = start(&proxy, "jun-21-2022-19-locations", &[]).await.expect("starts");
    assert_eq!(names(&started), ["jun21-by-hash"]);
    tokio::time::advance(Duration::from_secs(1)).await;
    let clients: Vec<std::net::IpAddr> = (10..70u8).map(|i| std::net::IpAddr::from([127, 0, 0, i])).collect();
    let mut failing = 0;
    for ip in &clients {
        let first = get_from(&proxy, *ip, &[]).await.status.as_u16();
        for _ in 0..3 {
            assert_eq!(get_from(&proxy, *ip, &[]).await.status.as_u16(), first, "{ip} stays in or out");
        }
        assert!(first == 500 || first == 200, "{first}");
        failing += usize::from(first == 500);
    }
    // 60 clients at 50 %: within four standard deviations (±15.5).
    assert!((15..=45).contains(&failing), "{failing} of 60 clients failing");
    proxy.abort_all().await;

    // By a header naming the client's location.
    let started =
        start(&proxy, "jun-21-2022-19-locations", &[("location_header", "x-edge-location")]).await.expect("starts");
    assert_eq!(names(&started), ["jun21-by-header"]);
    let t0 = tokio::time::Instant::now();
    tokio::time::advance(Duration::from_secs(1)).await;
    let here = std::net::IpAddr::from([127, 0, 0, 1]);
    let status_at = |loc: &'static str| {
        let proxy = &proxy;
        async move { get_from(proxy, here, &[("x-edge-location", loc)]).await.status.as_u16() }
    };
    let offline = [
        "AMS", "ATL", "IAD", "ORD", "FRA", "LHR", "LAX", "MAD", "MAN", "MIA", "MXP", "BOM", "EWR", "KIX", "GRU", "SJC",
        "SIN", "SYD", "NRT",
    ];
    for loc in offline {
        assert_eq!(status_at(loc).await, 500, "{loc} is offline");
    }
    for loc in ["CDG", "DUB", "HKG", "YYZ"] {
        assert_eq!(status_at(loc).await, 200, "{loc} is served");
    }
    assert_eq!(get_from(&proxy, here, &[]).await.status, 200, "no location header: not in a failing location");
    // Halfway through the return (t0+53m, 1590 s at speed 2): some locations back, some not.
    advance_to(t0 + Duration::from_secs(1590)).await;
    let mut back = 0;
    for loc in offline {
        back += usize::from(status_at(loc).await == 200);
    }
    assert!((3..=16).contains(&back), "{back} of 19 back halfway through the return");
    // t0+1h15m (2250 s): all back.
    advance_to(t0 + Duration::from_secs(2251)).await;
    for loc in offline {
        assert_eq!(status_at(loc).await, 200, "{loc} is back");
    }
}

/// How many of `n` GETs of `path` (with `host`) got each status.
async fn statuses(proxy: &Proxy, host: &str, path: &str, n: usize) -> HashMap<u16, usize> {
    let c = client();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = request("GET", &proxy.url(path)).header("host", host).body(body("")).expect("req");
        *seen.entry(send(&c, r).await.status.as_u16()).or_insert(0) += 1;
    }
    seen
}

/// The 12 June 2025 replay: 90.22 % of the key-value-backed route fail (80 % 503, 10.22 % 500), the login
/// route fails every time, the dashboard a share, everything else passes.
#[tokio::test]
async fn the_jun_12_replay_fails_ninety_per_cent_of_key_value_reads() {
    let proxy = proxy(upstream().await).await;
    let started = start(&proxy, "jun-12-2025-storage-dependency", &[("kv_routes", "default"), ("login_route", "api")])
        .await
        .expect("starts");
    assert_eq!(names(&started), ["jun12-kv-503", "jun12-kv-500", "jun12-logins", "jun12-dashboard"]);
    let kv = statuses(&proxy, "site.example", "/", 2000).await;
    let share = |s: u16| kv.get(&s).copied().unwrap_or(0) as f64 / 2000.0;
    // Within four standard deviations of 80 %, 10.22 % and 9.78 %.
    assert!((share(503) - 0.80).abs() < 0.036, "{kv:?}");
    assert!((share(500) - 0.1022).abs() < 0.028, "{kv:?}");
    assert!((share(200) - 0.0978).abs() < 0.027, "{kv:?}");
    assert_eq!(statuses(&proxy, "site.example", "/api/login", 50).await.get(&500), Some(&50), "every login fails");
    let dash = statuses(&proxy, "dash.example.com", "/", 400).await;
    let failed = dash.get(&503).copied().unwrap_or(0);
    assert!((80..=160).contains(&failed), "about 30 % of dashboard requests: {dash:?}");
}

/// The 8 June 2021 CDN replay at speed 4 (2h48m in 42m), on the paused clock: 85 % of requests get the
/// CDN's 503 (Varnish page, the cache node), then 5 %, then 1 %; after the recovery, cold caches: a share
/// of answers are misses (`x-cache: MISS`) and wait for the origin.
#[tokio::test(start_paused = true)]
async fn the_jun_8_cdn_replay_fails_then_recovers_with_cold_caches() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started = start(&proxy, "jun-8-2021-cdn-global-503", &[]).await.expect("starts");
    assert_eq!(names(&started), ["jun8-cdn-503", "jun8-cold-cache"]);
    let t0 = tokio::time::Instant::now();
    tokio::time::advance(Duration::from_secs(1)).await;
    let worst = statuses(&proxy, "site.example", "/", 1000).await;
    let f = worst.get(&503).copied().unwrap_or(0);
    assert!((805..=895).contains(&f), "85 % of 1000 within four standard deviations: {worst:?}");
    let r = send(&client(), request("GET", &proxy.url("/")).header("accept", "text/html").body(body("")).expect("req"))
        .await;
    if r.status == 503 {
        let page = String::from_utf8_lossy(&r.body);
        assert!(page.contains("Varnish cache server") && page.contains("backend read error"), "{page}");
        assert!(r.headers.get("x-served-by").is_some_and(|v| v.to_str().unwrap_or("").starts_with("cache-fra")));
    }
    // t0+49m (735 s at speed 4): 95 % normal. The cold-cache waits need the clock to move: tick it while
    // the requests run.
    advance_to(t0 + Duration::from_secs(740)).await;
    let ticking = tokio::spawn(async {
        loop {
            tokio::time::advance(Duration::from_millis(5)).await;
            tokio::task::yield_now().await;
        }
    });
    let c = client();
    let (mut errors, mut misses) = (0, 0);
    for _ in 0..400 {
        let r = send(&c, request("GET", &proxy.url("/")).body(body("")).expect("req")).await;
        errors += usize::from(r.status == 503);
        misses += usize::from(r.status == 200 && r.headers.get("x-cache").is_some_and(|v| v == "MISS"));
    }
    ticking.abort();
    assert!(errors <= 45, "about 5 % errors after t0+49m: {errors} of 400");
    assert!((100..=220).contains(&misses), "about 40 % cold-cache misses right after the recovery: {misses} of 400");
}

/// The 22 July 2021 DNS replay: calls to the listed host names fail to resolve the way a resolver's
/// SERVFAIL reads, other names pass; over after an hour. The 20 October 2025 replay's emptied record reads
/// as NODATA.
#[tokio::test(start_paused = true)]
async fn dns_replays_fail_name_resolution_with_the_resolver_s_answer() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    start(&proxy, "jul-22-2021-dns-servfail", &[("hosts", "api.example.net,*.cdn.example.net")]).await.expect("starts");
    let t0 = tokio::time::Instant::now();
    let get_host = |host: &'static str| {
        let proxy = &proxy;
        async move {
            send(&client(), request("GET", &proxy.url("/")).header("host", host).body(body("")).expect("req")).await
        }
    };
    for host in ["api.example.net", "img.cdn.example.net"] {
        let r = get_host(host).await;
        assert_eq!(r.status, 502, "{host}");
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(text, format!("could not resolve host {host}: SERVFAIL: the name server failed to answer\n"));
        assert!(r.headers.get("x-edgefault-error").is_none(), "it looks like the real thing");
    }
    assert_eq!(get_host("www.example.org").await.status, 200, "names the provider does not serve resolve");
    advance_to(t0 + Duration::from_secs(3601)).await;
    assert_eq!(get_host("api.example.net").await.status, 200, "over after an hour");

    start(&proxy, "oct-20-2025-cloud-region-outage", &[("database_host", "db.example.net"), ("speed", "60")])
        .await
        .expect("starts");
    let r = get_host("db.example.net").await;
    assert_eq!(r.status, 502);
    assert_eq!(String::from_utf8_lossy(&r.body), "could not resolve host db.example.net: no address for this name\n");
}

/// The 20 October 2025 replay at speed 30 (14h32m in 29m04s), on the paused clock: the database's name
/// does not resolve (NODATA) until t0+2h52m; compute launches fail from t0+2h37m to t0+10h48m; load
/// balancer connection errors from t0+5h42m to t0+14h21m.
#[tokio::test(start_paused = true)]
async fn the_oct_20_replay_s_waves_reach_a_real_client() {
    let _hold = ClockHold::new();
    let proxy = proxy(upstream().await).await;
    let started = start(
        &proxy,
        "oct-20-2025-cloud-region-outage",
        &[("database_host", "db.example.net"), ("compute_host", "compute.example.net"), ("lb_routes", "api")],
    )
    .await
    .expect("starts");
    assert_eq!(names(&started), ["oct20-database-dns", "oct20-instance-launches", "oct20-load-balancers"]);
    let t0 = tokio::time::Instant::now();
    let at = |secs: u64| advance_to(t0 + Duration::from_secs(secs));
    at(1).await;
    let db = statuses(&proxy, "db.example.net", "/", 20).await;
    assert_eq!(db.get(&502), Some(&20), "the name does not resolve: {db:?}");
    assert_eq!(statuses(&proxy, "compute.example.net", "/", 20).await.get(&200), Some(&20), "launches work");
    // t0+2h37m: 314 s.
    at(315).await;
    let compute = statuses(&proxy, "compute.example.net", "/", 400).await;
    let failed = compute.get(&500).copied().unwrap_or(0);
    assert!((288..=352).contains(&failed), "80 % of 400 launches fail: {compute:?}");
    // t0+2h52m: 344 s, the record fixed.
    at(345).await;
    assert_eq!(statuses(&proxy, "db.example.net", "/", 20).await.get(&200), Some(&20), "resolves again");
    // t0+5h42m: 684 s, load balancers: a share of api requests reset (no answer at all).
    at(685).await;
    let c = client();
    let mut resets = 0;
    for _ in 0..200 {
        let r = request("GET", &proxy.url("/api/x")).body(body("")).expect("req");
        resets +=
            usize::from(tokio::time::timeout(Duration::from_secs(5), c.request(r)).await.is_ok_and(|r| r.is_err()));
    }
    assert!((12..=72).contains(&resets), "about 20 % of 200 connections reset: {resets}");
    // t0+10h48m: 1296 s, launches recovered; t0+14h32m: 1744 s, over.
    at(1297).await;
    assert_eq!(statuses(&proxy, "compute.example.net", "/", 20).await.get(&200), Some(&20));
    at(1745).await;
    assert_eq!(statuses(&proxy, "site.example", "/api/x", 20).await.get(&200), Some(&20), "over");
}
