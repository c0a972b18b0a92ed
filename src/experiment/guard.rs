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
use crate::topology::{RouteId, Topology};

/// How often guards are checked.
pub const TICK: Duration = Duration::from_millis(250);

/// One stop condition, valid by construction (see `experiment::spec::guards`).
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// More than `max` (0–1) of the real upstream answers failed over `window`, once at least
    /// `min_requests` answers are in it.
    UpstreamErrorRate { max: f64, window: Duration, min_requests: u64 },
    /// The experiment has injected this many faults.
    MaxInjected(u64),
    /// The `percentile` (0–100) of the real upstream's response times over `window` is above `max`, once
    /// at least `min_requests` answers are in it.
    UpstreamLatency { percentile: f64, max: Duration, window: Duration, min_requests: u64 },
}

/// Response-time buckets per route: 8 per doubling of microseconds, so a bucket is 12.5 % wide and a
/// percentile is known within that (interpolated inside its bucket). 256 buckets reach about 4.7 hours.
pub const LATENCY_BUCKETS: usize = 256;

/// The bucket of a response time.
fn bucket_of(d: Duration) -> usize {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if us < 8 {
        return usize::try_from(us).unwrap_or(0);
    }
    let e = 63 - us.leading_zeros() as usize; // 2^e <= us < 2^(e+1), e >= 3
    let sub = usize::try_from((us >> (e - 3)) & 7).unwrap_or(0);
    ((e - 2) * 8 + sub).min(LATENCY_BUCKETS - 1)
}

/// The range of a bucket, in microseconds: [low, high).
fn bucket_range(i: usize) -> (f64, f64) {
    if i < 8 {
        return (i as f64, (i + 1) as f64);
    }
    let e = i / 8 + 2;
    let sub = (i % 8) as u64;
    (((8 + sub) << (e - 3)) as f64, ((9 + sub) << (e - 3)) as f64)
}

/// The `percentile` (0–100) of the response times counted in `buckets` (n answers), interpolated inside
/// its bucket.
fn percentile_of(buckets: &[u64], n: u64, percentile: f64) -> Duration {
    let rank = ((percentile / 100.0) * n as f64).ceil().max(1.0);
    let mut below = 0.0;
    for (i, &c) in buckets.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let c = c as f64;
        if below + c >= rank {
            let (low, high) = bucket_range(i);
            let us = low + (high - low) * ((rank - below) / c);
            return Duration::from_secs_f64(us / 1e6);
        }
        below += c;
    }
    Duration::ZERO
}

/// Real upstream answers of one route: what guards judge. Requests that received a fault are not counted.
#[derive(Debug)]
struct RouteHealth {
    answered: AtomicU64,
    /// 5xx from the upstream, or no answer at all.
    failed: AtomicU64,
    /// Response times of the answers, in [`LATENCY_BUCKETS`] buckets.
    latency: Box<[AtomicU64]>,
}

impl Default for RouteHealth {
    fn default() -> Self {
        RouteHealth {
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
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

    /// Counts the response time of a real (not injected) upstream answer.
    pub fn record_latency(&self, route: RouteId, took: Duration) {
        if let Some(h) = self.0.get(route.index()) {
            if let Some(b) = h.latency.get(bucket_of(took)) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The response-time buckets summed over the routes at `indices`.
    fn latency(&self, indices: &[usize]) -> Box<[u64]> {
        let mut sum = vec![0u64; LATENCY_BUCKETS].into_boxed_slice();
        for h in indices.iter().filter_map(|&i| self.0.get(i)) {
            for (s, c) in sum.iter_mut().zip(h.latency.iter()) {
                *s += c.load(Ordering::Relaxed);
            }
        }
        sum
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

/// Samples of one experiment's response-time buckets, oldest first; thinned to one per 1/32 of the
/// longest latency window, so a one-hour window keeps about 33 of them.
type LatencySamples = VecDeque<(Instant, Box<[u64]>)>;

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
    let mut latencies: HashMap<Arc<str>, LatencySamples> = HashMap::new();
    super::every(TICK, registry, shutdown, |registry| {
        let guarded = registry.guarded();
        samples.retain(|id, _| guarded.iter().any(|g| &g.id == id));
        latencies.retain(|id, _| guarded.iter().any(|g| &g.id == id));
        let now = Instant::now();
        for g in guarded {
            let routes = route_indices(&registry.topology(), &g.def);
            let latency_window =
                g.def.guards.iter().filter(|g| matches!(g, Guard::UpstreamLatency { .. })).map(window_of).max();
            if let Some(window) = latency_window {
                let l = latencies.entry(Arc::clone(&g.id)).or_default();
                let every = (window / 32).max(TICK);
                let current = health.latency(&routes);
                // The newest sample is always the current one; older ones are kept one per `every`.
                if l.len() >= 2 && l.get(l.len() - 2).is_some_and(|&(t, _)| now.saturating_duration_since(t) < every) {
                    l.pop_back();
                }
                l.push_back((now, current));
                if let Some(reason) = judge_latency(&g.def.guards, l, now) {
                    tracing::warn!(experiment = %g.id, %reason, "guard tripped");
                    registry.trip_guard(&g.id, &reason);
                    continue;
                }
                while l.len() > 1 && l.get(1).is_some_and(|(t, _)| now.saturating_duration_since(*t) >= window) {
                    l.pop_front();
                }
            }
            let (answered, failed) = health.totals(&routes);
            // The first sample is the one taken when the experiment started, so traffic before the
            // first tick counts.
            let s = samples.entry(Arc::clone(&g.id)).or_insert_with(|| g.baseline.into_iter().collect());
            s.push_back((now, answered, failed));
            if let Some(reason) = judge(&g.def.guards, s, now, g.injected) {
                tracing::warn!(experiment = %g.id, %reason, "guard tripped");
                registry.trip_guard(&g.id, &reason);
            }
            // Keep what the longest window needs: one sample at or before its start.
            let keep = g.def.guards.iter().map(window_of).max().unwrap_or_default();
            while s.len() > 1 && s.get(1).is_some_and(|&(t, _, _)| now.saturating_duration_since(t) >= keep) {
                s.pop_front();
            }
        }
    })
    .await
}

fn window_of(g: &Guard) -> Duration {
    match g {
        Guard::UpstreamErrorRate { window, .. } | Guard::UpstreamLatency { window, .. } => *window,
        Guard::MaxInjected(_) => Duration::ZERO,
    }
}

/// The reason to abort, if a latency guard holds. `samples` ends with the current one.
fn judge_latency(guards: &[Guard], samples: &LatencySamples, now: Instant) -> Option<String> {
    let (_, current) = samples.back()?;
    for g in guards {
        let Guard::UpstreamLatency { percentile, max, window, min_requests } = g else { continue };
        let (_, base) =
            samples.iter().rev().find(|(t, _)| now.saturating_duration_since(*t) >= *window).or(samples.front())?;
        let diff: Vec<u64> = current.iter().zip(base.iter()).map(|(c, b)| c.saturating_sub(*b)).collect();
        let n: u64 = diff.iter().sum();
        if n == 0 || n < *min_requests {
            continue;
        }
        let p = percentile_of(&diff, n, *percentile);
        if p > *max {
            return Some(format!(
                "guard tripped: upstream p{percentile} latency {} ({n} answers) over {} exceeds {}",
                humantime::format_duration(Duration::from_millis(u64::try_from(p.as_millis()).unwrap_or(u64::MAX))),
                humantime::format_duration(*window),
                humantime::format_duration(*max)
            ));
        }
    }
    None
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
            // Judged by `judge_latency`, on its own samples.
            Guard::UpstreamLatency { .. } => {}
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

    #[test]
    fn latency_buckets_cover_and_order_response_times() {
        let mut last = 0;
        for us in [0u64, 1, 7, 8, 9, 15, 16, 100, 1000, 12_345, 1_000_000, 60_000_000, u64::MAX / 2] {
            let i = bucket_of(Duration::from_micros(us));
            assert!(i >= last, "{us} µs: bucket {i} before {last}");
            last = i;
            let (low, high) = bucket_range(i);
            if i < LATENCY_BUCKETS - 1 {
                assert!(low <= us as f64 && (us as f64) < high, "{us} µs not in [{low}, {high}) of bucket {i}");
                assert!(high - low <= low.max(8.0) / 8.0 + 1.0, "bucket {i} is at most 12.5 % wide");
            }
        }
    }

    #[test]
    fn a_percentile_is_read_within_its_bucket() {
        let mut b = vec![0u64; LATENCY_BUCKETS];
        for _ in 0..990 {
            b[bucket_of(Duration::from_millis(10))] += 1;
        }
        for _ in 0..10 {
            b[bucket_of(Duration::from_millis(800))] += 1;
        }
        let p50 = percentile_of(&b, 1000, 50.0);
        assert!(p50 >= Duration::from_millis(9) && p50 <= Duration::from_millis(11), "{p50:?}");
        let p99 = percentile_of(&b, 1000, 99.0);
        assert!(p99 <= Duration::from_millis(11), "the 990th answer is a fast one: {p99:?}");
        let p999 = percentile_of(&b, 1000, 99.9);
        assert!(p999 >= Duration::from_millis(700) && p999 <= Duration::from_millis(900), "{p999:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_guard_judges_the_window_and_waits_for_enough_answers() {
        let guard = [Guard::UpstreamLatency {
            percentile: 90.0,
            max: Duration::from_millis(100),
            window: Duration::from_secs(10),
            min_requests: 5,
        }];
        let slow = bucket_of(Duration::from_millis(500));
        let t0 = Instant::now();
        let mut s: LatencySamples = VecDeque::new();
        let mut b = vec![0u64; LATENCY_BUCKETS].into_boxed_slice();
        s.push_back((t0, b.clone()));
        b[slow] += 4;
        s.push_back((t0 + Duration::from_secs(1), b.clone()));
        assert_eq!(judge_latency(&guard, &s, t0 + Duration::from_secs(1)), None, "4 answers: too few");
        b[slow] += 1;
        s.push_back((t0 + Duration::from_secs(2), b.clone()));
        let reason = judge_latency(&guard, &s, t0 + Duration::from_secs(2)).expect("trips");
        assert!(
            reason.starts_with("guard tripped: upstream p90 latency 5") && reason.ends_with("exceeds 100ms"),
            "{reason}"
        );
        // 30 s later, only fast answers are in the window.
        let fast = bucket_of(Duration::from_millis(5));
        b[fast] += 50;
        let later = t0 + Duration::from_secs(32);
        s.push_back((later, b.clone()));
        assert_eq!(judge_latency(&guard, &s, later), None);
    }
}
