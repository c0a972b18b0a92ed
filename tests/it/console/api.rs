//! The console's JSON API: who may read and change what, the CSRF rule, and each call's answers.

use http::StatusCode;
use serde_json::{json, Value};

use super::{audit_lines, server, ADMIN, SIDECAR, VIEWER};
use crate::support::*;

/// Calls the API: `body` is sent as `content_type` (POST when given).
async fn call(base: &str, path: &str, token: Option<&str>, body: Option<(&str, &str)>) -> (StatusCode, Value) {
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut r = request(method, &format!("{base}{path}"));
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let payload = match body {
        Some((content_type, text)) => {
            r = r.header("content-type", content_type);
            text.to_owned()
        }
        None => String::new(),
    };
    let reply = send(&client(), r.body(crate::support::body(payload)).expect("request")).await;
    let v =
        serde_json::from_slice(&reply.body).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&reply.body) }));
    (reply.status, v)
}

const JSON: &str = "application/json";

#[tokio::test]
async fn the_page_loads_without_a_token_and_loads_nothing_from_elsewhere() {
    let (_proxy, base, _) = server(true).await;
    let page = get(&client(), &format!("{base}/console")).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("/console/console.js") && html.contains("Abort all"), "{html}");
    for asset in ["/console/console.js", "/console/console.css"] {
        let r = get(&client(), &format!("{base}{asset}")).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(!text.contains("http://") || asset.ends_with(".js"), "{asset} names no other site");
        assert!(!text.contains("https://"), "{asset} names no other site");
    }
    assert!(!html.contains("https://"), "the page names no other site");
    // The API is not open.
    assert_eq!(call(&base, "/console/api/state", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&client(), &format!("{base}/console/nope")).await.status, StatusCode::NOT_FOUND);
    // The admin port's own paths are untouched.
    assert_eq!(get(&client(), &format!("{base}/healthz")).await.status, StatusCode::OK);
}

/// Every read and every change, with no token, a wrong one, a sidecar's, a read-only and an admin token.
#[tokio::test]
async fn reads_need_a_token_changes_an_admin_token() {
    let (proxy, base, audit) = server(true).await;
    let mut c = proxy.control().await;
    let mut start = tonic::Request::new(edgefault::pb::v1::StartExperimentRequest {
        spec: Some(spec("name: storm\nfaults: [{ abort: { http_status: 503 } }]\n")),
    });
    start.metadata_mut().insert("authorization", format!("Bearer {ADMIN}").parse().expect("value"));
    let id = c.start_experiment(start).await.expect("starts").into_inner().id;
    let audited = audit_lines(&audit).len();

    for path in ["/console/api/state", "/console/api/events", "/console/api/scenarios", "/console/api/history"] {
        let (s, v) = call(&base, path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {v}");
        assert!(v["error"].as_str().unwrap_or_default().contains("bearer"), "{path}: {v}");
        assert_eq!(call(&base, path, Some("not-a-token-of-this-server"), None).await.0, StatusCode::UNAUTHORIZED);
        let (s, v) = call(&base, path, Some(SIDECAR), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        assert_eq!(call(&base, path, Some(VIEWER), None).await.0, StatusCode::OK, "{path}");
        assert_eq!(call(&base, path, Some(ADMIN), None).await.0, StatusCode::OK, "{path}");
    }
    let (_, viewer) = call(&base, "/console/api/state", Some(VIEWER), None).await;
    assert_eq!(viewer["caller"], json!({ "name": "viewer", "role": "read-only", "may_change": false, "tokens": true }));
    assert_eq!(viewer["experiments"][0]["id"], id);
    assert_eq!(viewer["running"], 1);

    let changes = [
        ("/console/api/abort-all", "{}".to_owned()),
        ("/console/api/experiments/stop", json!({ "id": id }).to_string()),
        ("/console/api/scenarios/start", json!({ "scenario": "edge-5xx-storm" }).to_string()),
    ];
    for (path, body) in &changes {
        assert_eq!(call(&base, path, None, Some((JSON, body))).await.0, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            call(&base, path, Some("not-a-token-of-this-server"), Some((JSON, body))).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(call(&base, path, Some(SIDECAR), Some((JSON, body))).await.0, StatusCode::FORBIDDEN, "{path}");
        let (s, v) = call(&base, path, Some(VIEWER), Some((JSON, body))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        assert!(v["error"].as_str().unwrap_or_default().contains("\"viewer\" is read-only"), "{path}: {v}");
    }
    assert_eq!(proxy.server.registry().running(), 1, "no refused call changed anything");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);
    assert_eq!(audit_lines(&audit).len(), audited, "nothing was done, nothing audited");

    let (s, v) = call(&base, "/console/api/abort-all", Some(ADMIN), Some((JSON, "{}"))).await;
    assert_eq!((s, &v["aborted"]), (StatusCode::OK, &json!([id])), "{v}");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
    let last = audit_lines(&audit).pop().expect("audited");
    assert_eq!((&last["caller"], &last["action"]), (&json!("console (ops)"), &json!("AbortAll")));
    assert_eq!(proxy.server.registry().get(&id).expect("kept").end_reason, "kill switch: the console's Abort all");
}

/// Without tokens the console reads openly and takes changes from loopback, for a page that names the
/// server by address or `localhost` (the rule for other peers is unit-tested in `console::tests`: a test
/// here only has loopback to call from).
#[tokio::test]
async fn without_tokens_reads_are_open_and_loopback_may_change() {
    let (proxy, base, audit) = server(false).await;
    proxy.start("name: a\nfaults: [{ delay: { fixed: 1ms } }]\n").await;
    let (s, v) = call(&base, "/console/api/state", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["caller"], json!({ "name": "anonymous", "role": "admin", "may_change": true, "tokens": false }));
    // A page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) is same-origin
    // and on loopback: it names the server by its own domain, and is refused.
    let rebound = request("POST", &format!("{base}/console/api/abort-all"))
        .header("host", "evil.example:9095")
        .header("content-type", JSON)
        .body(body("{}"))
        .expect("request");
    let r = send(&client(), rebound).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(String::from_utf8_lossy(&r.body).contains("DNS rebinding"), "{:?}", r.body);
    assert_eq!(proxy.server.registry().running(), 1, "nothing aborted");
    let (s, v) = call(&base, "/console/api/abort-all", None, Some((JSON, "{}"))).await;
    assert_eq!((s, v["aborted"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{v}");
    assert_eq!(audit_lines(&audit).pop().expect("audited")["caller"], "console");
}

/// A cross-site form can post `text/plain`, `application/x-www-form-urlencoded` or `multipart/form-data`
/// with the browser's cookies, never `application/json` nor an `authorization` header: changes need both.
#[tokio::test]
async fn a_change_that_is_not_json_is_refused() {
    let (proxy, base, _) = server(false).await;
    proxy.start("name: a\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let (s, v) = call(&base, "/console/api/abort-all", None, Some((ct, "{}"))).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}: {v}");
        assert!(v["error"].as_str().unwrap_or_default().contains("application/json"), "{v}");
    }
    assert_eq!(proxy.server.registry().running(), 1, "still running");
    // Reads are GET only, changes POST only.
    let r =
        send(&client(), request("GET", &format!("{base}/console/api/abort-all")).body(body("")).expect("req")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = call(&base, "/console/api/state", None, Some((JSON, "{}"))).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, v) = call(&base, "/console/api/abort-all", None, Some((JSON, "{\"why\": 1}"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused: {v}");
    let big = format!("{{\"id\": \"{}\"}}", "x".repeat(70_000));
    assert_eq!(
        call(&base, "/console/api/experiments/stop", None, Some((JSON, &big))).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(proxy.server.registry().running(), 1, "still running");
}

/// The catalogue with its parameters; a start with parameters, its experiments in the state and the event
/// log; bad parameters answered 400 naming the parameter; a stop, and a stop of what has ended.
#[tokio::test]
async fn scenarios_start_with_parameters_and_bad_ones_are_named() {
    let (proxy, base, audit) = server(true).await;
    let (_, cat) = call(&base, "/console/api/scenarios", Some(VIEWER), None).await;
    let storm = cat["scenarios"]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == "edge-5xx-storm")
        .expect("built-in")
        .clone();
    let pct =
        storm["params"].as_array().expect("params").iter().find(|p| p["name"] == "percentage").expect("param").clone();
    assert_eq!(
        (&pct["type"], &pct["default"], &pct["min"], &pct["max"]),
        (&json!("percentage"), &json!("30"), &json!(0.0), &json!(100.0))
    );
    let status =
        storm["params"].as_array().expect("params").iter().find(|p| p["name"] == "status").expect("param").clone();
    assert_eq!(status["choices"], json!(["500", "502", "503", "504"]));

    let start = |params: Value| json!({ "scenario": "edge-5xx-storm", "params": params }).to_string();
    let (s, v) =
        call(&base, "/console/api/scenarios/start", Some(ADMIN), Some((JSON, &start(json!({ "percentage": "150" })))))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "params.percentage: must be between 0 and 100, got 150");
    let (s, v) =
        call(&base, "/console/api/scenarios/start", Some(ADMIN), Some((JSON, &start(json!({ "sped": 2 }))))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().starts_with("params.sped: "), "{v}");
    let (s, v) =
        call(&base, "/console/api/scenarios/start", Some(ADMIN), Some((JSON, &start(json!({ "status": 418 }))))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().starts_with("params.status: must be one of"), "{v}");
    let (s, v) =
        call(&base, "/console/api/scenarios/start", Some(ADMIN), Some((JSON, "{\"scenario\": \"nope\"}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // A selector of sidecars is the controller's: a sidecar's console says so.
    let selected = json!({ "scenario": "edge-5xx-storm", "params": {}, "sidecars": "app=web" }).to_string();
    let (s, v) = call(&base, "/console/api/scenarios/start", Some(ADMIN), Some((JSON, &selected))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().starts_with("sidecars: this is a sidecar's console"), "{v}");
    assert_eq!(proxy.server.registry().running(), 0, "nothing started");

    let body = start(json!({ "percentage": 100, "status": "502", "routes": ["api"], "duration": "5m" }));
    let (s, v) = call(&base, "/console/api/scenarios/start", Some(ADMIN), Some((JSON, &body))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["experiments"][0].as_str().expect("an id").to_owned();
    assert_eq!(get(&client(), &proxy.url("/api/x")).await.status, 502, "the parameters were used");
    assert_eq!(get(&client(), &proxy.url("/other")).await.status, 200, "only the api route");

    let (_, st) = call(&base, "/console/api/state", Some(VIEWER), None).await;
    let e = &st["experiments"][0];
    assert_eq!((&e["id"], &e["state"], &e["percentage"]), (&json!(id), &json!("running"), &json!(100.0)));
    assert_eq!((&e["targets"]["routes"], &e["faults"]), (&json!(["api"]), &json!(["abort"])));
    assert_eq!(e["counters"]["injected"], 1);
    assert!(e["ends"].as_u64().unwrap_or(0) > st["now"].as_u64().unwrap_or(u64::MAX), "{e}");

    let (s, v) =
        call(&base, "/console/api/experiments/stop", Some(ADMIN), Some((JSON, &json!({ "id": id }).to_string()))).await;
    assert_eq!((s, &v["experiment"]["state"]), (StatusCode::OK, &json!("stopped")), "{v}");
    let (s, v) =
        call(&base, "/console/api/experiments/stop", Some(ADMIN), Some((JSON, &json!({ "id": id }).to_string()))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _) =
        call(&base, "/console/api/experiments/stop", Some(ADMIN), Some((JSON, "{\"id\": \"exp-nope\"}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The event log, numbered; `after` gives only what is newer.
    let mut events;
    assert_eventually!(
        {
            events = call(&base, "/console/api/events", Some(VIEWER), None).await.1;
            events["events"].as_array().is_some_and(|l| l.iter().any(|e| e["kind"] == "ended"))
        },
        "the event log has the start and the stop: {events}"
    );
    let lines = events["events"].as_array().expect("lines");
    let kinds: Vec<&str> =
        lines.iter().filter(|l| l["experiment"] == json!(id)).filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds, ["started", "ended"], "{events}");
    let last = events["last"].as_u64().expect("seq");
    assert_eq!(lines.last().and_then(|l| l["seq"].as_u64()), Some(last));
    let (_, newer) = call(&base, &format!("/console/api/events?after={last}"), Some(VIEWER), None).await;
    assert_eq!(newer["events"], json!([]));

    let actions: Vec<(Value, Value)> =
        audit_lines(&audit).iter().map(|l| (l["caller"].clone(), l["action"].clone())).collect();
    assert!(actions.contains(&(json!("console (ops)"), json!("StartScenario"))), "{actions:?}");
    assert!(actions.contains(&(json!("console (ops)"), json!("StopExperiment"))), "{actions:?}");
}
