//! TLS origination: a plain-HTTP listener whose route's upstream is `https://…`.

use crate::support::*;
use edgefault::config::{Config, Overrides};
use http::StatusCode;

fn tls_route_yaml(upstream: std::net::SocketAddr, ca: &std::path::Path, extra: &str) -> String {
    format!(
        "listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n    routes:\n      - name: provider-api\n        upstream: \"https://localhost:{}\"\n        tls: {{ roots: none, ca_file: {:?} }}\n{extra}control: {{ bind: \"127.0.0.1:0\" }}\n",
        upstream.port(),
        ca.display().to_string()
    )
}

#[tokio::test]
async fn requests_reach_an_https_upstream_over_http1_and_http2() {
    let (upstream, ca) = tls_upstream(&["localhost"]).await;
    let proxy = proxy_yaml(&tls_route_yaml(upstream, &ca, "")).await;

    let r = get(&client(), &proxy.url("/echo")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-seen-version"], "HTTP/1.1");
    // The certificate names localhost: the host header follows the upstream, not the client's address.
    assert_eq!(r.headers["x-seen-host"], format!("localhost:{}", upstream.port()).as_str());

    let r = get(&h2_client(), &proxy.url("/echo")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-seen-version"], "HTTP/2.0", "ALPN chose HTTP/2");

    let big = get(&client(), &proxy.url("/big?n=1000000")).await;
    assert_eq!(big.body.len(), 1_000_000);
    assert!(big.body.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)), "body intact through TLS");
}

#[tokio::test]
async fn http_faults_apply_to_calls_to_an_https_api() {
    let (upstream, ca) = tls_upstream(&["localhost"]).await;
    let proxy = proxy_yaml(&tls_route_yaml(upstream, &ca, "")).await;
    proxy
        .start("name: api-down\nmatch: { routes: [provider-api], path_prefix: /v1/ }\nfaults: [{ abort: { http_status: 503, page: edge } }]\n")
        .await;
    let r = get(&client(), &proxy.url("/v1/charges")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers.get("x-edgefault-error").is_none(), "an injected fault looks real");
    let r = get(&client(), &proxy.url("/echo")).await;
    assert_eq!(r.status, StatusCode::OK, "outside the match, calls still reach the HTTPS upstream");
}

#[tokio::test]
async fn a_certificate_the_route_does_not_trust_is_a_502() {
    let (upstream, _ca) = tls_upstream(&["localhost"]).await;
    // Bundled web roots do not include the test CA.
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, upstream: \"https://localhost:{}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n",
        upstream.port()
    ))
    .await;
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.headers["x-edgefault-error"], "upstream-tls");
    assert!(String::from_utf8_lossy(&r.body).contains("TLS"), "{:?}", r.body);
}

#[tokio::test]
async fn a_wrong_name_is_refused_and_server_name_can_override_it() {
    let (upstream, ca) = tls_upstream(&["api.internal.test"]).await;
    let wrong = proxy_yaml(&tls_route_yaml(upstream, &ca, "")).await;
    let r = get(&client(), &wrong.url("/")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "certificate names another host");

    let right = proxy_yaml(&format!(
        "listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n    routes:\n      - name: api\n        upstream: \"https://127.0.0.1:{}\"\n        tls: {{ roots: none, ca_file: {:?}, server_name: api.internal.test }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n",
        upstream.port(),
        ca.display().to_string()
    ))
    .await;
    let r = get(&client(), &right.url("/")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[test]
fn bad_tls_settings_are_refused_with_their_place() {
    let missing = std::env::temp_dir().join("edgefault-no-such-ca.pem");
    let not_pem = temp_file("not.pem", "hello\n");
    let cases = [
        (
            format!(
                "upstream: \"https://localhost:1\"\n        tls: {{ ca_file: {:?} }}",
                missing.display().to_string()
            ),
            "listeners[0].routes[0].tls.ca_file: cannot read",
        ),
        (
            format!(
                "upstream: \"https://localhost:1\"\n        tls: {{ ca_file: {:?} }}",
                not_pem.display().to_string()
            ),
            "holds no PEM certificate",
        ),
        (
            "upstream: \"https://localhost:1\"\n        tls: { roots: none }".to_owned(),
            "listeners[0].routes[0].tls.roots: roots: none needs a ca_file",
        ),
        (
            "upstream: \"http://localhost:1\"\n        tls: { roots: bundled }".to_owned(),
            "listeners[0].routes[0].tls: the upstream is http://",
        ),
        ("upstream: \"ftp://localhost:1\"".to_owned(), "needs the http:// or https:// scheme"),
    ];
    for (route, expected) in cases {
        let yaml = format!(
            "listeners:\n  - name: egress\n    bind: 127.0.0.1:0\n    routes:\n      - name: api\n        {route}\n"
        );
        let e = Config::from_yaml(&yaml, "test.yaml", &Overrides::default()).expect_err("refused");
        assert!(e.to_string().contains(expected), "expected {expected:?} in:\n{e}");
    }
}
