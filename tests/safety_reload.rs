//! Config reload on SIGHUP, against the real binary: a broken config is rejected and the old one keeps
//! serving; a good one takes effect; an open keep-alive connection survives both.

mod support;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use support::*;

fn config(upstream: SocketAddr, max_percentage: u32) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ max_percentage: {max_percentage} }}\n"
    )
}

/// The address in a JSON log line's `addr` field (`127.0.0.1:1` or `Some(127.0.0.1:1)`).
fn addr_of(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let a = v.get("addr")?.as_str()?;
    a.trim_start_matches("Some(").trim_end_matches(')').parse().ok()
}

struct Served {
    child: Child,
    listener: SocketAddr,
    control: SocketAddr,
    admin: SocketAddr,
    logs: mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config_path: &std::path::Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["serve", "--log-format", "json", "--config", &config_path.display().to_string()])
        .env_remove("EDGEFAULT_ADMIN_TOKEN")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawns");
    let (tx, logs) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut listener, mut control, mut admin) = (None, None, None);
    while listener.is_none() || control.is_none() || admin.is_none() {
        let line = logs.recv_timeout(Duration::from_secs(20)).expect("the server logs its ports");
        match () {
            () if line.contains("\"listening\"") => listener = addr_of(&line),
            () if line.contains("control service listening") => control = addr_of(&line),
            () if line.contains("admin endpoint listening") => admin = addr_of(&line),
            () => {}
        }
    }
    Served {
        child,
        listener: listener.expect("listener"),
        control: control.expect("control"),
        admin: admin.expect("admin"),
        logs,
    }
}

/// Waits for a log line containing `needle`; returns it.
fn wait_log(logs: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = logs.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

fn sighup(child: &Child) {
    let ok = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().expect("kill");
    assert!(ok.success());
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
    let served = serve(&path);
    let mut conn = Conn::open(served.listener).await;
    assert_eq!(conn.get("/").await, (200, "upstream ok".into()));

    // Broken: rejected with the place of the problem; the old config keeps serving on the same connection.
    std::fs::write(&path, config(first, 100).replace("upstream: \"http://", "upstream: \"ftp://")).expect("write");
    sighup(&served.child);
    let rejected = wait_log(&served.logs, "config reload rejected");
    assert!(rejected.contains("listeners[0].routes[0].upstream"), "{rejected}");
    assert_eq!(conn.get("/").await, (200, "upstream ok".into()));

    // Good: the route's upstream and a limit change; the open connection goes on with the new upstream.
    std::fs::write(&path, config(second.addr, 20)).expect("write");
    sighup(&served.child);
    wait_log(&served.logs, "config reloaded");
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

    let metrics = get(&client(), &format!("http://{}/metrics", served.admin)).await;
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
    assert!(notes.iter().any(|n| n.starts_with("listeners[0].bind") && n.contains("not reloadable")), "{notes:?}");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200, "still serving where it was");
}
