//! History: what clients saw, second by second (the last [`SECONDS`]) and minute by minute (the last
//! [`MINUTES`]), per route and per experiment — for the console's charts and `ctl report`.
//!
//! The data plane adds to a route's [`RouteLive`] atomics once per request (a handful of relaxed adds, no
//! lock, no allocation). A sampler ([`History::tick`], once a second) turns the totals into points by
//! difference, and reads each experiment's counters from the registry. Every ring is allocated whole when
//! its route or experiment first appears, and at most [`MAX_EXPERIMENTS`] experiments are kept, so memory
//! is fixed by the number of routes and does not grow with traffic or time (docs/console.md states it).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use crate::pb::v1;

/// Points kept at one-second resolution: ten minutes.
pub const SECONDS: usize = 600;
/// Points kept at one-minute resolution: six hours.
pub const MINUTES: usize = 360;
/// Experiments whose series are kept; past it the one seen last longest ago goes.
pub const MAX_EXPERIMENTS: usize = 200;

/// Latency buckets: the first ends at 0.5 ms, each next one twice as far (the last, about 131 s, takes
/// everything longer).
const LATENCY_BUCKETS: usize = 19;

/// The status classes a point counts: 1xx to 5xx, and requests that got no response (a reset or a hang
/// that closed the connection).
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "dropped"];

/// What a route's requests added up to since the server started: the data plane's side.
#[derive(Debug, Default)]
pub struct RouteLive {
    requests: AtomicU64,
    status: [AtomicU64; 6],
    injected: AtomicU64,
    upstream_errors: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS],
}

/// The bucket of a latency.
fn bucket(took: Duration) -> usize {
    let micros = took.as_micros();
    let mut bound = 500u128;
    for i in 0..LATENCY_BUCKETS - 1 {
        if micros <= bound {
            return i;
        }
        bound *= 2;
    }
    LATENCY_BUCKETS - 1
}

/// The upper bound of bucket `i`, in milliseconds.
fn bucket_bound_ms(i: usize) -> f64 {
    0.5 * f64::from(1u32 << i.min(30))
}

impl RouteLive {
    /// One request answered: its status (`None`: no response, the connection was dropped), and how long
    /// the client waited for the response head (injected delays included).
    pub fn answered(&self, status: Option<u16>, took: Duration) {
        let class = match status {
            Some(s @ 100..=599) => usize::from(s / 100 - 1),
            _ => 5,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.status.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = self.latency.get(bucket(took)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What happened to a request: whether a fault acted on it, and whether the proxy answered for an
    /// upstream it could not reach.
    pub fn count(&self, injected: bool, upstream_error: bool) {
        if injected {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        if upstream_error {
            self.upstream_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Both at once (tests and benchmarks).
    pub fn record(&self, status: Option<u16>, took: Duration, injected: bool, upstream_error: bool) {
        self.answered(status, took);
        self.count(injected, upstream_error);
    }

    /// Adds a second's counts reported by a sidecar (the controller's fleet history): `status` by
    /// [`STATUS_CLASSES`], `latency` by bucket; entries past the known ones are ignored.
    pub fn add_reported(&self, r: &v1::RouteSecond) {
        self.requests.fetch_add(r.requests, Ordering::Relaxed);
        self.injected.fetch_add(r.injected, Ordering::Relaxed);
        self.upstream_errors.fetch_add(r.upstream_errors, Ordering::Relaxed);
        for (c, n) in self.status.iter().zip(&r.status) {
            c.fetch_add(*n, Ordering::Relaxed);
        }
        for (c, n) in self.latency.iter().zip(&r.latency) {
            c.fetch_add(*n, Ordering::Relaxed);
        }
    }

    fn totals(&self) -> Counts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            requests: load(&self.requests),
            status: std::array::from_fn(|i| self.status.get(i).map_or(0, load)),
            injected: load(&self.injected),
            upstream_errors: load(&self.upstream_errors),
            latency: std::array::from_fn(|i| self.latency.get(i).map_or(0, load)),
        }
    }
}

/// Counts over some time: a difference of totals, or their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    requests: u64,
    status: [u64; 6],
    injected: u64,
    upstream_errors: u64,
    latency: [u64; LATENCY_BUCKETS],
}

impl Counts {
    fn minus(&self, earlier: &Counts) -> Counts {
        let mut d = *self;
        d.requests = self.requests.saturating_sub(earlier.requests);
        d.injected = self.injected.saturating_sub(earlier.injected);
        d.upstream_errors = self.upstream_errors.saturating_sub(earlier.upstream_errors);
        for (a, b) in d.status.iter_mut().zip(earlier.status) {
            *a = a.saturating_sub(b);
        }
        for (a, b) in d.latency.iter_mut().zip(earlier.latency) {
            *a = a.saturating_sub(b);
        }
        d
    }

    /// Saturating: the controller adds what sidecars report, which it does not trust to be small.
    fn add(&mut self, other: &Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.injected = self.injected.saturating_add(other.injected);
        self.upstream_errors = self.upstream_errors.saturating_add(other.upstream_errors);
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a = a.saturating_add(b);
        }
    }

    /// The latency at quantile `q` (0 to 1), as the upper bound of its bucket; 0 without requests.
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.latency.iter().fold(0u64, |t, n| t.saturating_add(*n));
        if total == 0 {
            return 0.0;
        }
        let rank = (q * total as f64).ceil().max(1.0);
        let mut seen = 0u64;
        for (i, n) in self.latency.iter().enumerate() {
            seen = seen.saturating_add(*n);
            if seen as f64 >= rank {
                return bucket_bound_ms(i);
            }
        }
        bucket_bound_ms(LATENCY_BUCKETS - 1)
    }

    fn point(&self, t: u64) -> RoutePoint {
        RoutePoint {
            t,
            requests: self.requests,
            status: self.status,
            injected: self.injected,
            upstream_errors: self.upstream_errors,
            p50_ms: self.quantile_ms(0.5),
            p99_ms: self.quantile_ms(0.99),
        }
    }
}

/// One point of a route's series: what its requests got during that second or minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutePoint {
    /// Unix seconds of the point's start.
    pub t: u64,
    pub requests: u64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx, and dropped (no response: a reset or a hang that closed), as
    /// [`STATUS_CLASSES`].
    pub status: [u64; 6],
    /// Requests a fault acted on.
    pub injected: u64,
    /// Requests the proxy answered 502/504 for because the real upstream failed.
    pub upstream_errors: u64,
    /// Latency to the response head as clients saw it (injected delays included), the upper bound of its
    /// bucket (buckets double from 0.5 ms).
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One point of an experiment's series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExperimentPoint {
    pub t: u64,
    /// Requests (or connections) in its scope.
    pub matched: u64,
    /// Those it selected and acted on.
    pub injected: u64,
}

/// At which resolution to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// One point a second, the last [`SECONDS`].
    #[default]
    Second,
    /// One point a minute, the last [`MINUTES`].
    Minute,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Points from this time on; `None`: every point kept.
    pub since: Option<SystemTime>,
    pub resolution: Resolution,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSeries {
    pub listener: String,
    pub route: String,
    pub points: Vec<RoutePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentSeries {
    pub id: String,
    pub name: String,
    pub points: Vec<ExperimentPoint>,
}

/// A read of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub resolution_seconds: u32,
    pub routes: Vec<RouteSeries>,
    pub experiments: Vec<ExperimentSeries>,
}

/// A ring of a fixed number of slots, every one written when it is made: its pages are resident from the
/// start, so the process does not grow as the ring fills.
#[derive(Debug)]
struct Ring<T> {
    slots: Box<[T]>,
    /// Where the next point goes.
    next: usize,
    /// Points held, at most `slots.len()`.
    len: usize,
}

impl<T: Copy + Default> Ring<T> {
    fn new(capacity: usize) -> Self {
        Ring { slots: vec![T::default(); capacity.max(1)].into_boxed_slice(), next: 0, len: 0 }
    }

    fn push(&mut self, v: T) {
        let cap = self.slots.len();
        if let Some(slot) = self.slots.get_mut(self.next) {
            *slot = v;
        }
        self.next = (self.next + 1) % cap;
        self.len = (self.len + 1).min(cap);
    }

    /// The points, oldest first.
    fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let cap = self.slots.len();
        let start = (self.next + cap - self.len) % cap;
        (0..self.len).filter_map(move |i| self.slots.get((start + i) % cap))
    }
}

/// A route's point as kept: a second's or a minute's counts fit 32 bits (they saturate), latencies an f32.
#[derive(Debug, Clone, Copy, Default)]
struct Kept {
    t: u64,
    requests: u32,
    status: [u32; 6],
    injected: u32,
    upstream_errors: u32,
    p50_ms: f32,
    p99_ms: f32,
}

fn narrow(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Kept {
    fn of(p: &RoutePoint) -> Self {
        Kept {
            t: p.t,
            requests: narrow(p.requests),
            status: p.status.map(narrow),
            injected: narrow(p.injected),
            upstream_errors: narrow(p.upstream_errors),
            #[allow(clippy::cast_possible_truncation, reason = "a bucket bound, 0.5 ms × 2^k, is exact in an f32")]
            p50_ms: p.p50_ms as f32,
            #[allow(clippy::cast_possible_truncation, reason = "a bucket bound, 0.5 ms × 2^k, is exact in an f32")]
            p99_ms: p.p99_ms as f32,
        }
    }

    fn point(&self) -> RoutePoint {
        RoutePoint {
            t: self.t,
            requests: self.requests.into(),
            status: self.status.map(u64::from),
            injected: self.injected.into(),
            upstream_errors: self.upstream_errors.into(),
            p50_ms: self.p50_ms.into(),
            p99_ms: self.p99_ms.into(),
        }
    }
}

/// An experiment's point as kept.
#[derive(Debug, Clone, Copy, Default)]
struct KeptExperiment {
    t: u64,
    matched: u32,
    injected: u32,
}

/// A route's series, and where its totals stood at the last tick.
struct RouteRings {
    listener: String,
    route: String,
    live: Arc<RouteLive>,
    last: Counts,
    seconds: Ring<Kept>,
    minutes: Ring<Kept>,
    /// The minute being summed, and its start.
    minute: (u64, Counts),
    /// The last second's counts, as a sidecar reports them to the controller.
    last_second: Counts,
}

/// An experiment's series.
struct ExperimentRings {
    id: String,
    name: String,
    last: (u64, u64),
    seconds: Ring<KeptExperiment>,
    minutes: Ring<KeptExperiment>,
    minute: (u64, u64, u64),
    /// The last second's matched and injected.
    last_second: (u64, u64),
    /// The tick it was last seen at, to choose which to drop past [`MAX_EXPERIMENTS`].
    seen: u64,
}

#[derive(Default)]
struct Rings {
    routes: Vec<RouteRings>,
    experiments: Vec<ExperimentRings>,
    /// The second of the last tick.
    last_tick: Option<u64>,
}

/// The history of one server.
#[derive(Default)]
pub struct History {
    rings: Mutex<Rings>,
}

/// An experiment's counters now, for [`History::tick`].
pub struct ExperimentNow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub matched: u64,
    pub injected: u64,
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl History {
    fn lock(&self) -> MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live counters of a route, made (with its rings) the first time it is asked for; the same ones
    /// again for the same names (a reloaded route keeps its history).
    pub fn route(&self, listener: &str, route: &str) -> Arc<RouteLive> {
        let mut rings = self.lock();
        if let Some(r) = rings.routes.iter().find(|r| r.listener == listener && r.route == route) {
            return Arc::clone(&r.live);
        }
        let live = Arc::new(RouteLive::default());
        rings.routes.push(RouteRings {
            listener: listener.to_owned(),
            route: route.to_owned(),
            live: Arc::clone(&live),
            last: Counts::default(),
            seconds: Ring::new(SECONDS),
            minutes: Ring::new(MINUTES),
            minute: (0, Counts::default()),
            last_second: Counts::default(),
        });
        live
    }

    /// Like [`History::route`], but makes no new series once `max` routes are kept (the controller's
    /// fleet history, whose routes its sidecars name).
    pub fn route_within(&self, listener: &str, route: &str, max: usize) -> Option<Arc<RouteLive>> {
        {
            let rings = self.lock();
            if let Some(r) = rings.routes.iter().find(|r| r.listener == listener && r.route == route) {
                return Some(Arc::clone(&r.live));
            }
            if rings.routes.len() >= max {
                return None;
            }
        }
        Some(self.route(listener, route))
    }

    /// The second the last tick closed, as a sidecar reports it to the controller: every route, and the
    /// experiments that matched anything in it.
    pub fn last_second(&self) -> Option<v1::HistoryReport> {
        let rings = self.lock();
        let second = rings.last_tick?;
        let routes = rings
            .routes
            .iter()
            .map(|r| {
                let c = &r.last_second;
                v1::RouteSecond {
                    listener: r.listener.clone(),
                    route: r.route.clone(),
                    requests: c.requests,
                    status: c.status.to_vec(),
                    injected: c.injected,
                    upstream_errors: c.upstream_errors,
                    latency: c.latency.to_vec(),
                }
            })
            .collect();
        let experiments = rings
            .experiments
            .iter()
            .filter(|x| x.seen == second && x.last_second != (0, 0))
            .map(|x| v1::ExperimentSecond {
                id: x.id.clone(),
                name: x.name.clone(),
                matched: x.last_second.0,
                injected: x.last_second.1,
            })
            .collect();
        Some(v1::HistoryReport { time: second, routes, experiments })
    }

    /// Closes the second that ended at `now`: one point per route and per experiment in `experiments`
    /// (their totals now); a minute point when a minute is complete. Called once a second.
    pub fn tick(&self, now: SystemTime, experiments: &[ExperimentNow<'_>]) {
        let second = unix_seconds(now).saturating_sub(1);
        let minute_of = |s: u64| s - s % 60;
        let mut rings = self.lock();
        if rings.last_tick.is_some_and(|t| t >= second) {
            return;
        }
        rings.last_tick = Some(second);
        for r in &mut rings.routes {
            let totals = r.live.totals();
            let delta = totals.minus(&r.last);
            r.last = totals;
            r.last_second = delta;
            r.seconds.push(Kept::of(&delta.point(second)));
            let m = minute_of(second);
            if r.minute.0 != m {
                if r.minute.0 != 0 {
                    r.minutes.push(Kept::of(&r.minute.1.point(r.minute.0)));
                }
                r.minute = (m, Counts::default());
            }
            r.minute.1.add(&delta);
        }
        for e in experiments {
            let i = match rings.experiments.iter().position(|x| x.id == e.id) {
                Some(i) => i,
                None => {
                    if rings.experiments.len() >= MAX_EXPERIMENTS {
                        let oldest = rings.experiments.iter().enumerate().min_by_key(|(_, x)| x.seen).map(|(i, _)| i);
                        if let Some(oldest) = oldest {
                            rings.experiments.swap_remove(oldest);
                        }
                    }
                    rings.experiments.push(ExperimentRings {
                        id: e.id.to_owned(),
                        name: e.name.to_owned(),
                        last: (0, 0),
                        seconds: Ring::new(SECONDS),
                        minutes: Ring::new(MINUTES),
                        minute: (0, 0, 0),
                        last_second: (0, 0),
                        seen: second,
                    });
                    rings.experiments.len() - 1
                }
            };
            let Some(x) = rings.experiments.get_mut(i) else { continue };
            let (matched, injected) = (e.matched.saturating_sub(x.last.0), e.injected.saturating_sub(x.last.1));
            x.last = (e.matched, e.injected);
            x.last_second = (matched, injected);
            x.seen = second;
            x.seconds.push(KeptExperiment { t: second, matched: narrow(matched), injected: narrow(injected) });
            let m = minute_of(second);
            if x.minute.0 != m {
                if x.minute.0 != 0 {
                    let (t, matched, injected) = x.minute;
                    x.minutes.push(KeptExperiment { t, matched: narrow(matched), injected: narrow(injected) });
                }
                x.minute = (m, 0, 0);
            }
            x.minute.1 = x.minute.1.saturating_add(matched);
            x.minute.2 = x.minute.2.saturating_add(injected);
        }
    }

    /// The points asked for, oldest first, of every route and of every experiment kept.
    pub fn snapshot(&self, q: &Query) -> Snapshot {
        let since = q.since.map_or(0, unix_seconds);
        let rings = self.lock();
        let minutes = q.resolution == Resolution::Minute;
        let routes = rings
            .routes
            .iter()
            .map(|r| RouteSeries {
                listener: r.listener.clone(),
                route: r.route.clone(),
                points: if minutes { &r.minutes } else { &r.seconds }
                    .iter()
                    .filter(|p| p.t >= since)
                    .map(Kept::point)
                    .collect(),
            })
            .collect();
        let experiments = rings
            .experiments
            .iter()
            .map(|x| ExperimentSeries {
                id: x.id.clone(),
                name: x.name.clone(),
                points: if minutes { &x.minutes } else { &x.seconds }
                    .iter()
                    .filter(|p| p.t >= since)
                    .map(|p| ExperimentPoint { t: p.t, matched: p.matched.into(), injected: p.injected.into() })
                    .collect(),
            })
            .collect();
        Snapshot { resolution_seconds: if minutes { 60 } else { 1 }, routes, experiments }
    }
}

/// Calls `tick` `offset` after every whole second of the wall clock, until `shutdown` resolves or `tick`
/// returns false.
pub async fn every_second(
    offset: Duration,
    mut tick: impl FnMut() -> bool,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let into_second = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let to_next = Duration::from_secs(1).saturating_sub(Duration::from_nanos(u64::from(into_second)));
        tokio::select! {
            () = tokio::time::sleep(to_next + offset) => {}
            () = &mut shutdown => return,
        }
        if !tick() {
            return;
        }
    }
}

/// Ticks `history` at every whole second until `shutdown` resolves, with the counters of the registry's
/// experiments (active, and the ended ones it still lists).
pub async fn sample(
    history: Arc<History>,
    registry: std::sync::Weak<crate::experiment::Registry>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let tick = move || {
        let Some(registry) = registry.upgrade() else { return false };
        let counts = registry.counts();
        drop(registry);
        let now: Vec<ExperimentNow<'_>> = counts
            .iter()
            .map(|(id, name, matched, injected)| ExperimentNow { id, name, matched: *matched, injected: *injected })
            .collect();
        history.tick(SystemTime::now(), &now);
        true
    };
    every_second(Duration::from_millis(2), tick, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn buckets_double_from_half_a_millisecond() {
        assert_eq!(bucket(Duration::from_micros(100)), 0);
        assert_eq!(bucket(Duration::from_micros(500)), 0);
        assert_eq!(bucket(Duration::from_micros(501)), 1);
        assert_eq!(bucket(Duration::from_millis(3)), 3);
        assert_eq!(bucket(Duration::from_secs(1000)), LATENCY_BUCKETS - 1);
        assert_eq!(bucket_bound_ms(3), 4.0);
    }

    #[test]
    fn a_tick_makes_a_point_of_each_second_and_a_minute_of_sixty() {
        let h = History::default();
        let web = h.route("web", "api");
        let start = 1_700_000_040; // a minute boundary
        for s in 0..125 {
            for _ in 0..10 {
                web.record(Some(200), Duration::from_millis(3), false, false);
            }
            web.record(Some(503), Duration::from_millis(40), true, false);
            web.record(None, Duration::from_millis(1), true, false);
            h.tick(
                at(start + s + 1),
                &[ExperimentNow { id: "e", name: "storm", matched: 12 * (s + 1), injected: 2 * (s + 1) }],
            );
        }
        let snap = h.snapshot(&Query::default());
        let api = &snap.routes[0];
        assert_eq!(api.points.len(), 125);
        let p = &api.points[7];
        assert_eq!((p.t, p.requests, p.injected), (start + 7, 12, 2));
        assert_eq!(p.status, [0, 10, 0, 0, 1, 1]);
        assert_eq!((p.p50_ms, p.p99_ms), (4.0, 64.0));
        let minutes = h.snapshot(&Query { since: None, resolution: Resolution::Minute });
        assert_eq!(minutes.resolution_seconds, 60);
        let m = &minutes.routes[0].points;
        assert_eq!(m.len(), 2, "two whole minutes, the third still summing");
        assert_eq!((m[0].t, m[0].requests, m[0].status[1]), (start, 720, 600));
        let e = &minutes.experiments[0];
        assert_eq!((e.points[1].matched, e.points[1].injected), (720, 120));
        let since = h.snapshot(&Query { since: Some(at(start + 120)), resolution: Resolution::Second });
        assert_eq!(since.routes[0].points.len(), 5);
    }

    #[test]
    fn rings_and_experiments_are_bounded() {
        let h = History::default();
        let live = h.route("web", "api");
        assert!(Arc::ptr_eq(&live, &h.route("web", "api")), "one series per route");
        let start = 1_700_000_000;
        let names: Vec<String> = (0..MAX_EXPERIMENTS + 50).map(|i| format!("e{i}")).collect();
        for s in 0..(SECONDS as u64 + 100) {
            live.record(Some(200), Duration::from_millis(1), false, false);
            let i = usize::try_from(s).unwrap_or(0) % names.len();
            h.tick(at(start + s + 1), &[ExperimentNow { id: &names[i], name: "x", matched: 1, injected: 0 }]);
        }
        let snap = h.snapshot(&Query::default());
        assert_eq!(snap.routes[0].points.len(), SECONDS);
        assert_eq!(snap.experiments.len(), MAX_EXPERIMENTS);
        // The same second twice adds nothing.
        let before = h.snapshot(&Query::default()).routes[0].points.last().map(|p| p.t);
        h.tick(at(start + SECONDS as u64 + 100), &[]);
        assert_eq!(h.snapshot(&Query::default()).routes[0].points.last().map(|p| p.t), before);
    }
}
