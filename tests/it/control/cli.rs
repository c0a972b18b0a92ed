//! The command line: `ctl` against a running server, `validate`, and `demo`.

use std::{path::PathBuf, process::Command};

use crate::support::*;

fn edgefault(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(args)
        .env_remove("EDGEFAULT_CONTROL")
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempdir::Dir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write");
    p
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("edgefault-test-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&p).expect("mkdir");
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_drives_a_running_server() {
    let proxy = proxy(upstream().await).await;
    let dir = tempdir::Dir::new("ctl");
    let file = write(&dir, "exp.yaml", "name: one\nfaults: [{ abort: { http_status: 503 } }]\n---\nname: two\nmatch: { routes: [api] }\nfaults: [{ delay: { fixed: 1ms } }]\n");
    let control = proxy.control_url.clone();
    let file_arg = file.display().to_string();

    let (ok, out, err) = tokio::task::spawn_blocking({
        let control = control.clone();
        move || edgefault(&["ctl", "--control", &control, "start", "-f", &file_arg])
    })
    .await
    .expect("join");
    assert!(ok, "{err}");
    let ids: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);

    let c = control.clone();
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || edgefault(&["ctl", "--control", &c, "list"])).await.expect("join");
    assert!(ok);
    assert!(out.contains("one") && out.contains("two") && out.contains("running"), "{out}");

    let (c, id) = (control.clone(), ids[0].clone());
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || edgefault(&["ctl", "--control", &c, "get", &id, "-o", "json"]))
            .await
            .expect("join");
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["state"], "EXPERIMENT_STATE_RUNNING");
    assert_eq!(v["spec"]["name"], "one");

    let (c, id) = (control.clone(), ids[0].clone());
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || edgefault(&["ctl", "--control", &c, "stop", &id])).await.expect("join");
    assert!(ok && out.contains("stopped"), "{out}");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);

    let c = control.clone();
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || edgefault(&["ctl", "--control", &c, "abort-all"])).await.expect("join");
    assert!(ok && out.starts_with("aborted 1 experiment"), "{out}");

    // An invalid file: the server's violations are printed, nothing starts.
    let bad = write(&dir, "bad.yaml", "name: bad\npercentage: 150\nfaults: [{ abort: { http_status: 503 } }]\n")
        .display()
        .to_string();
    let c = control.clone();
    let (ok, _, err) = tokio::task::spawn_blocking(move || edgefault(&["ctl", "--control", &c, "start", "-f", &bad]))
        .await
        .expect("join");
    assert!(!ok);
    assert!(
        err.contains("percentage: must be between 0 and 100, got 150") && err.contains("nothing was started"),
        "{err}"
    );
}

#[test]
fn ctl_says_what_to_do_when_no_server_answers() {
    let (ok, _, err) = edgefault(&["ctl", "--control", "http://127.0.0.1:1", "list"]);
    assert!(!ok);
    assert!(
        err.contains("cannot reach the control service at http://127.0.0.1:1") && err.contains("EDGEFAULT_CONTROL"),
        "{err}"
    );
}

#[test]
fn validate_accepts_good_files_and_names_bad_fields() {
    let dir = tempdir::Dir::new("validate");
    let good = write(&dir, "good.yaml", "name: ok\nduration: 10m\nfaults: [{ abort: { http_status: 503 } }]\n");
    let (ok, out, err) = edgefault(&["validate", &good.display().to_string()]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ok: "), "{out}");

    let bad = write(&dir, "bad.yaml", "name: bad\nfaults:\n  - abort: { http_status: 700 }\n");
    let (ok, _, err) = edgefault(&["validate", &bad.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("faults[0].abort.http_status: 700 is not an HTTP status"), "{err}");

    let typo = write(&dir, "typo.yaml", "name: typo\nfautls: []\n");
    let (ok, _, err) = edgefault(&["validate", &typo.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("fautls"), "{err}");

    let config = write(&dir, "config.yaml", "listeners:\n  - name: web\n    bind: 127.0.0.1:8080\n    routes: [{ name: api, upstream: \"http://127.0.0.1:3000\" }]\n");
    let (ok, out, err) = edgefault(&["validate", &config.display().to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("config with 1 listener(s), 1 route(s)"), "{out}");

    let exp = write(
        &dir,
        "routes.yaml",
        "name: r\nmatch: { routes: [dashboard] }\nfaults: [{ abort: { http_status: 503 } }]\n",
    );
    let (ok, _, err) = edgefault(&["validate", &exp.display().to_string(), "--config", &config.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("match.routes[0]: no route named \"dashboard\" (routes: api)"), "{err}");
}

#[test]
fn examples_are_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let config = dir.join("edgefault.yaml");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") && path != config {
            let (ok, out, err) =
                edgefault(&["validate", &path.display().to_string(), "--config", &config.display().to_string()]);
            assert!(ok, "{}: {err}", path.display());
            assert!(out.starts_with("ok: "));
            checked += 1;
        }
    }
    let (ok, _, err) = edgefault(&["validate", &config.display().to_string()]);
    assert!(ok, "{err}");
    assert!(checked >= 4, "only {checked} example experiments");
    // The example scenarios_dir: each file a valid scenario, and together a valid catalogue.
    for entry in std::fs::read_dir(dir.join("scenarios")).expect("examples/scenarios/") {
        let path = entry.expect("entry").path();
        let (ok, out, err) =
            edgefault(&["validate", &path.display().to_string(), "--config", &config.display().to_string()]);
        assert!(ok && out.contains("scenario"), "{}: {err}", path.display());
    }
    assert!(edgefault::scenario::Catalogue::with_dir(&dir.join("scenarios")).is_ok());
}

/// Each `examples/<shape>/` directory with its own `edgefault.yaml`: the config and every experiment in it.
#[test]
fn deployment_shape_examples_are_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut shapes = 0;
    for dir in std::fs::read_dir(&root).expect("examples/").map(|e| e.expect("entry").path()) {
        let config = dir.join("edgefault.yaml");
        if !dir.is_dir() || !config.exists() {
            continue;
        }
        let (ok, _, err) = edgefault(&["validate", &config.display().to_string(), "--as-config"]);
        assert!(ok, "{}: {err}", config.display());
        for path in std::fs::read_dir(&dir).expect("shape dir").map(|e| e.expect("entry").path()) {
            if path.extension().is_some_and(|e| e == "yaml") && path != config {
                let (ok, _, err) =
                    edgefault(&["validate", &path.display().to_string(), "--config", &config.display().to_string()]);
                assert!(ok, "{}: {err}", path.display());
            }
        }
        shapes += 1;
    }
    assert!(shapes >= 1, "no deployment-shape example");
}

#[test]
fn demo_runs_and_reports() {
    let (ok, out, err) = edgefault(&["demo", "--duration", "3s"]);
    assert!(ok, "{err}");
    for line in [
        "replaying nov-18-2025-edge-outage",
        "phase: core / dashboard logins / dashboard backlog / api",
        "what clients saw in each phase of the core traffic",
        "flapping         t0+0h00m–1h30m  all",
        "nov18-core-traffic",
        "completed",
    ] {
        assert!(out.contains(line), "{line} missing from:\n{out}");
    }
    assert_eq!(
        out.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).count(),
        3,
        "a line a second:\n{out}"
    );
    // Each second is 1h55m of incident: which phase a line shows depends on when its tick ran.
    assert!(
        ["flapping", "steady-failure", "known-good-file"].iter().any(|p| out.contains(&format!("{p} / "))),
        "a phase of the core traffic:\n{out}"
    );
    let (ok, _, err) = edgefault(&["demo", "--duration", "1s"]);
    assert!(!ok && err.contains("--duration must be between 2s and 1h"), "{err}");
}

/// `demo --upstream-only` serves the sample app until it is told to stop: something to proxy.
#[test]
fn demo_upstream_only_serves_a_sample_app() {
    use std::io::{BufRead, Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["demo", "--upstream-only", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
    assert!(first.contains(&format!("sample upstream on http://127.0.0.1:{port}")), "{first}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("hello from the demo upstream\n"), "{reply}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().expect("exits").success(), "SIGTERM ends it cleanly");
}

#[test]
fn serve_refuses_a_bad_config_with_the_place_of_each_problem() {
    let dir = tempdir::Dir::new("serve");
    let config = write(&dir, "c.yaml", "listeners:\n  - name: web\n    bind: 127.0.0.1:x\n    routes: [{ name: a, upstream: \"http://127.0.0.1:1/base\" }]\n");
    let (ok, _, err) = edgefault(&["serve", "--config", &config.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("listeners[0].bind") && err.contains("listeners[0].routes[0].upstream"), "{err}");
    let (ok, _, err) = edgefault(&["serve"]);
    assert!(!ok);
    assert!(err.contains("--upstream"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_scenario_lists_shows_and_starts() {
    let proxy = proxy(upstream().await).await;
    let control = proxy.control_url.clone();
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            edgefault(&args)
        })
        .await
        .expect("join")
    };
    let ctl = |rest: &[&str]| {
        let mut v = vec!["ctl".to_owned(), "--control".to_owned(), control.clone(), "scenario".to_owned()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };

    let (ok, out, err) = run(ctl(&["list"])).await;
    assert!(ok, "{err}");
    assert!(out.contains("nov-18-2025-edge-outage") && out.contains("built-in"), "{out}");
    let (ok, out, _) = run(ctl(&["list", "-o", "json"])).await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v.as_array().is_some_and(|a| a.len() >= 8), "{out}");

    let (ok, out, err) = run(ctl(&["show", "nov-18-2025-edge-outage", "--param", "speed=60"])).await;
    assert!(ok, "{err}");
    for want in ["parameters (--param NAME=VALUE)", "steady-failure", "1h30m", "1m30s", "known-good-file", "source: "] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }

    let (ok, out, err) = run(ctl(&["start", "edge-5xx-storm", "-p", "percentage=100", "-p", "status=502"])).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "one id: {out}");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 502);

    let (ok, _, err) = run(ctl(&["start", "edge-5xx-storm", "-p", "percentage"])).await;
    assert!(!ok && err.contains("--param \"percentage\": expected NAME=VALUE"), "{err}");
    let (ok, _, err) = run(ctl(&["start", "edge-5xx-storm", "-p", "status=200"])).await;
    assert!(!ok && err.contains("params.status: must be one of"), "{err}");
}

#[test]
fn validate_takes_a_scenario_file() {
    let dir = tempdir::Dir::new("scenario");
    let good = write(&dir, "s.yaml", "name: mine\nsummary: a storm\nparams:\n  - { name: pct, type: percentage, default: 20 }\nexperiments:\n  - name: storm\n    percentage: \"${pct}\"\n    faults: [{ abort: { http_status: 503 } }]\n");
    let (ok, out, err) = edgefault(&["validate", &good.display().to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("scenario mine with 3 parameter(s), 1 experiment(s)"), "{out}");
    let bad = write(&dir, "b.yaml", "name: mine\nsummary: a storm\nparams:\n  - { name: pct, type: percent, default: 20 }\nexperiments:\n  - name: storm\n    faults: [{ abort: {} }]\n");
    let (ok, _, err) = edgefault(&["validate", &bad.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("b.yaml:4: params[0] (pct): type \"percent\""), "{err}");
}

/// `demo --report`: the report of a 90 s replay shows what the 18 November outage looked like — the site's
/// 500s flapping build by build, then the dashboard's two windows (sessionless logins refused, then the
/// login backlog) apart from each other — in the data (JSON) and in the HTML a browser renders.
#[test]
fn the_demo_s_report_shows_the_flapping_and_both_dashboard_windows() {
    let dir = std::env::temp_dir().join(format!("edgefault-demo-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (json, html, md) = (dir.join("report.json"), dir.join("report.html"), dir.join("report.md"));
    let (ok, out, err) = edgefault(&[
        "demo",
        "--duration",
        "90s",
        "--report",
        json.to_str().unwrap(),
        "--report",
        html.to_str().unwrap(),
        "--report",
        md.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("report of the run: {}", html.display())), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    let experiments = doc["experiments"].as_array().expect("experiments");
    let by_name = |name: &str| {
        experiments.iter().find(|e| e["spec"]["name"] == name).unwrap_or_else(|| panic!("{name} in the report"))
    };
    let started = |e: &serde_json::Value| {
        humantime::parse_rfc3339(e["startedAt"].as_str().expect("startedAt"))
            .expect("a time")
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert!(
        doc["who"].as_array().unwrap().iter().all(|w| w["started_by"] == "anonymous (StartScenario)"),
        "{}",
        doc["who"]
    );
    // The flapping: 1h30m of incident at speed 5h46m/90s is the first 23 s; builds of 5 minutes last 1.3 s.
    let core = started(by_name("nov18-core-traffic"));
    let points = |route: &str| {
        doc["history"]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == route)
            .unwrap_or_else(|| panic!("route {route}"))["points"]
            .as_array()
            .unwrap()
            .clone()
    };
    let num = |v: &serde_json::Value| v.as_str().map_or_else(|| v.as_u64().unwrap_or(0), |s| s.parse().unwrap_or(0));
    let mut classes = Vec::new();
    for p in points("site") {
        let t = num(&p["time"]);
        if t <= core || t >= core + 22 {
            continue;
        }
        let status: Vec<u64> = p["status"].as_array().unwrap().iter().map(num).collect();
        let total: u64 = status.iter().sum();
        if total == 0 {
            continue;
        }
        let bad = (status[4] + status[5]) as f64 / total as f64;
        if bad >= 0.8 {
            classes.push('B');
        } else if bad <= 0.2 {
            classes.push('g');
        }
    }
    let flips = classes.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(flips >= 3, "the site's 500s flap while flapping (B: ≥ 80 % 5xx, g: ≤ 20 %): {classes:?}");
    // The dashboard's two windows: sessionless logins refused from t0+10m, the backlog from t0+3h20m.
    let injecting = |name: &str| -> Vec<u64> {
        let id = by_name(name)["id"].clone();
        doc["history"]["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .map(|x| {
                x["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| num(&p["injected"]) > 0)
                    .map(|p| num(&p["time"]))
                    .collect()
            })
            .unwrap_or_default()
    };
    let logins = injecting("nov18-dashboard-logins");
    let backlog = injecting("nov18-dashboard-backlog");
    assert!(logins.len() >= 5 && backlog.len() >= 3, "both windows inject: {logins:?} {backlog:?}");
    let (logins_end, backlog_start) = (*logins.iter().max().unwrap(), *backlog.iter().min().unwrap());
    assert!(
        backlog_start > logins_end + 10,
        "two windows apart: logins end {logins_end}, backlog starts {backlog_start}"
    );
    // The other two renderings carry the same run.
    let html_text = std::fs::read_to_string(&html).unwrap();
    for needle in ["nov18-dashboard-logins", "logins-failing", "login-backlog", "flapping", "status mix"] {
        assert!(html_text.contains(needle), "{needle} in the HTML report");
    }
    assert!(std::fs::read_to_string(&md).unwrap().contains("| nov18-core-traffic | flapping |"));
    if std::env::var("EDGEFAULT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        if let Some(chromium) = crate::support::peers::chromium() {
            let shot = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img/report-demo.png");
            crate::support::peers::screenshot(&chromium, &format!("file://{}", html.display()), &shot, 1000, 1500);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
