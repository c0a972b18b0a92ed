//! Prometheus metrics, served on the admin port. Counters the data plane touches are resolved once per
//! route at startup, so counting a request is one atomic add.

use std::sync::Mutex;

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded untouched; the upstream answered.
    Passed,
    /// Received a fault (aborted, or delayed and forwarded).
    Injected,
    /// The upstream could not be reached or did not answer in time; the proxy answered 502/504.
    UpstreamError,
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
}

impl RouteCounters {
    pub fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed.inc(),
            Outcome::Injected => self.injected.inc(),
            Outcome::UpstreamError => self.upstream_error.inc(),
        };
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    running: Gauge,
    /// `faults_active` and `faults_overflow`, handed to the proxy's fault cap.
    pub faults_active: Gauge,
    pub faults_overflow: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("edgefault");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by listener, route and outcome (passed, injected, upstream_error)",
            requests.clone(),
        );
        let running = Gauge::default();
        registry.register("experiments_running", "Experiments injecting now", running.clone());
        let faults_active = Gauge::default();
        registry.register(
            "faults_active",
            "Requests being faulted now (held by a delay or being aborted), bounded by limits.max_active_faults",
            faults_active.clone(),
        );
        let faults_overflow = Counter::default();
        registry.register(
            "faults_overflow",
            "Requests that passed untouched because limits.max_active_faults requests were being faulted",
            faults_overflow.clone(),
        );
        Metrics { registry: Mutex::new(registry), requests, running, faults_active, faults_overflow }
    }
}

impl Metrics {
    pub fn route_counters(&self, listener: &str, route: &str) -> RouteCounters {
        let get = |outcome| {
            self.requests
                .get_or_create(&RequestLabels { listener: listener.to_owned(), route: route.to_owned(), outcome })
                .clone()
        };
        RouteCounters { passed: get("passed"), injected: get("injected"), upstream_error: get("upstream_error") }
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
