//! Every matcher, each tested with requests in and out of scope.

use crate::support::*;

/// A request (method, path, headers) and whether it should be injected.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], bool);

/// Starts the experiment with `match_yaml`, then checks each (method, path, headers) request gets 503
/// (`true`) or passes (`false`).
async fn check(match_yaml: &str, cases: &[Case<'_>]) {
    let proxy = proxy(upstream().await).await;
    proxy.start(&format!("name: m\nmatch: {match_yaml}\nfaults: [{{ abort: {{ http_status: 503 }} }}]\n")).await;
    let c = client();
    for (method, path, headers, injected) in cases {
        let mut req = request(method, &proxy.url(path));
        for (k, v) in headers.iter() {
            req = req.header(*k, *v);
        }
        let r = send(&c, req.body(body("")).expect("request")).await;
        let want = if *injected { 503 } else { 200 };
        assert_eq!(r.status.as_u16(), want, "{method} {path} {headers:?} with match {match_yaml}");
    }
}

#[tokio::test]
async fn routes() {
    check(
        "{ routes: [api, dashboard] }",
        &[
            ("GET", "/api/x", &[], true),
            ("GET", "/", &[("host", "dash.example.com")], true),
            ("GET", "/", &[], false),
            ("GET", "/apix", &[], false),
        ],
    )
    .await;
}

#[tokio::test]
async fn listeners() {
    check("{ listeners: [web] }", &[("GET", "/", &[], true)]).await;
}

#[tokio::test]
async fn hosts_exact_and_wildcard() {
    check(
        "{ hosts: [shop.example.com, \"*.cdn.example.net\"] }",
        &[
            ("GET", "/", &[("host", "shop.example.com")], true),
            ("GET", "/", &[("host", "SHOP.example.com:8080")], true),
            ("GET", "/", &[("host", "img.cdn.example.net")], true),
            ("GET", "/", &[("host", "cdn.example.net")], false),
            ("GET", "/", &[("host", "other.example.com")], false),
        ],
    )
    .await;
}

#[tokio::test]
async fn path_prefix_exact_and_regex() {
    check("{ path_prefix: /checkout }", &[("GET", "/checkout/pay?x=1", &[], true), ("GET", "/check", &[], false)])
        .await;
    check("{ path_exact: /login }", &[("GET", "/login?next=/", &[], true), ("GET", "/login/", &[], false)]).await;
    check(
        "{ path_regex: \"^/users/[0-9]+/orders$\" }",
        &[("GET", "/users/42/orders", &[], true), ("GET", "/users/me/orders", &[], false)],
    )
    .await;
}

#[tokio::test]
async fn methods() {
    check("{ methods: [post, PUT] }", &[("POST", "/", &[], true), ("PUT", "/", &[], true), ("GET", "/", &[], false)])
        .await;
}

#[tokio::test]
async fn headers_exact_regex_present_absent() {
    check(
        "{ headers: [{ name: x-tenant, exact: acme }] }",
        &[
            ("GET", "/", &[("x-tenant", "acme")], true),
            ("GET", "/", &[("x-tenant", "acme2")], false),
            ("GET", "/", &[], false),
        ],
    )
    .await;
    check(
        "{ headers: [{ name: User-Agent, regex: \"^curl/\" }] }",
        &[("GET", "/", &[("user-agent", "curl/8.5")], true), ("GET", "/", &[("user-agent", "Mozilla/5.0")], false)],
    )
    .await;
    check(
        "{ headers: [{ name: x-canary, present: true }, { name: x-bypass, present: false }] }",
        &[
            ("GET", "/", &[("x-canary", "")], true),
            ("GET", "/", &[("x-canary", "1"), ("x-bypass", "1")], false),
            ("GET", "/", &[], false),
        ],
    )
    .await;
}

#[tokio::test]
async fn query_parameters() {
    check(
        "{ query: [{ name: region, exact: eu west }, { name: debug, present: false }] }",
        &[
            ("GET", "/?region=eu+west", &[], true),
            ("GET", "/?a=1&region=eu%20west", &[], true),
            ("GET", "/?region=eu+west&debug=1", &[], false),
            ("GET", "/?region=us", &[], false),
        ],
    )
    .await;
    check(
        "{ query: [{ name: v, regex: \"^2\\\\.\" }] }",
        &[("GET", "/?v=2.1", &[], true), ("GET", "/?v=1.2", &[], false)],
    )
    .await;
}

#[tokio::test]
async fn client_cidrs() {
    check("{ client_cidrs: [\"127.0.0.0/8\"] }", &[("GET", "/", &[], true)]).await;
    check("{ client_cidrs: [\"10.0.0.0/8\", \"::1\"] }", &[("GET", "/", &[], false)]).await;
}

#[tokio::test]
async fn all_conditions_must_hold() {
    check(
        "{ routes: [api], methods: [POST], headers: [{ name: x-user, exact: alice }] }",
        &[
            ("POST", "/api/pay", &[("x-user", "alice")], true),
            ("GET", "/api/pay", &[("x-user", "alice")], false),
            ("POST", "/pay", &[("x-user", "alice")], false),
            ("POST", "/api/pay", &[("x-user", "bob")], false),
        ],
    )
    .await;
}
