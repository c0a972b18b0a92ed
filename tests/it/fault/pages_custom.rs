//! Page templates from the config (`pages:`), named by `abort.page`: rendered per request with their
//! placeholders, HTML or JSON by `accept`, per-status variants, and checked by validation (the control
//! service, the config loader and `edgefault validate --config`).

use std::process::Command;

use crate::support::*;
use edgefault::{
    config::{Config, Overrides},
    pb::v1,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAGES: &str = r#"pages:
  acme:
    html: "<h1>{{code}} {{title}}</h1><p>{{host}} {{request_id}} {{timestamp}} {{location}}</p>"
    json: '{"code":{{code}},"title":"{{title}}","id":"{{request_id}}","pop":"{{location}}"}'
    headers: { server: acme-edge, x-acme-pop: "pop-{{location}}" }
    request_id_header: x-acme-id
    statuses:
      - { status: 522, title: Origin timed out, headers: { x-acme-error: origin } }
  only-502:
    statuses:
      - { status: 502, html: "<p>bad gateway {{request_id}}</p>" }
"#;

async fn proxy_with_pages() -> Proxy {
    let upstream = upstream().await;
    proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n{PAGES}"
    ))
    .await
}

#[tokio::test]
async fn a_template_is_rendered_per_request_in_html() {
    let proxy = proxy_with_pages().await;
    proxy.start("name: p\nfaults: [{ abort: { http_status: 503, page: acme, page_location: ams } }]\n").await;
    let c = client();
    let r = get(&c, &proxy.url("/")).await;
    assert_eq!(r.status, 503);
    let body = String::from_utf8(r.body.to_vec()).expect("utf8");
    let id = r.headers.get("x-acme-id").and_then(|v| v.to_str().ok()).expect("request id header").to_owned();
    assert_eq!(id.len(), 16);
    assert!(body.starts_with("<h1>503 Service Unavailable</h1>"), "{body}");
    assert!(body.contains(&id) && body.contains("AMS") && body.contains(" UTC"), "{body}");
    assert!(body.contains(&proxy.addr.ip().to_string()), "the host: {body}");
    assert_eq!(r.headers.get("server").map(|v| v.as_bytes()), Some(&b"acme-edge"[..]));
    assert_eq!(r.headers.get("x-acme-pop").map(|v| v.as_bytes()), Some(&b"pop-AMS"[..]));
    assert_eq!(r.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"text/html; charset=utf-8"[..]));
    assert!(r.headers.get("x-upstream").is_none(), "the upstream was not asked");
    let again = get(&c, &proxy.url("/")).await;
    assert_ne!(again.headers.get("x-acme-id"), r.headers.get("x-acme-id"), "a new id per request");
}

#[tokio::test]
async fn json_to_clients_that_ask_and_per_status_titles() {
    let proxy = proxy_with_pages().await;
    proxy.start("name: p\nfaults: [{ abort: { http_status: 522, page: acme } }]\n").await;
    let req = request("GET", &proxy.url("/")).header("accept", "application/json").body(body("")).expect("request");
    let r = send(&client(), req).await;
    assert_eq!(r.status, 522);
    assert_eq!(r.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
    assert_eq!(r.headers.get("x-acme-error").map(|v| v.as_bytes()), Some(&b"origin"[..]));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["code"], 522);
    assert_eq!(v["title"], "Origin timed out");
    assert_eq!(v["pop"], "FRA");
    assert_eq!(v["id"].as_str(), r.headers.get("x-acme-id").and_then(|h| h.to_str().ok()));

    // The title is the HTTP/1.1 reason phrase of a status HTTP names none for.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    assert!(raw.starts_with(b"HTTP/1.1 522 Origin timed out\r\n"), "{}", String::from_utf8_lossy(&raw));
}

#[tokio::test]
async fn validation_knows_the_config_templates() {
    let proxy = proxy_with_pages().await;
    let mut ctl = proxy.control().await;
    let bad = "name: bad\nfaults:\n  - abort: { http_status: 503, page: nope }\n  - delay: { fixed: 1ms }\n";
    let bad2 = "name: bad\nfaults: [{ abort: { http_status: 503, page: only-502 } }]\n";
    let good = "name: good\nfaults: [{ abort: { http_status: 502, page: only-502 } }]\n";
    let check = |yaml: &str| v1::ValidateExperimentRequest { spec: Some(spec(yaml)) };
    let r = ctl.validate_experiment(check(bad)).await.expect("validate").into_inner();
    assert_eq!(r.violations[0].field, "faults[0].abort.page");
    assert!(r.violations[0].description.contains("acme, only-502"), "{}", r.violations[0].description);
    let r = ctl.validate_experiment(check(bad2)).await.expect("validate").into_inner();
    let fields: Vec<&str> = r.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["faults[0].abort.http_status"]);
    assert!(r.violations[0].description.contains("covers 502"), "{}", r.violations[0].description);
    let r = ctl.validate_experiment(check(good)).await.expect("validate").into_inner();
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    // And it serves.
    proxy.start(good).await;
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.status, 502);
    assert!(r.body.starts_with(b"<p>bad gateway "));
}

#[test]
fn bad_templates_are_refused_with_their_place() {
    let yaml = "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{ name: d, upstream: \"http://127.0.0.1:1\" }]\npages:\n  edge: { html: x }\n  a: { html: \"{{nope}}\", headers: { content-length: \"1\", \"x-ok\": \"{{code\" } }\n  b: {}\n  c: { statuses: [{ status: 99 }, { status: 500, json: \"{}\" }, { status: 500, json: \"{}\" }] }\nexperiments:\n  - { name: x, faults: [{ abort: { page: a } }] }\n";
    let e = Config::from_yaml(yaml, "test", &Overrides::default()).expect_err("invalid");
    let text = e.to_string();
    for needle in [
        "pages.edge: \"edge\" is a built-in page",
        "pages.a.html: unknown placeholder {{nope}}",
        "pages.a.headers[\"content-length\"]",
        "pages.a.headers[\"x-ok\"]: a placeholder opened with {{ is not closed",
        "pages.b: give html or json",
        "pages.c.statuses[0].status: 99",
        "pages.c.statuses[0]: no html or json",
        "pages.c.statuses[2].status: 500 is listed twice",
        "experiments[0].faults[0].abort.page: unknown page \"a\"",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
}

#[test]
fn validate_checks_against_the_config_templates() {
    let dir = std::env::temp_dir().join(format!("edgefault-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let config = dir.join("c.yaml");
    std::fs::write(
        &config,
        format!("listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: d, upstream: \"http://127.0.0.1:1\" }}]\n{PAGES}"),
    )
    .expect("write");
    let exp = dir.join("e.yaml");
    let run = |text: &str, with_config: bool| {
        std::fs::write(&exp, text).expect("write");
        let mut args = vec!["validate".to_owned(), exp.display().to_string()];
        if with_config {
            args.extend(["--config".to_owned(), config.display().to_string()]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_edgefault")).args(&args).output().expect("runs");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let uses_acme = "name: e\nfaults: [{ abort: { http_status: 522, page: acme } }]\n";
    assert_eq!(run(uses_acme, true), (true, String::new()));
    let (ok, err) = run(uses_acme, false);
    assert!(!ok && err.contains("faults[0].abort.page") && err.contains("--config"), "{err}");
    let (ok, err) = run("name: e\nfaults: [{ abort: { http_status: 503, page: acmee } }]\n", true);
    assert!(!ok && err.contains("unknown page \"acmee\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
