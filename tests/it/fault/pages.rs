//! Built-in error pages (`abort.page`), seen by real clients: the status line, provider-like headers, HTML
//! for browsers and JSON for API clients, one page per edge status, and validation of the choice.

use std::time::Duration;

use crate::support::*;
use edgefault::pb::v1;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Sends one raw HTTP/1.1 request and returns everything the proxy wrote (it closes the connection).
async fn raw(proxy: &Proxy, host: &str, path: &str, accept: &str) -> String {
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\naccept: {accept}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("no timeout").expect("read");
    String::from_utf8(out).expect("utf-8 response")
}

fn get_with(url: &str, host: &str, accept: &str) -> http::Request<BoxBody> {
    request("GET", url).header("host", host).header("accept", accept).body(body("")).expect("request")
}

fn is_ray_id(v: &str, loc: &str) -> bool {
    let Some((hex, l)) = v.split_once('-') else { return false };
    hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) && l == loc
}

fn has_utc_timestamp(s: &str) -> bool {
    // "YYYY-MM-DD HH:MM:SS UTC"
    s.match_indices(" UTC").any(|(i, _)| {
        i >= 19 && {
            let t = &s.as_bytes()[i - 19..i];
            t.iter().enumerate().all(|(j, b)| match j {
                4 | 7 => *b == b'-',
                10 => *b == b' ',
                13 | 16 => *b == b':',
                _ => b.is_ascii_digit(),
            })
        }
    })
}

#[tokio::test]
async fn edge_page_gives_browsers_an_html_page_with_provider_headers() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: edge-522\nfaults: [{ abort: { http_status: 522, page: edge, page_location: lhr } }]\n").await;
    let c = client();
    let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = send(&c, get_with(&proxy.url("/shop"), "shop.example.com", accept)).await;
    assert_eq!(r.status, 522);
    assert_eq!(r.headers["server"], "cloudflare");
    assert_eq!(r.headers["cf-cache-status"], "UNKNOWN");
    assert_eq!(r.headers["cf-error-type"], "52x");
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    assert!(r.headers.get("x-upstream").is_none(), "the upstream was not reached");
    assert!(r.headers.get("x-edgefault-error").is_none(), "an injected page does not look like a proxy error");
    let ray = r.headers["cf-ray"].to_str().expect("ascii").to_owned();
    assert!(is_ray_id(&ray, "LHR"), "{ray}");

    let html = std::str::from_utf8(&r.body).expect("utf-8");
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<title>shop.example.com | 522: Connection timed out</title>"), "{html}");
    assert!(html.contains("Error code 522"), "{html}");
    assert!(html.contains(&format!("Ray ID: <code>{ray}</code>")), "the page shows the ray id: {html}");
    assert!(html.contains("London (LHR)"), "the location's city beside its code: {html}");
    // The visitor's address, as the proxy saw it, behind a "click to reveal".
    assert!(html.contains("Your IP: <details><summary>Click to reveal</summary>127.0.0.1</details>"), "{html}");
    assert!(has_utc_timestamp(html), "{html}");
    assert!(html.contains("check that your web server is up"), "advice for a host-side failure: {html}");

    // Every request gets its own id.
    let again = send(&c, get_with(&proxy.url("/shop"), "shop.example.com", accept)).await;
    assert_ne!(again.headers["cf-ray"], ray);
}

#[tokio::test]
async fn edge_page_gives_api_clients_json() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: edge-500\nfaults: [{ abort: { http_status: 500, page: edge } }]\n").await;
    let r = send(&client(), get_with(&proxy.url("/api/v1/zones"), "api.example.com", "application/json")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cf-cache-status"], "NONE", "the edge itself failed, before its cache");
    assert!(r.headers.get("cf-error-type").is_none());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON body");
    assert_eq!(v["status"], 500);
    assert_eq!(v["success"], false);
    assert_eq!(v["title"], "Internal server error");
    assert_eq!(v["host"], "api.example.com");
    assert_eq!(v["location"], "FRA", "the default location");
    assert_eq!(v["city"], "Frankfurt");
    assert_eq!(v["ray_id"], r.headers["cf-ray"].to_str().expect("ascii"));
    assert!(has_utc_timestamp(v["timestamp"].as_str().expect("timestamp")), "{v}");
}

#[tokio::test]
async fn edge_page_exists_for_every_edge_status_with_its_status_line() {
    let proxy = proxy(upstream().await).await;
    let codes = [500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527, 530];
    for code in codes {
        proxy
            .start(&format!(
                "name: edge-{code}\nmatch: {{ path_exact: /s/{code} }}\nfaults: [{{ abort: {{ http_status: {code}, page: edge }} }}]\n"
            ))
            .await;
    }
    for code in codes {
        let resp = raw(&proxy, "site.example", &format!("/s/{code}"), "text/html").await;
        let status_line = resp.lines().next().unwrap_or("");
        assert!(status_line.starts_with(&format!("HTTP/1.1 {code} ")), "{status_line}");
        assert!(!status_line.contains("<none>"), "every code has a reason phrase: {status_line}");
        assert!(resp.contains(&format!("Error code {code}")), "{resp}");
        assert!(resp.contains("\r\ncf-ray: "), "{resp}");
    }
    let r524 = raw(&proxy, "site.example", "/s/524", "*/*").await;
    assert!(r524.starts_with("HTTP/1.1 524 A timeout occurred\r\n"), "{r524}");
    let r530 = raw(&proxy, "site.example", "/s/530", "*/*").await;
    assert!(r530.contains("\r\ncf-error-type: 1016\r\n") && r530.contains("Error 1016"), "{r530}");
    // A DNS error gets DNS advice, not reachability advice.
    assert!(r530.contains("DNS records") && !r530.contains("check that your web server is up"), "{r530}");
    // Paths no experiment matches still reach the upstream.
    assert_eq!(get(&client(), &proxy.url("/s/200")).await.status, 200);
}

#[tokio::test]
async fn cdn_page_is_a_503_with_a_reason_and_cache_headers() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: cdn\nfaults: [{ abort: { page: cdn, page_location: ams } }]\n").await;
    let resp = raw(&proxy, "www.example.org", "/", "text/html").await;
    assert!(resp.starts_with("HTTP/1.1 503 backend read error\r\n"), "{resp}");
    let header = |name: &str| {
        resp.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned)).unwrap_or_default()
    };
    let node = header("x-served-by");
    let digits = node.strip_prefix("cache-ams").and_then(|n| n.strip_suffix("-AMS")).unwrap_or("");
    assert!(digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()), "{node}");
    assert_eq!(header("x-cache"), "MISS");
    assert_eq!(header("server"), "Varnish");
    assert_eq!(header("via"), "1.1 varnish");
    assert!(!resp.contains("\r\nretry-after:"), "the CDN's synthetic 503 says nothing of retrying: {resp}");
    let (_, page) = resp.split_once("\r\n\r\n").expect("a body");
    assert!(page.contains("<h1>Error 503 backend read error</h1>"), "{page}");
    assert!(!page.contains("<style>"), "the CDN's page is bare HTML: {page}");
    // "Details: <node> <unix seconds> <transaction id>", as Varnish's "Guru Mediation" line has them.
    let details = page.lines().find_map(|l| l.strip_prefix("<p>Details: ")).unwrap_or_default();
    let parts: Vec<&str> = details.trim_end_matches("</p>").split(' ').collect();
    assert_eq!(parts.len(), 3, "{page}");
    assert_eq!(parts.first(), Some(&node.as_str()));
    assert!(parts[1].parse::<u64>().is_ok_and(|t| t > 1_700_000_000), "{page}");
    assert_eq!(Some(parts[2]), header("x-varnish").as_str().into(), "{page}");
    assert!(page.contains("Guru Mediation") && page.contains("Varnish cache server"), "{page}");

    let r = send(&client(), get_with(&proxy.url("/"), "www.example.org", "application/json")).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON body");
    assert_eq!((v["status"].as_u64(), v["error"].as_str()), (Some(503), Some("backend read error")));
}

#[tokio::test]
async fn generic_page_names_the_status_and_escapes_the_host() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: generic\nfaults: [{ abort: { http_status: 429, page: generic } }]\n").await;
    let resp = raw(&proxy, "<b>evil</b>.example", "/", "text/html").await;
    assert!(resp.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{resp}");
    assert!(resp.contains("<h1>Too Many Requests</h1>"), "{resp}");
    assert!(resp.contains("&lt;b&gt;evil&lt;/b&gt;.example") && !resp.contains("<b>evil"), "{resp}");
    let r = send(&client(), get_with(&proxy.url("/"), "x.example", "application/json")).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON body");
    assert_eq!(v["error"], "Too Many Requests");
    assert_eq!(v["request_id"], r.headers["x-request-id"].to_str().expect("ascii"));
}

#[tokio::test]
async fn bad_page_choices_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let bad = "name: bad-pages\nfaults:\n  - abort: { http_status: 503, page: fancy }\n  - delay: { fixed: 1s }\n";
    let err = ctl.start_experiment(v1::StartExperimentRequest { spec: Some(spec(bad)) }).await.expect_err("invalid");
    assert!(
        err.message().contains("faults[0].abort.page: unknown page \"fancy\": use one of generic, edge, cdn"),
        "{}",
        err.message()
    );

    let cases = [
        ("{ http_status: 418, page: edge }", "faults[0].abort.http_status: page \"edge\" has no page for 418"),
        (
            "{ http_status: 502, page: cdn }",
            "faults[0].abort.http_status: page \"cdn\" has no page for 502: it covers 503",
        ),
        ("{ http_status: 200, page: generic }", "faults[0].abort.http_status: page \"generic\" has no page for 200"),
        ("{ page: edge, body: hi }", "faults[0].abort.body: set either body or page, not both"),
        ("{ page: edge, page_location: LONDON }", "faults[0].abort.page_location: \"LONDON\" is not a three-letter"),
        ("{ http_status: 503, page_location: LHR }", "faults[0].abort.page_location: only applies with a page"),
    ];
    for (abort, want) in cases {
        let r = ctl
            .validate_experiment(v1::ValidateExperimentRequest {
                spec: Some(spec(&format!("name: x\nfaults: [{{ abort: {abort} }}]\n"))),
            })
            .await
            .expect("validate")
            .into_inner();
        assert!(!r.valid, "{abort}");
        let all: Vec<String> = r.violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
        assert!(all.iter().any(|v| v.starts_with(want)), "{abort}: {all:?}");
    }
    // Nothing was started; traffic is untouched.
    let list = ctl.list_experiments(v1::ListExperimentsRequest::default()).await.expect("list").into_inner();
    assert!(list.experiments.is_empty());
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
}
