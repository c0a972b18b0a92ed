//! The console in a real browser: headless Chromium (Debian's) driven by Playwright (PyPI, installed by
//! `.ci/install-peers.sh` into its Python virtualenv) runs `tests/peers/console.py` in step with this test,
//! which starts experiments over gRPC, sends traffic, and checks over gRPC and in the audit log what the
//! page did. With `EDGEFAULT_UPDATE_SCREENSHOTS=1` the screenshots go to `docs/img/` (docs/console.md).

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use edgefault::pb::v1;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{audit_lines, fleet::fleet_with_console, server, ADMIN, VIEWER};
use crate::support::{peers, *};

/// The script's side of the conversation.
struct Script {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
    /// The words after the first of the last line [`Script::expect_words`] read.
    last: Vec<String>,
}

impl Script {
    /// Starts `tests/peers/SCRIPT` on the console at `base`; returns it with the screenshots' directory
    /// (`docs/img` with `EDGEFAULT_UPDATE_SCREENSHOTS=1`) and whether it is that one.
    fn spawn(
        script: &str,
        base: &str,
        chromium: &std::path::Path,
        python: &std::path::Path,
    ) -> (Script, PathBuf, bool) {
        let update = std::env::var("EDGEFAULT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
        let shots = if update {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img")
        } else {
            std::env::temp_dir().join(format!("edgefault-{script}-{}-{}", std::process::id(), rand::random::<u32>()))
        };
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        let mut child = tokio::process::Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers").join(script))
            .args([format!("{base}/console"), ADMIN.into(), VIEWER.into(), chromium.display().to_string()])
            .arg(&shots)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the script starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stdin = child.stdin.take().expect("stdin");
        (Script { child, lines, stdin, last: Vec::new() }, shots, update)
    }

    /// Waits for the script's next line, which must be `word`.
    async fn expect(&mut self, word: &str) {
        self.expect_words(word).await;
        assert!(self.last.is_empty(), "the browser script said {word} {:?}", self.last);
    }

    /// Waits for the script's next line, which must start with `word`; keeps the rest in `last`.
    async fn expect_words(&mut self, word: &str) {
        let line = tokio::time::timeout(Duration::from_secs(90), self.lines.next_line()).await;
        match line {
            Ok(Ok(Some(l))) if l.split_whitespace().next() == Some(word) => {
                self.last = l.split_whitespace().skip(1).map(str::to_owned).collect();
            }
            other => {
                let _ = self.child.start_kill();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut err).await;
                }
                panic!("the browser script: expected {word:?}, got {other:?}\n{err}");
            }
        }
    }

    /// Says `done`, waits for the script to exit well, checks that each of `files` in `shots` is a
    /// rendered page, and removes `shots` unless it is `docs/img` (`update`).
    async fn finish(mut self, shots: &std::path::Path, update: bool, files: &[&str]) {
        self.say("done").await;
        let status =
            tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("exits").expect("status");
        assert!(status.success(), "the browser script failed");
        for file in files {
            let png = std::fs::read(shots.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "{file} holds a rendered page");
        }
        if !update {
            let _ = std::fs::remove_dir_all(shots);
        }
    }

    async fn say(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.expect("to console.py");
        self.stdin.flush().await.expect("flush");
    }
}

/// Requests to `urls` in turn every 40 ms, until stopped: at most 3,000 rounds (two minutes).
struct Traffic {
    sending: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(urls: Vec<String>) -> Traffic {
        let sending = Arc::new(AtomicBool::new(true));
        let on = Arc::clone(&sending);
        let task = tokio::spawn(async move {
            let http = client();
            for _ in 0..3_000 {
                if !on.load(Ordering::Relaxed) {
                    break;
                }
                for u in &urls {
                    let _ = get(&http, u).await;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        Traffic { sending, task }
    }

    async fn stop(self) {
        self.sending.store(false, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

fn authorized<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {ADMIN}").parse().expect("value"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_shows_starts_charts_aborts_and_refuses_read_only_changes() {
    let Some(chromium) = peers::chromium() else { return };
    let Some(python) = peers::python(&["playwright"]) else { return };
    let (proxy, base, audit) = server(true).await;
    let (mut script, shots, update) = Script::spawn("console.py", &base, &chromium, &python);
    script.expect("ready").await;

    // Two experiments over gRPC: one with phases (calm, then a storm of 503s two seconds in), one slowing
    // the api route; traffic on both routes until the end.
    let mut c = proxy.control().await;
    let phased = "name: phased-outage\nduration: 10m\nfaults: [{ abort: { http_status: 503 } }]\nphases:\n  - { name: calm, percentage: 0 }\n  - { name: storm, start: 2s, percentage: 60 }\n";
    let phased = c.start_experiment(authorized(v1::StartExperimentRequest { spec: Some(spec(phased)) })).await;
    let phased = phased.expect("starts").into_inner().id;
    let slow = "name: api-latency\nduration: 10m\nmatch: { routes: [api] }\nfaults: [{ delay: { fixed: 30ms } }]\n";
    let slow = c.start_experiment(authorized(v1::StartExperimentRequest { spec: Some(spec(slow)) })).await;
    let slow = slow.expect("starts").into_inner().id;
    let traffic = Traffic::start(vec![proxy.url("/"), proxy.url("/api/items")]);
    script.say(&format!("started {phased} {slow}")).await;
    script.expect("aborted").await;

    // The page's Abort all ended everything, as the control service sees it, and the audit log names the token.
    let list = c.list_experiments(authorized(v1::ListExperimentsRequest::default())).await.expect("list").into_inner();
    let active: Vec<_> = list
        .experiments
        .iter()
        .filter(|e| matches!(e.state(), v1::ExperimentState::Running | v1::ExperimentState::Pending))
        .collect();
    assert!(active.is_empty(), "nothing runs after Abort all: {active:?}");
    for id in [&phased, &slow] {
        let e = list.experiments.iter().find(|e| &e.id == id).expect("kept");
        assert_eq!(
            (e.state(), e.end_reason.as_str()),
            (v1::ExperimentState::Aborted, "kill switch: the console's Abort all")
        );
    }
    let last = audit_lines(&audit).pop().expect("audited");
    assert_eq!((&last["caller"], &last["action"]), (&"console (ops)".into(), &"AbortAll".into()));
    assert_eq!(last["experiments"].as_array().map(Vec::len), Some(2));

    // With a read-only token, the page's changes are refused and nothing changes.
    let kept = "name: kept\nduration: 10m\nfaults: [{ delay: { fixed: 1ms } }]\n";
    let kept = c.start_experiment(authorized(v1::StartExperimentRequest { spec: Some(spec(kept)) })).await;
    let kept = kept.expect("starts").into_inner().id;
    let audited = audit_lines(&audit).len();
    script.say(&format!("readonly {kept}")).await;
    script.expect("refused").await;
    let e =
        c.get_experiment(authorized(v1::GetExperimentRequest { id: kept.clone() })).await.expect("get").into_inner();
    assert_eq!(e.state(), v1::ExperimentState::Running, "the read-only token stopped nothing");
    assert_eq!(proxy.server.registry().running(), 1);
    assert_eq!(audit_lines(&audit).len(), audited, "refused calls change nothing and are not audited as done");

    traffic.stop().await;
    script.finish(&shots, update, &["console.png", "console-phone.png"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_console_in_a_browser_starts_over_a_selector_charts_the_fleet_and_aborts_every_sidecar() {
    let Some(chromium) = peers::chromium() else { return };
    let Some(python) = peers::python(&["playwright"]) else { return };
    let (controller, base, sidecars, audit) =
        fleet_with_console(&[("s1", &[("app", "web")]), ("s2", &[("app", "web")]), ("s3", &[("app", "api")])]).await;
    let mut c = crate::support::fleet::client(&controller).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.list_sidecars(authorized(v1::ListSidecarsRequest {})).await.map_or(0, |r| r.into_inner().sidecars.len()) < 3
    {
        assert!(std::time::Instant::now() < deadline, "three sidecars never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut script, shots, update) = Script::spawn("controller_console.py", &base, &chromium, &python);

    // The page's form started the storm over `app=web`: the controller sent it to s1 and s2 only.
    script.expect_words("started").await;
    let id = script.last[0].clone();
    let e = c.get_experiment(authorized(v1::GetExperimentRequest { id: id.clone() })).await.expect("get").into_inner();
    let applied = crate::support::fleet::targets(&e, v1::SidecarTargetState::Applied);
    assert_eq!(applied, ["s1", "s2"], "{e:?}");
    for (sid, p) in &sidecars {
        assert_eq!(p.server.registry().running(), usize::from(sid != "s3"), "{sid}");
    }
    let traffic = Traffic::start(sidecars.iter().map(|(_, p)| p.url("/")).collect());
    script.say("traffic").await;

    // Abort all from the page: nothing runs on the controller nor on any sidecar, audited with the token.
    script.expect("aborted").await;
    let e = c.get_experiment(authorized(v1::GetExperimentRequest { id: id.clone() })).await.expect("get").into_inner();
    assert_eq!(e.state(), v1::ExperimentState::Aborted, "{e:?}");
    assert_eq!(controller.fleet().running(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut running = Vec::new();
        for (sid, p) in &sidecars {
            let list = p.control().await.list_experiments(v1::ListExperimentsRequest::default()).await;
            let list = list.expect("a sidecar's ListExperiments").into_inner().experiments;
            if list.iter().any(|x| matches!(x.state(), v1::ExperimentState::Running | v1::ExperimentState::Pending)) {
                running.push(sid.clone());
            }
        }
        if running.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still running after Abort all on {running:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = audit_lines(&audit).pop().expect("audited");
    assert_eq!((&last["caller"], &last["action"]), (&"console (ops)".into(), &"AbortAll".into()));

    // A read-only token: refused, and the fleet experiment started over gRPC keeps running.
    let kept =
        "name: kept\nduration: 10m\nsidecars: { match_labels: { app: api } }\nfaults: [{ delay: { fixed: 1ms } }]\n";
    let kept = c.start_experiment(authorized(v1::StartExperimentRequest { spec: Some(spec(kept)) })).await;
    let kept = kept.expect("starts").into_inner().id;
    let audited = audit_lines(&audit).len();
    script.say(&format!("readonly {kept}")).await;
    script.expect("refused").await;
    assert_eq!(controller.fleet().running(), 1, "the read-only token stopped nothing");
    assert_eq!(audit_lines(&audit).len(), audited, "refused calls change nothing and are not audited as done");

    traffic.stop().await;
    script.finish(&shots, update, &["console-controller.png"]).await;
    controller.shutdown().await;
}
