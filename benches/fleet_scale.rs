//! Fleet scale: one `edgefault controller` (the release binary, its own process) and 10, 100 and 1,000
//! sidecars subscribed to it over real gRPC streams on 127.0.0.1 (simulated in this process: each is a
//! sidecar's registry and subscription, without a listener). For each fleet size it measures:
//!
//! - the time from `StartExperiment` returning on the controller until the experiment runs on a sidecar
//!   (each sidecar's registry reports it started), per sidecar and until the last one (the whole fleet);
//! - the controller's resident memory per connected sidecar (its RSS with the fleet connected, less its
//!   RSS before any sidecar, over the count).
//!
//! Run: `ulimit -n 10000; cargo bench --bench fleet_scale` (optionally `-- 10 100` for some sizes only).
//! Prints one line per size; the figures are in BENCHMARKS.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a benchmark"
)]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use edgefault::{
    experiment::{EventKind, Limits, Registry},
    fleet::sidecar::{Member, SidecarOptions},
    pb::v1::{self, fault_control_client::FaultControlClient},
    topology::Topology,
};
use tokio::sync::{mpsc, watch};

struct ControllerProcess(Child);

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).or(sorted.last()).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn run(n: usize, trials: usize) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .args(["controller", "--control", &format!("127.0.0.1:{port}"), "--workers", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the release binary runs");
    let controller = ControllerProcess(child);
    let url = format!("http://127.0.0.1:{port}");
    let mut client = loop {
        match FaultControlClient::connect(url.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(controller.0.id());

    let (stop_tx, stop) = watch::channel(false);
    let mut registries = Vec::with_capacity(n);
    for i in 0..n {
        let registry = Registry::new(Arc::new(Topology::default()), Limits::default());
        let opts = SidecarOptions {
            controller: url.clone(),
            id: format!("sidecar-{i:04}"),
            labels: [("app".to_string(), "web".to_string())].into(),
            grace: Duration::from_secs(30),
            token: None,
            tls: None,
            report_interval: Duration::from_secs(1),
            keepalive: Duration::from_secs(10),
        };
        tokio::spawn(Member::new(opts, Arc::clone(&registry), None).run(stop.clone()));
        registries.push(registry);
    }
    loop {
        let list = client.list_sidecars(v1::ListSidecarsRequest {}).await.unwrap().into_inner().sidecars;
        if list.iter().filter(|s| s.connected).count() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(controller.0.id());

    let mut each = Vec::new();
    let mut whole = Vec::new();
    for t in 0..trials {
        let name = format!("scale-{t}");
        let (tx, mut rx) = mpsc::unbounded_channel();
        for r in &registries {
            let mut bus = r.subscribe();
            let (tx, name) = (tx.clone(), name.clone());
            tokio::spawn(async move {
                while let Ok(e) = bus.recv().await {
                    if matches!(e.kind, EventKind::Started { .. }) && *e.name == *name {
                        let _ = tx.send(Instant::now());
                        return;
                    }
                }
            });
        }
        drop(tx);
        let spec = v1::ExperimentSpec {
            name: name.clone(),
            duration: Some(pbjson_types::Duration { seconds: 60, nanos: 0 }),
            faults: vec![v1::Fault {
                kind: Some(v1::fault::Kind::Abort(v1::AbortFault { http_status: Some(503), ..Default::default() })),
            }],
            sidecars: Some(v1::SidecarSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = client.start_experiment(v1::StartExperimentRequest { spec: Some(spec) }).await.unwrap().into_inner();
        let returned = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..n {
            let at = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("live in time").unwrap();
            let d = at.saturating_duration_since(returned);
            each.push(d);
            last = last.max(d);
        }
        whole.push(last);
        client.stop_experiment(v1::StopExperimentRequest { id: e.id, reason: String::new() }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    each.sort();
    whole.sort();
    println!(
        "{n:>5} sidecars, {trials} starts: per sidecar p50 {} p99 {}; whole fleet p50 {} p99 {}; controller RSS {} KiB idle, {} KiB with the fleet: {:.1} KiB per sidecar",
        ms(percentile(&each, 0.5)),
        ms(percentile(&each, 0.99)),
        ms(percentile(&whole, 0.5)),
        ms(percentile(&whole, 0.99)),
        rss_before,
        rss_after,
        (rss_after.saturating_sub(rss_before)) as f64 / n as f64,
    );
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10, 100, 1000] } else { sizes };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        for n in sizes {
            let trials = if n >= 1000 { 20 } else { 50 };
            run(n, trials).await;
        }
    });
}
