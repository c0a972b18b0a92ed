//! Everything bounded and checked at the boundary: every duration a spec can hold, every rate, every
//! percentage a spec can produce, free text and names, upstream URLs, YAML size and nesting; a spec that
//! would have panicked the server is refused with its field path, and nothing running is lost.

use std::{path::PathBuf, process::Command, time::Duration};

use edgefault::pb::v1;
use tonic::Code;

use crate::support::*;

fn edgefault(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgefault")).args(args).env_remove("EDGEFAULT_ADMIN_TOKEN").output().expect("runs")
}

fn temp(name: &str, contents: &str) -> PathBuf {
    temp_file(name, contents)
}

/// Every duration field of every fault kind, the trigger window, the ramp, the flap and a phase is held to
/// `limits.max_duration` (1 h by default): 100,000,000,000 s is refused where it stands.
#[tokio::test]
async fn every_duration_is_held_to_the_maximum() {
    let proxy = proxy(upstream().await).await;
    let huge = "100000000000s";
    let cases = [
        (format!("faults: [{{ delay: {{ fixed: {huge} }} }}]"), "faults[0].delay.fixed"),
        (format!("faults: [{{ delay: {{ uniform: {{ max: {huge} }} }} }}]"), "faults[0].delay.uniform.max"),
        (
            format!("faults: [{{ delay: {{ normal: {{ mean: 1s, stddev: 1s }}, max: {huge} }} }}]"),
            "faults[0].delay.max",
        ),
        (
            format!("faults: [{{ delay: {{ lognormal: {{ median: {huge}, sigma: 1 }}, max: 1s }} }}]"),
            "faults[0].delay.lognormal.median",
        ),
        (format!("faults: [{{ hang: {{ duration: {huge} }} }}]"), "faults[0].hang.duration"),
        (format!("faults: [{{ first_byte_delay: {{ fixed: {huge} }} }}]"), "faults[0].first_byte_delay.fixed"),
        (format!("faults: [{{ drip: {{ chunk_bytes: 1, interval: {huge} }} }}]"), "faults[0].drip.interval"),
        (format!("faults: [{{ disconnect: {{ after: {huge} }} }}]"), "faults[0].disconnect.after"),
        (format!("faults: [{{ blackhole: {{ duration: {huge} }} }}]"), "faults[0].blackhole.duration"),
        (format!("faults: [{{ grpc_stream: {{ after: {huge}, grpc_status: 14 }} }}]"), "faults[0].grpc_stream.after"),
        (format!("faults: [{{ toxic: {{ latency: {{ latency: {huge} }} }} }}]"), "faults[0].toxic.latency.latency"),
        (format!("faults: [{{ tls: {{ stall: {{ duration: {huge} }} }} }}]"), "faults[0].tls.stall.duration"),
        (format!("trigger: {{ until: {huge} }}\nfaults: [{{ abort: {{}} }}]"), "trigger.until"),
        (format!("ramp: {{ from: 0, to: 10, over: {huge} }}\nfaults: [{{ abort: {{}} }}]"), "ramp.over"),
        (format!("flap: {{ period: {huge} }}\nfaults: [{{ abort: {{}} }}]"), "flap.period"),
        (format!("lease: {huge}\nfaults: [{{ abort: {{}} }}]"), "lease"),
    ];
    for (body, field) in cases {
        let yaml = format!("name: big\n{body}\n");
        let v = violations(&proxy, &yaml).await;
        let found = v.iter().find(|v| v.field == field);
        assert!(
            found.is_some_and(|v| v.description.contains("exceeds the server's maximum")),
            "{field} not refused for its size: {v:?}"
        );
    }
    // Nanos of a second or more are not a duration.
    let mut bad = spec("name: n\nfaults: [{ delay: { fixed: 1s } }]\n");
    if let Some(v1::fault::Kind::Delay(d)) = bad.faults[0].kind.as_mut() {
        d.distribution =
            Some(v1::delay_fault::Distribution::Fixed(pbjson_types::Duration { seconds: 0, nanos: 1_000_000_000 }));
    }
    let mut c = proxy.control().await;
    let e = c.start_experiment(v1::StartExperimentRequest { spec: Some(bad) }).await.expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("faults[0].delay.fixed: not a duration"), "{}", e.message());
}

/// A rate that once panicked the server (1/rps overflowing a duration) is refused with its field path by
/// every door: StartExperiment and ValidateExperiment (answers, not reset streams), `edgefault validate`,
/// `serve --config` at boot, and a SIGHUP reload, after which the server still reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_rate_is_refused_everywhere_and_nothing_panics() {
    let tiny = "name: tiny\nfaults: [{ rate_limit: { requests_per_second: 1e-20 } }]\n";
    let proxy = proxy(upstream().await).await;
    let mut c = proxy.control().await;
    let e = c.start_experiment(v1::StartExperimentRequest { spec: Some(spec(tiny)) }).await.expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("faults[0].rate_limit.requests_per_second: must be from 0.001"), "{}", e.message());
    let fields = violation_fields(&proxy, tiny).await;
    assert_eq!(fields, ["faults[0].rate_limit.requests_per_second"]);

    let file = temp("tiny.yaml", tiny);
    let out = edgefault(&["validate", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("faults[0].rate_limit.requests_per_second"), "{out:?}");

    let up = upstream().await;
    let boot = format!(
        "listeners: [{{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\" }}] }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nexperiments:\n  - {{ name: tiny, faults: [{{ rate_limit: {{ requests_per_second: 1e-20 }} }}] }}\n"
    );
    let path = temp("boot-tiny.yaml", &boot);
    let out = edgefault(&["serve", "--config", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "exits with an error, not a panic (101): {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("experiments[0].faults[0].rate_limit.requests_per_second"),
        "{out:?}"
    );

    let good = boot
        .replace("experiments:\n  - { name: tiny, faults: [{ rate_limit: { requests_per_second: 1e-20 } }] }\n", "");
    std::fs::write(&path, &good).expect("write");
    let served = binary::serve(&["--config", &path.display().to_string()], false);
    std::fs::write(&path, &boot).expect("write");
    served.signal("HUP");
    let rejected = served.wait_log("config reload rejected");
    assert!(rejected.contains("requests_per_second"), "{rejected}");
    std::fs::write(&path, good.replace("name: default", "name: default, connect_timeout: 2s")).expect("write");
    served.signal("HUP");
    served.wait_log("config reloaded");
    assert_eq!(get(&client(), &served.url("/")).await.status, 200);
}

/// Without a config file there is nothing to reload: a SIGHUP is logged and the process serves on.
#[tokio::test]
async fn sighup_without_a_config_is_ignored() {
    let up = upstream().await;
    let mut served = binary::serve(
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--upstream", &format!("http://{up}")],
        false,
    );
    served.signal("HUP");
    served.wait_log("SIGHUP: ignored");
    assert!(served.alive());
    assert_eq!(get(&client(), &served.url("/")).await.status, 200);
}

/// `limits.max_percentage` holds every percentage a spec can produce: a ramp inside a phase is refused
/// past the cap, and a ramp under the cap is accepted without a percentage.
#[tokio::test]
async fn the_percentage_cap_holds_ramps_and_phases_too() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ max_percentage: 25 }}\n"
    ))
    .await;
    let phased = "name: p\nduration: 10m\nfaults: [{ abort: { http_status: 503 } }]\nphases:\n  - { name: quiet, percentage: 0 }\n  - { name: storm, start: 1s, ramp: { from: 100, to: 100, over: 1s } }\n";
    assert_eq!(violation_fields(&proxy, phased).await, ["phases[1].ramp.from", "phases[1].ramp.to"]);
    let ramp = "name: r\nramp: { from: 0, to: 25, over: 1m }\nfaults: [{ abort: { http_status: 503 } }]\n";
    assert_eq!(violation_fields(&proxy, ramp).await, Vec::<String>::new());
    proxy.start(ramp).await;
    // What clients see stays under the cap while the phase runs.
    let c = client();
    let mut failed = 0;
    for _ in 0..200 {
        if get(&c, &proxy.url("/")).await.status != 200 {
            failed += 1;
        }
    }
    assert!(failed <= 60, "{failed} of 200 failed under a 25 % cap");
}

/// Upstream URLs are parsed strictly: an unparsable or zero port, no host or user info is refused by
/// `validate`, by `serve --upstream` and by a SIGHUP reload (the running config stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upstream_urls_are_refused_by_every_door() {
    for bad in
        ["http://127.0.0.1:notaport", "http://127.0.0.1:99999", "http://127.0.0.1:", "http://127.0.0.1:0", "http://:80"]
    {
        let yaml = format!(
            "listeners: [{{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"{bad}\" }}] }}]\n"
        );
        let path = temp("bad-upstream.yaml", &yaml);
        let out = edgefault(&["validate", &path.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("listeners[0].routes[0].upstream"), "{bad}: {out:?}");
        let out = edgefault(&["serve", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--upstream", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {out:?}");
    }
    let up = upstream().await;
    let good = format!("listeners: [{{ name: web, bind: \"127.0.0.1:0\", routes: [{{ name: default, upstream: \"http://{up}\" }}] }}]\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n");
    let path = temp("reload-upstream.yaml", &good);
    let served = binary::serve(&["--config", &path.display().to_string()], false);
    std::fs::write(&path, good.replace(&format!("http://{up}"), &format!("http://{}:notaport", up.ip())))
        .expect("write");
    served.signal("HUP");
    let rejected = served.wait_log("config reload rejected");
    assert!(rejected.contains("not a number from 1 to 65535"), "{rejected}");
    assert_eq!(get(&client(), &served.url("/")).await.status, 200, "the running upstream stays");
}

/// Deeply nested YAML, which the parser takes seconds over, is refused at once with its line, by
/// `validate`, `ctl start -f` and config loading alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_yaml_is_refused_with_its_line() {
    let deep = format!("name: x\nfaults: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    let path = temp("deep.yaml", &deep);
    let out = edgefault(&["validate", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2: lists and mappings nested more than 64 deep"),
        "{out:?}"
    );
    let proxy = proxy(upstream().await).await;
    let out = edgefault(&["ctl", "--control", &proxy.control_url, "start", "-f", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nested more than 64 deep"), "{out:?}");
    let config = format!("listeners: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let path = temp("deep-config.yaml", &config);
    let out = edgefault(&["serve", "--config", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: lists and mappings nested"), "{out:?}");
}

/// Free text is bounded and names are printable: a 3 MiB description is refused, a 100,000-character
/// reason is recorded cut, an unknown 100,000-character id is not echoed back whole, a name with a
/// terminal escape is refused, and ListExperiments stays within a client's 4 MiB however large the specs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_is_bounded_and_names_are_printable() {
    let proxy = proxy(upstream().await).await;
    let mut c = proxy.control().await;
    let mut big = spec("name: wordy\nfaults: [{ abort: {} }]\n");
    big.description = "x".repeat(3 * 1024 * 1024);
    let e = c.start_experiment(v1::StartExperimentRequest { spec: Some(big) }).await.expect_err("refused");
    assert!(e.message().contains("description: at most 1024 characters"), "{}", e.message());

    let fields = violation_fields(&proxy, "name: \"web\\e[2J\"\nfaults: [{ abort: {} }]\n").await;
    assert_eq!(fields, ["name"]);
    let fields = violation_fields(
        &proxy,
        "name: ok\nduration: 1m\nfaults: [{ abort: {} }]\nphases: [{ name: \"a\\nforged log line\" }]\n",
    )
    .await;
    assert_eq!(fields, ["phases[0].name"]);

    let e = proxy.start("name: e\nfaults: [{ abort: {} }]\n").await;
    let reason = format!("\u{1b}[31m{}", "r".repeat(100_000));
    let stopped = c
        .stop_experiment(v1::StopExperimentRequest { id: e.id.clone(), reason })
        .await
        .expect("a long reason never stops the stop")
        .into_inner();
    assert_eq!(stopped.end_reason.chars().count(), 256);
    assert!(!stopped.end_reason.contains('\u{1b}'));

    let id = "x".repeat(100_000);
    let e = c.get_experiment(v1::GetExperimentRequest { id }).await.expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().len() < 300, "{} bytes echoed", e.message().len());

    // Five experiments of 900 kB each: the list leaves out the oldest specs rather than fail.
    for i in 0..5 {
        let mut s = spec("name: heavy\nfaults: [{ abort: { http_status: 503 } }]\n");
        s.name = format!("heavy-{i}");
        if let Some(v1::fault::Kind::Abort(a)) = s.faults[0].kind.as_mut() {
            a.body = Some("b".repeat(900_000));
        }
        c.start_experiment(v1::StartExperimentRequest { spec: Some(s) }).await.expect("starts");
    }
    let list = c.list_experiments(v1::ListExperimentsRequest::default()).await.expect("within the client's limit");
    let list = list.into_inner().experiments;
    assert_eq!(list.len(), 6);
    assert!(list.iter().any(|e| e.spec_omitted && e.spec.is_none()), "some specs left out");
    assert!(list.iter().filter(|e| e.spec.is_some()).count() >= 3);
    let out = edgefault(&["ctl", "--control", &proxy.control_url, "list"]);
    assert!(out.status.success(), "{out:?}");
}

/// `ctl start -f` with several documents is all or none: when the server refuses one at start (here its
/// limit of two active experiments), the ones started before it are stopped again and named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_start_is_all_or_none() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ max_active: 2 }}\n"
    ))
    .await;
    let docs = (1..=3)
        .map(|i| format!("name: e{i}\nfaults: [{{ delay: {{ fixed: 1ms }} }}]\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let path = temp("three.yaml", &docs);
    let out = edgefault(&["ctl", "--control", &proxy.control_url, "start", "-f", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("document 3 of") && err.contains("limits.max_active"), "{err}");
    assert!(err.contains("the 2 experiment(s) started before it were stopped again: exp-"), "{err}");
    assert_eq!(proxy.server.registry().running(), 0, "nothing left running");
    assert!(out.stdout.is_empty(), "no id printed as started: {out:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// `ctl start -f -` reads the standard input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_start_reads_standard_input() {
    use std::io::Write;
    let proxy = proxy(upstream().await).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["ctl", "--control", &proxy.control_url, "start", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"name: piped\nfaults: [{ abort: { http_status: 503 } }]\n")
        .expect("write");
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("exp-"));
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);
}
