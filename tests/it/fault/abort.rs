//! `abort`: whole and fractional, HTTP and gRPC, seen by real clients.

use std::time::Duration;

use crate::support::*;
use edgefault::pb::v1;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

#[tokio::test]
async fn abort_at_100_percent_answers_every_request() {
    let proxy = proxy(upstream().await).await;
    let c = client();
    assert_eq!(get(&c, &proxy.url("/")).await.status, 200);

    let e = proxy
        .start("name: all-503\nfaults:\n  - abort: { http_status: 503, body: \"edge says no\", headers: { server: edge, x-ray: abc } }\n")
        .await;
    assert_eq!(e.state, v1::ExperimentState::Running as i32);
    for _ in 0..20 {
        let r = get(&c, &proxy.url("/anything")).await;
        assert_eq!(r.status, 503);
        assert_eq!(&r.body[..], b"edge says no");
        assert_eq!(r.headers["server"], "edge");
        assert_eq!(r.headers["x-ray"], "abc");
        assert!(r.headers.get("x-upstream").is_none(), "the upstream was not reached");
        assert!(r.headers.get("x-edgefault-error").is_none(), "an injected fault does not look like a proxy error");
    }
    let got = proxy
        .control()
        .await
        .get_experiment(v1::GetExperimentRequest { id: e.id.clone() })
        .await
        .expect("get")
        .into_inner();
    let stats = got.stats.expect("stats");
    assert_eq!((stats.matched, stats.injected, stats.aborted), (20, 20, 20));
}

#[tokio::test]
async fn abort_default_body_names_the_status() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: x\nfaults: [{ abort: { http_status: 502 } }]\n").await;
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.status, 502);
    assert_eq!(&r.body[..], b"502 Bad Gateway\n");
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn only_grpc_status_gives_http_503_to_plain_clients() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: x\nfaults: [{ abort: { grpc_status: 8 } }]\n").await;
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);
}

#[tokio::test]
async fn fractional_percentage_stays_within_bounds() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: x\npercentage: 12.5\nfaults: [{ abort: { http_status: 500 } }]\n").await;
    let c = client();
    let n = 2000;
    let mut injected = 0;
    for _ in 0..n {
        match get(&c, &proxy.url("/")).await.status.as_u16() {
            500 => injected += 1,
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    // Binomial(2000, 0.125): mean 250, sd 14.8; ±90 is beyond 6 sd.
    assert!((160..=340).contains(&injected), "{injected} of {n}");
}

#[tokio::test]
async fn a_seed_makes_the_choices_reproducible() {
    let up = upstream().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let proxy = proxy(up).await;
        proxy.start("name: x\npercentage: 50\nseed: 42\nfaults: [{ abort: { http_status: 500 } }]\n").await;
        let c = client();
        let mut seq = Vec::new();
        for _ in 0..64 {
            seq.push(get(&c, &proxy.url("/")).await.status.as_u16());
        }
        runs.push(seq);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&500) && runs[0].contains(&200));
}

async fn health_check(proxy: &Proxy) -> Result<ServingStatus, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", proxy.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut c = HealthClient::new(channel);
    c.check(HealthCheckRequest { service: "checkout".into() }).await.map(|r| r.into_inner().status())
}

#[tokio::test]
async fn grpc_passes_through_and_aborts_as_a_real_server_would() {
    let proxy = proxy(FakeUpstream::grpc_health().start().await).await;
    assert_eq!(health_check(&proxy).await.expect("passthrough"), ServingStatus::Serving);

    let e = proxy
        .start("name: grpc\nmatch: { path_prefix: /grpc.health.v1.Health/ }\nfaults: [{ abort: { grpc_status: 14, grpc_message: \"edge unavailable: 100% down\" } }]\n")
        .await;
    let status = health_check(&proxy).await.expect_err("aborted");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "edge unavailable: 100% down");
    proxy.stop(&e.id).await;

    // Only an HTTP status: the gRPC client sees the code gRPC's mapping gives it (404 → UNIMPLEMENTED).
    proxy.start("name: grpc-http\nfaults: [{ abort: { http_status: 404 } }]\n").await;
    let status = health_check(&proxy).await.expect_err("aborted");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn grpc_abort_after_delay_is_seen_after_the_delay() {
    let proxy = proxy(FakeUpstream::grpc_health().start().await).await;
    proxy.start("name: slow-fail\nfaults: [{ delay: { fixed: 150ms } }, { abort: { grpc_status: 4 } }]\n").await;
    let t = std::time::Instant::now();
    let status = health_check(&proxy).await.expect_err("aborted");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(t.elapsed() >= Duration::from_millis(150));
}
