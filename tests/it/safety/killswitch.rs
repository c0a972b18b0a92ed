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
