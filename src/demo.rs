//! `edgefault demo`: the 18 November 2025 replay, at high speed, against a sample upstream, in one
//! process. It starts the proxy, starts the `nov-18-2025-edge-outage` scenario through its own gRPC
//! service, sends traffic from a pool of clients, and prints once a second what they saw: the share of
//! 2xx, 5xx and timeouts, latency percentiles, and the phase each experiment is in.

use std::{
    convert::Infallible,
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;

use crate::{
    app::Server,
    config::{Config, Overrides},
    ctl::Ctl,
    pb::v1,
};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup failed: {0}")]
    Setup(String),
    #[error("--duration must be between 2s and 1h, got {0}")]
    Duration(String),
    #[error("writing the report failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The replay the demo plays, and how long it lasts in incident time (t0 to 5xx back to baseline).
pub const SCENARIO: &str = "nov-18-2025-edge-outage";
const INCIDENT: Duration = Duration::from_secs(5 * 3600 + 46 * 60);
/// Concurrent clients.
const CLIENTS: u32 = 16;
/// A client gives up on a request after this long: a timeout, as a browser or SDK would see it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the demo for `duration` of real time (the 5h46m incident compressed into it), writing the live
/// report to `out`; also the run's `ctl report` to each file of `reports` (Markdown when it ends in `.md`,
/// JSON in `.json`, else HTML).
pub async fn run(
    out: &mut (impl Write + Send),
    duration: Duration,
    reports: &[std::path::PathBuf],
) -> Result<(), DemoError> {
    if !(Duration::from_secs(2)..=Duration::from_secs(3600)).contains(&duration) {
        return Err(DemoError::Duration(humantime::format_duration(duration).to_string()));
    }
    let audit = (!reports.is_empty())
        .then(|| std::env::temp_dir().join(format!("edgefault-demo-audit-{}.jsonl", std::process::id())));
    let mut replay = Replay::start(duration, audit.as_deref()).await?;
    replay.intro(out)?;
    let started = replay.start_scenario().await?;
    let traffic = Traffic::spawn(replay.proxy, replay.begun + duration);
    writeln!(
        out,
        "{:>5} {:>9} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}  phase: core / dashboard logins / dashboard backlog / api",
        "time", "incident", "req/s", "2xx", "5xx", "timeout", "p50", "p90", "p99"
    )?;
    let mut tick = tokio::time::interval_at((replay.begun + Duration::from_secs(1)).into(), Duration::from_secs(1));
    let mut second = 0u64;
    while replay.begun.elapsed() < duration {
        tick.tick().await;
        second += 1;
        let window = traffic.take_window();
        let phases = replay.phases_now(&started).await;
        tick_line(out, second, replay.incident_now(), &window.all, &phases)?;
    }
    let by_phase = traffic.finish(&replay, &started).await;
    final_report(out, &mut replay, &started, &by_phase).await?;
    if !reports.is_empty() {
        // The second that just ended is closed at the next whole second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let ids: Vec<String> = started.iter().map(|e| e.id.clone()).collect();
        let input = replay
            .ctl
            .report_input(&replay.control, duration, &ids, audit.as_deref())
            .await
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        for path in reports {
            std::fs::write(path, crate::ctl::report::by_extension(path, &input))
                .map_err(|e| DemoError::Setup(format!("--report {}: cannot write: {e}", path.display())))?;
            writeln!(out, "report of the run: {}", path.display())?;
        }
    }
    if let Some(audit) = &audit {
        let _ = std::fs::remove_file(audit);
    }
    let _ = replay.ctl.abort_all("demo over").await;
    replay.server.shutdown().await;
    Ok(())
}

/// `edgefault demo --upstream-only`: the demo's sample upstream alone, on `listen`, until `stop`: an app
/// to put `edgefault serve --upstream` in front of when there is none at hand.
pub async fn upstream_only(
    out: &mut (impl Write + Send),
    listen: SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DemoError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| DemoError::Setup(format!("cannot listen on {listen} for the sample upstream: {e}")))?;
    let addr = listener.local_addr()?;
    writeln!(
        out,
        "edgefault demo: sample upstream on http://{addr} (every request: 200 and a line of text); Ctrl-C ends it"
    )?;
    out.flush()?;
    tokio::select! {
        () = serve_upstream(listener) => {}
        () = stop => {}
    }
    Ok(())
}

/// The demo's server, its control client, and its clock.
struct Replay {
    server: Server,
    ctl: Ctl,
    upstream: SocketAddr,
    proxy: SocketAddr,
    control: String,
    speed: f64,
    duration: Duration,
    begun: Instant,
}

impl Replay {
    /// Starts the sample upstream and the proxy (routes site, api, dashboard) with its control service.
    async fn start(duration: Duration, audit: Option<&Path>) -> Result<Replay, DemoError> {
        let setup = |e: &dyn std::fmt::Display| DemoError::Setup(e.to_string());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let upstream = listener.local_addr()?;
        tokio::spawn(serve_upstream(listener));
        let config = Config::from_yaml(
            &format!(
                "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{upstream}\" }}\n      - {{ name: dashboard, hosts: [dash.example.com], upstream: \"http://{upstream}\" }}\n      - {{ name: site, upstream: \"http://{upstream}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n{}"
                ,
                audit.map(|a| format!("audit: {{ path: {:?} }}\n", a.display().to_string())).unwrap_or_default()
            ),
            "demo",
            &Overrides::default(),
        )
        .map_err(|e| setup(&e))?;
        let server = Server::start(config).await.map_err(|e| setup(&e))?;
        let proxy = server.listener_addr("web").ok_or_else(|| DemoError::Setup("no listener".into()))?;
        let control = format!("http://{}", server.control_addr());
        let ctl = Ctl::connect(&control).await.map_err(|e| setup(&e))?;
        Ok(Replay {
            server,
            ctl,
            upstream,
            proxy,
            control,
            speed: INCIDENT.as_secs_f64() / duration.as_secs_f64(),
            duration,
            begun: Instant::now(),
        })
    }

    fn intro(&self, out: &mut impl Write) -> std::io::Result<()> {
        let Replay { upstream, proxy, control, speed, duration, .. } = self;
        writeln!(out, "edgefault demo: sample upstream on {upstream}, proxy on {proxy}, control service on {control}")?;
        writeln!(
            out,
            "replaying {SCENARIO} (docs/scenarios.md): 5h46m of incident in {} (speed {speed:.0})",
            humantime::format_duration(*duration)
        )?;
        writeln!(
            out,
            "traffic: {CLIENTS} clients; half to / (route site), a quarter to /api/items (route api), a quarter to the \
             dashboard (host dash.example.com); a client gives up after {}s\n",
            CLIENT_TIMEOUT.as_secs()
        )
    }

    /// Starts the scenario over gRPC, as a user would; the clock starts with it.
    async fn start_scenario(&mut self) -> Result<Vec<v1::Experiment>, DemoError> {
        let speed = format!("speed={}", self.speed);
        let started =
            self.ctl.start_scenario(SCENARIO, &[speed]).await.map_err(|e| DemoError::Setup(e.to_string()))?.experiments;
        self.begun = Instant::now();
        Ok(started)
    }

    /// Incident time at `at`.
    fn incident_at(&self, at: Instant) -> Duration {
        let secs = (at.saturating_duration_since(self.begun).as_secs_f64() * self.speed).min(INCIDENT.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or_default()
    }

    fn incident_now(&self) -> Duration {
        self.incident_at(Instant::now())
    }

    /// The phase each experiment but the latency one is in now, as GetExperiment says.
    async fn phases_now(&mut self, started: &[v1::Experiment]) -> Vec<String> {
        let mut phases = Vec::new();
        for e in started {
            if e.spec.as_ref().is_some_and(|s| s.name == "nov18-latency") {
                continue;
            }
            phases.push(match self.ctl.get(&e.id).await {
                Ok(now) if now.state == v1::ExperimentState::Running as i32 => {
                    now.phase.map(|p| p.name).unwrap_or_else(|| "running".into())
                }
                Ok(_) => "ended".into(),
                Err(_) => "?".into(),
            });
        }
        phases
    }
}

/// One line a second: what clients saw in the last second.
fn tick_line(
    out: &mut impl Write,
    second: u64,
    incident: Duration,
    w: &Summary,
    phases: &[String],
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>4}s {:>9} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}  {}",
        second,
        clock(incident),
        w.requests,
        w.share(w.ok),
        w.share(w.server_errors),
        w.share(w.timeouts),
        ms(w.p(0.50)),
        ms(w.p(0.90)),
        ms(w.p(0.99)),
        phases.join(" / ")
    )?;
    out.flush()
}

/// The core traffic's phases: (name, start in incident time), from the started experiment's spec.
fn core_phases(started: &[v1::Experiment]) -> Vec<(String, Duration)> {
    let core = started.iter().filter_map(|e| e.spec.as_ref()).find(|s| s.name == "nov18-core-traffic");
    let mut phases: Vec<(String, Duration)> = core
        .map(|s| {
            s.phases
                .iter()
                .map(|p| {
                    let start = p.start.as_ref().and_then(|d| crate::experiment::spec::pb_duration(d).ok());
                    (p.name.clone(), start.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    if phases.is_empty() {
        phases.push(("incident".into(), Duration::ZERO));
    }
    phases
}

/// The phase (index into `phases`) incident time `t` falls in.
fn phase_of(phases: &[(String, Duration)], t: Duration) -> usize {
    phases.iter().rposition(|(_, start)| *start <= t).unwrap_or(0)
}

/// The report at the end: what clients saw in each phase of the replay (each phase on its own, so the
/// recovered tail, where far more requests succeed per second, does not drown the outage), then the
/// experiments' own counts.
async fn final_report(
    out: &mut impl Write,
    replay: &mut Replay,
    started: &[v1::Experiment],
    by_phase: &[(String, Duration, Window)],
) -> Result<(), DemoError> {
    writeln!(out, "\nwhat clients saw in each phase of the core traffic (incident time; each phase on its own):")?;
    writeln!(
        out,
        "{:<16} {:<15} {:<18} {:>8} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "phase", "incident", "route", "requests", "2xx", "5xx", "timeout", "p50", "p90", "p99"
    )?;
    for (i, (name, from, w)) in by_phase.iter().enumerate() {
        let to = by_phase.get(i + 1).map_or(INCIDENT, |(_, next, _)| *next);
        let span = format!("{}–{}", clock(*from), clock(to).trim_start_matches("t0+"));
        for (j, (route, s)) in
            [("all", &w.all), ("/ (site)", &w.site), ("/api/items (api)", &w.api), ("dashboard", &w.dashboard)]
                .into_iter()
                .enumerate()
        {
            let (phase, when) = if j == 0 { (name.as_str(), span.as_str()) } else { ("", "") };
            writeln!(
                out,
                "{:<16} {:<15} {:<18} {:>8} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
                phase,
                when,
                route,
                s.requests,
                s.share(s.ok),
                s.share(s.server_errors),
                s.share(s.timeouts),
                ms(s.p(0.50)),
                ms(s.p(0.90)),
                ms(s.p(0.99))
            )?;
        }
    }
    writeln!(out, "\nexperiments of the scenario (started over gRPC, ended by their own timeline):")?;
    for e in started {
        let now = replay.ctl.get(&e.id).await.unwrap_or_else(|_| e.clone());
        let s = now.stats.unwrap_or_default();
        writeln!(
            out,
            "  {} {:<20} {:<10} matched {:>7}, injected {:>7} (aborted {}, delayed {})",
            now.id,
            now.spec.map(|s| s.name).unwrap_or_default(),
            crate::ctl::state_name(now.state),
            s.matched,
            s.injected,
            s.aborted,
            s.delayed
        )?;
    }
    writeln!(out, "\nevery 5xx and timeout came from edgefault: the sample upstream never fails.")?;
    Ok(())
}

/// One request as a client saw it: when it ended, where it went, what came back, how long it took.
type Seen = (Instant, Target, Outcome, Duration);

/// The demo's clients and what they saw: the last second's window, and every request with when it ended.
struct Traffic {
    window: Arc<Mutex<Window>>,
    done: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    /// [`CLIENTS`] clients sending requests one after the other until `until`.
    fn spawn(proxy: SocketAddr, until: Instant) -> Traffic {
        let window = Arc::new(Mutex::new(Window::default()));
        let done = Arc::new(Mutex::new(Vec::new()));
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let tasks = (0..CLIENTS)
            .map(|worker| {
                let (client, window, done) = (client.clone(), Arc::clone(&window), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut n = worker;
                    while Instant::now() < until {
                        n = n.wrapping_add(1);
                        let target = Target::of(n);
                        let started = Instant::now();
                        let outcome = send(&client, proxy, target).await;
                        let took = started.elapsed();
                        window.lock().unwrap_or_else(|e| e.into_inner()).add(target, outcome, took);
                        done.lock().unwrap_or_else(|e| e.into_inner()).push((Instant::now(), target, outcome, took));
                    }
                })
            })
            .collect();
        Traffic { window, done, tasks }
    }

    fn take_window(&self) -> Window {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits for the clients, then sorts what they saw by the core traffic's phase at each request's end.
    async fn finish(self, replay: &Replay, started: &[v1::Experiment]) -> Vec<(String, Duration, Window)> {
        for t in self.tasks {
            let _ = t.await;
        }
        let phases = core_phases(started);
        let mut by_phase: Vec<(String, Duration, Window)> =
            phases.iter().map(|(name, start)| (name.clone(), *start, Window::default())).collect();
        for (at, target, outcome, took) in std::mem::take(&mut *self.done.lock().unwrap_or_else(|e| e.into_inner())) {
            let i = phase_of(&phases, replay.incident_at(at));
            if let Some((_, _, w)) = by_phase.get_mut(i) {
                w.add(target, outcome, took);
            }
        }
        by_phase
    }
}

/// t0+HhMMm.
fn clock(d: Duration) -> String {
    let m = d.as_secs() / 60;
    format!("t0+{}h{:02}m", m / 60, m % 60)
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{:.0}ms", d.as_secs_f64() * 1000.0)
    }
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Site,
    Api,
    Dashboard,
}

impl Target {
    fn of(n: u32) -> Target {
        match n % 4 {
            0 => Target::Api,
            1 => Target::Dashboard,
            _ => Target::Site,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Status(StatusCode),
    Timeout,
    Error,
}

async fn send(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    proxy: SocketAddr,
    target: Target,
) -> Outcome {
    let (path, host) = match target {
        Target::Site => ("/", None),
        Target::Api => ("/api/items", None),
        Target::Dashboard => ("/login", Some("dash.example.com")),
    };
    let mut req = Request::get(format!("http://{proxy}{path}"));
    if let Some(h) = host {
        req = req.header(http::header::HOST, h);
    }
    let Ok(req) = req.body(Empty::new()) else { return Outcome::Error };
    let exchange = async {
        let resp = client.request(req).await.map_err(|_| ())?;
        let status = resp.status();
        resp.into_body().collect().await.map_err(|_| ())?;
        Ok::<_, ()>(status)
    };
    match tokio::time::timeout(CLIENT_TIMEOUT, exchange).await {
        Ok(Ok(status)) => Outcome::Status(status),
        Ok(Err(())) => Outcome::Error,
        Err(_) => Outcome::Timeout,
    }
}

#[derive(Default)]
struct Summary {
    requests: u64,
    ok: u64,
    server_errors: u64,
    timeouts: u64,
    other: u64,
    latencies: Vec<Duration>,
}

impl Summary {
    fn add(&mut self, outcome: Outcome, took: Duration) {
        self.requests += 1;
        match outcome {
            Outcome::Status(s) if s.is_success() => self.ok += 1,
            Outcome::Status(s) if s.is_server_error() => self.server_errors += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Status(_) | Outcome::Error => self.other += 1,
        }
        self.latencies.push(took);
    }

    /// `n` as a share of the requests, "12.3%".
    fn share(&self, n: u64) -> String {
        if self.requests == 0 {
            "-".into()
        } else {
            format!("{:.1}%", n as f64 * 100.0 / self.requests as f64)
        }
    }

    fn p(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let last = l.len().saturating_sub(1);
        // The rank, rounded down: `q` is within 0–1, so it is within 0..=last.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to 0..=last first")]
        let rank = (last as f64 * q).clamp(0.0, last as f64) as usize;
        l.get(rank).copied().unwrap_or_default()
    }
}

/// What clients saw over a span of time, overall and by route.
#[derive(Default)]
struct Window {
    all: Summary,
    site: Summary,
    api: Summary,
    dashboard: Summary,
}

impl Window {
    fn add(&mut self, target: Target, outcome: Outcome, took: Duration) {
        self.all.add(outcome, took);
        match target {
            Target::Site => self.site.add(outcome, took),
            Target::Api => self.api.add(outcome, took),
            Target::Dashboard => self.dashboard.add(outcome, took),
        }
    }
}

/// The sample upstream: answers every request with 200 and a short text, over HTTP/1.1 or h2c.
async fn serve_upstream(listener: TcpListener) {
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
}
