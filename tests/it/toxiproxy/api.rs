//! Every endpoint with Toxiproxy's status codes and JSON shapes, and every refusal with its error body.

use http::StatusCode;
use serde_json::json;

use super::*;

#[tokio::test]
async fn every_endpoint_answers_with_toxiproxy_s_shapes_and_codes() {
    let echo = FakeUpstream::tcp_echo().start().await;
    let (_proxy, api) = server("").await;

    let (status, version) = call("GET", &format!("{api}/version"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(version["version"].as_str().is_some_and(|v| v.starts_with("edgefault-")), "{version}");
    assert_eq!(call("GET", &format!("{api}/proxies"), None).await, (StatusCode::OK, json!({})));

    // Create: 201 with the bound address; the same name again: 409.
    let listen = create(&api, "redis", echo).await;
    assert_ne!(listen.port(), 0);
    let shown = json!({ "name": "redis", "listen": listen.to_string(), "upstream": echo.to_string(), "enabled": true, "toxics": [] });
    assert_eq!(call("GET", &format!("{api}/proxies/redis"), None).await, (StatusCode::OK, shown.clone()));
    assert_eq!(call("GET", &format!("{api}/proxies"), None).await, (StatusCode::OK, json!({ "redis": shown })));
    let again = json!({ "name": "redis", "upstream": echo.to_string() });
    assert_eq!(
        call("POST", &format!("{api}/proxies"), Some(again)).await,
        (StatusCode::CONFLICT, json!({ "error": "proxy already exists", "status": 409 }))
    );
    assert_eq!(
        call("GET", &format!("{api}/proxies/nope"), None).await,
        (StatusCode::NOT_FOUND, json!({ "error": "proxy not found", "status": 404 }))
    );

    // Toxics: add (200, Toxiproxy's defaults filled in), list, show, update (merged), remove (204).
    let toxics = format!("{api}/proxies/redis/toxics");
    let (status, added) =
        call("POST", &toxics, Some(json!({ "type": "latency", "attributes": { "latency": 50 } }))).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let toxic = json!({ "name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0, "attributes": { "latency": 50, "jitter": 0 } });
    assert_eq!(added, toxic);
    assert_eq!(call("GET", &toxics, None).await, (StatusCode::OK, json!([toxic.clone()])));
    assert_eq!(call("GET", &format!("{toxics}/latency_downstream"), None).await, (StatusCode::OK, toxic.clone()));
    assert_eq!(call("GET", &format!("{api}/proxies/redis"), None).await.1["toxics"], json!([toxic]));
    assert_eq!(
        call("POST", &toxics, Some(json!({ "type": "latency" }))).await,
        (StatusCode::CONFLICT, json!({ "error": "toxic already exists", "status": 409 }))
    );
    let (status, updated) = call(
        "PATCH",
        &format!("{toxics}/latency_downstream"),
        Some(json!({ "attributes": { "jitter": 5 }, "toxicity": 0.5 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["attributes"], json!({ "latency": 50, "jitter": 5 }));
    assert_eq!(updated["toxicity"], json!(0.5));
    // POST updates too (Toxiproxy's older clients use it).
    let (status, updated) =
        call("POST", &format!("{toxics}/latency_downstream"), Some(json!({ "attributes": { "latency": 60 } }))).await;
    assert_eq!((status, updated["attributes"]["latency"].clone()), (StatusCode::OK, json!(60)));
    assert_eq!(
        call("DELETE", &format!("{toxics}/latency_downstream"), None).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_eq!(
        call("DELETE", &format!("{toxics}/latency_downstream"), None).await,
        (StatusCode::NOT_FOUND, json!({ "error": "toxic not found", "status": 404 }))
    );
    assert_eq!(call("GET", &toxics, None).await, (StatusCode::OK, json!([])));

    // Proxy update: disable and enable again on the same port.
    let (status, off) = call("POST", &format!("{api}/proxies/redis"), Some(json!({ "enabled": false }))).await;
    assert_eq!((status, off["enabled"].clone()), (StatusCode::OK, json!(false)));
    assert!(tokio::net::TcpStream::connect(listen).await.is_err(), "a disabled proxy does not listen");
    let (status, on) = call("PATCH", &format!("{api}/proxies/redis"), Some(json!({ "enabled": true }))).await;
    assert_eq!(
        (status, on["enabled"].clone(), on["listen"].clone()),
        (StatusCode::OK, json!(true), json!(listen.to_string()))
    );
    assert!(tokio::net::TcpStream::connect(listen).await.is_ok());

    // Populate: keeps what is the same, creates the rest; 201 with every proxy of the list.
    let list = json!([
        { "name": "redis", "listen": listen.to_string(), "upstream": echo.to_string() },
        { "name": "pg", "listen": "127.0.0.1:0", "upstream": echo.to_string(), "enabled": true },
    ]);
    let (status, populated) = call("POST", &format!("{api}/populate"), Some(list)).await;
    assert_eq!(status, StatusCode::CREATED, "{populated}");
    let names: Vec<&str> =
        populated["proxies"].as_array().expect("proxies").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["redis", "pg"]);
    assert_eq!(populated["proxies"][0]["listen"], json!(listen.to_string()), "redis was kept as it was");

    // Reset: toxics gone, every proxy enabled. 204.
    call("POST", &toxics, Some(json!({ "type": "timeout" }))).await;
    call("POST", &format!("{api}/proxies/pg"), Some(json!({ "enabled": false }))).await;
    assert_eq!(call("POST", &format!("{api}/reset"), None).await, (StatusCode::NO_CONTENT, Value::Null));
    let (_, all) = call("GET", &format!("{api}/proxies"), None).await;
    assert_eq!((all["redis"]["toxics"].clone(), all["pg"]["enabled"].clone()), (json!([]), json!(true)));

    // Delete: 204, then 404.
    assert_eq!(call("DELETE", &format!("{api}/proxies/pg"), None).await, (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(call("GET", &format!("{api}/proxies/pg"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call("DELETE", &format!("{api}/proxies/pg"), None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_bad_request_is_refused_with_what_was_wrong() {
    let echo = FakeUpstream::tcp_echo().start().await;
    let (_proxy, api) = server("").await;
    create(&api, "redis", echo).await;
    let proxies = format!("{api}/proxies");
    let toxics = format!("{api}/proxies/redis/toxics");
    let refused = |status: StatusCode, body: &Value, needle: &str| {
        assert_eq!(body["status"], json!(status.as_u16()), "{body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    };
    let (populate, version, metrics) = (format!("{api}/populate"), format!("{api}/version"), format!("{api}/metrics"));
    let (missing_proxy, missing_toxic) = (format!("{api}/proxies/nope/toxics"), format!("{toxics}/nope"));
    let cases: Vec<(&str, &str, Value, StatusCode, &str)> = vec![
        ("POST", &proxies, json!({ "upstream": echo.to_string() }), StatusCode::BAD_REQUEST, "name"),
        ("POST", &proxies, json!({ "name": "x" }), StatusCode::BAD_REQUEST, "upstream"),
        ("POST", &proxies, json!({ "name": "x", "upstream": "nohost" }), StatusCode::BAD_REQUEST, "upstream"),
        (
            "POST",
            &proxies,
            json!({ "name": "x", "upstream": "a:1", "listen": "nowhere" }),
            StatusCode::BAD_REQUEST,
            "listen",
        ),
        (
            "POST",
            &proxies,
            json!({ "name": "x", "upstream": "a:1", "enabled": "yes" }),
            StatusCode::BAD_REQUEST,
            "enabled",
        ),
        ("POST", &proxies, json!({ "name": "x y", "upstream": "a:1" }), StatusCode::BAD_REQUEST, "name"),
        ("POST", &proxies, json!({ "name": "x", "upstream": "a:1", "lisen": "1" }), StatusCode::BAD_REQUEST, "lisen"),
        ("POST", &proxies, json!({ "name": "web", "upstream": "a:1" }), StatusCode::CONFLICT, "listener of the config"),
        ("POST", &proxies, json!([1]), StatusCode::BAD_REQUEST, "object"),
        ("POST", &toxics, json!({ "type": "flood" }), StatusCode::BAD_REQUEST, "invalid toxic type"),
        ("POST", &toxics, json!({ "type": "latency", "stream": "sideways" }), StatusCode::BAD_REQUEST, "stream"),
        ("POST", &toxics, json!({ "type": "latency", "toxicity": 1.5 }), StatusCode::BAD_REQUEST, "toxicity"),
        (
            "POST",
            &toxics,
            json!({ "type": "latency", "attributes": { "delay": 5 } }),
            StatusCode::BAD_REQUEST,
            "attributes.delay",
        ),
        (
            "POST",
            &toxics,
            json!({ "type": "bandwidth", "attributes": { "rate": 0 } }),
            StatusCode::BAD_REQUEST,
            "attributes.rate",
        ),
        (
            "POST",
            &toxics,
            json!({ "type": "slicer", "attributes": { "average_size": 2, "size_variation": 3 } }),
            StatusCode::BAD_REQUEST,
            "size_variation",
        ),
        ("POST", &missing_proxy, json!({ "type": "latency" }), StatusCode::NOT_FOUND, "proxy not found"),
        ("PATCH", &missing_toxic, json!({}), StatusCode::NOT_FOUND, "toxic not found"),
        (
            "POST",
            &populate,
            json!([{ "name": "a", "upstream": "a:1" }, { "name": "a", "upstream": "a:2" }]),
            StatusCode::BAD_REQUEST,
            "twice",
        ),
        (
            "POST",
            &populate,
            json!([{ "name": "ok", "upstream": "a:1" }, { "name": "bad" }]),
            StatusCode::BAD_REQUEST,
            "[1]: missing required field: upstream",
        ),
        ("DELETE", &version, json!({}), StatusCode::METHOD_NOT_ALLOWED, "DELETE"),
        ("GET", &metrics, json!({}), StatusCode::NOT_FOUND, "no such endpoint"),
    ];
    for (method, url, body, status, needle) in cases {
        let (got, answer) = call(method, url, if method == "GET" { None } else { Some(body.clone()) }).await;
        assert_eq!(got, status, "{method} {url} {body}: {answer}");
        refused(status, &answer, needle);
    }
    // A body that is not JSON.
    let req = request("POST", &proxies).body(crate::support::body("{name")).expect("request");
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&reply.body).contains("bad request body"));
    // Nothing of the refused calls was created: only the one proxy, without toxics.
    let (_, all) = call("GET", &proxies, None).await;
    assert_eq!(all.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()), Some(vec!["redis".to_owned()]));
    assert_eq!(all["redis"]["toxics"], json!([]));
}

#[tokio::test]
async fn a_browser_is_refused_as_toxiproxy_refuses_it() {
    let (_proxy, api) = server("").await;
    let req = request("GET", &format!("{api}/proxies"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .body(crate::support::body(""))
        .expect("request");
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&reply.body).contains("User agent not allowed"));
}
