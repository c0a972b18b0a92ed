//! WatchEvents and GetStats over a real control connection, and `ctl watch` / `ctl top` as a user runs them.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::*;
use edgefault::pb::v1::{self, event::Kind};

fn ms(n: u64) -> pbjson_types::Duration {
    pbjson_types::Duration { seconds: (n / 1000) as i64, nanos: ((n % 1000) * 1_000_000) as i32 }
}

/// Reads events until `pred` holds for one (returned), within 5 s.
async fn until(stream: &mut tonic::Streaming<v1::Event>, mut pred: impl FnMut(&v1::Event) -> bool) -> Vec<v1::Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no matching event within 5 s; seen: {seen:#?}"))
            .expect("stream ok")
            .expect("stream open");
        let done = pred(&next);
        seen.push(next);
        if done {
            return seen;
        }
    }
}

async fn watch(proxy: &Proxy, req: v1::WatchEventsRequest) -> tonic::Streaming<v1::Event> {
    proxy.control().await.watch_events(req).await.expect("WatchEvents").into_inner()
}

#[tokio::test]
async fn the_lifecycle_and_stats_snapshots_arrive_in_order() {
    let proxy = proxy(upstream().await).await;
    let mut events =
        watch(&proxy, v1::WatchEventsRequest { stats_interval: Some(ms(100)), ..Default::default() }).await;
    let e =
        proxy.start("name: five-aborts\nmatch: { routes: [api] }\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, &proxy.url("/api/x")).await.status, 503);
    }
    get(&c, &proxy.url("/")).await;
    // A snapshot that has seen the traffic.
    let seen = until(&mut events, |ev| match &ev.kind {
        Some(Kind::Stats(s)) => s.experiments.iter().any(|x| x.id == e.id && x.stats.is_some_and(|s| s.injected == 5)),
        _ => false,
    })
    .await;
    let started = seen.iter().find(|ev| matches!(ev.kind, Some(Kind::Started(_)))).expect("a started event");
    assert_eq!((started.experiment_id.as_str(), started.experiment_name.as_str()), (e.id.as_str(), "five-aborts"));
    let Some(Kind::Stats(snapshot)) = &seen.last().expect("last").kind else { unreachable!() };
    let x = snapshot.experiments.iter().find(|x| x.id == e.id).expect("the experiment");
    assert_eq!(x.injected_by_kind.get("abort"), Some(&5), "{x:?}");
    let totals = snapshot.proxy.clone().expect("totals");
    assert_eq!((totals.injected, totals.passed, totals.experiments_running), (5, 1, 1), "{totals:?}");

    proxy.stop(&e.id).await;
    let seen = until(&mut events, |ev| matches!(ev.kind, Some(Kind::Stopped(_)))).await;
    let Some(Kind::Stopped(stopped)) = &seen.last().expect("last").kind else { unreachable!() };
    assert_eq!(stopped.stats.expect("stats").injected, 5);
    assert_eq!(stopped.reason, "stopped by a control call");
}

#[tokio::test]
async fn guard_trips_lease_expiry_and_the_filter() {
    let proxy = proxy(upstream().await).await;
    let guarded = proxy
        .start("name: guarded\nmatch: { routes: [api] }\nfaults: [{ delay: { fixed: 1ms } }]\nguards: [{ max_injected: 3 }]\n")
        .await;
    let mut only_guarded = watch(
        &proxy,
        v1::WatchEventsRequest { experiment_id: guarded.id.clone(), no_stats: true, stats_interval: None },
    )
    .await;
    let mut all = watch(&proxy, v1::WatchEventsRequest { no_stats: true, ..Default::default() }).await;
    let leased = proxy
        .start(
            "name: leased\nlease: 100ms\nmatch: { routes: [dashboard] }\nfaults: [{ abort: { http_status: 500 } }]\n",
        )
        .await;
    let c = client();
    for _ in 0..3 {
        get(&c, &proxy.url("/api/x")).await;
    }
    let seen = until(&mut only_guarded, |ev| matches!(ev.kind, Some(Kind::Aborted(_)))).await;
    assert!(seen.iter().all(|ev| ev.experiment_id == guarded.id), "the filter holds: {seen:#?}");
    let kinds: Vec<_> = seen.iter().map(|ev| ev.kind.clone()).collect();
    assert!(
        matches!(kinds.as_slice(), [Some(Kind::GuardTripped(g)), Some(Kind::Aborted(a))] if g.reason == a.reason && a.reason.contains("3 faults injected")),
        "{kinds:#?}"
    );

    let seen = until(&mut all, |ev| ev.experiment_id == leased.id && matches!(ev.kind, Some(Kind::Aborted(_)))).await;
    let of_leased: Vec<_> = seen.iter().filter(|ev| ev.experiment_id == leased.id).map(|ev| ev.kind.clone()).collect();
    assert!(
        matches!(of_leased.as_slice(), [Some(Kind::Started(_)), Some(Kind::LeaseExpired(_)), Some(Kind::Aborted(a))] if a.reason == "lease expired"),
        "{of_leased:#?}"
    );
}

#[tokio::test]
async fn flap_phases_and_expiry_are_events() {
    let proxy = proxy(upstream().await).await;
    let mut events = watch(&proxy, v1::WatchEventsRequest { no_stats: true, ..Default::default() }).await;
    let e = proxy.start("name: flapping\nduration: 1500ms\nflap: { period: 600ms, on: 300ms }\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    let seen = until(&mut events, |ev| matches!(ev.kind, Some(Kind::Expired(_)))).await;
    let phases: Vec<(String, u64)> = seen
        .iter()
        .filter_map(|ev| match &ev.kind {
            Some(Kind::Timeline(t)) => Some((t.phase.clone(), t.flap_cycle)),
            _ => None,
        })
        .collect();
    // 0–300 ms on, 300–600 off, 600–900 on, 900–1200 off, 1200–1500 on: a tick of 100 ms sees each.
    assert!(phases.len() >= 4, "{phases:?}");
    assert_eq!(phases[0], ("flap on".to_owned(), 0));
    assert_eq!(phases[1], ("flap off".to_owned(), 0));
    assert_eq!(phases[2], ("flap on".to_owned(), 1));
    assert_eq!(seen.last().expect("last").experiment_id, e.id);
}

#[tokio::test]
async fn get_stats_counts_by_kind_and_route_and_refuses_unknown_ids() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: slow-then-503\nmatch: { routes: [api] }\nfaults: [{ delay: { fixed: 1ms } }, { abort: { http_status: 503 } }]\n").await;
    let c = client();
    for _ in 0..4 {
        get(&c, &proxy.url("/api/x")).await;
    }
    for _ in 0..3 {
        get(&c, &proxy.url("/")).await;
    }
    let mut control = proxy.control().await;
    let stats =
        control.get_stats(v1::GetStatsRequest { experiment_id: e.id.clone() }).await.expect("GetStats").into_inner();
    assert_eq!(stats.experiments.len(), 1);
    let x = &stats.experiments[0];
    assert_eq!((x.injected_by_kind.get("delay"), x.injected_by_kind.get("abort")), (Some(&4), Some(&4)), "{x:?}");
    assert_eq!(x.stats.expect("stats").injected, 4);
    let proxy_totals = stats.proxy.expect("totals");
    let route = |name: &str| proxy_totals.routes.iter().find(|r| r.route == name).cloned().expect("route");
    assert_eq!((route("api").injected, route("api").passed), (4, 0));
    assert_eq!((route("default").passed, route("default").injected), (3, 0));
    let missing =
        control.get_stats(v1::GetStatsRequest { experiment_id: "exp-nope".into() }).await.expect_err("unknown");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = control
        .watch_events(v1::WatchEventsRequest { stats_interval: Some(ms(10)), ..Default::default() })
        .await
        .expect_err("too short");
    assert!(bad.message().starts_with("stats_interval: 10ms is outside 100ms to 1h"), "{}", bad.message());
}

/// Starts `edgefault ctl --control URL ARGS…` with stdout and stderr piped.
fn ctl(proxy: &Proxy, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["ctl", "--control", &proxy.control_url])
        .args(args)
        .env_remove("EDGEFAULT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns")
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_watch_prints_json_lines_and_exits_on_ctrl_c() {
    let proxy = proxy(upstream().await).await;
    let mut child = ctl(&proxy, &["watch", "--no-stats", "-o", "json"]);
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The stream is open once an experiment started after it shows up; retry the start until it does.
    let mut first = None;
    for _ in 0..50 {
        let e = proxy.start("name: watched\nfaults: [{ abort: { http_status: 503 } }]\n").await;
        proxy.stop(&e.id).await;
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(200), lines.recv()).await {
            first = Some(line);
            break;
        }
    }
    // The stream may have opened between a start and its stop: skip to the first complete pair.
    let mut line = first.expect("ctl watch printed an event");
    let mut v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    if v.get("started").is_none() {
        let e = proxy.start("name: watched\nfaults: [{ abort: { http_status: 503 } }]\n").await;
        proxy.stop(&e.id).await;
        line = tokio::time::timeout(Duration::from_secs(5), lines.recv()).await.expect("in time").expect("a line");
        v = serde_json::from_str(&line).expect("a JSON line");
    }
    assert_eq!(v["experimentName"], "watched", "{v}");
    assert!(v.get("started").is_some(), "{v}");
    let second = tokio::time::timeout(Duration::from_secs(5), lines.recv()).await.expect("in time").expect("a line");
    let v: serde_json::Value = serde_json::from_str(&second).expect("a JSON line");
    assert_eq!(v["stopped"]["reason"], "stopped by a control call", "{v}");

    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("waits")).await.expect("join");
    assert!(out.status.success(), "exits 0 on Ctrl-C: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_watch_says_so_when_the_server_goes_away() {
    let proxy = proxy(upstream().await).await;
    let mut child = ctl(&proxy, &["watch", "--stats-interval", "100ms"]);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reads");
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        (line, rest)
    });
    // A stats line shows the stream is open; then the server shuts down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.server.shutdown().await;
    let (first, _) = line.await.expect("join");
    assert!(first.contains(" stats: 0 running; requests passed 0"), "{first:?}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("waits")).await.expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the server ended the event stream") || stderr.contains("lost the control service"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_top_prints_plain_frames_with_rates_when_not_a_terminal() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: topped\nmatch: { routes: [api] }\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    let child = ctl(&proxy, &["top", "--iterations", "2", "--interval", "300ms"]);
    let c = client();
    let traffic = async {
        for _ in 0..30 {
            get(&c, &proxy.url("/api/x")).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (out, ()) =
        tokio::join!(tokio::task::spawn_blocking(move || child.wait_with_output().expect("waits")), traffic);
    let out = out.expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(!text.contains('\x1b'), "no terminal codes when stdout is a pipe: {text:?}");
    assert_eq!(text.matches("edgefault top").count(), 2, "{text}");
    assert!(text.contains("MATCHED/s"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&e.id)).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows.iter().all(|r| r.contains("topped") && r.contains("running") && r.contains("abort")), "{text}");
    let total = proxy.server.registry().get(&e.id).expect("kept").injected;
    assert!(total > 0);
}

#[tokio::test]
async fn phase_changes_are_timeline_events() {
    let proxy = proxy(upstream().await).await;
    let mut events = watch(&proxy, v1::WatchEventsRequest { no_stats: true, ..Default::default() }).await;
    let e = proxy
        .start("name: phased\nduration: 1200ms\nfaults: [{ abort: { http_status: 503 } }]\nphases:\n  - { name: calm, percentage: 0 }\n  - { name: storm, start: 400ms, percentage: 100 }\n  - { name: tail, start: 800ms, percentage: 10 }\n")
        .await;
    let seen = until(&mut events, |ev| matches!(ev.kind, Some(Kind::Expired(_)))).await;
    let phases: Vec<String> = seen
        .iter()
        .filter(|ev| ev.experiment_id == e.id)
        .filter_map(|ev| match &ev.kind {
            Some(Kind::Timeline(t)) => Some(t.phase.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(phases, ["calm", "storm", "tail"], "one event per phase, in order");
}
