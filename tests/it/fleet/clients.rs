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
    let controller = binary::controller(&["--control", "127.0.0.1:0", "--tokens-file", tokens.to_str().unwrap()], &[]);
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
        assert_eventually!(support::get(&http, &pod_a.url("/")).await.status == 200, "aborted everywhere");
    }

    // Bad fleet flags say which flag and why.
    let (ok, _, err) = edgefault(&["serve", "--controller", &url, "--label", "bad key=x"]);
    assert!(!ok && err.contains("--label") && err.contains("bad key"), "{err}");
    let (ok, _, err) = edgefault(&["controller", "--control", "0.0.0.0:0"]);
    assert!(!ok && err.contains("not a loopback address"), "{err}");
}
