//! The console on the controller's admin port (`controller --admin`): the fleet's sidecars, scenarios
//! started over a selector, the kill switch reaching every sidecar, the fleet's summed history, and the
//! same token rules as a sidecar's console.

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use super::{audit_lines, ADMIN, SIDECAR, VIEWER};
use crate::support::{fleet, *};

/// A controller with tokens and an admin port, and sidecars (id, labels) subscribed with the sidecar
/// token. Returns the controller, the console's base URL, the sidecars and the audit log.
pub async fn fleet_with_console(
    ids: &[(&str, &[(&str, &str)])],
) -> (edgefault::app::Controller, String, Vec<(String, Proxy)>, std::path::PathBuf) {
    let tokens = temp_file(
        "tokens.yaml",
        &format!("- {{ name: ops, role: admin, token: {ADMIN} }}\n- {{ name: viewer, role: read-only, token: {VIEWER} }}\n- {{ name: pod, role: sidecar, token: {SIDECAR} }}\n"),
    );
    let audit = temp_file("audit.jsonl", "");
    let controller = fleet::controller_with_console(&tokens, &audit).await;
    let url = fleet::url(&controller);
    let up = upstream().await;
    let mut sidecars = Vec::new();
    for (id, labels) in ids {
        let mut p = proxy(up).await;
        let mut o = fleet::options(&url, id, labels, Duration::from_secs(30));
        o.token = Some(SIDECAR.into());
        p.server.join_fleet(o);
        sidecars.push((id.to_string(), p));
    }
    let base = format!("http://{}", controller.admin_addr().expect("the controller's admin port"));
    (controller, base, sidecars, audit)
}

async fn call(base: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = request(if body.is_some() { "POST" } else { "GET" }, &format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"));
    let payload = match body {
        Some(v) => {
            r = r.header("content-type", "application/json");
            v.to_string()
        }
        None => String::new(),
    };
    let reply = send(&client(), r.body(crate::support::body(payload)).expect("request")).await;
    let v =
        serde_json::from_slice(&reply.body).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&reply.body) }));
    (reply.status, v)
}

/// Polls `path` until `done` holds for its answer (20 s at most).
async fn until(base: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = call(base, path, VIEWER, None).await;
        if s == StatusCode::OK && done(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: never; last {s}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests, 5xx and injected of a route summed over the points of a history answer.
fn sums(history: &Value, route: &str) -> (u64, u64, u64) {
    let Some(r) = history["routes"].as_array().and_then(|rs| rs.iter().find(|r| r["route"] == route)) else {
        return (0, 0, 0);
    };
    let points = r["points"].as_array().cloned().unwrap_or_default();
    let n = |p: &Value, k: &str| p[k].as_u64().unwrap_or(0);
    points.iter().fold((0, 0, 0), |(a, b, c), p| {
        (a + n(p, "requests"), b + p["status"][4].as_u64().unwrap_or(0), c + n(p, "injected"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_console_shows_the_fleet_starts_over_a_selector_and_aborts_every_sidecar() {
    let (controller, base, sidecars, audit) =
        fleet_with_console(&[("s1", &[("app", "web")]), ("s2", &[("app", "web")]), ("s3", &[("app", "api")])]).await;

    // The page and the admin port: /healthz and /readyz, no /metrics (the sidecars have those).
    let http = client();
    assert_eq!(get(&http, &format!("{base}/console")).await.status, StatusCode::OK);
    assert_eq!(get(&http, &format!("{base}/healthz")).await.status, StatusCode::OK);
    assert_eq!(get(&http, &format!("{base}/readyz")).await.status, StatusCode::OK);
    let metrics = get(&http, &format!("{base}/metrics")).await;
    assert_eq!(metrics.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&metrics.body).contains("each sidecar's admin port"));

    // The state names the controller and lists its sidecars.
    let state = until(&base, "/console/api/state", "three sidecars connected", |v| {
        v["sidecars"].as_array().is_some_and(|s| s.iter().filter(|s| s["connected"] == true).count() == 3)
    })
    .await;
    assert_eq!(state["server"]["kind"], "controller");
    let s1 = state["sidecars"].as_array().and_then(|s| s.iter().find(|s| s["id"] == "s1")).cloned();
    assert_eq!(s1.map(|s| s["labels"].clone()), Some(json!({ "app": "web" })));

    // A bad selector is refused with the field named; nothing starts.
    let bad = json!({ "scenario": "edge-5xx-storm", "params": { "percentage": 100 }, "sidecars": "app in web" });
    let (s, v) = call(&base, "/console/api/scenarios/start", ADMIN, Some(bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().starts_with("sidecars: "), "{v}");
    // A read-only token starts nothing.
    let storm =
        json!({ "scenario": "edge-5xx-storm", "params": { "percentage": 100, "status": 503 }, "sidecars": "app=web" });
    assert_eq!(call(&base, "/console/api/scenarios/start", VIEWER, Some(storm.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(controller.fleet().running(), 0);

    // The storm over app=web reaches s1 and s2, not s3.
    let (s, v) = call(&base, "/console/api/scenarios/start", ADMIN, Some(storm)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["experiments"][0].as_str().expect("an experiment id").to_owned();
    let state = until(&base, "/console/api/state", "applied on both web sidecars", |v| {
        v["experiments"].as_array().and_then(|xs| xs.iter().find(|x| x["id"] == id.as_str())).is_some_and(|x| {
            x["sidecars"].as_array().is_some_and(|t| t.len() == 2 && t.iter().all(|t| t["state"] == "applied"))
        })
    })
    .await;
    let x = state["experiments"].as_array().and_then(|xs| xs.iter().find(|x| x["id"] == id.as_str())).cloned();
    let mut on: Vec<String> = x
        .map(|x| x["sidecars"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    on.sort();
    assert_eq!(on, ["s1", "s2"]);

    // Traffic: 6 requests on each sidecar; the web sidecars answer 503. The controller's history sums
    // what the three sidecars' clients saw, route by route.
    for (_, p) in &sidecars {
        for _ in 0..6 {
            let _ = get(&http, &p.url("/")).await;
        }
    }
    let history = until(&base, "/console/api/history?minutes=2", "the fleet's history holds the traffic", |v| {
        sums(v, "default") == (18, 12, 12)
    })
    .await;
    let series = history["experiments"].as_array().and_then(|xs| xs.iter().find(|x| x["id"] == id.as_str())).cloned();
    let injected: u64 = series
        .map(|x| x["points"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
        .iter()
        .map(|p| p["injected"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(injected, 12, "the experiment's series, summed over s1 and s2");

    // Events of the sidecars reach the controller's event log, named by sidecar.
    until(&base, "/console/api/events", "the start in the event log", |v| {
        v["events"].as_array().is_some_and(|ls| ls.iter().any(|l| l["experiment"] == id.as_str()))
    })
    .await;

    // Abort all from the console ends it on the controller and on every sidecar, audited with the token.
    let (s, v) = call(&base, "/console/api/abort-all", VIEWER, Some(json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(controller.fleet().running(), 1, "the read-only token aborted nothing");
    let (s, v) = call(&base, "/console/api/abort-all", ADMIN, Some(json!({}))).await;
    assert_eq!((s, &v["aborted"]), (StatusCode::OK, &json!([id])));
    assert_eq!(controller.fleet().running(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sidecars.iter().any(|(_, p)| p.server.registry().running() > 0) {
        assert!(std::time::Instant::now() < deadline, "a sidecar still runs an experiment after Abort all");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (sid, p) in &sidecars {
        assert_eq!(get(&http, &p.url("/")).await.status, StatusCode::OK, "{sid} passes traffic again");
    }
    let last = audit_lines(&audit).pop().expect("audited");
    assert_eq!((&last["caller"], &last["action"]), (&json!("console (ops)"), &json!("AbortAll")));

    // The admin port's POST /abort-all reaches the fleet too, with an admin token only.
    let r = send(&http, request("POST", &format!("{base}/abort-all")).body(body("")).expect("request")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    controller.shutdown().await;
}
