//! The Toxiproxy-compatible REST API: its routes, JSON shapes and error bodies (`api`), what its toxics do
//! to a real TCP echo server (`effects`), the safety model around it (`safety`), and Toxiproxy's own
//! client libraries driving it (`clients`).

use std::net::SocketAddr;

use http::StatusCode;
use serde_json::Value;

use crate::support::*;

mod api;
mod clients;
mod effects;
mod safety;

/// A server with the Toxiproxy API on, beside an HTTP listener; `extra` is appended to the config (limits,
/// control with tokens). Returns the server and the API's base URL.
async fn server(extra: &str) -> (Proxy, String) {
    let http = upstream().await;
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: api, upstream: \"http://{http}\" }}]\ntoxiproxy: {{ bind: \"127.0.0.1:0\", max_proxies: 4 }}\n{extra}"
    );
    let yaml = if yaml.contains("\ncontrol:") { yaml } else { format!("{yaml}control: {{ bind: \"127.0.0.1:0\" }}\n") };
    let proxy = proxy_yaml(&yaml).await;
    let api = format!("http://{}", proxy.server.toxiproxy_addr().expect("the toxiproxy API listens"));
    (proxy, api)
}

/// One call to the API: its status and JSON body (`Null` when empty).
async fn call(method: &str, url: &str, json: Option<Value>) -> (StatusCode, Value) {
    call_with(method, url, json, &[]).await
}

async fn call_with(method: &str, url: &str, json: Option<Value>, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match json {
        Some(j) => req.header("content-type", "application/json").body(body(j.to_string())),
        None => req.body(body("")),
    }
    .expect("request");
    let reply = send(&client(), req).await;
    let value = if reply.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {}", String::from_utf8_lossy(&reply.body)))
    };
    (reply.status, value)
}

/// Creates proxy `name` in front of `upstream` on a free port; returns the address it listens on.
async fn create(api: &str, name: &str, upstream: SocketAddr) -> SocketAddr {
    let (status, body) = call(
        "POST",
        &format!("{api}/proxies"),
        Some(serde_json::json!({ "name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string() })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["listen"].as_str().expect("listen").parse().expect("an address")
}

/// The names of the experiments running now, over gRPC.
async fn running(proxy: &Proxy) -> Vec<String> {
    let mut c = proxy.control().await;
    let list =
        c.list_experiments(edgefault::pb::v1::ListExperimentsRequest::default()).await.expect("list").into_inner();
    list.experiments
        .into_iter()
        .filter(|e| e.state == edgefault::pb::v1::ExperimentState::Running as i32)
        .map(|e| e.spec.map(|s| s.name).unwrap_or_default())
        .collect()
}
