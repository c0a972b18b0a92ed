//! Fault headers (`routes[].fault_headers`): requests that ask for their own abort, gRPC abort, delay or
//! response throughput through Envoy's headers, over real sockets. The route `default` enables them;
//! the route `plain` (host `plain.test`) does not, and passes the same headers upstream untouched.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tonic_health::pb::HealthCheckRequest;

use crate::support::*;

const ABORT: &str = "x-envoy-fault-abort-request";
const ABORT_GRPC: &str = "x-envoy-fault-abort-grpc-request";
const ABORT_PERCENTAGE: &str = "x-envoy-fault-abort-request-percentage";
const DELAY: &str = "x-envoy-fault-delay-request";
const DELAY_PERCENTAGE: &str = "x-envoy-fault-delay-request-percentage";
const THROUGHPUT: &str = "x-envoy-fault-throughput-response";
const THROUGHPUT_PERCENTAGE: &str = "x-envoy-fault-throughput-response-percentage";

/// The proxy in front of `up`: route `plain` (host plain.test) without fault headers, then `default`
/// with `fault_headers` as given; an admin port for the metrics; `limits` as given.
async fn proxy_with(up: SocketAddr, fault_headers: &str, limits: &str) -> Proxy {
    proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: plain, hosts: [plain.test], upstream: \"http://{up}\" }}\n      - {{ name: default, upstream: \"http://{up}\", fault_headers: {fault_headers} }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ {limits} }}\n"
    ))
    .await
}

async fn app_proxy(fault_headers: &str, limits: &str) -> Proxy {
    proxy_with(FakeUpstream::app().start().await, fault_headers, limits).await
}

/// A GET of `path` with `headers` (and `host`, when given).
async fn ask(c: &HttpClient, proxy: &Proxy, path: &str, host: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let mut req = request("GET", &proxy.url(path));
    if let Some(h) = host {
        req = req.header("host", h);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(c, req.body(body(Bytes::new())).expect("request")).await
}

async fn metrics(proxy: &Proxy) -> String {
    let admin = proxy.server.admin_addr().expect("admin");
    String::from_utf8(get(&client(), &format!("http://{admin}/metrics")).await.body.to_vec()).expect("utf-8")
}

fn answered_by_upstream(r: &Reply) -> bool {
    r.status == 200 && r.headers.contains_key("x-upstream-version")
}

#[tokio::test]
async fn an_abort_header_answers_with_its_status_instead_of_the_upstream() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    for status in [503u16, 429, 200, 599] {
        let r = ask(&c, &proxy, "/", None, &[(ABORT, &status.to_string())]).await;
        assert_eq!(r.status.as_u16(), status);
        assert!(!r.headers.contains_key("x-upstream-version"), "the upstream was not asked");
    }
    let r = ask(&c, &proxy, "/", None, &[(ABORT, "503")]).await;
    assert_eq!(&r.body[..], b"503 Service Unavailable\n", "the body of any abort");
    assert!(answered_by_upstream(&ask(&c, &proxy, "/", None, &[]).await), "no header, no fault");
}

/// curl, a client we did not write, asks for an abort and a delay.
#[tokio::test]
async fn curl_asks_for_its_own_abort_and_delay() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed: skipped");
        return;
    }
    let proxy = app_proxy("true", "").await;
    let url = proxy.url("/");
    let curl = |headers: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"]);
            for h in headers {
                cmd.args(["-H", &h]);
            }
            let out = cmd.arg(&url).output().expect("curl runs");
            let text = String::from_utf8(out.stdout).expect("utf-8");
            let (code, secs) = text.split_once(' ').expect("code and time");
            (code.to_owned(), Duration::from_secs_f64(secs.trim().parse().expect("seconds")))
        })
    };
    let (code, _) = curl(vec![format!("{ABORT}: 502")]).await.expect("joined");
    assert_eq!(code, "502");
    let (code, took) = curl(vec![format!("{DELAY}: 300")]).await.expect("joined");
    assert_eq!(code, "200");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1300), "{took:?}");
}

#[tokio::test]
async fn the_abort_percentage_selects_its_share() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    let aborted = |n: usize, percentage: &'static str| {
        let (c, proxy) = (&c, &proxy);
        async move {
            let mut k = 0;
            for _ in 0..n {
                let r = ask(c, proxy, "/", None, &[(ABORT, "500"), (ABORT_PERCENTAGE, percentage)]).await;
                match r.status.as_u16() {
                    500 => k += 1,
                    200 => assert!(answered_by_upstream(&r)),
                    other => panic!("unexpected {other}"),
                }
            }
            k
        }
    };
    assert_eq!(aborted(50, "0").await, 0);
    assert_eq!(aborted(50, "100").await, 50);
    assert_eq!(aborted(50, "250").await, 50, "more than 100 is 100");
    // 400 draws at 50 %: the mean is 200 and the standard deviation 10; 140–260 fails once in 10^9.
    let half = aborted(400, "50").await;
    assert!((140..=260).contains(&half), "{half} of 400");
    eprintln!("abort percentage 50: {half} of 400 aborted");
}

fn check(headers: &[(&'static str, &'static str)]) -> tonic::Request<HealthCheckRequest> {
    let mut req = tonic::Request::new(HealthCheckRequest { service: "checkout".into() });
    for (k, v) in headers {
        req.metadata_mut().insert(*k, v.parse().expect("metadata value"));
    }
    req
}

#[tokio::test]
async fn a_grpc_abort_header_fails_a_tonic_call_with_its_status() {
    let proxy = proxy_with(FakeUpstream::grpc_health().start().await, "true", "").await;
    let mut c = health_client(&proxy).await;
    let ok = c.check(check(&[])).await.expect("no header: the upstream answers");
    assert_eq!(ok.into_inner().status, 1, "SERVING");
    for (code, want) in
        [("8", tonic::Code::ResourceExhausted), ("14", tonic::Code::Unavailable), ("2", tonic::Code::Unknown)]
    {
        let status = c.check(check(&[(ABORT_GRPC, code)])).await.expect_err("aborted");
        assert_eq!(status.code(), want);
    }
    // An HTTP status asked of a gRPC call becomes the code gRPC's mapping gives it; it wins over the gRPC one.
    let status = c.check(check(&[(ABORT, "503"), (ABORT_GRPC, "8")])).await.expect_err("aborted");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let status = c.check(check(&[(ABORT_GRPC, "8"), (ABORT_PERCENTAGE, "0")])).await;
    assert!(status.is_ok(), "0 %: {status:?}");
}

/// The official Python client (grpcio), a client we did not write, asks for a gRPC abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_abort_header_fails_a_python_grpcio_call() {
    let Some(py) = crate::support::peers::python(&["grpc"]) else { return };
    let proxy = proxy_with(FakeUpstream::grpc_health().start().await, "true", "").await;
    let target = proxy.addr.to_string();
    let call = |pairs: &[&str]| {
        let mut args = vec![target.as_str()];
        args.extend(pairs);
        let out =
            tokio::task::block_in_place(|| crate::support::peers::run_python(&py, "grpc_fault_headers.py", &args));
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON")["code"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(call(&[]), "OK");
    assert_eq!(call(&["x-envoy-fault-abort-grpc-request=7"]), "PERMISSION_DENIED");
    assert_eq!(call(&["x-envoy-fault-abort-request=503"]), "UNAVAILABLE");
    assert_eq!(call(&["x-envoy-fault-abort-grpc-request=7", "x-envoy-fault-abort-request-percentage=0"]), "OK");
}

#[tokio::test]
async fn a_grpc_abort_asked_by_plain_http_is_a_200_with_grpc_status() {
    let proxy = app_proxy("true", "").await;
    let r = ask(&client(), &proxy, "/", None, &[(ABORT_GRPC, "14")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"14"[..]));
    assert!(!r.headers.contains_key("x-upstream-version"));
}

#[tokio::test]
async fn a_delay_header_holds_the_request_before_the_upstream() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    let t = Instant::now();
    let base = ask(&c, &proxy, "/", None, &[]).await;
    let base_took = t.elapsed();
    assert!(answered_by_upstream(&base));
    for ms in [150u64, 400] {
        let t = Instant::now();
        let r = ask(&c, &proxy, "/", None, &[(DELAY, &ms.to_string())]).await;
        let took = t.elapsed();
        assert!(answered_by_upstream(&r), "a delay forwards the request");
        assert!(took >= Duration::from_millis(ms), "{ms} ms asked, {took:?}");
        assert!(took < Duration::from_millis(ms + 300) + base_took, "{ms} ms asked, {took:?}");
        eprintln!("delay header {ms} ms: answered after {took:?} (no delay: {base_took:?})");
    }
    let t = Instant::now();
    assert!(answered_by_upstream(&ask(&c, &proxy, "/", None, &[(DELAY, "2000"), (DELAY_PERCENTAGE, "0")]).await));
    assert!(t.elapsed() < Duration::from_millis(1000), "0 %: not delayed");
}

#[tokio::test]
async fn a_throughput_header_limits_the_response_body() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    let n = 32 * 1024;
    let t = Instant::now();
    let r = ask(&c, &proxy, &format!("/big?n={n}"), None, &[(THROUGHPUT, "16")]).await;
    let took = t.elapsed();
    assert_eq!(r.body.len(), n);
    assert!(r.body.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)), "the body is intact");
    // 32 KiB at 16 KiB/s: 2 s, less the first piece (50 ms worth) that goes at once.
    assert!(took >= Duration::from_millis(1700) && took < Duration::from_millis(3500), "{took:?}");
    eprintln!("throughput header 16 KiB/s: {n} bytes in {took:?}");
    let t = Instant::now();
    let r = ask(&c, &proxy, &format!("/big?n={n}"), None, &[(THROUGHPUT, "16"), (THROUGHPUT_PERCENTAGE, "0")]).await;
    assert_eq!(r.body.len(), n);
    assert!(t.elapsed() < Duration::from_millis(1000), "0 %: not limited, {:?}", t.elapsed());
}

/// The upstream's `/echo` mirrors each request header it got as `x-seen-<name>`.
#[tokio::test]
async fn headers_are_removed_on_an_enabled_route_and_passed_untouched_on_others() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    let all = [
        (ABORT_PERCENTAGE, "0"),
        (ABORT, "503"),
        (ABORT_GRPC, "8"),
        (DELAY_PERCENTAGE, "0"),
        (DELAY, "5000"),
        (THROUGHPUT_PERCENTAGE, "0"),
        (THROUGHPUT, "1"),
        ("x-other", "kept"),
    ];
    let r = ask(&c, &proxy, "/echo", None, &all).await;
    assert!(answered_by_upstream(&r), "every fault at 0 %");
    for (name, _) in &all[..7] {
        assert!(!r.headers.contains_key(format!("x-seen-{name}").as_str()), "{name} reached the upstream");
    }
    assert_eq!(r.headers.get("x-seen-x-other").map(|v| v.as_bytes()), Some(&b"kept"[..]));
    // On `plain` they are ordinary headers: no fault, and the upstream sees every one of them.
    let t = Instant::now();
    let r = ask(&c, &proxy, "/echo", Some("plain.test"), &all[1..]).await;
    assert!(answered_by_upstream(&r), "not aborted");
    assert!(t.elapsed() < Duration::from_millis(1000), "not delayed");
    for (name, value) in &all[1..] {
        assert_eq!(
            r.headers.get(format!("x-seen-{name}").as_str()).map(|v| v.as_bytes()),
            Some(value.as_bytes()),
            "{name} passed"
        );
    }
}

#[tokio::test]
async fn custom_names_replace_envoys() {
    let proxy =
        app_proxy("{ names: { abort: x-chaos-abort, delay: x-chaos-delay, throughput: x-chaos-kibps } }", "").await;
    let c = client();
    assert_eq!(ask(&c, &proxy, "/", None, &[("x-chaos-abort", "502")]).await.status, 502);
    let t = Instant::now();
    let r = ask(&c, &proxy, "/echo", None, &[("x-chaos-delay", "200"), (ABORT, "503"), (DELAY, "5000")]).await;
    assert!(answered_by_upstream(&r), "Envoy's abort name means nothing here");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500), "{took:?}");
    assert!(!r.headers.contains_key("x-seen-x-chaos-delay"), "the route's own names are removed");
    assert_eq!(r.headers.get(format!("x-seen-{ABORT}").as_str()).map(|v| v.as_bytes()), Some(&b"503"[..]));
    // The names not renamed stay Envoy's.
    let r = ask(&c, &proxy, "/", None, &[("x-chaos-abort", "500"), (ABORT_PERCENTAGE, "0")]).await;
    assert!(answered_by_upstream(&r));
}

#[tokio::test]
async fn a_delay_is_cut_to_max_delay_and_a_percentage_to_the_limit() {
    let proxy = app_proxy("{ max_delay: 200ms }", "max_percentage: 50").await;
    let c = client();
    let t = Instant::now();
    let r = ask(&c, &proxy, "/", None, &[(DELAY, "5000"), (DELAY_PERCENTAGE, "100")]).await;
    let took = t.elapsed();
    assert!(answered_by_upstream(&r));
    // 100 % asked, 50 % allowed: half of the requests are delayed, each by 200 ms, not 5 s.
    assert!(took < Duration::from_millis(1500), "capped: {took:?}");
    let mut aborted = 0;
    for _ in 0..400 {
        if ask(&c, &proxy, "/", None, &[(ABORT, "500")]).await.status == 500 {
            aborted += 1;
        }
    }
    assert!((140..=260).contains(&aborted), "no percentage header is 100 %, capped at 50: {aborted} of 400");
    eprintln!("max_percentage 50, abort header without percentage: {aborted} of 400 aborted");
    let mut delayed = 0;
    for _ in 0..20 {
        let t = Instant::now();
        ask(&c, &proxy, "/", None, &[(DELAY, "60000")]).await;
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1000), "capped at 200 ms: {took:?}");
        delayed += usize::from(took >= Duration::from_millis(200));
    }
    assert!((1..20).contains(&delayed), "about half of 20 delayed: {delayed}");
}

#[tokio::test]
async fn bad_values_leave_the_request_untouched_and_are_counted() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    let bad: [&[(&str, &str)]; 6] = [
        &[(ABORT, "abc")],
        &[(ABORT, "700")],
        &[(ABORT_GRPC, "17")],
        &[(ABORT, "503"), (ABORT_PERCENTAGE, "half")],
        &[(DELAY, "-5")],
        &[(ABORT, "503"), (THROUGHPUT, "0")],
    ];
    for headers in bad {
        let r = ask(&c, &proxy, "/echo", None, headers).await;
        assert!(answered_by_upstream(&r), "{headers:?} passes untouched, got {}", r.status);
        for (name, _) in headers {
            assert!(!r.headers.contains_key(format!("x-seen-{name}").as_str()), "{name} is still removed");
        }
    }
    let text = metrics(&proxy).await;
    assert!(text.contains("edgefault_fault_headers_invalid_total{listener=\"web\",route=\"default\"} 6"), "{text}");
    assert!(
        text.contains("edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"passed\"} 6"),
        "{text}"
    );
}

#[tokio::test]
async fn abort_all_releases_a_request_held_by_a_delay_header() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    let held = {
        let (c, url) = (c.clone(), proxy.url("/"));
        tokio::spawn(async move {
            let req = request("GET", &url).header(DELAY, "30000").body(body(Bytes::new())).expect("request");
            let r = send(&c, req).await;
            (r, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "held by its delay");
    assert!(metrics(&proxy).await.contains("edgefault_faults_active 1"), "the held request has a slot");
    assert_eq!(proxy.abort_all().await, 0, "no experiment was running");
    let aborted_at = Instant::now();
    let (r, done) = tokio::time::timeout(Duration::from_secs(5), held).await.expect("released").expect("joined");
    assert!(answered_by_upstream(&r), "released to the upstream");
    let after = done.saturating_duration_since(aborted_at);
    assert!(after < Duration::from_secs(1), "answered {after:?} after AbortAll returned");
    eprintln!("AbortAll released a 30 s header delay: answered {after:?} after the call returned");
    // Header faults are configuration: later requests may ask again.
    let t = Instant::now();
    assert!(answered_by_upstream(&ask(&c, &proxy, "/", None, &[(DELAY, "150")]).await));
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn header_faults_are_counted_like_injected_faults() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    assert_eq!(ask(&c, &proxy, "/", None, &[(ABORT, "503")]).await.status, 503);
    assert!(answered_by_upstream(&ask(&c, &proxy, "/", None, &[(DELAY, "10")]).await));
    assert!(answered_by_upstream(&ask(&c, &proxy, "/", None, &[(THROUGHPUT, "1000")]).await));
    assert!(answered_by_upstream(&ask(&c, &proxy, "/", None, &[]).await));
    let text = metrics(&proxy).await;
    for line in [
        "edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"injected\"} 3",
        "edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"passed\"} 1",
        "edgefault_faults_injected_total{experiment=\"fault-headers\",name=\"fault-headers\",kind=\"abort\"} 1",
        "edgefault_faults_injected_total{experiment=\"fault-headers\",name=\"fault-headers\",kind=\"delay\"} 1",
        "edgefault_faults_injected_total{experiment=\"fault-headers\",name=\"fault-headers\",kind=\"throttle\"} 1",
        "edgefault_injected_delay_seconds_count{listener=\"web\",route=\"default\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
}

#[tokio::test]
async fn the_fault_cap_bounds_header_faults_too() {
    let proxy = app_proxy("true", "max_active_faults: 1").await;
    let c = client();
    let held = {
        let (c, url) = (c.clone(), proxy.url("/"));
        tokio::spawn(async move {
            send(&c, request("GET", &url).header(DELAY, "30000").body(body(Bytes::new())).expect("request")).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = ask(&c, &proxy, "/echo", None, &[(ABORT, "503")]).await;
    assert!(answered_by_upstream(&r), "no slot free: untouched");
    assert!(!r.headers.contains_key(format!("x-seen-{ABORT}").as_str()), "and still removed");
    assert!(metrics(&proxy).await.contains("edgefault_faults_overflow_total 1"));
    proxy.abort_all().await;
    let r = tokio::time::timeout(Duration::from_secs(5), held).await.expect("released").expect("joined");
    assert!(answered_by_upstream(&r));
    assert_eq!(ask(&c, &proxy, "/", None, &[(ABORT, "503")]).await.status, 503, "the slot is free again");
}

/// An experiment's abort comes first; the header's delay adds to the experiment's.
#[tokio::test]
async fn experiments_and_header_faults_combine() {
    let proxy = app_proxy("true", "").await;
    let c = client();
    proxy.start("name: slow\nfaults: [{ delay: { fixed: 100ms } }]\n").await;
    let t = Instant::now();
    assert!(answered_by_upstream(&ask(&c, &proxy, "/", None, &[(DELAY, "150")]).await));
    assert!(t.elapsed() >= Duration::from_millis(250), "delays add: {:?}", t.elapsed());
    proxy.start("name: down\nfaults: [{ abort: { http_status: 502 } }]\n").await;
    assert_eq!(ask(&c, &proxy, "/", None, &[(ABORT, "503")]).await.status, 502, "the experiment's abort wins");
}
