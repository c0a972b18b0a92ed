//! Untouched traffic stays untouched when upstreams rotate their connections or speak another protocol:
//! real nginx retiring connections after 100 requests (HTTP/2 GOAWAY, HTTP/1.1 `connection: close`), a
//! gRPC server with a maximum connection age, an HTTP/1.1 server that drops its connections without a
//! word, and HTTP/2 clients in front of an HTTP/1.1-only app: no request gets an error of the proxy's.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::support::{peers::nginx, *};

async fn proxy_to(upstream: &str, protocol: &str) -> Proxy {
    proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{{ name: default, upstream: \"{upstream}\", protocol: {protocol} }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await
}

/// Sends `n` GETs, `concurrency` at a time, with `client`; returns how many were not 200, with a sample.
async fn load(client: &HttpClient, url: &str, n: usize, concurrency: usize) -> (usize, Vec<String>) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (client, url) = (client.clone(), url.to_owned());
        let share = n / concurrency + usize::from(worker < n % concurrency);
        tasks.spawn(async move {
            let mut bad = Vec::new();
            for _ in 0..share {
                let req = request("GET", &url).body(body("")).expect("request");
                match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                    Ok(Ok(resp)) if resp.status() == 200 => {
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                    }
                    Ok(Ok(resp)) => {
                        bad.push(format!("{} {:?}", resp.status(), resp.headers().get("x-edgefault-error")))
                    }
                    Ok(Err(e)) => bad.push(format!("client error: {e}")),
                    Err(_) => bad.push("timeout".into()),
                }
            }
            bad
        });
    }
    let mut bad = Vec::new();
    while let Some(r) = tasks.join_next().await {
        bad.extend(r.expect("worker"));
    }
    (bad.len(), bad.into_iter().take(5).collect())
}

async fn metric_sum(proxy: &Proxy, name: &str) -> u64 {
    let admin = proxy.server.admin_addr().expect("admin");
    let text = String::from_utf8_lossy(&get(&client(), &format!("http://{admin}/metrics")).await.body).into_owned();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// nginx's HTTP/2 retires a connection after 100 requests with a GOAWAY; the requests on streams it left
/// out are sent again on a new connection, counted, and no client sees an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstreams_that_send_goaway_lose_no_request() {
    let Some(ngx) = nginx(&["listen {listen} http2; keepalive_requests 100; location / { return 200 \"ok\\n\"; }"])
    else {
        return;
    };
    for protocol in ["auto", "http2"] {
        let proxy = proxy_to(&format!("http://{}", ngx.addrs[0]), protocol).await;
        let (bad, sample) = load(&h2_client(), &proxy.url("/"), 4000, 40).await;
        assert_eq!(bad, 0, "protocol {protocol}: {sample:?}");
        let retried = metric_sum(&proxy, "edgefault_upstream_retries_total").await;
        assert!(
            retried > 0,
            "protocol {protocol}: the upstream rotated its connections (40 GOAWAYs) and some streams were sent again"
        );
        assert_eq!(
            metric_sum(
                &proxy,
                "edgefault_requests_total{listener=\"web\",route=\"default\",outcome=\"upstream_error\"}"
            )
            .await,
            0
        );
    }
}

/// nginx's HTTP/1.1 closes a connection after 100 requests (`connection: close`): HTTP/1.1 clients and
/// h2c clients (forwarded over HTTP/1.1 by `protocol: auto`, as the app speaks no HTTP/2) see no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_only_upstreams_rotating_connections_lose_no_request() {
    let Some(ngx) = nginx(&["listen {listen}; keepalive_requests 100; location / { return 200 \"ok\\n\"; }"]) else {
        return;
    };
    let proxy = proxy_to(&format!("http://{}", ngx.addrs[0]), "auto").await;
    for (name, c) in [("http/1.1", client()), ("h2c", h2_client())] {
        let (bad, sample) = load(&c, &proxy.url("/"), 3000, 30).await;
        assert_eq!(bad, 0, "{name} clients: {sample:?}");
    }
}

/// With `protocol: http2` fixed in front of an HTTP/1.1-only app, the error says what to set.
#[tokio::test]
async fn a_fixed_http2_to_an_http1_app_says_what_to_set() {
    let Some(ngx) = nginx(&["listen {listen}; location / { return 200 \"ok\\n\"; }"]) else {
        return;
    };
    let proxy = proxy_to(&format!("http://{}", ngx.addrs[0]), "http2").await;
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.status, 502);
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("does not speak HTTP/2; set protocol: auto (or http1) on route \"default\""), "{text}");
}

/// h2c clients in front of an HTTP/1.1-only app are forwarded over HTTP/1.1 (the upstream sees HTTP/1.1).
#[tokio::test]
async fn h2c_clients_reach_an_http1_only_app_over_http1() {
    let app = FakeUpstream::app().http1_only().start().await;
    let proxy = proxy_to(&format!("http://{app}"), "auto").await;
    let (bad, sample) = load(&h2_client(), &proxy.url("/"), 200, 10).await;
    assert_eq!(bad, 0, "{sample:?}");
    let r = get(&h2_client(), &proxy.url("/echo")).await;
    assert_eq!(r.headers["x-seen-version"], "HTTP/1.1");
}

/// An HTTP/1.1 server that answers three requests per connection, then drops it without a word (no
/// `connection: close`): the proxy's next request on that connection meets a closed socket. Idempotent
/// requests without a body are sent again; the client sees every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_drops_connections_without_notice_loses_no_get() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut pending = Vec::new();
                let mut answered = 0;
                while answered < 3 {
                    while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = pending.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                    pending.drain(..end);
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n").await.is_err() {
                        return;
                    }
                    answered += 1;
                }
                // Dropped: a FIN with no notice; a request already on its way meets a reset.
            });
        }
    });
    let proxy = proxy_to(&format!("http://{addr}"), "auto").await;
    let (bad, sample) = load(&client(), &proxy.url("/"), 600, 6).await;
    assert_eq!(bad, 0, "{sample:?}");
}

/// A gRPC server with a maximum connection age retires its connections with a GOAWAY every 200 ms while
/// unary calls stream through the proxy: every call succeeds. (Its HTTP/2 stack also takes more than 100
/// empty DATA frames on a connection for an attack and ends the connection with ENHANCE_YOUR_CALM: a
/// client's body that ends with an empty DATA frame must not reach it as one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_server_with_a_max_connection_age_loses_no_call() {
    let (_reporter, service) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .max_connection_age(Duration::from_millis(200))
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    let proxy = proxy_to(&format!("http://{addr}"), "auto").await;
    let channel = tonic::transport::Channel::from_shared(proxy.url("")).expect("uri").connect().await.expect("connect");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut c = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        tasks.spawn(async move {
            let mut failed = Vec::new();
            let until = tokio::time::Instant::now() + Duration::from_millis(1500);
            let mut n = 0;
            while tokio::time::Instant::now() < until {
                n += 1;
                if let Err(s) = c.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await {
                    failed.push(format!("{:?}: {}", s.code(), s.message()));
                }
            }
            (n, failed)
        });
    }
    let (mut calls, mut failed) = (0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (n, f) = r.expect("worker");
        calls += n;
        failed.extend(f);
    }
    assert!(calls > 100, "{calls} calls");
    assert!(failed.is_empty(), "{} of {calls} failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
}

/// The shipped ingress example (`examples/ingress/edgefault.yaml`, its binds moved to free ports and its
/// app to a real nginx that speaks only HTTP/1.1), met by curl as a browser would: HTTP/2 over TLS by ALPN
/// and h2c with prior knowledge reach the app over HTTP/1.1, no 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_example_serves_http2_clients_an_http1_app() {
    let Some(ngx) = nginx(&["listen {listen}; location / { return 200 \"app\\n\"; }"]) else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("examples/ingress/edgefault.yaml")).expect("example");
    let yaml = yaml
        .replace("127.0.0.1:3000", &ngx.addrs[0].to_string())
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:7070", "127.0.0.1:0")
        .replace("127.0.0.1:9095", "127.0.0.1:0");
    let proxy = proxy_yaml(&yaml).await;
    let tls = proxy.server.listener_addr("web-tls").expect("web-tls");
    let curl = |args: Vec<String>| {
        let out = std::process::Command::new("curl").args(args).output().expect("curl runs");
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let ca = root.join("examples/ingress/certs/ca.crt").display().to_string();
    let fmt = "%{http_code} %{http_version}\n".to_owned();
    for _ in 0..20 {
        let (out, err) = tokio::task::block_in_place(|| {
            curl(vec![
                "-sS".into(),
                "--http2".into(),
                "--cacert".into(),
                ca.clone(),
                "--resolve".into(),
                format!("localhost:{}:127.0.0.1", tls.port()),
                "-w".into(),
                fmt.clone(),
                format!("https://localhost:{}/", tls.port()),
            ])
        });
        assert_eq!(out, "app\n200 2\n", "HTTP/2 over TLS: {err}");
        let (out, err) = tokio::task::block_in_place(|| {
            curl(vec!["-sS".into(), "--http2-prior-knowledge".into(), "-w".into(), fmt.clone(), proxy.url("/")])
        });
        assert_eq!(out, "app\n200 2\n", "h2c: {err}");
    }
}
