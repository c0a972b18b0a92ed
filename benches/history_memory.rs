//! The history's memory is fixed: a process with 100 routes and 100 experiments, fed a request mix every
//! second, has the same resident size after an hour (and six) of one-second points as after a minute.
//! The ticks are driven by the bench itself (each one a second of the history's clock), so an hour of
//! points takes about a second to make; the data plane's side is the same `RouteLive::record` calls the
//! proxy makes per request.
//!
//! Then the controller's fleet history the same way: the reports of 20 sidecars with those 100 routes and
//! 100 experiments each, every second for six hours, summed by [`FleetHistory`].
//!
//! `cargo bench --bench history_memory` (figures in BENCHMARKS.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "a benchmark: a panic is a failed run"
)]

use std::{
    sync::Arc,
    time::{Duration, Instant, UNIX_EPOCH},
};

use edgefault::{
    fleet::history::FleetHistory,
    pb::v1,
    telemetry::history::{ExperimentNow, History, Query, Resolution, RouteLive},
};

const ROUTES: usize = 100;
const EXPERIMENTS: usize = 100;
/// Requests each route gets per second.
const PER_SECOND: u64 = 20;
/// Sidecars reporting to the controller.
const SIDECARS: usize = 20;

/// Resident set size, KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Prints the RSS at each mark (seconds of `what`, KiB), and the hour's and six hours' growth against
/// the minute's.
fn print_marks(marks: &[(u64, u64)], what: &str) {
    for (s, rss) in marks {
        println!("  RSS after {s:>5} s of {what}: {rss:>8} KiB");
    }
    let at = |s: u64| marks.iter().find(|(t, _)| *t == s).map_or(0, |(_, rss)| *rss);
    let (minute, hour, six) = (at(60), at(3600), at(6 * 3600));
    println!(
        "  an hour against a minute: {:+} KiB ({:+.2} %); six hours against a minute: {:+} KiB",
        hour as i64 - minute as i64,
        (hour as f64 - minute as f64) * 100.0 / minute as f64,
        six as i64 - minute as i64
    );
}

/// Each half runs in a process of its own (this binary, run again with `sidecar` or `controller`), so
/// that one's freed memory is not in the other's figures.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "sidecar") {
        return sidecar();
    }
    if args.iter().any(|a| a == "controller") {
        return controller();
    }
    let me = std::env::current_exe().expect("the bench's path");
    for half in ["sidecar", "controller"] {
        let status = std::process::Command::new(&me).arg(half).status().expect("the bench runs itself");
        assert!(status.success(), "{half}: {status}");
    }
}

fn sidecar() {
    let before = rss_kib();
    let history = History::default();
    let routes: Vec<Arc<RouteLive>> = (0..ROUTES).map(|i| history.route("web", &format!("route-{i}"))).collect();
    let ids: Vec<String> = (0..EXPERIMENTS).map(|i| format!("exp-{i:012}")).collect();
    let created = rss_kib();
    let start = 1_800_000_000u64;
    let mut marks = Vec::new();
    let began = Instant::now();
    for s in 0..6 * 3600u64 {
        for (i, r) in routes.iter().enumerate() {
            for k in 0..PER_SECOND {
                let status = match (k + i as u64) % 10 {
                    0 => Some(503),
                    1 => Some(404),
                    2 => None,
                    _ => Some(200),
                };
                r.record(status, Duration::from_micros(200 * (k + 1)), k % 10 == 0, k == 7);
            }
        }
        let now: Vec<ExperimentNow<'_>> = ids
            .iter()
            .map(|id| ExperimentNow { id, name: "bench", matched: (s + 1) * PER_SECOND, injected: (s + 1) * 2 })
            .collect();
        history.tick(UNIX_EPOCH + Duration::from_secs(start + s + 1), &now);
        if [60, 3600, 6 * 3600].contains(&(s + 1)) {
            marks.push((s + 1, rss_kib()));
        }
    }
    let took = began.elapsed();
    let seconds = history.snapshot(&Query::default());
    let minutes = history.snapshot(&Query { since: None, resolution: Resolution::Minute });
    println!("history memory: {ROUTES} routes, {EXPERIMENTS} experiments, {PER_SECOND} requests per route per second");
    println!("  RSS before the history:        {before:>7} KiB");
    println!(
        "  RSS with its rings allocated:  {created:>7} KiB (routes' rings; experiments' come with their first tick)"
    );
    print_marks(&marks, "points");
    println!(
        "  kept: {} second points and {} minute points per route; {} experiment series; {:.2} s to make six hours",
        seconds.routes[0].points.len(),
        minutes.routes[0].points.len(),
        seconds.experiments.len(),
        took.as_secs_f64()
    );
}

/// The controller's history fed by [`SIDECARS`] sidecars' reports, each the second they just closed.
fn controller() {
    let route = |i: usize| v1::RouteSecond {
        listener: "web".into(),
        route: format!("route-{i}"),
        requests: PER_SECOND,
        status: vec![0, 14, 0, 2, 2, 2],
        injected: 2,
        upstream_errors: 1,
        latency: (0..19).map(|b| u64::from(b % 4 == 1)).collect(),
    };
    let mut reports: Vec<v1::HistoryReport> = (0..SIDECARS)
        .map(|_| v1::HistoryReport {
            time: 0,
            routes: (0..ROUTES).map(route).collect(),
            experiments: (0..EXPERIMENTS)
                .map(|i| v1::ExperimentSecond {
                    id: format!("exp-{i:012}"),
                    name: "bench".into(),
                    matched: PER_SECOND,
                    injected: 2,
                })
                .collect(),
        })
        .collect();
    let before = rss_kib();
    let fleet = FleetHistory::default();
    let start = 1_800_000_000u64;
    let mut marks = Vec::new();
    let began = Instant::now();
    for s in 0..6 * 3600u64 {
        for r in &mut reports {
            r.time = start + s;
            fleet.report(r);
        }
        fleet.tick(UNIX_EPOCH + Duration::from_secs(start + s + 1));
        if [1, 60, 3600, 6 * 3600].contains(&(s + 1)) {
            marks.push((s + 1, rss_kib()));
        }
    }
    let took = began.elapsed();
    let seconds = fleet.snapshot(&Query::default());
    let last = seconds.routes[0].points.last().map_or(0, |p| p.requests);
    println!(
        "fleet history on the controller: {SIDECARS} sidecars reporting {ROUTES} routes and {EXPERIMENTS} experiments each second"
    );
    println!("  RSS before it:                 {before:>7} KiB (the reports to send made)");
    print_marks(&marks, "reports");
    println!(
        "  a route's last second: {last} requests (the sum of {SIDECARS}); {:.2} s to sum six hours ({:.1} µs a report)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / (6.0 * 3600.0 * SIDECARS as f64)
    );
}
