//! `rewrite`: request headers changed before the upstream sees them, response headers and status changed
//! on the way back, as a real client and a real upstream see it.

use crate::support::*;

#[tokio::test]
async fn request_headers_are_set_and_removed_before_forwarding() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start(
            "name: req\nfaults: [{ rewrite: { set_request_headers: { x-injected: yes, user-agent: edge/1 }, remove_request_headers: [x-remove-me] } }]\n",
        )
        .await;
    let req = request("GET", &proxy.url("/echo"))
        .header("x-remove-me", "1")
        .header("x-keep", "2")
        .header("user-agent", "client/1")
        .body(body(""))
        .expect("request");
    let r = send(&client(), req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("x-seen-x-injected").map(|v| v.as_bytes()), Some(&b"yes"[..]));
    assert_eq!(r.headers.get("x-seen-user-agent").map(|v| v.as_bytes()), Some(&b"edge/1"[..]));
    assert_eq!(r.headers.get("x-seen-x-keep").map(|v| v.as_bytes()), Some(&b"2"[..]));
    assert!(r.headers.get("x-seen-x-remove-me").is_none());
}

#[tokio::test]
async fn status_replaced_and_upstream_body_kept() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start(
            "name: res\nmatch: { path_prefix: /api/ }\nfaults: [{ rewrite: { status: 500, set_response_headers: { cache-control: no-store, server: edge }, remove_response_headers: [x-upstream] } }]\n",
        )
        .await;
    let c = client();
    let r = get(&c, &proxy.url("/api/x")).await;
    assert_eq!(r.status, 500);
    assert_eq!(&r.body[..], b"upstream ok", "the upstream's body is kept");
    assert_eq!(r.headers.get("cache-control").map(|v| v.as_bytes()), Some(&b"no-store"[..]));
    assert_eq!(r.headers.get("server").map(|v| v.as_bytes()), Some(&b"edge"[..]));
    assert!(r.headers.get("x-upstream").is_none());
    assert_eq!(r.headers.get("x-seen-path").map(|v| v.as_bytes()), Some(&b"/api/x"[..]), "the upstream was asked");
    // Out of scope: untouched.
    let r = get(&c, &proxy.url("/other")).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.contains_key("x-upstream"));
}

#[tokio::test]
async fn status_with_an_empty_body_over_http2_too() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: empty-500\nfaults: [{ rewrite: { status: 503 } }, { body: { replace: {} } }]\n").await;
    for c in [client(), h2_client()] {
        let r = get(&c, &proxy.url("/")).await;
        assert_eq!(r.status, 503);
        assert!(r.body.is_empty(), "{:?}", r.body);
        assert!(r.headers.contains_key("x-upstream"), "the upstream's headers stay");
    }
}

#[tokio::test]
async fn later_rewrites_win_for_the_same_header() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: first\nfaults: [{ rewrite: { status: 502, set_response_headers: { x-who: first } } }]\n").await;
    proxy.start("name: second\nfaults: [{ rewrite: { set_response_headers: { x-who: second } } }]\n").await;
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.headers.get("x-who").map(|v| v.as_bytes()), Some(&b"second"[..]));
}

#[tokio::test]
async fn bad_rewrites_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let bad = "name: bad\nfaults:\n  - rewrite: {}\n  - rewrite: { status: 99 }\n  - rewrite: { status: 150 }\n  - rewrite: { set_response_headers: { \"bad name\": x, content-length: \"3\" }, remove_request_headers: [transfer-encoding] }\n  - rewrite: { set_request_headers: { x-a: \"line\\nbreak\" } }\n";
    let found = violations(&proxy, bad).await;
    let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "faults[0].rewrite",
            "faults[1].rewrite.status",
            "faults[2].rewrite.status",
            "faults[3].rewrite.remove_request_headers[0]",
            "faults[3].rewrite.set_response_headers[\"bad name\"]",
            "faults[3].rewrite.set_response_headers[\"content-length\"]",
            "faults[4].rewrite.set_request_headers[\"x-a\"]",
        ]
    );
    assert!(found[2].description.contains("interim"), "{}", found[2].description);
}
