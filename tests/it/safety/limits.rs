//! Blast-radius limits: the highest percentage, the routes experiments may target, and the cap on
//! concurrently faulted requests (past it requests pass untouched and the overflow counter rises).

use std::net::SocketAddr;

use crate::support::*;
use edgefault::{
    config::{Config, Overrides},
    pb::v1,
};
use tonic::Code;

fn config(upstream: SocketAddr, limits: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{upstream}\" }}\n      - {{ name: default, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\nlimits: {limits}\n"
    )
}

async fn start_err(proxy: &Proxy, yaml: &str) -> tonic::Status {
    let mut c = proxy.control().await;
    c.start_experiment(v1::StartExperimentRequest { spec: Some(spec(yaml)) }).await.expect_err("refused")
}

#[tokio::test]
async fn percentage_and_routes_past_the_limits_are_refused() {
    let proxy = proxy_yaml(&config(upstream().await, "{ max_percentage: 25, allowed_routes: [api] }")).await;

    let e = start_err(&proxy, "name: x\nmatch: { routes: [api] }\npercentage: 50\nfaults: [{ abort: {} }]\n").await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("percentage") && e.message().contains("limits.max_percentage"), "{}", e.message());

    let e = start_err(&proxy, "name: x\nmatch: { routes: [api] }\nfaults: [{ abort: {} }]\n").await;
    assert!(e.message().contains("absent, which means 100"), "{}", e.message());

    let e = start_err(&proxy, "name: x\npercentage: 10\nfaults: [{ abort: {} }]\n").await;
    assert!(e.message().contains("match.routes: required") && e.message().contains("api"), "{}", e.message());

    let e = start_err(&proxy, "name: x\nmatch: { routes: [default] }\npercentage: 10\nfaults: [{ abort: {} }]\n").await;
    assert!(
        e.message().contains("match.routes[0]") && e.message().contains("limits.allowed_routes"),
        "{}",
        e.message()
    );
    assert!(proxy.server.registry().list().is_empty(), "nothing started");

    let ok = proxy.start("name: x\nmatch: { routes: [api] }\npercentage: 25\nfaults: [{ abort: {} }]\n").await;
    assert_eq!(ok.state, v1::ExperimentState::Running as i32);
}

#[test]
fn limits_in_the_config_are_checked() {
    let e = Config::from_yaml(
        &config("127.0.0.1:9".parse().expect("addr"), "{ max_percentage: 150, allowed_routes: [api, nope] }"),
        "test",
        &Overrides::default(),
    )
    .expect_err("bad limits");
    let text = e.to_string();
    assert!(text.contains("limits.max_percentage: must be between 0 and 100"), "{text}");
    assert!(text.contains("limits.allowed_routes[1]: no route is named \"nope\""), "{text}");

    let o = Overrides { allowed_routes: Some(vec!["missing".into()]), ..Overrides::default() };
    let e = Config::from_yaml(&config("127.0.0.1:9".parse().expect("addr"), "{}"), "t", &o).expect_err("flag");
    assert!(e.to_string().contains("--allowed-routes[0]"), "{e}");
}

async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let text =
        String::from_utf8(get(&client(), &format!("http://{admin}/metrics")).await.body.to_vec()).expect("utf-8");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
}

#[tokio::test]
async fn past_max_active_faults_requests_pass_untouched_and_overflow_is_counted() {
    let proxy = proxy_yaml(&config(upstream().await, "{ max_active_faults: 2 }")).await;
    let admin = proxy.server.admin_addr().expect("admin");
    let e = proxy.start("name: hold\nfaults: [{ delay: { fixed: 2s } }]\n").await;

    // Two requests take both slots and are held by the delay.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let url = proxy.url("/held");
            tokio::spawn(async move { get(&client(), &url).await })
        })
        .collect();
    assert_eventually!(metric(admin, "edgefault_faults_active").await == 2.0, "both requests are held");

    // The third finds no slot: forwarded at once, untouched, not counted by the experiment.
    let third = get(&client(), &proxy.url("/third")).await;
    assert_eq!(third.status, 200);
    assert_eq!(third.headers["x-seen-path"], "/third");
    assert!(held.iter().all(|h| !h.is_finished()), "the held requests are still held");
    assert_eq!(metric(admin, "edgefault_faults_overflow_total").await, 1.0);
    let stats = proxy.server.registry().get(&e.id).expect("exists");
    assert_eq!((stats.matched, stats.injected), (2, 2));

    for h in held {
        assert_eq!(h.await.expect("join").status, 200);
    }
    // Slots are given back when the fault is over: the next request is faulted again.
    assert_eventually!(metric(admin, "edgefault_faults_active").await == 0.0, "slots freed");
    let next = tokio::spawn({
        let url = proxy.url("/again");
        async move { get(&client(), &url).await }
    });
    assert_eventually!(proxy.server.registry().get(&e.id).expect("exists").injected == 3, "faulted again");
    proxy.stop(&e.id).await;
    assert_eq!(next.await.expect("join").status, 200);
    assert_eq!(metric(admin, "edgefault_faults_overflow_total").await, 1.0);
}
