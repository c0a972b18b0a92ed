//! Config reload on SIGHUP, against the real binary: a broken config is rejected and the old one keeps
//! serving; a good one takes effect; an open keep-alive connection survives both.

use std::net::SocketAddr;

use crate::support::{binary, *};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

fn config(upstream: SocketAddr, max_percentage: u32) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ max_percentage: {max_percentage} }}\n"
    )
}

/// One HTTP/1.1 connection, kept open across requests.
struct Conn(hyper::client::conn::http1::SendRequest<BoxBody>);

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
        tokio::spawn(conn);
        Conn(send)
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        self.0.ready().await.expect("the connection is still open");
        let req = request("GET", path).header("host", "test").body(body("")).expect("request");
        let resp = self.0.send_request(req).await.expect("response on the same connection");
        let status = resp.status().as_u16();
        let text = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&text).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_rejects_a_broken_config_and_applies_a_good_one_without_dropping_connections() {
    let first = upstream().await;
    // The second upstream is another edgefault answering 418 to everything: easy to tell apart.
    let second = proxy(upstream().await).await;
    second.start("name: teapot\nfaults: [{ abort: { http_status: 418 } }]\n").await;

    let dir = std::env::temp_dir().join(format!("edgefault-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("edgefault.yaml");
    std::fs::write(&path, config(first, 100)).expect("write");
    let served = binary::serve(&["--config", &path.display().to_string()], true);
    let mut conn = Conn::open(served.listener).await;
    assert_eq!(conn.get("/").await, (200, "upstream ok".into()));

    // Broken: rejected with the place of the problem; the old config keeps serving on the same connection.
    std::fs::write(&path, config(first, 100).replace("upstream: \"http://", "upstream: \"ftp://")).expect("write");
    served.signal("HUP");
    let rejected = served.wait_log("config reload rejected");
    assert!(rejected.contains("listeners[0].routes[0].upstream"), "{rejected}");
    assert_eq!(conn.get("/").await, (200, "upstream ok".into()));

    // Good: the route's upstream and a limit change; the open connection goes on with the new upstream.
    std::fs::write(&path, config(second.addr, 20)).expect("write");
    served.signal("HUP");
    served.wait_log("config reloaded");
    assert_eq!(conn.get("/").await.0, 418, "the reloaded route's upstream answers");
    let mut control =
        edgefault::pb::v1::fault_control_client::FaultControlClient::connect(format!("http://{}", served.control))
            .await
            .expect("control");
    let refused = control
        .start_experiment(edgefault::pb::v1::StartExperimentRequest {
            spec: Some(spec("name: big\npercentage: 50\nfaults: [{ abort: { http_status: 503 } }]\n")),
        })
        .await
        .expect_err("the reloaded limit holds");
    assert!(refused.message().contains("exceeds the server's maximum of 20"), "{}", refused.message());

    let metrics = get(&client(), &format!("http://{}/metrics", served.admin.expect("admin"))).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("edgefault_config_reloads_total{outcome=\"rejected\"} 1"), "{text}");
    assert!(text.contains("edgefault_config_reloads_total{outcome=\"ok\"} 1"), "{text}");
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_reload_that_renames_routes_is_refused_and_binds_are_not_reloaded() {
    let up = upstream().await;
    let proxy = proxy_yaml(&config(up, 100)).await;
    let renamed = config(up, 100).replace("name: default", "name: site");
    let c = edgefault::config::Config::from_yaml(&renamed, "t", &Default::default()).expect("valid");
    let e = proxy.server.reloader().apply(c).expect_err("refused");
    assert!(e.to_string().contains("must keep their names and order"), "{e}");
    let moved = config(up, 100).replace("bind: 127.0.0.1:0\n    routes", "bind: 127.0.0.1:1\n    routes");
    let c = edgefault::config::Config::from_yaml(&moved, "t", &Default::default()).expect("valid");
    let notes = proxy.server.reloader().apply(c).expect("applied");
    assert!(
        notes.ignored.iter().any(|n| n.starts_with("listeners[0].bind") && n.contains("not reloadable")),
        "{notes:?}"
    );
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200, "still serving where it was");
}
