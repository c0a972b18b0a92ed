//! The API's proxies and toxics live under the safety model of every experiment: listed over gRPC, ended by
//! AbortAll (a disabled proxy listens again), bounded by the server's limits, behind the control tokens,
//! refused off loopback without them.

use std::time::Duration;

use edgefault::config::{Config, Overrides};
use serde_json::json;
use tokio::net::TcpStream;

use super::*;

#[tokio::test]
async fn toxics_and_disabled_proxies_are_experiments_that_abort_all_ends() {
    let echo = FakeUpstream::tcp_echo().start().await;
    let (proxy, api) = server("admin: { bind: \"127.0.0.1:0\" }\n").await;
    let mut events = proxy
        .control()
        .await
        .watch_events(edgefault::pb::v1::WatchEventsRequest { no_stats: true, ..Default::default() })
        .await
        .expect("watch")
        .into_inner();
    create(&api, "redis", echo).await;
    let pg = create(&api, "pg", echo).await;
    call(
        "POST",
        &format!("{api}/proxies/redis/toxics"),
        Some(json!({ "type": "latency", "attributes": { "latency": 100 } })),
    )
    .await;
    call("POST", &format!("{api}/proxies/pg"), Some(json!({ "enabled": false }))).await;
    let started = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("an event")
        .expect("stream")
        .expect("open");
    assert_eq!(started.experiment_name, "toxiproxy redis/latency_downstream");
    assert!(matches!(started.kind, Some(edgefault::pb::v1::event::Kind::Started(_))), "{started:?}");
    let mut names = running(&proxy).await;
    names.sort();
    assert_eq!(names, ["toxiproxy pg disabled", "toxiproxy redis/latency_downstream"]);
    assert!(TcpStream::connect(pg).await.is_err());

    // Metrics count the proxies' connections like any TCP listener's.
    let redis: SocketAddr =
        call("GET", &format!("{api}/proxies/redis"), None).await.1["listen"].as_str().unwrap().parse().unwrap();
    drop(TcpStream::connect(redis).await.expect("connect"));
    let admin = proxy.server.admin_addr().expect("admin");
    let line = "edgefault_tcp_connections_total{listener=\"redis\",outcome=\"injected\"} 1";
    let mut scraped = String::new();
    for _ in 0..50 {
        scraped = String::from_utf8_lossy(&get(&client(), &format!("http://{admin}/metrics")).await.body).into_owned();
        if scraped.contains(line) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(scraped.contains(line), "{line} not in the metrics");

    assert_eq!(proxy.abort_all().await, 2);
    // The API catches up at once: the toxic is gone, pg listens again on its port.
    let mut listening = false;
    for _ in 0..50 {
        let (_, all) = call("GET", &format!("{api}/proxies"), None).await;
        if all["pg"]["enabled"] == json!(true) && all["redis"]["toxics"] == json!([]) {
            listening = TcpStream::connect(pg).await.is_ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(listening, "pg listens again after AbortAll");
    assert!(running(&proxy).await.is_empty());

    // A StopExperiment over gRPC removes the toxic it runs, too.
    call("POST", &format!("{api}/proxies/redis/toxics"), Some(json!({ "name": "t", "type": "timeout" }))).await;
    let mut c = proxy.control().await;
    let list = c.list_experiments(edgefault::pb::v1::ListExperimentsRequest::default()).await.unwrap().into_inner();
    let id = list
        .experiments
        .iter()
        .find(|e| e.spec.as_ref().is_some_and(|s| s.name == "toxiproxy redis/t"))
        .unwrap()
        .id
        .clone();
    proxy.stop(&id).await;
    assert_eq!(call("GET", &format!("{api}/proxies/redis/toxics"), None).await.1, json!([]));
}

#[tokio::test]
async fn the_server_s_limits_bound_proxies_and_toxics() {
    let echo = FakeUpstream::tcp_echo().start().await;
    let (_proxy, api) =
        server("limits: { max_active: 2, max_percentage: 50, max_duration: 1m, default_duration: 30s }\n").await;
    for name in ["a", "b", "c", "d"] {
        create(&api, name, echo).await;
    }
    let (status, body) =
        call("POST", &format!("{api}/proxies"), Some(json!({ "name": "e", "upstream": echo.to_string() }))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body["error"].as_str().unwrap().contains("toxiproxy.max_proxies"), "{body}");

    let toxics = format!("{api}/proxies/a/toxics");
    let (status, body) = call("POST", &toxics, Some(json!({ "type": "latency" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "toxicity 1 is above max_percentage 50");
    assert!(body["error"].as_str().unwrap().contains("toxicity"), "{body}");
    let (status, body) =
        call("POST", &toxics, Some(json!({ "type": "latency", "toxicity": 0.5, "attributes": { "latency": 120000 } })))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("limits.max_duration"), "{body}");

    for name in ["one", "two"] {
        let (status, body) =
            call("POST", &toxics, Some(json!({ "name": name, "type": "latency", "toxicity": 0.5 }))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) =
        call("POST", &toxics, Some(json!({ "name": "three", "type": "latency", "toxicity": 0.5 }))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body["error"].as_str().unwrap().contains("limits.max_active"), "{body}");
    // Disabling is an experiment too, of every connection: refused above max_percentage, and the proxy stays up.
    let (status, body) = call("POST", &format!("{api}/proxies/b"), Some(json!({ "enabled": false }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("limits.max_percentage"), "{body}");
    assert_eq!(call("GET", &format!("{api}/proxies/b"), None).await.1["enabled"], json!(true));
    // A refused update leaves the toxic as it was.
    let (status, _) = call("PATCH", &format!("{toxics}/one"), Some(json!({ "toxicity": 0.9 }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(call("GET", &format!("{toxics}/one"), None).await.1["toxicity"], json!(0.5));
    // Deleting a proxy frees its slot and its experiments.
    assert_eq!(call("DELETE", &format!("{api}/proxies/a"), None).await.0, StatusCode::NO_CONTENT);
    create(&api, "e", echo).await;
    let (status, _) =
        call("POST", &format!("{api}/proxies/e/toxics"), Some(json!({ "type": "latency", "toxicity": 0.5 }))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_guard_the_api_and_read_only_ones_only_read() {
    let dir = std::env::temp_dir().join(format!("edgefault-toxiproxy-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.yaml");
    std::fs::write(
        &tokens,
        "- { name: ops, role: admin, token: toxiproxy-admin-0123456789 }\n- { name: viewer, role: read-only, token: toxiproxy-viewer-0123456789 }\n",
    )
    .unwrap();
    let audit = dir.join("audit.log");
    let extra = format!(
        "control: {{ bind: \"127.0.0.1:0\", tokens_file: \"{}\" }}\naudit: {{ path: \"{}\" }}\n",
        tokens.display(),
        audit.display()
    );
    let echo = FakeUpstream::tcp_echo().start().await;
    let (_proxy, api) = server(&extra).await;
    let proxies = format!("{api}/proxies");
    let create = json!({ "name": "r", "upstream": echo.to_string() });

    let (status, body) = call("GET", &proxies, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let viewer = [("authorization", "Bearer toxiproxy-viewer-0123456789")];
    assert_eq!(call_with("GET", &proxies, None, &viewer).await.0, StatusCode::OK);
    let (status, body) = call_with("POST", &proxies, Some(create.clone()), &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("read-only"), "{body}");
    // Basic credentials carry the token too: what clients send for http://<token>@host:port.
    let basic = format!("Basic {}", base64_encode("toxiproxy-admin-0123456789:"));
    let (status, body) = call_with("POST", &proxies, Some(create), &[("authorization", &basic)]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let wrong = [("authorization", "Bearer not-a-token-of-this-server")];
    assert_eq!(call_with("DELETE", &format!("{proxies}/r"), None, &wrong).await.0, StatusCode::UNAUTHORIZED);
    let admin = [("authorization", "Bearer toxiproxy-admin-0123456789")];
    let bad = json!({ "type": "flood" });
    assert_eq!(call_with("POST", &format!("{proxies}/r/toxics"), Some(bad), &admin).await.0, StatusCode::BAD_REQUEST);

    // The audit log names who did what.
    let log = std::fs::read_to_string(&audit).unwrap();
    let created = log.lines().find(|l| l.contains("toxiproxy POST /proxies")).expect("an audit line");
    assert!(created.contains("\"ops\""), "{created}");
    let refused =
        log.lines().find(|l| l.contains("toxiproxy POST /proxies/r/toxics")).expect("the refused call's line");
    assert!(refused.contains("invalid toxic type"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_encode(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n =
            (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_toxiproxy_section_is_checked_field_by_field() {
    let problems = |yaml: &str, o: &Overrides| match Config::from_yaml(yaml, "test", o) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    };
    let none = Overrides::default();
    let base = "listeners: [{ name: web, bind: \"127.0.0.1:0\", routes: [{ name: api, upstream: \"http://127.0.0.1:9\" }] }]\n";
    let p = problems(&format!("{base}toxiproxy: {{ bind: \"0.0.0.0:8474\" }}\n"), &none);
    assert!(p.iter().any(|p| p.starts_with("toxiproxy.bind: 0.0.0.0:8474 is not a loopback address")), "{p:?}");
    let p = problems(
        &format!("{base}toxiproxy: {{ bind: \"127.0.0.1:8474\", max_proxies: 0, connect_timeout: soon }}\n"),
        &none,
    );
    assert!(p.iter().any(|p| p.starts_with("toxiproxy.max_proxies")), "{p:?}");
    assert!(p.iter().any(|p| p.starts_with("toxiproxy.connect_timeout")), "{p:?}");
    let p = problems(&format!("{base}toxiproxy: {{ bind: \"localhost\" }}\n"), &none);
    assert!(p.iter().any(|p| p.starts_with("toxiproxy.bind")), "{p:?}");
    let p = problems(&format!("{base}toxiproxy: {{ max_proxies: 3 }}\n"), &none);
    assert!(p.iter().any(|p| p.starts_with("toxiproxy.bind: required")), "{p:?}");
    let p = problems(&format!("{base}toxiproxy: {{ bind: \"127.0.0.1:8474\", port: 1 }}\n"), &none);
    assert!(p.iter().any(|p| p.contains("port")), "{p:?}");
    let flag = Overrides { toxiproxy: Some("[::]:8474".into()), ..Overrides::default() };
    let p = problems(base, &flag);
    assert!(p.iter().any(|p| p.starts_with("--toxiproxy: [::]:8474 is not a loopback address")), "{p:?}");
    let with_token = Overrides {
        toxiproxy: Some("[::]:8474".into()),
        admin_token: Some("a-long-enough-admin-token-0123".into()),
        ..Overrides::default()
    };
    assert!(problems(base, &with_token).is_empty());
    // The controller proxies nothing: the section is a sidecar's.
    let file = std::env::temp_dir().join(format!("edgefault-controller-toxiproxy-{}.yaml", std::process::id()));
    std::fs::write(&file, "toxiproxy: { bind: \"127.0.0.1:8474\" }\n").unwrap();
    let c = edgefault::config::ControllerConfig::load(Some(&file), &none);
    let _ = std::fs::remove_file(&file);
    assert!(c.err().is_some_and(|e| e.problems.iter().any(|p| p.starts_with("toxiproxy: a sidecar's setting"))));
}
