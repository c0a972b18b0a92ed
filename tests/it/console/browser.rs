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

use super::{audit_lines, server, ADMIN, VIEWER};
use crate::support::{peers, *};

/// The script's side of the conversation.
struct Script {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
}

impl Script {
    /// Waits for the script's next line, which must be `word`.
    async fn expect(&mut self, word: &str) {
        let line = tokio::time::timeout(Duration::from_secs(90), self.lines.next_line()).await;
        match line {
            Ok(Ok(Some(l))) if l.trim() == word => {}
            other => {
                let _ = self.child.start_kill();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut err).await;
                }
                panic!("console.py: expected {word:?}, got {other:?}\n{err}");
            }
        }
    }

    async fn say(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.expect("to console.py");
        self.stdin.flush().await.expect("flush");
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
    let update = std::env::var("EDGEFAULT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let shots = if update {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img")
    } else {
        std::env::temp_dir().join(format!("edgefault-console-{}", std::process::id()))
    };
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let mut child = tokio::process::Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/console.py"))
        .args([format!("{base}/console"), ADMIN.into(), VIEWER.into(), chromium.display().to_string()])
        .arg(&shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("console.py starts");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let stdin = child.stdin.take().expect("stdin");
    let mut script = Script { child, lines, stdin };
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
    let traffic = Arc::new(AtomicBool::new(true));
    let sending = Arc::clone(&traffic);
    let (root, api) = (proxy.url("/"), proxy.url("/api/items"));
    let sender = tokio::spawn(async move {
        let http = client();
        // Bounded: at most 3,000 rounds of two requests (two minutes), fewer when the test ends first.
        for _ in 0..3_000 {
            if !sending.load(Ordering::Relaxed) {
                break;
            }
            let _ = get(&http, &root).await;
            let _ = get(&http, &api).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
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

    script.say("done").await;
    traffic.store(false, Ordering::Relaxed);
    let _ = sender.await;
    let status =
        tokio::time::timeout(Duration::from_secs(30), script.child.wait()).await.expect("exits").expect("status");
    assert!(status.success(), "console.py failed");
    for file in ["console.png", "console-phone.png"] {
        let png = std::fs::read(shots.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "{file} holds a rendered page");
    }
    if !update {
        let _ = std::fs::remove_dir_all(&shots);
    }
}
