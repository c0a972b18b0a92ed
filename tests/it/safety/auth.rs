//! Control-plane security: bearer tokens with roles, refusing an open control port, the audit log, and
//! `ctl` sending a token.

use std::{path::PathBuf, process::Command};

use crate::support::*;
use edgefault::{
    app::Server,
    config::{Config, Overrides},
    pb::v1::{self as v1, fault_control_client::FaultControlClient},
};
use tonic::{metadata::MetadataValue, transport::Channel, Code};

const ADMIN: &str = "admin-secret-5f1c2a9e7b";
const VIEWER: &str = "viewer-secret-81d0c3aa";

/// A directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("edgefault-safety-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("mkdir");
        Dir(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tokens_file(dir: &Dir) -> PathBuf {
    dir.write(
        "tokens.yaml",
        &format!(
            "- {{ name: ops, role: admin, token: {ADMIN} }}\n- {{ name: viewer, role: read-only, token: {VIEWER} }}\n"
        ),
    )
}

fn config_yaml(upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n{extra}"
    )
}

/// The proxy with the tokens of `tokens_file` and `extra` config.
async fn secured(dir: &Dir, extra: &str) -> Proxy {
    let overrides = Overrides { tokens_file: Some(tokens_file(dir)), ..Overrides::default() };
    let config = Config::from_yaml(&config_yaml(upstream().await, extra), "test", &overrides).expect("config");
    let server = Server::start(config).await.expect("starts");
    let addr = server.listener_addrs()[0].1;
    let control_url = format!("http://{}", server.control_addr());
    Proxy { server, addr, control_url }
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"));
    req
}

fn start_req() -> v1::StartExperimentRequest {
    v1::StartExperimentRequest { spec: Some(spec("name: x\nfaults: [{ abort: { http_status: 503 } }]\n")) }
}

async fn client(proxy: &Proxy) -> FaultControlClient<Channel> {
    proxy.control().await
}

#[tokio::test]
async fn no_token_and_wrong_token_are_refused() {
    let dir = Dir::new("refused");
    let proxy = secured(&dir, "").await;
    let mut c = client(&proxy).await;

    let none = c.list_experiments(v1::ListExperimentsRequest::default()).await.expect_err("no token");
    assert_eq!(none.code(), Code::Unauthenticated);
    assert!(none.message().contains("Bearer") && none.message().contains("--token-file"), "{}", none.message());

    let wrong = c.start_experiment(with_token(start_req(), "not-the-right-token-at-all")).await.expect_err("wrong");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(!wrong.message().contains("not-the-right"), "the presented token is not echoed");
    assert_eq!(get(&crate::support::client(), &proxy.url("/")).await.status, 200, "nothing started");
    assert!(proxy.server.registry().list().is_empty());
}

#[tokio::test]
async fn a_read_only_token_reads_but_cannot_change_anything() {
    let dir = Dir::new("readonly");
    let proxy = secured(&dir, "").await;
    let mut c = client(&proxy).await;

    let list = c.list_experiments(with_token(v1::ListExperimentsRequest::default(), VIEWER)).await.expect("list");
    assert!(list.into_inner().experiments.is_empty());
    let valid = c
        .validate_experiment(with_token(v1::ValidateExperimentRequest { spec: start_req().spec }, VIEWER))
        .await
        .expect("validate");
    assert!(valid.into_inner().valid);

    let denied = c.start_experiment(with_token(start_req(), VIEWER)).await.expect_err("read-only");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("viewer") && denied.message().contains("admin token"), "{}", denied.message());
    let denied = c.abort_all(with_token(v1::AbortAllRequest::default(), VIEWER)).await.expect_err("read-only");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(proxy.server.registry().list().is_empty());
}

#[tokio::test]
async fn an_admin_token_drives_experiments_and_health_stays_open() {
    let dir = Dir::new("admin");
    let proxy = secured(&dir, "").await;
    let mut c = client(&proxy).await;
    let e = c.start_experiment(with_token(start_req(), ADMIN)).await.expect("start").into_inner();
    assert_eq!(get(&crate::support::client(), &proxy.url("/")).await.status, 503);
    c.stop_experiment(with_token(v1::StopExperimentRequest { id: e.id, reason: String::new() }, ADMIN))
        .await
        .expect("stop");
    assert_eq!(get(&crate::support::client(), &proxy.url("/")).await.status, 200);

    let channel = Channel::from_shared(proxy.control_url.clone()).expect("url").connect().await.expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .expect("health needs no token")
        .into_inner();
    assert_eq!(status.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
}

#[test]
fn a_control_port_off_loopback_needs_a_token() {
    let yaml = "listeners:\n  - { name: web, bind: \"127.0.0.1:0\", routes: [{ name: d, upstream: \"http://127.0.0.1:9\" }] }\ncontrol: { bind: \"0.0.0.0:7070\" }\n";
    let e = Config::from_yaml(yaml, "test", &Overrides::default()).expect_err("open control port");
    let text = e.to_string();
    assert!(text.contains("control.bind") && text.contains("loopback") && text.contains("--tokens-file"), "{text}");

    let flag = Overrides { control: Some("[::]:7070".into()), ..Overrides::default() };
    let e = Config::from_yaml(yaml, "test", &flag).expect_err("open control port");
    assert!(e.to_string().contains("--control"), "{e}");

    let with_token = Overrides { admin_token: Some(ADMIN.into()), ..Overrides::default() };
    let c = Config::from_yaml(yaml, "test", &with_token).expect("a token makes it acceptable");
    assert_eq!(c.tokens.len(), 1);

    let short = Overrides { admin_token: Some("short".into()), ..flag };
    let e = Config::from_yaml(yaml, "test", &short).expect_err("short token");
    assert!(e.to_string().contains("EDGEFAULT_ADMIN_TOKEN") && !e.to_string().contains("\"short\""), "{e}");
}

#[test]
fn serve_refuses_an_open_control_port() {
    let out = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--control", "0.0.0.0:0"])
        .env_remove("EDGEFAULT_ADMIN_TOKEN")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--control") && err.contains("not a loopback address"), "{err}");
}

#[tokio::test]
async fn state_changes_are_audited_without_secrets() {
    let dir = Dir::new("audit");
    let audit = dir.0.join("audit.jsonl");
    let proxy = secured(&dir, &format!("audit: {{ path: {:?} }}\n", audit.display().to_string())).await;
    let mut c = client(&proxy).await;
    let e = c.start_experiment(with_token(start_req(), ADMIN)).await.expect("start").into_inner();
    c.stop_experiment(with_token(v1::StopExperimentRequest { id: e.id.clone(), reason: "done".into() }, ADMIN))
        .await
        .expect("stop");
    let bad = v1::StartExperimentRequest { spec: Some(spec("name: bad\nfaults: []\n")) };
    c.start_experiment(with_token(bad, ADMIN)).await.expect_err("invalid");
    c.abort_all(with_token(v1::AbortAllRequest { reason: "end".into() }, ADMIN)).await.expect("abort-all");
    c.list_experiments(with_token(v1::ListExperimentsRequest::default(), ADMIN)).await.expect("list");

    let text = std::fs::read_to_string(&audit).expect("audit file");
    assert!(!text.contains(ADMIN), "no secret in the audit log");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    let actions: Vec<&str> = lines.iter().map(|l| l["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["StartExperiment", "StopExperiment", "StartExperiment", "AbortAll"], "reads are not audited");
    for l in &lines {
        assert_eq!(l["caller"], "ops");
        assert!(l["peer"].as_str().expect("peer").starts_with("127.0.0.1:"), "{l}");
        assert!(l["time"].as_str().expect("time").ends_with('Z'), "{l}");
    }
    assert_eq!(lines[0]["experiment"], e.id.as_str());
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["spec"]["name"], "x");
    assert_eq!(lines[0]["spec"]["faults"][0], "abort");
    assert_eq!(lines[1]["reason"], "done");
    assert!(lines[2]["outcome"].as_str().expect("outcome").starts_with("refused: InvalidArgument"), "{}", lines[2]);
    assert_eq!(lines[3]["experiments"], serde_json::json!([]));
}

fn ctl(args: &[&str], token_env: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgefault"));
    cmd.args(args).env_remove("EDGEFAULT_CONTROL").env_remove("EDGEFAULT_TOKEN");
    if let Some(t) = token_env {
        cmd.env("EDGEFAULT_TOKEN", t);
    }
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ctl_sends_its_token_from_a_file_or_the_environment() {
    let dir = Dir::new("ctl");
    let proxy = secured(&dir, "").await;
    let control = proxy.control_url.clone();
    let token_file = dir.write("token", &format!("{ADMIN}\n")).display().to_string();
    let exp =
        dir.write("exp.yaml", "name: from-ctl\nfaults: [{ abort: { http_status: 502 } }]\n").display().to_string();

    let (ok, _, err) = tokio::task::spawn_blocking({
        let control = control.clone();
        move || ctl(&["ctl", "--control", &control, "list"], None)
    })
    .await
    .expect("join");
    assert!(!ok);
    assert!(err.contains("Unauthenticated") && err.contains("--token-file"), "{err}");

    let (ok, out, err) = tokio::task::spawn_blocking({
        let control = control.clone();
        move || ctl(&["ctl", "--control", &control, "--token-file", &token_file, "start", "-f", &exp], None)
    })
    .await
    .expect("join");
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("exp-"), "{out}");
    assert_eq!(get(&crate::support::client(), &proxy.url("/")).await.status, 502);

    let (ok, out, err) = tokio::task::spawn_blocking({
        let control = control.clone();
        move || ctl(&["ctl", "--control", &control, "abort-all"], Some(ADMIN))
    })
    .await
    .expect("join");
    assert!(ok, "{err}");
    assert!(out.contains("aborted 1 experiment"), "{out}");

    let (ok, _, err) =
        tokio::task::spawn_blocking(move || ctl(&["ctl", "--control", &control, "abort-all"], Some(VIEWER)))
            .await
            .expect("join");
    assert!(!ok);
    assert!(err.contains("PermissionDenied") && err.contains("read-only"), "{err}");
}

#[test]
fn validate_checks_a_config_with_the_token_of_the_environment() {
    let dir = Dir::new("validate");
    let config = dir.write(
        "edgefault.yaml",
        "listeners:\n  - { name: web, bind: \"0.0.0.0:8080\", routes: [{ name: d, upstream: \"http://127.0.0.1:9\" }] }\ncontrol: { bind: \"0.0.0.0:7070\" }\n",
    );
    let run = |token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgefault"));
        cmd.args(["validate", &config.display().to_string()]).env_remove("EDGEFAULT_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("EDGEFAULT_ADMIN_TOKEN", t);
        }
        let out = cmd.output().expect("runs");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run(None);
    assert!(!ok && err.contains("control.bind") && err.contains("no token"), "{err}");
    let (ok, err) = run(Some(ADMIN));
    assert!(ok, "{err}");
}
