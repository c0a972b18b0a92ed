//! The fleet's history on the controller: every sidecar reports the second that just ended (per route:
//! requests, status classes, injected, upstream errors and its latency buckets; per experiment: matched
//! and injected), and the controller sums them into one [`History`] — routes by listener and route name
//! over the sidecars that have them, experiments by id. Summed latency buckets give the fleet's p50/p99
//! exactly as one sidecar's would be.
//!
//! The controller closes each second half a second after it ends, so that the sidecars' reports (sent a
//! tenth of a second after) are in it; a report later than that counts in the next second. Memory is
//! fixed like a sidecar's: at most [`MAX_ROUTES`] route series and [`history::MAX_EXPERIMENTS`]
//! experiment series, every ring allocated whole.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use crate::{
    pb::v1,
    telemetry::history::{self, ExperimentNow, History, Query, RouteLive, Snapshot},
};

/// Route series the controller keeps: routes are named by the sidecars, so their count is bounded here.
pub const MAX_ROUTES: usize = 1000;

/// When, after a second ends, the controller closes it.
pub const CLOSE_AFTER: Duration = Duration::from_millis(500);

/// An experiment's totals over the fleet, summed from the reports.
struct Totals {
    id: String,
    name: String,
    matched: u64,
    injected: u64,
    /// The second it was last reported in, to choose which to forget past the bound.
    seen: u64,
}

#[derive(Default)]
pub struct FleetHistory {
    history: History,
    /// Route series by name, cached so a report does not search the history's list under its lock.
    routes: Mutex<HashMap<String, HashMap<String, Arc<RouteLive>>>>,
    experiments: Mutex<Vec<Totals>>,
    /// Reports of routes past [`MAX_ROUTES`], left out.
    dropped_routes: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FleetHistory {
    /// Adds one sidecar's second.
    pub fn report(&self, r: &v1::HistoryReport) {
        {
            let mut routes = lock(&self.routes);
            for s in &r.routes {
                let known = routes.get(&s.listener).and_then(|l| l.get(&s.route));
                let live = match known {
                    Some(live) => Arc::clone(live),
                    None => match self.history.route_within(&s.listener, &s.route, MAX_ROUTES) {
                        Some(live) => {
                            routes.entry(s.listener.clone()).or_default().insert(s.route.clone(), Arc::clone(&live));
                            live
                        }
                        None => {
                            self.dropped_routes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            continue;
                        }
                    },
                };
                live.add_reported(s);
            }
        }
        let mut experiments = lock(&self.experiments);
        for e in &r.experiments {
            match experiments.iter_mut().find(|t| t.id == e.id) {
                Some(t) => {
                    t.matched = t.matched.saturating_add(e.matched);
                    t.injected = t.injected.saturating_add(e.injected);
                    t.seen = r.time;
                }
                None => {
                    if experiments.len() >= history::MAX_EXPERIMENTS {
                        let oldest = experiments.iter().enumerate().min_by_key(|(_, t)| t.seen).map(|(i, _)| i);
                        if let Some(i) = oldest {
                            experiments.swap_remove(i);
                        }
                    }
                    experiments.push(Totals {
                        id: e.id.clone(),
                        name: e.name.clone(),
                        matched: e.matched,
                        injected: e.injected,
                        seen: r.time,
                    });
                }
            }
        }
    }

    /// Closes the second that ended before `now` (called [`CLOSE_AFTER`] into each second).
    pub fn tick(&self, now: SystemTime) {
        let experiments = lock(&self.experiments);
        let now_counts: Vec<ExperimentNow<'_>> = experiments
            .iter()
            .map(|t| ExperimentNow { id: &t.id, name: &t.name, matched: t.matched, injected: t.injected })
            .collect();
        self.history.tick(now, &now_counts);
    }

    pub fn snapshot(&self, q: &Query) -> Snapshot {
        self.history.snapshot(q)
    }

    /// Route reports left out because [`MAX_ROUTES`] series are kept.
    pub fn dropped_routes(&self) -> u64 {
        self.dropped_routes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Closes a second of `history` [`CLOSE_AFTER`] after each one ends, until `shutdown` resolves.
pub async fn sample(history: Arc<FleetHistory>, shutdown: impl std::future::Future<Output = ()>) {
    history::every_second(
        CLOSE_AFTER,
        move || {
            history.tick(SystemTime::now());
            true
        },
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::history::Resolution;

    fn second(listener: &str, route: &str, requests: u64, fives: u64, latency: &[u64]) -> v1::RouteSecond {
        v1::RouteSecond {
            listener: listener.into(),
            route: route.into(),
            requests,
            status: vec![0, requests - fives, 0, 0, fives, 0],
            injected: fives,
            upstream_errors: 0,
            latency: latency.to_vec(),
        }
    }

    #[test]
    fn reports_of_several_sidecars_add_up_per_route_and_experiment() {
        let h = FleetHistory::default();
        let t = 1_700_000_000;
        // Sidecar a: 10 fast requests; sidecar b: 10 slow ones, 4 of them 503s by experiment e.
        let fast = [10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let slow = [0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let e =
            |matched, injected| v1::ExperimentSecond { id: "exp-1".into(), name: "storm".into(), matched, injected };
        h.report(&v1::HistoryReport {
            time: t,
            routes: vec![second("web", "api", 10, 0, &fast)],
            experiments: vec![e(10, 0)],
        });
        h.report(&v1::HistoryReport {
            time: t,
            routes: vec![second("web", "api", 10, 4, &slow)],
            experiments: vec![e(10, 4)],
        });
        h.tick(std::time::UNIX_EPOCH + Duration::from_secs(t + 1) + CLOSE_AFTER);
        let snap = h.snapshot(&Query { since: None, resolution: Resolution::Second });
        assert_eq!(snap.routes.len(), 1, "one series per route name over the fleet");
        let p = &snap.routes[0].points[0];
        assert_eq!((p.t, p.requests, p.injected), (t, 20, 4));
        assert_eq!(p.status, [0, 16, 0, 0, 4, 0]);
        assert_eq!((p.p50_ms, p.p99_ms), (0.5, 32.0), "from the summed buckets");
        let x = &snap.experiments[0];
        assert_eq!((x.id.as_str(), x.points[0].matched, x.points[0].injected), ("exp-1", 20, 4));
    }

    #[test]
    fn route_series_are_bounded() {
        let h = FleetHistory::default();
        let routes: Vec<v1::RouteSecond> =
            (0..MAX_ROUTES + 5).map(|i| second("web", &format!("r{i}"), 1, 0, &[1])).collect();
        h.report(&v1::HistoryReport { time: 1, routes, experiments: Vec::new() });
        assert_eq!(h.snapshot(&Query::default()).routes.len(), MAX_ROUTES);
        assert_eq!(h.dropped_routes(), 5);
    }

    #[test]
    fn reports_of_any_size_or_shape_close_without_overflow() {
        let h = FleetHistory::default();
        let t = 1_700_000_000;
        let huge = v1::RouteSecond {
            listener: "web".into(),
            route: "api".into(),
            requests: u64::MAX,
            status: vec![u64::MAX; 9],
            injected: u64::MAX,
            upstream_errors: u64::MAX,
            latency: vec![u64::MAX; 40],
        };
        let short = v1::RouteSecond { status: vec![1], latency: Vec::new(), ..huge.clone() };
        let e = v1::ExperimentSecond { id: "exp-1".into(), name: "x".into(), matched: u64::MAX, injected: u64::MAX };
        // A minute of seconds, each adding the largest counts twice: every sum saturates.
        for s in 0..61 {
            let r = v1::HistoryReport {
                time: t + s,
                routes: vec![huge.clone(), short.clone()],
                experiments: vec![e.clone()],
            };
            h.report(&r);
            h.report(&r);
            h.tick(std::time::UNIX_EPOCH + Duration::from_secs(t + s + 1) + CLOSE_AFTER);
        }
        let seconds = h.snapshot(&Query::default());
        assert_eq!(seconds.routes.len(), 1);
        assert!(seconds.routes[0].points.iter().all(|p| p.p99_ms >= p.p50_ms));
        let minutes = h.snapshot(&Query { since: None, resolution: Resolution::Minute });
        assert_eq!(minutes.routes[0].points.len(), 1, "the first whole minute closed");
    }
}
