//! `edgefault ctl report`: the real binary reads a real server's experiments, history and audit log, and
//! writes one self-contained file; headless Chromium renders the HTML (a screenshot for docs/console.md
//! with `EDGEFAULT_UPDATE_SCREENSHOTS=1`).

use std::{
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use edgefault::pb::v1;

use crate::support::*;

const TOKEN: &str = "report-admin-token-0123456789";

fn ctl(control: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["ctl", "--control", control])
        .args(args)
        .env("EDGEFAULT_TOKEN", TOKEN)
        .output()
        .expect("ctl runs");
    assert!(out.status.success(), "ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_report_draws_a_rehearsal_with_who_started_and_stopped_it() {
    let dir = std::env::temp_dir().join(format!("edgefault-report-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (tokens, audit) = (dir.join("tokens.yaml"), dir.join("audit.jsonl"));
    std::fs::write(&tokens, format!("- {{ name: ops, role: admin, token: {TOKEN} }}\n")).unwrap();
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{up}\" }}\n      - {{ name: site, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\", tokens_file: \"{}\" }}\naudit: {{ path: \"{}\" }}\n",
        tokens.display(),
        audit.display()
    ))
    .await;
    let control = proxy.control_url.clone();
    // Two phases on a clock 60 times faster: `calm` for 1 s, then `storm` (half the api's requests 503).
    let spec = dir.join("storm.yaml");
    std::fs::write(
        &spec,
        "name: api-storm\nmatch: { routes: [api] }\ntime_scale: 60\nduration: 30m\nseed: 3\nfaults: [{ abort: { http_status: 503 } }]\nphases:\n  - { name: calm, percentage: 0 }\n  - { name: storm, start: 1m, percentage: 50 }\n",
    )
    .unwrap();
    let id = ctl(&control, &["start", "-f", spec.to_str().unwrap()]).trim().to_owned();
    let c = client();
    let until = std::time::Instant::now() + Duration::from_millis(3200);
    let mut failed = 0;
    while std::time::Instant::now() < until {
        if get(&c, &proxy.url("/api/items")).await.status == 503 {
            failed += 1;
        }
        assert_eq!(get(&c, &proxy.url("/")).await.status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failed > 10, "{failed}");
    ctl(&control, &["stop", &id, "--reason", "seen enough"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let html = dir.join("report.html");
    let md = dir.join("report.md");
    let audit_arg = audit.to_str().unwrap();
    ctl(&control, &["report", "--experiment", &id, "--audit", audit_arg, "-o", html.to_str().unwrap()]);
    ctl(&control, &["report", "--since", "5m", "--audit", audit_arg, "--format", "md", "-o", md.to_str().unwrap()]);
    let json: serde_json::Value =
        serde_json::from_str(&ctl(&control, &["report", "--experiment", &id, "--format", "json"]))
            .expect("JSON on stdout");
    assert_eq!(json["experiments"][0]["id"], serde_json::json!(id));
    assert_eq!(json["who"][0]["started_by"], "not in the audit log", "without --audit it says so");
    let html_text = std::fs::read_to_string(&html).unwrap();
    let md_text = std::fs::read_to_string(&md).unwrap();

    // Who started and stopped it, from the audit log; its phases on the axis; the routes' plots.
    for needle in [
        "api-storm",
        &id,
        "ops (StartExperiment)",
        "ops (StopExperiment)",
        "calm",
        "storm",
        "status mix",
        "latency, ms",
        ">api <",
        ">site <",
    ] {
        assert!(html_text.contains(needle), "{needle:?} not in the HTML report");
    }
    assert!(html_text.matches("<svg").count() >= 7, "a timeline and three plots per route");
    for outside in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html_text.contains(outside), "the report loads nothing from outside: {outside}");
    }
    // The totals are what the server's history holds.
    let mut grpc = proxy.control().await;
    let mut req = tonic::Request::new(v1::GetHistoryRequest {
        since: Some(pbjson_types::Timestamp {
            seconds: (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 300) as i64,
            nanos: 0,
        }),
        resolution: v1::HistoryResolution::Second as i32,
    });
    req.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let history = grpc.get_history(req).await.unwrap().into_inner();
    let api = history.routes.iter().find(|r| r.route == "api").unwrap();
    let fives: u64 = api.points.iter().map(|p| p.status[4]).sum();
    assert_eq!(fives, failed, "every 503 the client got is in the history");
    assert!(md_text.contains(&format!("| api-storm | `{id}` | stopped |")), "{md_text}");
    assert!(md_text.contains("| api-storm | storm |"), "{md_text}");
    assert!(md_text.contains("**api**"), "{md_text}");

    // Rendered by a real browser.
    if let Some(chromium) = crate::support::peers::chromium() {
        let update = std::env::var("EDGEFAULT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
        let shot = if update {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img/report.png")
        } else {
            dir.join("report.png")
        };
        let url = format!("file://{}", html.display());
        let addr = proxy.addr;
        let s = shot.clone();
        let dom = tokio::task::spawn_blocking({
            let (chromium, url) = (chromium.clone(), url.clone());
            move || crate::support::peers::browse(&chromium, "report.invalid", addr, &url, None)
        })
        .await
        .unwrap();
        assert!(dom.contains("Game day report") && dom.contains("<svg"), "the browser built the report");
        tokio::task::spawn_blocking(move || {
            crate::support::peers::browse(&chromium, "report.invalid", addr, &url, Some(&s))
        })
        .await
        .unwrap();
        let png = std::fs::read(&shot).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 8_000, "a rendered page ({} bytes)", png.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
