//! The admin endpoint's kill switch: `POST /abort-all` ends every experiment and is audited.

use crate::support::*;
use http::StatusCode;

#[tokio::test]
async fn post_abort_all_on_the_admin_port_ends_every_experiment() {
    let up = upstream().await;
    let audit = std::env::temp_dir().join(format!("edgefault-killswitch-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\naudit: {{ path: {:?} }}\n",
        audit.display().to_string()
    ))
    .await;
    let admin = proxy.server.admin_addr().expect("admin");
    let a = proxy.start("name: a\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    let b = proxy.start("name: b\nstart_delay: 1h\nfaults: [{ abort: { http_status: 502 } }]\n").await;
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);

    // Only POST pulls the switch.
    let not_post = get(&client(), &format!("http://{admin}/abort-all")).await;
    assert_eq!(not_post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);

    let r = send(&client(), request("POST", &format!("http://{admin}/abort-all")).body(body("")).expect("req")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"aborted 2 experiment(s)\n");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
    for id in [&a.id, &b.id] {
        let e = proxy.server.registry().get(id).expect("kept");
        assert_eq!(e.state.as_str(), "aborted");
        assert_eq!(e.end_reason, "kill switch: POST /abort-all");
    }

    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&audit).expect("audit").lines().last().expect("a line"))
            .expect("json");
    assert_eq!(line["caller"], "admin-endpoint");
    assert_eq!(line["action"], "AbortAll");
    assert_eq!(line["experiments"].as_array().expect("ids").len(), 2);
    let _ = std::fs::remove_file(&audit);
}

/// With tokens, the admin port's kill switch is an admin's like `AbortAll`: no token gets 401, a read-only
/// token 403, and neither ends anything; an admin token does, and the audit line names it.
#[tokio::test]
async fn with_tokens_the_admin_kill_switch_needs_an_admin_token() {
    let up = upstream().await;
    let tokens = temp_file(
        "tokens.yaml",
        "- { name: ops, role: admin, token: admin-secret-0123456789 }\n- { name: viewer, role: read-only, token: viewer-secret-0123456789 }\n",
    );
    let audit = temp_file("audit.jsonl", "");
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\", tokens_file: {:?} }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\naudit: {{ path: {:?} }}\n",
        tokens.display().to_string(),
        audit.display().to_string()
    ))
    .await;
    let admin = proxy.server.admin_addr().expect("admin");
    let mut c = proxy.control().await;
    let mut start = tonic::Request::new(edgefault::pb::v1::StartExperimentRequest {
        spec: Some(spec("name: a\nfaults: [{ abort: { http_status: 503 } }]\n")),
    });
    start.metadata_mut().insert("authorization", "Bearer admin-secret-0123456789".parse().expect("value"));
    c.start_experiment(start).await.expect("starts");
    let pull = |token: Option<&str>| {
        let mut r = request("POST", &format!("http://{admin}/abort-all"));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(body("")).expect("request")
    };
    let r = send(&client(), pull(None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    let r = send(&client(), pull(Some("viewer-secret-0123456789"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503, "still running");
    let r = send(&client(), pull(Some("admin-secret-0123456789"))).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"aborted 1 experiment(s)\n"[..]));
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
    let last: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&audit).expect("audit").lines().last().expect("a line"))
            .expect("json");
    assert_eq!(last["caller"], "admin-endpoint (ops)");
}

/// Everything that changes state is audited: boot experiments (caller `config`), a reload's token changes
/// (caller `signal`, names only), and the abort of every experiment at shutdown (caller `shutdown`).
#[tokio::test]
async fn boot_experiments_reloads_and_shutdown_are_audited() {
    let up = upstream().await;
    let tokens = temp_file("tokens.yaml", "- { name: ops, role: admin, token: admin-secret-0123456789 }\n");
    let audit = temp_file("audit.jsonl", "");
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"http://{up}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\", tokens_file: {:?} }}\naudit: {{ path: {:?} }}\nexperiments:\n  - {{ name: boot, faults: [{{ delay: {{ fixed: 1ms }} }}] }}\n",
        tokens.display().to_string(),
        audit.display().to_string()
    );
    let config_path = temp_file("edgefault.yaml", &yaml);
    let config = edgefault::config::Config::load(&config_path, &Default::default()).expect("config");
    let server = edgefault::app::Server::start(config).await.expect("starts");
    std::fs::write(
        &tokens,
        "- { name: ops, role: admin, token: admin-secret-9876543210 }\n- { name: grafana, role: read-only, token: viewer-secret-0123456789 }\n",
    )
    .expect("write");
    server.reloader().reload_file(&config_path, &Default::default()).expect("reloaded");
    server.shutdown().await;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .expect("audit")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!((&lines[0]["caller"], &lines[0]["action"]), (&"config".into(), &"StartExperiment".into()));
    assert_eq!(lines[0]["spec"]["name"], "boot");
    assert_eq!((&lines[1]["caller"], &lines[1]["action"]), (&"signal".into(), &"ReloadConfig".into()));
    let reason = lines[1]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("token \"ops\" has a new secret") && reason.contains("token \"grafana\" (read-only) added"),
        "{reason}"
    );
    assert!(!reason.contains("secret-"), "no secret in the audit log: {reason}");
    assert_eq!((&lines[2]["caller"], &lines[2]["action"]), (&"shutdown".into(), &"AbortAll".into()));
    assert_eq!(lines[2]["experiments"].as_array().expect("ids").len(), 1);
}
