//! What a newcomer trips over first, each on the real binary or the real control port: plain logs when
//! stderr is not a terminal, addresses logged as addresses, `ctl top`'s header, `ctl list -o json` as one
//! JSON array, help text for `ctl start`, and reflection listing every service of the control port.

use std::process::Command;

use tokio_stream::StreamExt;

use crate::support::{peers, *};

#[tokio::test]
async fn logs_to_a_pipe_are_plain_text_with_plain_addresses() {
    let up = upstream().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--upstream", &format!("http://{up}")])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawns");
    let stderr = child.stderr.take().expect("stderr");
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.contains("control service listening"))
            .collect::<Vec<_>>()
    });
    let text = tokio::time::timeout(std::time::Duration::from_secs(20), lines)
        .await
        .expect("in time")
        .expect("joined")
        .join("\n");
    let _ = child.kill();
    let _ = child.wait();
    assert!(!text.contains('\u{1b}'), "no colour codes in piped logs:\n{text}");
    assert!(text.contains("addr=127.0.0.1:") && !text.contains("Some("), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_top_list_json_and_start_help_read_well() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: one\nfaults: [{ delay: { fixed: 1ms } }]\n").await;
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_edgefault")).args(args).output().expect("runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let control = proxy.control_url.clone();
    let top = tokio::task::block_in_place(|| run(&["ctl", "--control", &control, "top", "--once"]));
    let header = top.lines().next().unwrap_or_default();
    assert!(header.ends_with("every 1s"), "{header}");
    let list = tokio::task::block_in_place(|| run(&["ctl", "--control", &control, "list", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&list).expect("one JSON document");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "an array, even of one: {list}");
    let help = tokio::task::block_in_place(|| run(&["ctl", "start", "--help"]));
    assert!(help.contains("All or none") && help.contains("`-` reads the standard input"), "{help}");
}

#[tokio::test]
async fn reflection_lists_every_service_including_health() {
    let proxy = proxy(upstream().await).await;
    let channel = tonic::transport::Channel::from_shared(proxy.control_url.clone())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut c = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = c.server_reflection_info(tokio_stream::iter([req])).await.expect("reflection").into_inner();
    let resp = stream.next().await.expect("an answer").expect("ok");
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.message_response
    else {
        panic!("not a service list: {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["edgefault.v1.FaultControl", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
}

/// The official Python reflection client (grpcio-reflection speaks only `grpc.reflection.v1alpha`) lists
/// the services and reads FaultControl's methods and messages from the control port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_reflection_client_reads_the_control_port() {
    let Some(py) = peers::python(&["grpc", "grpc_reflection"]) else { return };
    let proxy = proxy(upstream().await).await;
    let target = proxy.server.control_addr().to_string();
    let out = tokio::task::block_in_place(|| peers::run_python(&py, "reflection.py", &[&target]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let services: Vec<&str> = v["services"].as_array().expect("list").iter().filter_map(|s| s.as_str()).collect();
    for want in ["edgefault.v1.FaultControl", "grpc.health.v1.Health"] {
        assert!(services.contains(&want), "{want} missing from {services:?}");
    }
    let methods: Vec<&str> = v["methods"].as_array().expect("list").iter().filter_map(|s| s.as_str()).collect();
    for want in ["StartExperiment", "AbortAll", "WatchEvents", "StartScenario"] {
        assert!(methods.contains(&want), "{want} missing from {methods:?}");
    }
    assert!(v["spec_fields"].as_array().expect("fields").iter().any(|f| f == "faults"));
}
