//! The docs' commands work as written, on the setup the README gives a newcomer: the README's "Use it"
//! block (fixed ports 3000, 8080, 7070, the built binary on PATH as `cargo install` would put it), and the
//! scenario commands of docs/scenarios.md and docs/control-api.md against `edgefault serve --upstream`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of the `sh` block that follows the `<!-- tested: … -->` comment in `doc`.
fn tested_block(doc: &str) -> Vec<String> {
    tested_block_at(doc, "<!-- tested:")
}

/// The lines of the `sh` block that follows `marker` in `doc`.
fn tested_block_at(doc: &str, marker: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(doc)).expect("doc");
    let after = text.split(marker).nth(1).unwrap_or_else(|| panic!("{doc}: no block after {marker}"));
    let block = after.split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).expect("an sh block");
    block.lines().map(str::to_owned).filter(|l| !l.trim().is_empty()).collect()
}

/// A directory holding `edgefault`, the binary under test, as `cargo install` would put it on PATH.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_edgefault")).parent().expect("dir").to_owned()
}

fn sh(line: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.args(["-c", line]).current_dir(root()).env("PATH", path).env_remove("EDGEFAULT_ADMIN_TOKEN");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("bash runs")
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing listens on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Background processes of the block, ended when the test ends.
struct Background(Vec<std::process::Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The README's blocks use fixed ports (3000 for the sample app in both): one at a time.
static FIXED_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_readme_newcomer_path_runs_as_written() {
    let _ports = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    for port in [3000, 8080, 7070] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: the README's path needs 3000, 8080 and 7070 free"
        );
    }
    let lines = tested_block("README.md");
    assert!(lines.iter().any(|l| l.starts_with("cargo install --path .")), "the block says how to install");
    let mut background = Background(Vec::new());
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut outputs = Vec::new();
    for line in lines {
        let command = line.split(" #").next().unwrap_or(&line).trim().to_owned();
        if command.starts_with("cargo install") {
            // The binary under test stands in for the installed one (on PATH above).
            continue;
        }
        if let Some(bg) = command.strip_suffix('&') {
            let child = Command::new("bash")
                .args(["-c", &format!("exec {bg}")])
                .current_dir(root())
                .env("PATH", &path)
                .env_remove("EDGEFAULT_ADMIN_TOKEN")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawns");
            background.0.push(child);
            if bg.contains("--upstream-only") {
                wait_for_port(3000);
            } else if bg.contains("serve") {
                wait_for_port(8080);
                wait_for_port(7070);
            }
            continue;
        }
        let out = sh(&command, &[]);
        assert!(out.status.success(), "`{command}` failed: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push((command, String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let said =
        |prefix: &str| outputs.iter().find(|(c, _)| c.starts_with(prefix)).map(|(_, o)| o.clone()).unwrap_or_default();
    assert_eq!(said("curl -s http"), "hello from the demo upstream\n");
    assert!(said("edgefault ctl start").starts_with("exp-"));
    assert!(said("edgefault ctl list").contains("edge-503-storm"), "{}", said("edgefault ctl list"));
    let code = said("curl -s -o /dev/null");
    assert!(code == "200\n" || code == "503\n", "{code}");
    assert!(said("edgefault ctl abort-all").starts_with("aborted 1 experiment(s)"));
}

/// The word after `flag` in a command line.
fn word_after<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = command.split_whitespace();
    words.find(|w| *w == flag)?;
    words.next()
}

/// The port after `flag` in a command line (`--listen 127.0.0.1:8181` → 8181).
fn port_after(command: &str, flag: &str) -> Option<u16> {
    word_after(command, flag)?.rsplit(':').next()?.parse().ok()
}

/// The README's fleet block: a controller, two sidecars with labels, a selector that reaches one of them.
#[test]
fn the_readme_fleet_block_runs_as_written() {
    let _ports = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let lines = tested_block_at("README.md", "<!-- tested (fleet):");
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let spawn = |command: &str| {
        Command::new("bash")
            .args(["-c", &format!("exec {command}")])
            .current_dir(root())
            .env("PATH", &path)
            .env_remove("EDGEFAULT_ADMIN_TOKEN")
            .env_remove("EDGEFAULT_CONTROLLER")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns")
    };
    // The sample app of the first block.
    let mut background = Background(vec![spawn("edgefault demo --upstream-only")]);
    wait_for_port(3000);
    let mut outputs = Vec::new();
    for line in lines {
        let command = line.split(" #").next().unwrap_or(&line).trim().to_owned();
        if let Some(bg) = command.strip_suffix('&') {
            background.0.push(spawn(bg));
            for flag in ["--listen", "--control"] {
                if let Some(port) = port_after(bg, flag) {
                    wait_for_port(port);
                }
            }
            // A sidecar counts once the controller lists it.
            if let (Some(id), Some(port)) = (word_after(bg, "--sidecar-id"), port_after(bg, "--controller")) {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let out = sh(&format!("edgefault ctl --control http://127.0.0.1:{port} sidecars"), &[]);
                    if String::from_utf8_lossy(&out.stdout).contains(id) {
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "{id} never joined");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            continue;
        }
        let out = sh(&command, &[]);
        assert!(out.status.success(), "`{command}` failed: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push((command, String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let said =
        |needle: &str| outputs.iter().find(|(c, _)| c.contains(needle)).map(|(_, o)| o.clone()).unwrap_or_default();
    let sidecars = said(" sidecars");
    assert!(sidecars.contains("web-1") && sidecars.contains("zone=eu-2"), "{sidecars}");
    assert!(said(" start -f").starts_with("flt-"), "{}", said(" start -f"));
    let list = said(" list");
    assert!(list.contains("eu-1 edge down") && list.contains("└ web-1") && !list.contains("└ web-2"), "{list}");
    assert_eq!(said("8181/"), "503\n");
    assert_eq!(said("8182/"), "200\n");
    assert!(said(" abort-all").starts_with("aborted 1 experiment(s)"), "{}", said(" abort-all"));
}

/// Every scenario command of the docs, on `edgefault serve --upstream URL` (one route, `default`), exits
/// 0; the replay adapts (its dashboard and API parts are left out, saying which parameter to set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_scenario_commands_work_on_the_readme_setup() {
    let up = upstream().await;
    let served = binary::serve(
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--upstream", &format!("http://{up}")],
        false,
    );
    let control = served.control_url();
    let mut lines = tested_block("docs/scenarios.md");
    let api = std::fs::read_to_string(root().join("docs/control-api.md")).expect("doc");
    lines.extend(api.lines().filter(|l| l.starts_with("edgefault ctl scenario")).map(str::to_owned));
    assert!(lines.len() >= 6, "{lines:?}");
    for line in &lines {
        let command = line.split(" #").next().unwrap_or(line).trim();
        let out = tokio::task::block_in_place(|| sh(command, &[("EDGEFAULT_CONTROL", &control)]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "`{command}` failed: {err}");
        if command.starts_with("edgefault ctl scenario start nov-18") {
            assert!(err.contains("set -p dashboard_route=ROUTE to include them"), "{err}");
            assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "core traffic and latency started");
        }
        if command.starts_with("edgefault ctl scenario show nov-18") {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(shown.contains("nov18-core-traffic") && shown.contains("warnings:"), "{shown}");
        }
        let _ = tokio::task::block_in_place(|| sh("edgefault ctl abort-all", &[("EDGEFAULT_CONTROL", &control)]));
    }
    // A value given explicitly is not adapted: it is refused, naming the parameter.
    let out = tokio::task::block_in_place(|| {
        sh(
            "edgefault ctl scenario start nov-18-2025-edge-outage -p dashboard_route=nope",
            &[("EDGEFAULT_CONTROL", &control)],
        )
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("(set it with -p dashboard_route=ROUTE)"), "{err}");
}

/// docs/scenarios.md carries each replay's client-visible signature exactly as `ctl scenario show` prints
/// it with the replay's defaults, on a server with routes `api`, `dashboard` and `default`.
#[tokio::test]
async fn the_docs_show_each_replay_s_signature_as_ctl_prints_it() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let doc = std::fs::read_to_string(root().join("docs/scenarios.md")).expect("doc");
    let list =
        ctl.list_scenarios(edgefault::pb::v1::ListScenariosRequest {}).await.expect("list").into_inner().scenarios;
    let months = ["jan-", "feb-", "mar-", "apr-", "may-", "jun-", "jul-", "aug-", "sep-", "oct-", "nov-", "dec-"];
    let replays: Vec<&str> =
        list.iter().map(|s| s.name.as_str()).filter(|n| months.iter().any(|m| n.starts_with(m))).collect();
    assert_eq!(replays.len(), 9, "a replay per card: {replays:?}");
    for name in replays {
        assert!(doc.contains(&format!("\n## {name}\n")), "{name} has no section");
        let shown = ctl
            .get_scenario(edgefault::pb::v1::GetScenarioRequest { name: name.into(), params: Default::default() })
            .await
            .expect("get")
            .into_inner();
        for e in &shown.experiments {
            for line in edgefault::ctl::signature(e) {
                assert!(doc.contains(&format!("\n{line}\n")), "docs/scenarios.md lacks {name}'s line:\n{line}");
            }
        }
    }
}
