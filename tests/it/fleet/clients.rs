//! The fleet as a user drives it: the real binaries (`edgefault controller`, `serve --controller`, `ctl`),
//! tokens with roles, a downward-API labels file, and the official Python gRPC client.

use std::{path::PathBuf, process::Command, time::Duration};

use crate::support::{self, binary, peers, FakeUpstream};

const ADMIN: &str = "admin-secret-0123456789";
const SIDECAR: &str = "sidecar-secret-0123456789";
const VIEWER: &str = "viewer-secret-0123456789";

fn write(name: &str, text: &str) -> PathBuf {
    support::temp_file(name, text)
}

fn edgefault(args: &[&str]) -> (bool, String, String) {
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_edgefault"))
            .args(args)
            .env_remove("EDGEFAULT_CONTROL")
            .env_remove("EDGEFAULT_TOKEN")
            .output()
            .expect("runs")
    });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binaries_ctl_and_the_python_client_drive_the_fleet() {
    let tokens = write(
        "fleet-tokens.yaml",
        &format!(
            "- {{ name: ops, role: admin, token: {ADMIN} }}\n- {{ name: pods, role: sidecar, token: {SIDECAR} }}\n- {{ name: viewer, role: read-only, token: {VIEWER} }}\n"
        ),
    );
    let admin_file = write("fleet-admin-token", ADMIN);
    let sidecar_file = write("fleet-sidecar-token", SIDECAR);
    let viewer_file = write("fleet-viewer-token", VIEWER);
    let labels = write("fleet-labels", "app=\"web\"\nzone=\"eu-1\"\npod-template-hash=\"5d4f8b\"\n");
    let controller = binary::controller(&["--control", "127.0.0.1:0", "--tokens-file", tokens.to_str().unwrap()]);
    let url = controller.url();
    let upstream = FakeUpstream::app().start().await.to_string();
    let up = format!("http://{upstream}");
    let serve = |id: &str, extra: &[&str], token: &PathBuf| {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up,
            "--control",
            "127.0.0.1:0",
            "--controller",
            &url,
            "--sidecar-id",
            id,
            "--controller-token-file",
            token.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        binary::serve(&args, false)
    };
    let pod_a = serve("pod-a", &["--labels-file", labels.to_str().unwrap()], &sidecar_file);
    let pod_b = serve("pod-b", &["--label", "app=web", "--label", "zone=eu-2"], &sidecar_file);
    let pod_c = serve("pod-c", &["--label", "app=api"], &admin_file);
    // A read-only token may not subscribe: the sidecar says why and keeps retrying.
    let pod_ro = serve("pod-ro", &["--label", "app=web"], &viewer_file);
    let refused = pod_ro.wait_log("lost the controller");
    assert!(refused.contains("PermissionDenied") && refused.contains("read-only"), "{refused}");

    let admin = admin_file.to_str().unwrap();
    let ctl = |args: &[&str]| {
        let mut all = vec!["ctl", "--control", url.as_str(), "--token-file", admin];
        all.extend_from_slice(args);
        edgefault(&all)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let listing = loop {
        let (ok, out, err) = ctl(&["sidecars"]);
        assert!(ok, "{err}");
        if out.matches("connected").count() == 3 {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "three sidecars never connected:\n{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(listing.contains("pod-a") && listing.contains("app=web,pod-template-hash=5d4f8b,zone=eu-1"), "{listing}");
    assert!(!listing.contains("pod-ro"), "{listing}");

    // A scenario on the sidecars a kubectl-style selector names.
    let (ok, out, err) = ctl(&[
        "scenario",
        "start",
        "edge-5xx-storm",
        "-p",
        "percentage=100",
        "-p",
        "status=503",
        "--selector",
        "app=web,zone in (eu-1,eu-2)",
    ]);
    assert!(ok, "{err}");
    let id = out.trim().to_owned();
    assert!(id.starts_with("flt-"), "{out}");
    let http = support::client();
    assert_eventually!(
        support::get(&http, &pod_a.url("/")).await.status == 503
            && support::get(&http, &pod_b.url("/")).await.status == 503,
        "the web sidecars get the storm"
    );
    assert_eq!(support::get(&http, &pod_c.url("/")).await.status, 200);
    let (ok, out, _) = ctl(&["list"]);
    assert!(ok);
    assert!(
        out.contains(&id) && out.contains("└ pod-a") && out.contains("└ pod-b") && !out.contains("└ pod-c"),
        "{out}"
    );

    // A sidecar's token cannot drive the fleet; a read-only one can look.
    let (ok, _, err) =
        edgefault(&["ctl", "--control", &url, "--token-file", sidecar_file.to_str().unwrap(), "abort-all"]);
    assert!(!ok && err.contains("PermissionDenied") && err.contains("sidecar"), "{err}");
    let (ok, out, err) =
        edgefault(&["ctl", "--control", &url, "--token-file", viewer_file.to_str().unwrap(), "sidecars", "-o", "json"]);
    assert!(ok, "{err}");
    let sidecars: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(sidecars.as_array().map(Vec::len), Some(3));

    // The official Python client, from reflection alone.
    if let Some(py) = peers::python(&["grpc", "grpc_reflection"]) {
        let target = controller.control.to_string();
        let out = tokio::task::block_in_place(|| peers::run_python(&py, "fleet.py", &[&target, ADMIN, "app", "api"]));
        let seen: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(seen["sidecars"], serde_json::json!(["pod-a", "pod-b", "pod-c"]));
        assert_eq!(seen["labels"]["pod-b"]["zone"], "eu-2");
        assert_eq!(seen["targets"], serde_json::json!(["pod-c"]), "{seen}");
        assert_eq!(seen["aborted"], 2, "its experiment and the scenario's");
        assert_eq!(seen["history_resolution"], 1, "{seen}");
        let routes = seen["history_routes"].as_array().cloned().unwrap_or_default();
        assert!(!routes.is_empty(), "the fleet's history, read by the official client: {seen}");
        assert_eventually!(support::get(&http, &pod_a.url("/")).await.status == 200, "aborted everywhere");
    }

    // Bad fleet flags say which flag and why.
    let (ok, _, err) = edgefault(&["serve", "--controller", &url, "--label", "bad key=x"]);
    assert!(!ok && err.contains("--label") && err.contains("bad key"), "{err}");
    let (ok, _, err) = edgefault(&["controller", "--control", "0.0.0.0:0"]);
    assert!(!ok && err.contains("not a loopback address"), "{err}");
}

/// With mTLS on the controller, a sidecar with a client certificate its CA signed subscribes over TLS; one
/// without a certificate cannot, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_subscribe_over_mtls_and_one_without_a_certificate_cannot() {
    use edgefault::{
        app::Controller,
        config::{ControllerConfig, Overrides},
        ctl::{BearerToken, ClientTls, Ctl},
    };

    let ca = support::TestCa::new("fleet CA");
    let pems = |(cert, key): (rcgen::Certificate, rcgen::KeyPair)| (cert.pem(), key.serialize_pem());
    let server = pems(ca.sign(&["localhost"], Some("controller")));
    let client = pems(ca.sign(&[], Some("pod-tls")));
    let ca_file = write("fleet-ca.pem", &ca.pem);
    let (cert_file, key_file) = (write("fleet-server.pem", &server.0), write("fleet-server.key", &server.1));
    let (client_cert, client_key) = (write("fleet-client.pem", &client.0), write("fleet-client.key", &client.1));
    let config = write(
        "fleet-controller.yaml",
        &format!(
            "control:\n  bind: 127.0.0.1:0\n  tls: {{ cert_file: {:?}, key_file: {:?}, client_ca_file: {:?} }}\n",
            cert_file.display().to_string(),
            key_file.display().to_string(),
            ca_file.display().to_string()
        ),
    );
    let controller = Controller::start(ControllerConfig::load(Some(&config), &Overrides::default()).expect("config"))
        .await
        .expect("starts");
    let url = format!("https://localhost:{}", controller.control_addr().port());
    let with_cert =
        ClientTls::read_flags(Some(&ca_file), Some(&client_cert), Some(&client_key), "--controller-tls").expect("tls");
    let without = ClientTls::read_flags(Some(&ca_file), None, None, "--controller-tls").expect("tls");
    let upstream = FakeUpstream::app().start().await;
    let mut good = support::proxy(upstream).await;
    good.server.join_fleet(edgefault::fleet::sidecar::SidecarOptions {
        tls: with_cert.clone(),
        ..support::fleet::options(&url, "pod-tls", &[("app", "web")], Duration::from_secs(30))
    });
    let mut bad = support::proxy(upstream).await;
    bad.server.join_fleet(edgefault::fleet::sidecar::SidecarOptions {
        tls: without,
        ..support::fleet::options(&url, "pod-no-cert", &[("app", "web")], Duration::from_secs(30))
    });
    let mut ctl =
        Ctl::connect_tls(&url, BearerToken::new(None).expect("token"), with_cert).await.expect("ctl over mTLS");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ctl.sidecars().await.expect("ListSidecars").iter().filter(|s| s.connected).count() < 1 {
        assert!(std::time::Instant::now() < deadline, "the sidecar with a certificate never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids: Vec<String> = ctl.sidecars().await.expect("ListSidecars").into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["pod-tls"], "the sidecar without a certificate is not in the fleet");
    let started = ctl
        .start_file(&write(
            "fleet-tls-exp.yaml",
            "name: over tls\nduration: 60s\nfaults: [ { abort: { http_status: 503 } } ]\n",
        ))
        .await
        .expect("start");
    assert!(started[0].id.starts_with("flt-"));
    let http = support::client();
    assert_eventually!(support::get(&http, &good.url("/")).await.status == 503, "applied over mTLS");
    assert_eq!(support::get(&http, &bad.url("/")).await.status, 200);
}
