//! `edgefault demo`: a sample upstream, the proxy and a load generator in one process. It starts an
//! experiment through its own gRPC service and shows what clients saw before, during and after.

use std::{
    convert::Infallible,
    io::Write,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use tokio::{net::TcpListener, sync::Mutex};

use crate::{
    app::Server,
    config::{Config, Overrides},
    ctl::Ctl,
    document,
};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup failed: {0}")]
    Setup(String),
    #[error("writing the report failed: {0}")]
    Io(#[from] std::io::Error),
}

const EXPERIMENTS: &str = "\
name: demo-edge-5xx
match: { routes: [api] }
percentage: 30
duration: 1m
seed: 1118
faults:
  - abort: { http_status: 503, body: \"503 Service Unavailable (injected by edgefault)\\n\" }
---
name: demo-slow-edge
percentage: 50
duration: 1m
seed: 2025
faults:
  - delay: { lognormal: { median: 20ms, sigma: 0.6 }, max: 250ms }
";

/// Runs the demo, writing the report to `out`. Bounded: three phases of `phase` each, on loopback.
pub async fn run(out: &mut (impl Write + Send), phase: Duration) -> Result<(), DemoError> {
    let upstream = start_upstream().await.map_err(|e| DemoError::Setup(e.to_string()))?;
    let config = Config::from_yaml(
        &format!(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{upstream}\" }}\n      - {{ name: site, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
        ),
        "demo",
        &Overrides::default(),
    )
    .map_err(|e| DemoError::Setup(e.to_string()))?;
    let server = Server::start(config).await.map_err(|e| DemoError::Setup(e.to_string()))?;
    let proxy = server.listener_addr("web").ok_or_else(|| DemoError::Setup("no listener".into()))?;
    let control = format!("http://{}", server.control_addr());

    writeln!(out, "edgefault demo: sample upstream on {upstream}, proxy on {proxy}, control service on {control}")?;
    writeln!(out, "traffic: 16 concurrent clients, half to /api/items (route api), half to / (route site)\n")?;
    writeln!(
        out,
        "{:<34} {:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}",
        "phase", "requests", "2xx", "5xx", "other", "p50", "p90", "p99"
    )?;

    let report = |out: &mut (dyn Write + Send), name: &str, s: &Summary| {
        writeln!(
            out,
            "{:<34} {:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}",
            name,
            s.requests,
            s.ok,
            s.server_errors,
            s.other,
            ms(s.p(0.50)),
            ms(s.p(0.90)),
            ms(s.p(0.99))
        )
    };

    let before = load(proxy, phase).await;
    report(out, "before: no experiment", &before.all)?;

    let mut ctl = Ctl::connect(&control).await.map_err(|e| DemoError::Setup(e.to_string()))?;
    let specs = document::parse_specs(EXPERIMENTS).map_err(|e| DemoError::Setup(e.to_string()))?;
    let mut ids = Vec::new();
    for spec in specs {
        let e = ctl.start_spec(spec).await.map_err(|e| DemoError::Setup(e.to_string()))?;
        ids.push(e.id);
    }
    let during = load(proxy, phase).await;
    report(out, "during: api 30% 503, all 50% slow", &during.all)?;
    report(out, "  of which /api/ (route api)", &during.api)?;
    report(out, "  of which / (route site)", &during.site)?;

    let mut stats = Vec::new();
    for id in &ids {
        let e = ctl.stop(id, "demo phase over").await.map_err(|e| DemoError::Setup(e.to_string()))?;
        let s = e.stats.unwrap_or_default();
        stats.push(format!(
            "  {} {:<16} matched {:>6}, injected {:>6} (aborted {}, delayed {})",
            e.id,
            e.spec.map(|s| s.name).unwrap_or_default(),
            s.matched,
            s.injected,
            s.aborted,
            s.delayed
        ));
    }
    let after = load(proxy, phase).await;
    report(out, "after: experiments stopped", &after.all)?;
    writeln!(out, "\nexperiments (started and stopped over gRPC):")?;
    for line in stats {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "\nlatency in milliseconds; 5xx during the experiment come from edgefault, the upstream never fails."
    )?;
    server.shutdown().await;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

#[derive(Default)]
struct Summary {
    requests: u64,
    ok: u64,
    server_errors: u64,
    other: u64,
    latencies: Vec<Duration>,
}

impl Summary {
    fn add(&mut self, status: Option<StatusCode>, took: Duration) {
        self.requests += 1;
        match status {
            Some(s) if s.is_success() => self.ok += 1,
            Some(s) if s.is_server_error() => self.server_errors += 1,
            _ => self.other += 1,
        }
        self.latencies.push(took);
    }

    fn p(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or_default()
    }
}

#[derive(Default)]
struct PhaseReport {
    all: Summary,
    api: Summary,
    site: Summary,
}

/// 16 clients send requests for `phase`, alternating between the two routes.
async fn load(proxy: SocketAddr, phase: Duration) -> PhaseReport {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let report = Arc::new(Mutex::new(PhaseReport::default()));
    let until = Instant::now() + phase;
    let mut tasks = Vec::new();
    for worker in 0..16u32 {
        let client = client.clone();
        let report = Arc::clone(&report);
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while Instant::now() < until {
                n += 1;
                let api = n % 2 == 0;
                let uri = format!("http://{proxy}{}", if api { "/api/items" } else { "/" });
                let started = Instant::now();
                let status = match Request::get(uri).body(Empty::new()) {
                    Ok(req) => match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
                        Ok(Ok(resp)) => {
                            let status = resp.status();
                            let _ = resp.into_body().collect().await;
                            Some(status)
                        }
                        _ => None,
                    },
                    Err(_) => None,
                };
                let took = started.elapsed();
                let mut r = report.lock().await;
                r.all.add(status, took);
                if api {
                    r.api.add(status, took)
                } else {
                    r.site.add(status, took)
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(report).map(Mutex::into_inner).unwrap_or_default()
}

/// The sample upstream: answers every request with 200 and a short text, over HTTP/1.1 or h2c.
async fn start_upstream() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello from the demo upstream\n"))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
