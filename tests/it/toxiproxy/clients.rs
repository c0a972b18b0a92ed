//! Toxiproxy's own client libraries, as the registries ship them, driving edgefault's Toxiproxy API over
//! loopback: PyPI `toxiproxy-python` and npm `toxiproxy-node-client` (installed by `.ci/install-peers.sh`).
//! Each script checks what it sees (shapes, errors, the toxic's measured effect on a real echo server);
//! the server's side is checked here over gRPC.

use std::{path::PathBuf, process::Command};

use serde_json::Value;

use super::*;
use crate::support::peers;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers").join(name)
}

/// Runs a client script off the runtime's threads; its one JSON line.
async fn run(mut cmd: Command) -> Value {
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("joined").expect("the client runs");
    assert!(
        out.status.success(),
        "the client failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_s_python_client_drives_the_api() {
    let Some(python) = peers::python(&["toxiproxy", "requests"]) else { return };
    let echo = FakeUpstream::tcp_echo().start().await;
    let (proxy, api) = server("").await;
    let addr = proxy.server.toxiproxy_addr().expect("api");
    let mut cmd = Command::new(&python);
    cmd.arg(script("toxiproxy_python.py")).args([addr.ip().to_string(), addr.port().to_string(), echo.to_string()]);
    let seen = run(cmd).await;
    assert!(seen["latency_ms"].as_f64().unwrap() >= 300.0, "{seen}");
    assert!(seen["version"].as_str().unwrap().contains("edgefault"), "{seen}");
    // Everything it created is gone, and nothing it started still runs.
    assert_eq!(call("GET", &format!("{api}/proxies"), None).await.1, serde_json::json!({}));
    assert!(running(&proxy).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_s_python_client_sends_the_token_in_its_url() {
    let Some(python) = peers::python(&["toxiproxy", "requests"]) else { return };
    let dir = std::env::temp_dir().join(format!("edgefault-toxiproxy-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.yaml");
    std::fs::write(&tokens, "- { name: tests, role: admin, token: python-client-token-0123456789 }\n").unwrap();
    let echo = FakeUpstream::tcp_echo().start().await;
    let (proxy, api) =
        server(&format!("control: {{ bind: \"127.0.0.1:0\", tokens_file: \"{}\" }}\n", tokens.display())).await;
    assert_eq!(call("GET", &format!("{api}/proxies"), None).await.0, StatusCode::UNAUTHORIZED);
    let addr = proxy.server.toxiproxy_addr().expect("api");
    let mut cmd = Command::new(&python);
    cmd.arg(script("toxiproxy_python.py")).args([
        addr.ip().to_string(),
        addr.port().to_string(),
        echo.to_string(),
        "python-client-token-0123456789".into(),
    ]);
    let seen = run(cmd).await;
    assert!(seen["latency_ms"].as_f64().unwrap() >= 300.0, "{seen}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_s_node_client_drives_the_api() {
    let Some(modules) = peers::node(&["toxiproxy-node-client"]) else { return };
    let echo = FakeUpstream::tcp_echo().start().await;
    let (proxy, api) = server("").await;
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", &modules).arg(script("toxiproxy_node.js")).args([api.clone(), echo.to_string()]);
    let seen = run(cmd).await;
    assert!(seen["latency_ms"].as_f64().unwrap() >= 300.0, "{seen}");
    assert!(seen["updated_ms"].as_f64().unwrap() >= 600.0, "{seen}");
    assert_eq!(call("GET", &format!("{api}/proxies"), None).await.1, serde_json::json!({}));
    assert!(running(&proxy).await.is_empty());
}
