//! gRPC traffic: matching by service and method, and failing streaming calls mid-stream — a real tonic
//! client and server (the gRPC health service) on both sides of the proxy.

use std::time::Duration;

use crate::support::*;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;

/// Reads a Watch stream until it ends (or 10 s); returns how many messages came and the final status.
async fn watch(proxy: &Proxy) -> (usize, Option<tonic::Status>) {
    let mut c = health_client(proxy).await;
    let mut stream = match c.watch(HealthCheckRequest { service: "checkout".into() }).await {
        Ok(s) => s.into_inner(),
        Err(status) => return (0, Some(status)),
    };
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return (n, None),
            Ok(None) => return (n, None),
            Ok(Some(Ok(_))) => n += 1,
            Ok(Some(Err(status))) => return (n, Some(status)),
        }
    }
}

#[tokio::test]
async fn a_method_matcher_fails_one_method_of_a_service() {
    let proxy = proxy(FakeUpstream::grpc_health().flapping(Duration::from_secs(60)).start().await).await;
    proxy
        .start("name: check-down\nmatch: { grpc: { service: grpc.health.v1.Health, method: Check } }\nfaults: [{ abort: { grpc_status: 8, grpc_message: quota } }]\n")
        .await;
    let mut c = health_client(&proxy).await;
    let status = c.check(HealthCheckRequest { service: "checkout".into() }).await.expect_err("Check fails");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status.message(), "quota");
    // Watch, another method of the same service, is untouched.
    let mut stream = c.watch(HealthCheckRequest { service: "checkout".into() }).await.expect("watch").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("in time");
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
}

#[tokio::test]
async fn a_service_matcher_takes_every_method_and_no_plain_http() {
    let up = FakeUpstream::grpc_health().flapping(Duration::from_secs(60)).start().await;
    let proxy = proxy(up).await;
    proxy
        .start("name: health-down\nmatch: { grpc: { service: grpc.health.v1.Health } }\nfaults: [{ abort: { http_status: 503 } }]\n")
        .await;
    let mut c = health_client(&proxy).await;
    let status = c.check(HealthCheckRequest { service: "checkout".into() }).await.expect_err("Check fails");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let (_, status) = watch(&proxy).await;
    assert_eq!(status.map(|s| s.code()), Some(tonic::Code::Unavailable));
}

#[tokio::test]
async fn a_stream_fails_after_n_messages_with_the_status() {
    let proxy = proxy(FakeUpstream::grpc_health().flapping(Duration::from_millis(20)).start().await).await;
    proxy
        .start("name: mid-stream\nmatch: { grpc: { service: grpc.health.v1.Health, method: Watch } }\nfaults: [{ grpc_stream: { after_messages: 3, grpc_status: 14, grpc_message: \"edge reset the stream\" } }]\n")
        .await;
    let (n, status) = watch(&proxy).await;
    assert_eq!(n, 3, "exactly three messages before the failure");
    let status = status.expect("the stream ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "edge reset the stream");
}

#[tokio::test]
async fn a_stream_fails_after_a_time_at_a_message_boundary() {
    let proxy = proxy(FakeUpstream::grpc_health().flapping(Duration::from_millis(50)).start().await).await;
    proxy
        .start("name: timed\nmatch: { grpc: { service: grpc.health.v1.Health } }\nfaults: [{ grpc_stream: { after: 300ms, grpc_status: 4 } }]\n")
        .await;
    let t = std::time::Instant::now();
    let (n, status) = watch(&proxy).await;
    assert_eq!(status.map(|s| s.code()), Some(tonic::Code::DeadlineExceeded));
    assert!(t.elapsed() >= Duration::from_millis(290), "ended after {:?}", t.elapsed());
    // About six flips in 300 ms, each a whole message; the first comes at once.
    assert!((2..=9).contains(&n), "{n} messages");
}

#[tokio::test]
async fn grpc_matchers_and_stream_faults_are_validated() {
    let up = FakeUpstream::grpc_health().flapping(Duration::from_secs(60)).start().await;
    let proxy = proxy(up).await;
    let bad = [
        ("name: x\nmatch: { grpc: { service: \"\" } }\nfaults: [{ abort: { grpc_status: 14 } }]\n", "match.grpc.service"),
        ("name: x\nmatch: { grpc: { service: a.B, method: \"Say/Hello\" } }\nfaults: [{ abort: { grpc_status: 14 } }]\n", "match.grpc.method"),
        ("name: x\nmatch: { path_prefix: /a, grpc: { service: a.B } }\nfaults: [{ abort: { grpc_status: 14 } }]\n", "match.grpc"),
        ("name: x\nfaults: [{ grpc_stream: { grpc_status: 14 } }]\n", "faults[0].grpc_stream"),
        ("name: x\nfaults: [{ grpc_stream: { after_messages: 1, grpc_status: 0 } }]\n", "faults[0].grpc_stream.grpc_status"),
    ];
    for (yaml, field) in bad {
        let fields = violation_fields(&proxy, yaml).await;
        assert!(fields.iter().any(|f| f == field), "{field} not in {fields:?} for {yaml}");
    }
}

/// A stream whose `grpc_stream` fault is armed goes on untouched once its experiment stops: messages keep
/// coming past the fault's time, and no injected status ends it.
#[tokio::test]
async fn stopping_the_experiment_disarms_a_stream_fault_already_armed() {
    let proxy = proxy(FakeUpstream::grpc_health().flapping(Duration::from_millis(50)).start().await).await;
    let e = proxy
        .start("name: timed\nmatch: { grpc: { service: grpc.health.v1.Health } }\nfaults: [{ grpc_stream: { after: 1s, grpc_status: 14 } }]\n")
        .await;
    let mut c = health_client(&proxy).await;
    let mut stream = c.watch(HealthCheckRequest { service: "checkout".into() }).await.expect("watch").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("in time");
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    proxy.stop(&e.id).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(1_600);
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(2), stream.next()).await.expect("a message in time") {
            Some(Ok(_)) => n += 1,
            other => panic!("the stream ended after {n} more messages: {other:?}"),
        }
    }
    assert!(n >= 10, "{n} messages after the stop");
}
