//! Guards: stop conditions on what the proxy observes. One supervisor task checks every running
//! experiment's guards every [`TICK`] and aborts the experiment, with the reason recorded, when one holds.
//!
//! The data plane only adds to two atomic counters per route ([`RouteHealth`]); the supervisor keeps, per
//! experiment, the samples of those counters over the guard's window and judges the difference.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use tokio::time::Instant;

use super::Registry;
use crate::config::{RouteId, Topology};

/// How often guards are checked.
pub const TICK: Duration = Duration::from_millis(250);

/// One stop condition, valid by construction (see `control::guards`).
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// More than `max` (0–1) of the real upstream answers failed over `window`, once at least
    /// `min_requests` answers are in it.
    UpstreamErrorRate { max: f64, window: Duration, min_requests: u64 },
    /// The experiment has injected this many faults.
    MaxInjected(u64),
}

/// Real upstream answers of one route: what guards judge. Requests that received a fault are not counted.
#[derive(Debug, Default)]
struct RouteHealth {
    answered: AtomicU64,
    /// 5xx from the upstream, or no answer at all.
    failed: AtomicU64,
}

/// [`RouteHealth`] of every route, by [`RouteId`].
#[derive(Debug)]
pub struct Health(Box<[RouteHealth]>);

impl Health {
    pub fn new(topology: &Topology) -> Self {
        Health(topology.routes().map(|_| RouteHealth::default()).collect())
    }

    /// Counts a real (not injected) upstream outcome.
    pub fn record(&self, route: RouteId, failed: bool) {
        if let Some(h) = self.0.get(route.index()) {
            h.answered.fetch_add(1, Ordering::Relaxed);
            if failed {
                h.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// (answered, failed) summed over the routes at `indices`.
    pub(super) fn totals(&self, indices: &[usize]) -> (u64, u64) {
        indices
            .iter()
            .filter_map(|&i| self.0.get(i))
            .fold((0, 0), |(a, f), h| (a + h.answered.load(Ordering::Relaxed), f + h.failed.load(Ordering::Relaxed)))
    }
}

/// Samples of one experiment's routes: (when, answered, failed), oldest first.
type Samples = VecDeque<(Instant, u64, u64)>;

/// The indices of the routes an experiment targets, in [`Health`]'s order.
pub(super) fn route_indices(topology: &Topology, def: &super::ExperimentDef) -> Vec<usize> {
    topology
        .routes()
        .enumerate()
        .filter(|(_, (l, r))| {
            (def.listeners.is_empty() || def.listeners.iter().any(|x| x == l))
                && (def.routes.is_empty() || def.routes.iter().any(|x| x == r))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Checks every running experiment's guards each [`TICK`] until `shutdown` resolves.
pub async fn supervise(
    registry: Weak<Registry>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut samples: HashMap<Arc<str>, Samples> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => return,
        }
        let Some(registry) = registry.upgrade() else { return };
        let guarded = registry.guarded();
        samples.retain(|id, _| guarded.iter().any(|g| &g.id == id));
        let now = Instant::now();
        for g in guarded {
            let (answered, failed) = health.totals(&route_indices(registry.topology(), &g.def));
            // The first sample is the one taken when the experiment started, so traffic before the
            // first tick counts.
            let s = samples.entry(Arc::clone(&g.id)).or_insert_with(|| g.baseline.into_iter().collect());
            s.push_back((now, answered, failed));
            if let Some(reason) = judge(&g.def.guards, s, now, g.injected) {
                tracing::warn!(experiment = %g.id, %reason, "guard tripped");
                registry.abort(&g.id, &reason);
            }
            // Keep what the longest window needs: one sample at or before its start.
            let keep = g.def.guards.iter().map(window_of).max().unwrap_or_default();
            while s.len() > 1 && s.get(1).is_some_and(|&(t, _, _)| now.saturating_duration_since(t) >= keep) {
                s.pop_front();
            }
        }
    }
}

fn window_of(g: &Guard) -> Duration {
    match g {
        Guard::UpstreamErrorRate { window, .. } => *window,
        Guard::MaxInjected(_) => Duration::ZERO,
    }
}

/// The reason to abort, if a guard holds. `samples` ends with the current one.
fn judge(guards: &[Guard], samples: &Samples, now: Instant, injected: u64) -> Option<String> {
    let &(_, answered, failed) = samples.back()?;
    for g in guards {
        match g {
            Guard::UpstreamErrorRate { max, window, min_requests } => {
                // The newest sample at or before the window's start (or the oldest there is).
                let base = samples
                    .iter()
                    .rev()
                    .find(|&&(t, _, _)| now.saturating_duration_since(t) >= *window)
                    .or(samples.front())?;
                let (n, f) = (answered - base.1, failed - base.2);
                if n >= *min_requests && n > 0 && f as f64 / n as f64 > *max {
                    return Some(format!(
                        "guard tripped: upstream error rate {:.1}% ({f} of {n} answers) over {} exceeds {:.1}%",
                        100.0 * f as f64 / n as f64,
                        humantime::format_duration(*window),
                        100.0 * max
                    ));
                }
            }
            Guard::MaxInjected(limit) => {
                if injected >= *limit {
                    return Some(format!("guard tripped: {injected} faults injected, the guard's maximum is {limit}"));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn error_rate_is_judged_over_the_window_only() {
        let guard = [Guard::UpstreamErrorRate { max: 0.5, window: Duration::from_secs(10), min_requests: 10 }];
        let t0 = Instant::now();
        let mut s: Samples = VecDeque::new();
        // 100 answers, 80 failed, long ago; then 20 good ones within the window.
        s.push_back((t0, 0, 0));
        s.push_back((t0 + Duration::from_secs(1), 100, 80));
        let now = t0 + Duration::from_secs(20);
        s.push_back((now, 120, 80));
        assert_eq!(judge(&guard, &s, now, 0), None, "old failures are outside the window");
        s.push_back((now + Duration::from_secs(1), 140, 110));
        let reason = judge(&guard, &s, now + Duration::from_secs(1), 0).expect("trips");
        assert!(reason.contains("over 10s") && reason.contains("exceeds 50.0%"), "{reason}");
        let few = [Guard::UpstreamErrorRate { max: 0.5, window: Duration::from_secs(10), min_requests: 1000 }];
        assert_eq!(judge(&few, &s, now + Duration::from_secs(1), 0), None, "too few answers to judge");
        assert!(judge(&[Guard::MaxInjected(5)], &s, now, 5).is_some());
        assert!(judge(&[Guard::MaxInjected(5)], &s, now, 4).is_none());
    }
}
