//! The cost of the data plane's decision (match + sample) per request, and of publishing a new rule set.
//!
//! `cargo bench --bench decide`. Figures and how to read them: BENCHMARKS.md.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "benchmark setup: a failure is the report"
)]

use std::{
    hint::black_box,
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edgefault::{
    experiment::{ExperimentDef, Rule, RuleSet},
    fault::{Abort, Fault, HostPattern, Matcher, Percentage, RequestView},
    topology::{RouteId, Topology},
};
use http::{HeaderMap, Method};

const COUNTS: [usize; 5] = [0, 1, 10, 100, 1000];

fn topology() -> Topology {
    Topology::new(vec![("web".into(), vec!["api".into(), "default".into()])])
}

fn def(matcher: Matcher, routes: Vec<String>) -> ExperimentDef {
    ExperimentDef {
        routes,
        matcher,
        percentage: Percentage::new(50.0).expect("valid"),
        seed: Some(1),
        ..ExperimentDef::new(
            "bench",
            Duration::from_secs(3600),
            vec![Fault::Abort(Abort::new(None, None, "", None, HeaderMap::new()))],
        )
    }
}

fn rule(seq: u64, d: &ExperimentDef) -> Arc<Rule> {
    Arc::new(Rule::new(
        format!("exp-{seq}").into(),
        seq,
        d,
        seq,
        tokio::time::Instant::now() + Duration::from_secs(3600),
        Arc::default(),
    ))
}

/// `n` experiments that a request to `/` on route `default` never matches, in three shapes: by path
/// prefix, by host, and by method with a header (the last kind cannot be indexed by path or host).
fn non_matching(n: usize) -> Vec<Arc<Rule>> {
    (0..n)
        .map(|i| {
            let m = match i % 3 {
                0 => Matcher { path_prefix: Some(format!("/nomatch-{i}/")), ..Matcher::default() },
                1 => Matcher { hosts: vec![HostPattern::parse(&format!("h{i}.example.com"))], ..Matcher::default() },
                _ => Matcher {
                    path_prefix: Some(format!("/api/v{i}/")),
                    methods: vec![Method::DELETE],
                    ..Matcher::default()
                },
            };
            rule(i as u64, &def(m, Vec::new()))
        })
        .collect()
}

fn bench_decide(c: &mut Criterion) {
    let topology = topology();
    let route = RouteId::first();
    let headers = {
        let mut h = HeaderMap::new();
        h.insert("user-agent", "bench/1".parse().expect("value"));
        h.insert("accept", "*/*".parse().expect("value"));
        h
    };
    let view = |path: &'static str| RequestView {
        method: &Method::GET,
        host: Some("shop.example.com"),
        path,
        query: Some("q=1"),
        headers: &headers,
        client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
    };

    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let _guard = rt.enter();

    let mut group = c.benchmark_group("decide/non_matching");
    for n in COUNTS {
        let set = ArcSwap::from_pointee(RuleSet::build(&topology, non_matching(n)));
        let req = view("/");
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let rules = set.load();
                black_box(if rules.targets(route) { rules.decide(route, black_box(&req)).is_some() } else { false })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decide/one_matching");
    for n in COUNTS.into_iter().filter(|n| *n > 0) {
        let mut rules = non_matching(n - 1);
        rules.push(rule(
            n as u64,
            &def(Matcher { path_prefix: Some("/checkout".into()), ..Matcher::default() }, Vec::new()),
        ));
        let set = ArcSwap::from_pointee(RuleSet::build(&topology, rules));
        let req = view("/checkout/pay");
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let rules = set.load();
                black_box(rules.decide(route, black_box(&req)).is_some())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decide/other_route");
    for n in COUNTS {
        // Every experiment targets route "api"; the request goes to "default" and meets none of them.
        let rules: Vec<Arc<Rule>> =
            (0..n).map(|i| rule(i as u64, &def(Matcher::default(), vec!["api".into()]))).collect();
        let set = ArcSwap::from_pointee(RuleSet::build(&topology, rules));
        let req = view("/");
        let default_route = RouteId::first().next();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let rules = set.load();
                black_box(rules.targets(default_route) && rules.decide(default_route, black_box(&req)).is_some())
            })
        });
    }
    group.finish();
}

fn bench_publish(c: &mut Criterion) {
    let topology = topology();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let _guard = rt.enter();
    let mut group = c.benchmark_group("publish");
    for n in COUNTS {
        let rules = non_matching(n);
        let swap = ArcSwap::from_pointee(RuleSet::default());
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| swap.store(Arc::new(RuleSet::build(&topology, rules.clone()))))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench_decide, bench_publish
}
criterion_main!(benches);
