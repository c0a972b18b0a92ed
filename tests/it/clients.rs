//! The control API from clients we did not write, run as a user runs them against a real `edgefault serve`
//! with an admin token: the Python example (grpcio, its code generated from proto/ by grpcio-tools), the
//! Node example (@grpc/grpc-js, the .proto files loaded at run time) and the grpcurl commands of
//! docs/clients.md; and every metric the Grafana dashboard queries, scraped from a running server's
//! admin port. Peers come from `.ci/install-peers.sh`.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Command, Output},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use edgefault::pb::v1::{self as v1, fault_control_client::FaultControlClient};

use crate::support::{self, binary, peers, FakeUpstream};

const ADMIN: &str = "clients-admin-secret-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A real `edgefault serve` in front of the test app, whose control service wants the admin token; and
/// the file holding that token.
async fn served() -> (binary::Served, PathBuf) {
    let upstream = format!("http://{}", FakeUpstream::app().start().await);
    let tokens = support::temp_file("tokens.yaml", &format!("- {{ name: ops, role: admin, token: {ADMIN} }}\n"));
    let token_file = support::temp_file("admin-token", &format!("{ADMIN}\n"));
    let args = ["--listen", "127.0.0.1:0", "--upstream", &upstream, "--control", "127.0.0.1:0", "--tokens-file"];
    let served =
        tokio::task::block_in_place(|| binary::serve(&[&args[..], &[tokens.to_str().expect("utf-8")]].concat(), false));
    (served, token_file)
}

/// A request carrying the admin token.
fn authed<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("authorization", format!("Bearer {ADMIN}").parse().expect("ascii"));
    req
}

async fn control(served: &binary::Served) -> FaultControlClient<tonic::transport::Channel> {
    FaultControlClient::connect(served.control_url()).await.expect("control client")
}

/// GETs to `url` one after another until stopped, counting the 503s; what a site's visitors do meanwhile.
struct Traffic {
    stop: Arc<AtomicBool>,
    unavailable: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let unavailable = Arc::new(AtomicU64::new(0));
        let (s, u) = (Arc::clone(&stop), Arc::clone(&unavailable));
        let task = tokio::spawn(async move {
            let http = support::client();
            while !s.load(Ordering::Relaxed) {
                if support::get(&http, &url).await.status == 503 {
                    u.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Traffic { stop, unavailable, task }
    }

    /// Stops; how many 503s the visitors got.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("traffic");
        self.unavailable.load(Ordering::Relaxed)
    }
}

/// Runs `cmd` from the repository's root to its end on a blocking thread (at most 60 s, then it is killed).
/// The caller's `EDGEFAULT_TOKEN` and `EDGEFAULT_CONTROL` do not leak in, unless `cmd` sets them.
async fn run(mut cmd: Command) -> Output {
    for var in ["EDGEFAULT_TOKEN", "EDGEFAULT_CONTROL"] {
        if !cmd.get_envs().any(|(k, _)| k == var) {
            cmd.env_remove(var);
        }
    }
    cmd.current_dir(root());
    tokio::task::spawn_blocking(move || {
        let child =
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("runs");
        let pid = child.id();
        let watchdog = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        let out = child.wait_with_output().expect("output");
        drop(watchdog);
        out
    })
    .await
    .expect("joined")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The example behind `cmd` (with `--target` and `--token-file` still to add) runs its game day against a
/// real server while visitors send requests: exit 0, one line per step, and on the server an experiment of
/// that name that was started with a lease, injected the 503s the visitors saw, and was stopped by the
/// example. Without the token, the example is refused.
async fn game_day(make: impl Fn() -> Command, name: &str, reason: &str) {
    let (served, token_file) = served().await;
    let traffic = Traffic::start(served.url("/"));
    let mut cmd = make();
    cmd.args(["--target", &served.control.to_string(), "--token-file", token_file.to_str().expect("utf-8")]);
    let out = run(cmd).await;
    let unavailable = traffic.stop().await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the example failed:\n{stdout}\n{stderr}");

    let scenarios = stdout.lines().find_map(|l| l.strip_prefix("scenarios: ")).expect("a scenarios line");
    assert!(scenarios.contains("edge-5xx-storm"), "{stdout}");
    assert!(stdout.contains("\nexperiments: 0\n"), "a fresh server has no experiment:\n{stdout}");
    let started = stdout.lines().find_map(|l| l.strip_prefix("started ")).expect("a started line");
    let id = started.split(' ').next().expect("id").to_owned();
    assert_eq!(started, format!("{id} {name} RUNNING"), "{stdout}");
    assert!(stdout.contains("event stats: injected"), "it watched the stats events:\n{stdout}");
    let stats = stdout.lines().find(|l| l.starts_with(&format!("stats {id}: "))).expect("a stats line");
    let injected: u64 =
        stats.split("injected ").nth(1).and_then(|s| s.split(' ').next()).expect("count").parse().expect("n");
    assert!(injected >= 3 && stats.ends_with(&format!("(abort {injected})")), "{stats}");
    assert!(stdout.trim_end().ends_with(&format!("stopped {id} STOPPED")), "{stdout}");

    // The server's side of it.
    let mut c = control(&served).await;
    let exp = c.get_experiment(authed(v1::GetExperimentRequest { id: id.clone() })).await.expect("get").into_inner();
    assert_eq!(exp.state(), v1::ExperimentState::Stopped);
    assert_eq!(exp.end_reason, reason);
    let spec = exp.spec.expect("spec");
    assert_eq!((spec.name.as_str(), spec.percentage), (name, Some(50.0)));
    assert_eq!(spec.r#match.expect("match").routes, ["default"]);
    assert!(spec.lease.is_some() && spec.duration.is_some(), "started with a duration and a lease");
    assert!(
        matches!(&spec.faults[0].kind, Some(v1::fault::Kind::Abort(a)) if a.http_status == Some(503)),
        "{:?}",
        spec.faults
    );
    let stats = exp.stats.expect("stats");
    assert!(stats.injected >= injected && unavailable >= injected, "server {stats:?}, visitors got {unavailable} 503s");

    // Without a token: refused, and the example says so.
    let mut cmd = make();
    cmd.args(["--target", &served.control.to_string()]);
    let out = run(cmd).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("UNAUTHENTICATED"), "{stdout}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_runs_a_game_day_with_generated_code() {
    let Some(python) = peers::python(&["grpc", "grpc_tools.protoc"]) else { return };
    let script = root().join("examples/clients/python/gameday.py");
    let make = || {
        let mut cmd = Command::new(&python);
        cmd.arg(&script);
        cmd
    };
    game_day(make, "python-client-503", "python example done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_example_runs_a_game_day_with_the_protos_loaded_at_run_time() {
    let Some(node_modules) = peers::node(&["@grpc/grpc-js", "@grpc/proto-loader"]) else { return };
    let script = root().join("examples/clients/node/gameday.js");
    let make = || {
        let mut cmd = Command::new("node");
        cmd.arg(&script).env("NODE_PATH", &node_modules);
        cmd
    };
    game_day(make, "node-client-503", "node example done").await;
}

/// The lines of the `sh` block that follows `marker` in `doc`.
fn tested_block(doc: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(root().join(doc)).expect("doc");
    let after = text.split(marker).nth(1).unwrap_or_else(|| panic!("{doc}: no block after {marker}"));
    after.split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).expect("an sh block").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpcurl_commands_of_docs_clients_md_run_as_written() {
    let Some(grpcurl) = peers::grpcurl() else { return };
    let (served, _) = served().await;
    let block = tested_block("docs/clients.md", "<!-- tested (grpcurl):");
    assert!(block.contains("127.0.0.1:7070"), "the block talks to the default control address");
    let script = format!("set -eu\n{}", block.replace("127.0.0.1:7070", &served.control.to_string()));
    let dir = grpcurl.parent().expect("dir").to_owned();
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]).env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()));
    cmd.env("EDGEFAULT_TOKEN", ADMIN);
    let traffic = Traffic::start(served.url("/"));
    let out = run(cmd).await;
    traffic.stop().await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the block failed:\n{stdout}\n{stderr}");
    for seen in [
        "edgefault.v1.FaultControl\n",
        "grpc.health.v1.Health\n",
        "message ExperimentSpec {",
        "\"status\": \"SERVING\"",
        "\"name\": \"edge-5xx-storm\"",
        "\"name\": \"grpcurl-503\"",
        "\"state\": \"EXPERIMENT_STATE_RUNNING\"",
        "\"stats\": {",
        "\"state\": \"EXPERIMENT_STATE_STOPPED\"",
    ] {
        assert!(stdout.contains(seen), "no {seen:?} in the output:\n{stdout}\n{stderr}");
    }
    let mut c = control(&served).await;
    let list = c.list_experiments(authed(v1::ListExperimentsRequest::default())).await.expect("list").into_inner();
    let [exp] = &list.experiments[..] else { panic!("one experiment: {list:?}") };
    assert_eq!((exp.state(), exp.end_reason.as_str()), (v1::ExperimentState::Stopped, "seen enough"));
    assert_eq!(exp.spec.as_ref().expect("spec").name, "grpcurl-503");
}
/// (name as docs/observability.md lists it, type, family as `# TYPE` names it) of every metric the
/// dashboard queries, from `.ci/dashboard-check.py --list-metrics`: one reading of PromQL, shared with CI.
fn dashboard_metrics() -> Vec<(String, String, String)> {
    let out = Command::new("python3")
        .arg(root().join(".ci/dashboard-check.py"))
        .arg("--list-metrics")
        .current_dir(root())
        .output()
        .expect("python3 runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "dashboard-check.py --list-metrics failed:\n{stdout}\n{stderr}");
    stdout
        .lines()
        .map(|l| {
            let mut f = l.split('\t').map(str::to_owned);
            (f.next().expect("name"), f.next().expect("type"), f.next().expect("family"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported_by_a_running_server() {
    let metrics = dashboard_metrics();
    assert!(metrics.len() >= 8, "the dashboard queries the main metrics: {metrics:?}");
    let upstream = FakeUpstream::app().start().await;
    let echo = FakeUpstream::tcp_echo().start().await;
    let certs = root().join("examples/ingress/certs");
    let config = support::temp_file(
        "edgefault.yaml",
        &format!(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{upstream}\" }}\n      - {{ name: default, upstream: \"http://{upstream}\" }}\n  - {{ name: cache, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"{echo}\" }}\n  - name: web-tls\n    bind: 127.0.0.1:0\n    tls: {{ cert_file: {c}/localhost.crt, key_file: {c}/localhost.key }}\n    routes: [{{ name: default-tls, upstream: \"http://{upstream}\" }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n",
            c = certs.display()
        ),
    );
    let served = tokio::task::block_in_place(|| binary::serve(&["--config", config.to_str().expect("utf-8")], true));
    let mut c = control(&served).await;
    let spec = support::spec(
        "name: game-day\nmatch: { routes: [api] }\npercentage: 50\nduration: 1m\nfaults:\n  - delay: { fixed: 2ms }\n  - abort: { http_status: 503 }\n",
    );
    c.start_experiment(v1::StartExperimentRequest { spec: Some(spec) }).await.expect("start");
    let dry = support::spec("name: reach\ndry_run: true\nduration: 1m\nfaults: [{ abort: { http_status: 500 } }]\n");
    c.start_experiment(v1::StartExperimentRequest { spec: Some(dry) }).await.expect("start dry run");
    let http = support::client();
    for i in 0..40 {
        support::get(&http, &served.url(if i % 2 == 0 { "/api/items" } else { "/" })).await;
    }
    let admin = served.admin.expect("admin address");
    let body = support::get(&http, &format!("http://{admin}/metrics")).await.body;
    let exposition = String::from_utf8_lossy(&body);
    let families: BTreeMap<&str, &str> =
        exposition.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split_once(' ')).collect();
    let missing: Vec<String> = metrics
        .iter()
        .filter(|(_, ty, family)| families.get(family.as_str()) != Some(&ty.as_str()))
        .map(|(name, ty, family)| format!("{name} ({ty} {family}: /metrics has {:?})", families.get(family.as_str())))
        .collect();
    assert!(missing.is_empty(), "the dashboard queries metrics the server does not export: {missing:?}\n{exposition}");
}
