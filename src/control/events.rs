//! `WatchEvents` and `GetStats`: the registry's event bus and counters as `edgefault.v1` messages.
//!
//! Each watcher gets its own task: it forwards events from the bus (filtered by experiment when asked),
//! sends a stats snapshot every `stats_interval`, and ends when the client goes away or the server stops.
//! A watcher that falls behind the bus gets a `lagged` event with the number it missed.

use std::{pin::Pin, sync::Arc, time::Duration};

use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc, watch,
};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::Status;

use super::proto::{event_to_proto, experiment_counters, timestamp};
use crate::{experiment::Registry, pb::v1, telemetry::metrics::Metrics};

/// Stats snapshot period when the request gives none.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest and longest stats snapshot periods.
pub const MIN_STATS_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_STATS_INTERVAL: Duration = Duration::from_secs(3600);

/// Events buffered per watcher between its task and the connection.
const WATCHER_BUFFER: usize = 64;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

/// What GetStats and the snapshots read.
#[derive(Clone)]
pub struct StatsSource {
    pub registry: Arc<Registry>,
    /// The proxy's request counters; `None` in a control service without a data plane.
    pub metrics: Option<Arc<Metrics>>,
}

impl StatsSource {
    /// The counters now; only experiment `only` when given.
    pub fn snapshot(&self, only: Option<&str>) -> v1::GetStatsResponse {
        let experiments = self
            .registry
            .list()
            .into_iter()
            .filter(|e| only.is_none_or(|id| e.id == id))
            .map(experiment_counters)
            .collect();
        let proxy = self.proxy_totals();
        v1::GetStatsResponse {
            time: Some(timestamp(std::time::SystemTime::now())),
            experiments,
            proxy: Some(proxy),
            sidecars: Vec::new(),
        }
    }

    /// The proxy's totals now (every request since it started), by route too.
    pub fn proxy_totals(&self) -> v1::ProxyTotals {
        let mut proxy = v1::ProxyTotals {
            experiments_running: u32::try_from(self.registry.running()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        if let Some(m) = &self.metrics {
            let t = m.totals();
            proxy.faults_active = t.faults_active;
            proxy.faults_overflow = t.faults_overflow;
            for r in t.routes {
                proxy.passed += r.passed;
                proxy.injected += r.injected;
                proxy.upstream_error += r.upstream_error;
                proxy.client_error += r.client_error;
                proxy.routes.push(v1::RouteTotals {
                    listener: r.listener,
                    route: r.route,
                    passed: r.passed,
                    injected: r.injected,
                    upstream_error: r.upstream_error,
                    client_error: r.client_error,
                });
            }
        }
        proxy
    }
}

/// Checks a WatchEvents request: (experiment filter, stats period or none).
pub fn watch_params(
    req: &v1::WatchEventsRequest,
    registry: &Registry,
) -> Result<(Option<String>, Option<Duration>), Status> {
    let only = (!req.experiment_id.is_empty()).then(|| req.experiment_id.clone());
    if let Some(id) = &only {
        registry.get(id).map_err(|e| Status::not_found(format!("experiment_id: {e}")))?;
    }
    Ok((only, stats_interval(req)?))
}

/// The stats period a WatchEvents request asks for; `None` with `no_stats`.
pub fn stats_interval(req: &v1::WatchEventsRequest) -> Result<Option<Duration>, Status> {
    if req.no_stats {
        return Ok(None);
    }
    let interval = match req.stats_interval {
        None => DEFAULT_STATS_INTERVAL,
        Some(d) => {
            let d = crate::experiment::spec::pb_duration(&d)
                .map_err(|why| Status::invalid_argument(format!("stats_interval: {why}")))?;
            if !(MIN_STATS_INTERVAL..=MAX_STATS_INTERVAL).contains(&d) {
                return Err(Status::invalid_argument(format!(
                    "stats_interval: {} is outside 100ms to 1h",
                    humantime::format_duration(d)
                )));
            }
            d
        }
    };
    Ok(Some(interval))
}

/// Starts a watcher's task and returns its stream. The task ends when the client drops the stream, or
/// when `closing` turns true or is dropped (the server is stopping): the stream then ends.
pub fn watch(
    source: StatsSource,
    only: Option<String>,
    interval: Option<Duration>,
    closing: Option<watch::Receiver<bool>>,
) -> EventStream {
    let bus = source.registry.subscribe();
    stream(bus, only, interval, closing, event_to_proto, move |only| source.snapshot(only))
}

/// A watcher over any bus: `convert` turns what the bus carries into events, `snapshot` gives the
/// periodic counters. Events of other experiments than `only` are skipped.
pub fn stream<T: Clone + Send + 'static>(
    mut bus: broadcast::Receiver<T>,
    only: Option<String>,
    interval: Option<Duration>,
    mut closing: Option<watch::Receiver<bool>>,
    convert: impl Fn(T) -> v1::Event + Send + 'static,
    snapshot: impl Fn(Option<&str>) -> v1::GetStatsResponse + Send + 'static,
) -> EventStream {
    let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
    tokio::spawn(async move {
        let mut tick = interval.map(|i| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + i, i);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let next = tokio::select! {
                r = bus.recv() => match r {
                    Ok(e) => {
                        let e = convert(e);
                        if only.as_deref().is_some_and(|id| e.experiment_id != id) {
                            continue;
                        }
                        e
                    }
                    Err(RecvError::Lagged(skipped)) => v1::Event {
                        time: Some(timestamp(std::time::SystemTime::now())),
                        kind: Some(v1::event::Kind::Lagged(v1::Lagged { skipped })),
                        ..Default::default()
                    },
                    Err(RecvError::Closed) => return,
                },
                _ = async { match tick.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                    v1::Event {
                        time: Some(timestamp(std::time::SystemTime::now())),
                        kind: Some(v1::event::Kind::Stats(snapshot(only.as_deref()))),
                        ..Default::default()
                    }
                }
                () = tx.closed() => return,
                () = async {
                    match closing.as_mut() {
                        Some(c) => { let _ = c.wait_for(|c| *c).await; }
                        None => std::future::pending().await,
                    }
                } => return,
            };
            if tx.send(Ok(next)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt;

    use super::*;
    use crate::{
        experiment::{ExperimentDef, Limits},
        pb::v1::event::Kind,
        topology::Topology,
    };

    /// A watcher that reads nothing while the bus overflows is told how many events it missed, and the
    /// registry never waited for it.
    #[tokio::test]
    async fn a_watcher_that_falls_behind_gets_a_lagged_event() {
        let registry = Registry::new(Arc::new(Topology::default()), Limits::default());
        let source = StatsSource { registry: Arc::clone(&registry), metrics: None };
        let mut stream = watch(source, None, None, None);
        // Far more events than the bus and the watcher's buffer hold: a start and a stop each.
        for _ in 0..(crate::experiment::events::CAPACITY + 2 * WATCHER_BUFFER) {
            let def = ExperimentDef::new("x", Duration::from_secs(60), Vec::<crate::fault::Fault>::new());
            let e = registry.start(v1::ExperimentSpec::default(), def).expect("starts");
            registry.stop(&e.id, "").expect("stops");
        }
        let mut skipped = None;
        for _ in 0..(WATCHER_BUFFER + 2) {
            let e = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("ok");
            if let Some(Kind::Lagged(l)) = e.kind {
                skipped = Some(l.skipped);
                break;
            }
        }
        let skipped = skipped.expect("a lagged event");
        assert!(skipped > 0 && skipped <= 2 * (crate::experiment::events::CAPACITY + 2 * WATCHER_BUFFER) as u64);
    }
}
