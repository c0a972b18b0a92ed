//! Prometheus metrics, served on the admin port. Counters the data plane touches are resolved once per
//! route at startup, so counting a request is one atomic add.

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use super::history::{History, RouteLive};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

/// The latency buckets: 1 ms to about 65 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    listener: String,
    route: String,
}

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded untouched; the upstream answered.
    Passed,
    /// Received a fault (aborted, or delayed and forwarded).
    Injected,
    /// The upstream could not be reached or did not answer in time; the proxy answered 502/504.
    UpstreamError,
    /// The client failed the request (its body broke off or was malformed); the proxy answered 400.
    ClientError,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: String,
    route: String,
    outcome: &'static str,
}

/// A route's request counters, one per outcome.
#[derive(Clone)]
pub struct RouteCounters {
    passed: Counter,
    injected: Counter,
    upstream_error: Counter,
    client_error: Counter,
    injected_delay: Histogram,
    upstream_duration: Histogram,
    /// `fault_headers_invalid`, made on first use (most routes never read fault headers).
    invalid_fault_headers: Family<RouteLabels, Counter>,
    labels: RouteLabels,
    /// What clients saw, for the history's points (status, latency, injected, upstream errors).
    history: Arc<RouteLive>,
}

impl RouteCounters {
    /// A request whose fault headers (`routes[].fault_headers`) had a value they do not take: it passed
    /// without header faults.
    pub fn invalid_fault_headers(&self) {
        self.invalid_fault_headers.get_or_create(&self.labels).inc();
    }

    pub fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed.inc(),
            Outcome::Injected => self.injected.inc(),
            Outcome::UpstreamError => self.upstream_error.inc(),
            Outcome::ClientError => self.client_error.inc(),
        };
        self.history.count(outcome == Outcome::Injected, outcome == Outcome::UpstreamError);
    }

    /// A request answered (`status`; `None`: the connection was dropped on purpose) `took` after it came,
    /// as the client saw it: for the history.
    pub fn answered(&self, status: Option<u16>, took: Duration) {
        self.history.answered(status, took);
    }

    /// An injected delay, the sum of every selected experiment's delays.
    pub fn injected_delay(&self, d: Duration) {
        self.injected_delay.observe(d.as_secs_f64());
    }

    /// How long the upstream took to answer with a response head.
    pub fn upstream_duration(&self, d: Duration) {
        self.upstream_duration.observe(d.as_secs_f64());
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TcpConnectionLabels {
    listener: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TcpBytesLabels {
    listener: String,
    /// `upstream` (client to server) or `downstream` (server to client).
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

/// A TCP listener's counters, resolved once when it starts.
#[derive(Clone)]
pub struct TcpCounters {
    passed: Counter,
    injected: Counter,
    upstream_error: Counter,
    /// Bytes relayed client → server.
    pub bytes_upstream: Counter,
    /// Bytes relayed server → client.
    pub bytes_downstream: Counter,
    /// Connections open now.
    pub open: Gauge,
}

impl TcpCounters {
    /// A connection that ended: relayed untouched, with toxics, or refused by the upstream.
    pub fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed.inc(),
            Outcome::Injected => self.injected.inc(),
            Outcome::UpstreamError => self.upstream_error.inc(),
            // A TCP relay has no request of its own for a client to get wrong.
            Outcome::ClientError => 0,
        };
    }
}

/// A route's second attempts at sending a request upstream, by reason (`goaway`, `refused_stream`,
/// `unsent`, `closed`).
#[derive(Clone)]
pub struct RetryCounters(Family<RetryLabels, Counter>, RouteLabels);

impl RetryCounters {
    pub fn count(&self, reason: &'static str) {
        let RouteLabels { listener, route } = &self.1;
        self.0.get_or_create(&RetryLabels { listener: listener.clone(), route: route.clone(), reason }).inc();
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    listener: String,
    route: String,
    reason: &'static str,
}

/// Client connections of an HTTP listener closed by a timeout, by reason (`header_read`, `idle`).
#[derive(Clone)]
pub struct TimeoutCounters {
    header_read: Counter,
    idle: Counter,
    flood: Counter,
}

impl TimeoutCounters {
    pub fn count(&self, reason: &str) {
        match reason {
            "header_read" => self.header_read.inc(),
            _ => self.idle.inc(),
        };
    }

    /// An HTTP/2 client closed for flooding control frames.
    pub fn count_flood(&self) {
        self.flood.inc();
    }
}

/// A TLS listener's handshake counters, resolved once when it starts.
#[derive(Clone)]
pub struct TlsCounters {
    ok: Counter,
    failed: Counter,
    timed_out: Counter,
    injected: Counter,
}

impl TlsCounters {
    /// A handshake that ended.
    pub fn count(&self, outcome: HandshakeOutcome) {
        match outcome {
            HandshakeOutcome::Injected => self.injected.inc(),
            HandshakeOutcome::Ok => self.ok.inc(),
            HandshakeOutcome::TimedOut => self.timed_out.inc(),
            HandshakeOutcome::Failed => self.failed.inc(),
        };
    }
}

/// How a TLS handshake ended, as `edgefault_tls_handshakes_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Ok,
    /// The client's doing (a bad ClientHello, a client that left).
    Failed,
    TimedOut,
    /// Acted on by a TLS fault.
    Injected,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    tls_handshakes: Family<TcpConnectionLabels, Counter>,
    tcp_connections: Family<TcpConnectionLabels, Counter>,
    tcp_bytes: Family<TcpBytesLabels, Counter>,
    tcp_open: Family<ListenerLabels, Gauge>,
    requests: Family<RequestLabels, Counter>,
    injected_delay: HistogramFamily,
    upstream_duration: HistogramFamily,
    running: Gauge,
    /// `faults_active` and `faults_overflow`, handed to the proxy's fault cap.
    pub faults_active: Gauge,
    pub faults_overflow: Counter,
    /// Every route's counters handed out, for [`Metrics::totals`].
    routes: Mutex<Vec<(String, String, RouteCounters)>>,
    /// SIGHUP reloads by outcome (`ok`, `rejected`).
    config_reloads: Family<OutcomeLabel, Counter>,
    /// Client connections closed by a timeout, by listener and reason.
    connection_timeouts: Family<TimeoutLabels, Counter>,
    /// Second attempts at sending a request upstream.
    upstream_retries: Family<RetryLabels, Counter>,
    /// HTTP/2 client connections closed for flooding control frames, by listener.
    connection_floods: Family<TimeoutLabels, Counter>,
    /// Requests whose fault headers had a value they do not take, by listener and route.
    invalid_fault_headers: Family<RouteLabels, Counter>,
    /// What clients saw per route, second by second (the console's charts, `ctl report`).
    pub history: Arc<History>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    listener: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// One route's request counts since the server started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTotals {
    pub listener: String,
    pub route: String,
    pub passed: u64,
    pub injected: u64,
    pub upstream_error: u64,
    pub client_error: u64,
}

/// The proxy's counts since the server started, for GetStats.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub routes: Vec<RouteTotals>,
    pub faults_active: i64,
    pub faults_overflow: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics {
            requests: Family::<RequestLabels, Counter>::default(),
            injected_delay: HistogramFamily::new_with_constructor(latency_histogram),
            upstream_duration: HistogramFamily::new_with_constructor(latency_histogram),
            running: Gauge::default(),
            faults_active: Gauge::default(),
            faults_overflow: Counter::default(),
            tcp_connections: Family::<TcpConnectionLabels, Counter>::default(),
            tcp_bytes: Family::<TcpBytesLabels, Counter>::default(),
            tcp_open: Family::<ListenerLabels, Gauge>::default(),
            tls_handshakes: Family::<TcpConnectionLabels, Counter>::default(),
            upstream_retries: Family::<RetryLabels, Counter>::default(),
            connection_timeouts: Family::<TimeoutLabels, Counter>::default(),
            connection_floods: Family::<TimeoutLabels, Counter>::default(),
            config_reloads: Family::<OutcomeLabel, Counter>::default(),
            invalid_fault_headers: Family::<RouteLabels, Counter>::default(),
            history: Arc::default(),
            registry: Mutex::new(Registry::with_prefix("edgefault")),
            routes: Mutex::default(),
        };
        metrics.register();
        metrics
    }
}

impl Metrics {
    /// Registers every metric under its name and help text.
    fn register(&self) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.register(
            "requests",
            "Requests by listener, route and outcome (passed, injected, upstream_error, client_error)",
            self.requests.clone(),
        );
        r.register(
            "injected_delay_seconds",
            "Injected delays (the sum of a request's delays), by listener and route",
            self.injected_delay.clone(),
        );
        r.register(
            "upstream_duration_seconds",
            "Time from sending a request upstream to its response head, by listener and route (answers only)",
            self.upstream_duration.clone(),
        );
        r.register("experiments_running", "Experiments injecting now", self.running.clone());
        r.register(
            "faults_active",
            "Requests being faulted now (held by a delay or being aborted), bounded by limits.max_active_faults",
            self.faults_active.clone(),
        );
        r.register(
            "faults_overflow",
            "Requests that passed untouched because limits.max_active_faults requests were being faulted",
            self.faults_overflow.clone(),
        );
        r.register("tcp_connections", "Connections of TCP listeners by listener and outcome (passed, injected, upstream_error), counted when they end", self.tcp_connections.clone());
        r.register("tcp_bytes", "Bytes relayed by TCP listeners, by listener and direction (upstream: client to server, downstream: server to client)", self.tcp_bytes.clone());
        r.register("tcp_connections_open", "Connections of TCP listeners open now", self.tcp_open.clone());
        r.register("tls_handshakes", "TLS handshakes of listeners that terminate TLS, by listener and outcome (ok, failed, timeout, injected: a TLS fault acted)", self.tls_handshakes.clone());
        r.register("upstream_retries", "Requests sent upstream a second time, by listener, route and reason: goaway (a stream above an HTTP/2 GOAWAY's last stream id), refused_stream, unsent (the connection closed before the request left), closed (an idempotent request without a body whose reused HTTP/1.1 connection the upstream closed first)", self.upstream_retries.clone());
        r.register("connection_timeouts", "Client connections of HTTP listeners closed by a timeout, by listener and reason (header_read: a request head did not arrive in time; idle: no request for limits.idle_timeout)", self.connection_timeouts.clone());
        r.register("connection_floods", "HTTP/2 client connections closed for sending control frames (PING, SETTINGS, PRIORITY, RST_STREAM) beyond their budget (a burst of 2000, then 200 a second), by listener and reason (h2_control_frames)", self.connection_floods.clone());
        r.register(
            "fault_headers_invalid",
            "Requests on routes with fault_headers whose fault headers had a value they do not take (the request passed without header faults), by listener and route",
            self.invalid_fault_headers.clone(),
        );
        r.register(
            "config_reloads",
            "Config reloads on SIGHUP by outcome: ok (applied), rejected (the old config keeps running)",
            self.config_reloads.clone(),
        );
    }
}

impl Metrics {
    pub fn route_counters(&self, listener: &str, route: &str) -> RouteCounters {
        let get = |outcome| {
            self.requests
                .get_or_create(&RequestLabels { listener: listener.to_owned(), route: route.to_owned(), outcome })
                .clone()
        };
        let labels = RouteLabels { listener: listener.to_owned(), route: route.to_owned() };
        let counters = RouteCounters {
            passed: get("passed"),
            injected: get("injected"),
            upstream_error: get("upstream_error"),
            client_error: get("client_error"),
            injected_delay: self.injected_delay.get_or_create(&labels).clone(),
            upstream_duration: self.upstream_duration.get_or_create(&labels).clone(),
            invalid_fault_headers: self.invalid_fault_headers.clone(),
            history: self.history.route(listener, route),
            labels,
        };
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if !routes.iter().any(|(l, r, _)| l == listener && r == route) {
            routes.push((listener.to_owned(), route.to_owned(), counters.clone()));
        }
        counters
    }

    /// Counts a config reload: applied, or rejected.
    pub fn config_reload(&self, applied: bool) {
        self.config_reloads.get_or_create(&OutcomeLabel { outcome: if applied { "ok" } else { "rejected" } }).inc();
    }

    /// Request counts of every route, in the order the routes were set up, and the fault cap's state.
    pub fn totals(&self) -> Totals {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        Totals {
            routes: routes
                .iter()
                .map(|(listener, route, c)| RouteTotals {
                    listener: listener.clone(),
                    route: route.clone(),
                    passed: c.passed.get(),
                    injected: c.injected.get(),
                    upstream_error: c.upstream_error.get(),
                    client_error: c.client_error.get(),
                })
                .collect(),
            faults_active: self.faults_active.get(),
            faults_overflow: self.faults_overflow.get(),
        }
    }

    pub fn retry_counters(&self, listener: &str, route: &str) -> RetryCounters {
        RetryCounters(
            self.upstream_retries.clone(),
            RouteLabels { listener: listener.to_owned(), route: route.to_owned() },
        )
    }

    pub fn timeout_counters(&self, listener: &str) -> TimeoutCounters {
        let get = |reason| {
            self.connection_timeouts.get_or_create(&TimeoutLabels { listener: listener.to_owned(), reason }).clone()
        };
        let flood = self
            .connection_floods
            .get_or_create(&TimeoutLabels { listener: listener.to_owned(), reason: "h2_control_frames" })
            .clone();
        TimeoutCounters { header_read: get("header_read"), idle: get("idle"), flood }
    }

    pub fn tls_counters(&self, listener: &str) -> TlsCounters {
        let get = |outcome| {
            self.tls_handshakes.get_or_create(&TcpConnectionLabels { listener: listener.to_owned(), outcome }).clone()
        };
        TlsCounters { ok: get("ok"), failed: get("failed"), timed_out: get("timeout"), injected: get("injected") }
    }

    pub fn tcp_counters(&self, listener: &str) -> TcpCounters {
        let conn = |outcome| {
            self.tcp_connections.get_or_create(&TcpConnectionLabels { listener: listener.to_owned(), outcome }).clone()
        };
        let bytes = |direction| {
            self.tcp_bytes.get_or_create(&TcpBytesLabels { listener: listener.to_owned(), direction }).clone()
        };
        TcpCounters {
            passed: conn("passed"),
            injected: conn("injected"),
            upstream_error: conn("upstream_error"),
            bytes_upstream: bytes("upstream"),
            bytes_downstream: bytes("downstream"),
            open: self.tcp_open.get_or_create(&ListenerLabels { listener: listener.to_owned() }).clone(),
        }
    }

    /// Adds the per-experiment series, read from `experiments` at each scrape.
    pub fn register_experiments(&self, experiments: Weak<crate::experiment::Registry>) {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register_collector(Box::new(super::experiments::ExperimentFaults(experiments)));
    }

    /// The text exposition; `running` is sampled at scrape time.
    pub fn render(&self, running: usize) -> String {
        self.running.set(running as i64);
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}
