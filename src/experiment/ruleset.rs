//! The active rule set: what the data plane consults for every request.

use std::{
    collections::HashMap,
    net::IpAddr,
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use http::{HeaderMap, Method};
use tokio::time::Instant;

use super::{
    lifeline::{Held, Lifeline},
    timeline::{PhaseAt, Timeline, TimelineState},
    ExperimentDef,
};

mod tcp;
mod tls;

use crate::{
    fault::{
        Abort, BodyPlan, Disconnect, End, Fault, Faults, GrpcStream, HostPattern, Matcher, Percentage, Plan,
        RequestRng, RequestView, ResponsePlan, Share, Step, StickyKey, Trigger,
    },
    topology::{RouteId, Topology},
};
pub use tcp::{ActiveToxic, ConnectionRules};
pub use tls::TlsDecision;

/// Per-experiment counters, shared between the rule (data plane) and the registry (reports).
#[derive(Debug, Default)]
pub struct Counters {
    /// In scope: every condition held.
    pub matched: AtomicU64,
    /// Received at least one fault.
    pub injected: AtomicU64,
    /// Answered with this experiment's abort.
    pub aborted: AtomicU64,
    /// Delayed by this experiment.
    pub delayed: AtomicU64,
    /// Dry run: selected, and left untouched.
    pub would_inject: AtomicU64,
    /// Requests that received each kind of fault, in [`Fault::KINDS`] order.
    pub by_kind: [AtomicU64; Fault::KINDS.len()],
}

impl Counters {
    /// Counts what a request got from the experiment: `kinds` has bit i set for the kind at
    /// `Fault::KINDS[i]`.
    fn count(&self, kinds: u32, delayed: bool, aborted: bool, acted: bool) {
        for (i, c) in self.by_kind.iter().enumerate().take_while(|_| kinds != 0) {
            if kinds & (1 << i) != 0 {
                Counters::bump(c);
            }
        }
        if delayed || aborted || acted {
            Counters::bump(&self.injected);
        }
        if delayed {
            Counters::bump(&self.delayed);
        }
        if aborted {
            Counters::bump(&self.aborted);
        }
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running experiment as the data plane sees it. Shared across rule sets, so counters and the random
/// stream carry on when other experiments come and go.
#[derive(Debug)]
pub struct Rule {
    pub id: Arc<str>,
    pub name: Arc<str>,
    /// Start order: earlier experiments come first when several match.
    pub seq: u64,
    listeners: Vec<String>,
    routes: Vec<String>,
    matcher: Matcher,
    percentage: Percentage,
    faults: Faults,
    seed: u64,
    /// How many requests have drawn from this experiment's random stream.
    draws: AtomicU64,
    /// Past this instant the rule injects nothing, even before the registry removes it.
    ends_at: Instant,
    /// When the experiment started running (the origin of `trigger`'s window).
    started: Instant,
    trigger: Option<Trigger>,
    /// `None` when the percentage is fixed.
    timeline: Option<Timeline>,
    sticky: Option<StickyKey>,
    pub counters: Arc<Counters>,
    /// Counts what it selects and injects nothing.
    dry_run: bool,
    /// The timeline's phases; empty when the experiment has none. Their faults sit in `faults` after the
    /// experiment's own, so a fault is named by one index whatever its phase.
    phases: Box<[RulePhase]>,
    /// Ended by the registry when the experiment ends: what its held requests and connections watch.
    pub lifeline: Lifeline,
}

/// A phase as the data plane sees it.
#[derive(Debug)]
struct RulePhase {
    start: Duration,
    name: Arc<str>,
    percentage: Percentage,
    timeline: Option<Timeline>,
    /// Where its faults are in the rule's `faults`.
    faults: Range<usize>,
}

/// The phase a running experiment is in, for reports and for watchers that diff it to see a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseNow {
    pub index: usize,
    pub name: Arc<str>,
    /// How long from now until the next phase begins, and its name; `None` in the last phase.
    pub next: Option<(Duration, Arc<str>)>,
}

impl Rule {
    pub fn new(
        id: Arc<str>,
        seq: u64,
        def: &ExperimentDef,
        seed: u64,
        ends_at: Instant,
        counters: Arc<Counters>,
    ) -> Self {
        let mut faults = def.faults.clone();
        let phases = def
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let at = faults.len();
                faults.extend(&p.faults);
                RulePhase {
                    start: p.start,
                    name: p.name.as_str().into(),
                    percentage: p.percentage,
                    timeline: (!p.timeline.is_static()).then(|| {
                        let mut t = p.timeline;
                        if let Some(f) = &mut t.flap {
                            f.seed = seed.wrapping_add(i as u64);
                        }
                        t
                    }),
                    faults: at..faults.len(),
                }
            })
            .collect();
        Rule {
            id,
            name: def.name.as_str().into(),
            seq,
            listeners: def.listeners.clone(),
            routes: def.routes.clone(),
            matcher: def.matcher.clone(),
            percentage: def.percentage,
            faults,
            seed,
            draws: AtomicU64::new(0),
            ends_at,
            started: ends_at.checked_sub(def.duration).unwrap_or(ends_at),
            trigger: def.trigger,
            timeline: (!def.timeline.is_static()).then(|| {
                let mut t = def.timeline;
                // Flap jitter draws from the experiment's seed (the server picks one when the spec has none).
                if let Some(f) = &mut t.flap {
                    f.seed = seed;
                }
                t
            }),
            sticky: def.sticky.clone(),
            counters,
            dry_run: def.dry_run,
            phases,
            lifeline: Lifeline::default(),
        }
    }

    /// The state of the experiment's timeline at `now` with a name for it: "ramping", "flap off", …, or
    /// with phases the phase's name (and its own ramp or flap state: `storm (flap on)`); `None` without
    /// ramp, flap or phases. Watchers diff the name to report a change.
    pub fn timeline_phase(&self, now: Instant) -> Option<(String, TimelineState)> {
        let elapsed = now.saturating_duration_since(self.started);
        if self.phases.is_empty() {
            let t = self.timeline?;
            return Some((t.phase(elapsed), t.at(self.percentage, elapsed)));
        }
        let state = self.timeline_state(now)?;
        let phase = self.phases.get(state.phase?.index)?;
        let name = match phase.timeline {
            Some(t) => format!("{} ({})", phase.name, t.phase(elapsed.saturating_sub(phase.start))),
            None => phase.name.to_string(),
        };
        Some((name, state))
    }

    /// Where the experiment's timeline stands at `now`; `None` without ramp, flap or phases. A pure
    /// function of the instant: a phase begins exactly at its offset, as the experiment ends exactly at
    /// its end.
    pub fn timeline_state(&self, now: Instant) -> Option<TimelineState> {
        let elapsed = now.saturating_duration_since(self.started);
        if self.phases.is_empty() {
            return self.timeline.map(|t| t.at(self.percentage, elapsed));
        }
        let at = PhaseAt::find(self.phases.iter().map(|p| p.start), elapsed);
        let phase = self.phases.get(at.index)?;
        let mut state = match phase.timeline {
            Some(t) => t.at(phase.percentage, elapsed.saturating_sub(phase.start)),
            None => TimelineState { percentage: phase.percentage, flap: None, phase: None },
        };
        state.phase = Some(at);
        Some(state)
    }

    /// The phase the experiment is in at `now`; `None` without phases.
    pub fn phase(&self, now: Instant) -> Option<PhaseNow> {
        let elapsed = now.saturating_duration_since(self.started);
        let at = self.timeline_state(now)?.phase?;
        let phase = self.phases.get(at.index)?;
        let next = at.next.and_then(|start| {
            let name = self.phases.get(at.index + 1)?.name.clone();
            Some((start.saturating_sub(elapsed), name))
        });
        Some(PhaseNow { index: at.index, name: phase.name.clone(), next })
    }

    /// The timeline state as GetExperiment shows it: `phase "bad" (2 of 5), flap on (cycle 3), 100 %`.
    pub fn timeline_summary(&self, now: Instant) -> Option<String> {
        let state = self.timeline_state(now)?;
        Some(match state.phase.and_then(|at| self.phases.get(at.index).map(|p| (at.index, p))) {
            Some((i, p)) => format!("phase {:?} ({} of {}), {state}", &*p.name, i + 1, self.phases.len()),
            None => state.to_string(),
        })
    }

    /// Where the faults of the phase `state` is in sit in `faults` (all the experiment's own without phases).
    fn faults_of(&self, state: Option<&TimelineState>) -> Range<usize> {
        match state.and_then(|s| s.phase).and_then(|at| self.phases.get(at.index)) {
            Some(p) => p.faults.clone(),
            None => 0..self.faults.len() - self.phases.iter().map(|p| p.faults.len()).sum::<usize>(),
        }
    }

    /// The instant the experiment ends: nothing it started may outlast it.
    pub fn ends_at(&self) -> Instant {
        self.ends_at
    }

    fn targets_listener(&self, listener: &str) -> bool {
        self.listeners.is_empty() || self.listeners.iter().any(|l| l == listener)
    }

    fn targets(&self, listener: &str, route: &str) -> bool {
        (self.listeners.is_empty() || self.listeners.iter().any(|l| l == listener))
            && (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
    }

    /// Whether `self` selects a connection now (a TCP connection, or a TLS handshake naming `host`): in scope
    /// (`hosts`, `client_cidrs`), let through by the trigger (counting connections), then sampled by the
    /// percentage (or the sticky client address). When selected: the connection's draw from the
    /// experiment's random stream, and where the faults of the current phase are in `faults`.
    fn select_connection(&self, host: Option<&str>, client_ip: IpAddr, now: Instant) -> Option<(u64, Range<usize>)> {
        if now >= self.ends_at {
            return None;
        }
        let headers = HeaderMap::new();
        let view = RequestView { method: &Method::GET, host, path: "", query: None, headers: &headers, client_ip };
        if !self.matcher.matches(&view) {
            return None;
        }
        let n = self.counters.matched.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if self.trigger.is_some_and(|t| !t.fires(n, now.saturating_duration_since(self.started))) {
            return None;
        }
        let mut rng = RequestRng::next(self.seed, &self.draws);
        let state = self.timeline_state(now);
        let percentage = match &state {
            Some(state) => state.percentage,
            None => self.percentage,
        };
        let selected = match &self.sticky {
            Some(key) => key.selects(&view, self.seed, percentage),
            None => percentage.select(&mut rng),
        };
        if !selected {
            return None;
        }
        if self.dry_run {
            Counters::bump(&self.counters.would_inject);
            return None;
        }
        Counters::bump(&self.counters.injected);
        Some((rand::RngExt::random(rng.rng()), self.faults_of(state.as_ref())))
    }

    /// Whether the experiment acts on TLS handshakes (its faults are TLS faults) rather than on requests.
    fn is_tls(&self) -> bool {
        matches!(self.faults, Faults::Tls(_))
    }

    /// Whether the experiment acts on TCP connections (its faults are toxics) rather than on HTTP requests.
    fn is_tcp(&self) -> bool {
        matches!(self.faults, Faults::Tcp(_))
    }
}

/// What the rule set decided for one request. Every hold is kept per experiment, with the experiment's
/// [`Lifeline`]: when an experiment ends while the request is held, what it put on the request goes, and
/// the request goes on as if the experiment had never matched it.
#[derive(Debug, Default)]
pub struct Decision {
    /// Each selected experiment's delays (summed per experiment); the request waits for the sum of those
    /// still running.
    pub delay: Held<Duration>,
    /// The fault that ends the request (abort, hang, reset, blackhole, unresolvable, a rate limit beyond
    /// its rate) of each selected experiment that has one, in start order. The first whose experiment still
    /// runs when the delay is over ends the request.
    endings: Vec<Ending>,
    /// What happens to the upstream's response body (truncate, throttle, reset after bytes, drip, the first
    /// byte's wait), per experiment.
    pub body: Held<BodyPlan>,
    /// How long the upstream's response head is held on its way back (`first_byte_delay`), per experiment.
    pub head_delay: Held<Duration>,
    /// Where a gRPC response stream is ended with a status, per experiment.
    pub grpc_stream: Held<GrpcStream>,
    /// When an upgraded connection or tunnel is ended, per experiment (the earliest live one wins).
    pub disconnect: Held<Disconnect>,
    /// Rewrites of the request's headers and of the response head, and the response body's replacement
    /// and corruptions: applied once, as the request and the response pass.
    pub response: ResponsePlan,
}

/// One experiment's fault that ends the request.
#[derive(Debug)]
struct Ending {
    rule: Arc<Rule>,
    /// The fault's index in the rule's faults.
    index: usize,
    /// For a rate limit: how long until its bucket has a token.
    retry_after: Duration,
    /// Whether the decision already counted it (only the first ending is; a later one is counted when it
    /// ends the request because the experiments before it ended meanwhile).
    counted: bool,
}

/// The fault that ends a request, as [`Decision::ending`] finds it.
#[derive(Debug, Clone, Copy)]
pub struct EndingFault<'a> {
    pub rule: &'a Rule,
    pub fault: &'a Fault,
    /// How it ends the request.
    pub end: End<'a>,
    /// For a rate limit: the `retry-after`.
    pub retry_after: Duration,
}

impl Decision {
    /// Adds a selected experiment's share, each part held while the experiment runs.
    fn add(&mut self, lifeline: &Lifeline, share: Share) {
        if !share.delay.is_zero() {
            self.delay.push(lifeline, share.delay);
        }
        if !share.head_delay.is_zero() {
            self.head_delay.push(lifeline, share.head_delay);
        }
        if !share.body.is_empty() {
            self.body.push(lifeline, share.body);
        }
        if let Some(g) = share.grpc_stream {
            self.grpc_stream.push(lifeline, g);
        }
        if let Some(x) = share.disconnect {
            self.disconnect.push(lifeline, x);
        }
    }

    /// The fault that ends the request instead of forwarding it: that of the earliest-started selected
    /// experiment that has one and still runs. `None`: the request goes on.
    pub fn ending(&self) -> Option<EndingFault<'_>> {
        let e = self.endings.iter().find(|e| !e.rule.lifeline.is_ended())?;
        let fault = e.rule.faults.http().get(e.index)?;
        let end = fault.end()?;
        if !e.counted {
            // Counted now, as it would have been had the experiments before it never matched.
            Counters::bump(&e.rule.counters.aborted);
            if let Some(c) = e.rule.counters.by_kind.get(fault.kind_index()) {
                Counters::bump(c);
            }
        }
        Some(EndingFault { rule: &e.rule, fault, end, retry_after: e.retry_after })
    }

    /// The first ending's abort, if it is one.
    pub fn abort(&self) -> Option<&Abort> {
        let e = self.endings.first()?;
        match e.rule.faults.http().get(e.index)?.end()? {
            End::Abort(a) => Some(a),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.endings.is_empty()
            && self.delay.is_empty()
            && self.body.is_empty()
            && self.head_delay.is_empty()
            && self.response.is_empty()
            && self.grpc_stream.is_empty()
            && self.disconnect.is_empty()
    }
}

/// The rules of one route, indexed so that a request meets only the rules that could match it: a rule
/// sits in one bucket, chosen by its most selective condition (exact path, path prefix, exact hosts), or in
/// `rest`. Lookup finds the few buckets the request's path and host select; every candidate is then checked
/// in full, so the index only ever prunes.
#[derive(Debug, Default)]
struct RouteRules {
    exact: HashMap<Box<str>, Box<[Arc<Rule>]>>,
    prefixes: HashMap<Box<str>, Box<[Arc<Rule>]>>,
    /// The distinct lengths of the keys of `prefixes`, ascending.
    prefix_lens: Box<[usize]>,
    /// Lowercase host → rules.
    hosts: HashMap<Box<str>, Box<[Arc<Rule>]>>,
    rest: Box<[Arc<Rule>]>,
}

/// Where a rule is filed.
enum Bucket {
    Exact(Box<str>),
    Prefix(Box<str>),
    Hosts(Vec<Box<str>>),
    Rest,
}

impl Rule {
    fn bucket(&self) -> Bucket {
        let m = &self.matcher;
        if let Some(p) = &m.path_exact {
            Bucket::Exact(p.as_str().into())
        } else if let Some(p) = &m.path_prefix {
            Bucket::Prefix(p.as_str().into())
        } else if !m.hosts.is_empty() && m.hosts.iter().all(|h| matches!(h, HostPattern::Exact(_))) {
            Bucket::Hosts(
                m.hosts
                    .iter()
                    .filter_map(|h| match h {
                        HostPattern::Exact(h) => Some(h.as_str().into()),
                        HostPattern::Wildcard(_) => None,
                    })
                    .collect(),
            )
        } else {
            Bucket::Rest
        }
    }
}

/// At most this many buckets are merged without allocating.
const INLINE_BUCKETS: usize = 8;

impl RouteRules {
    /// `rules` in start order.
    fn build(rules: Vec<Arc<Rule>>) -> Self {
        let mut exact: HashMap<Box<str>, Vec<Arc<Rule>>> = HashMap::new();
        let mut prefixes: HashMap<Box<str>, Vec<Arc<Rule>>> = HashMap::new();
        let mut hosts: HashMap<Box<str>, Vec<Arc<Rule>>> = HashMap::new();
        let mut rest = Vec::new();
        for rule in rules {
            match rule.bucket() {
                Bucket::Exact(p) => exact.entry(p).or_default().push(rule),
                Bucket::Prefix(p) => prefixes.entry(p).or_default().push(rule),
                Bucket::Hosts(hs) => {
                    for h in hs {
                        hosts.entry(h).or_default().push(Arc::clone(&rule));
                    }
                }
                Bucket::Rest => rest.push(rule),
            }
        }
        let mut prefix_lens: Vec<usize> = prefixes.keys().map(|k| k.len()).collect();
        prefix_lens.sort_unstable();
        prefix_lens.dedup();
        let seal =
            |m: HashMap<Box<str>, Vec<Arc<Rule>>>| m.into_iter().map(|(k, v)| (k, v.into_boxed_slice())).collect();
        RouteRules {
            exact: seal(exact),
            prefixes: seal(prefixes),
            prefix_lens: prefix_lens.into_boxed_slice(),
            hosts: seal(hosts),
            rest: rest.into_boxed_slice(),
        }
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty() && self.hosts.is_empty() && self.rest.is_empty()
    }

    /// Calls `f` on every rule the request could match, in start order.
    fn candidates(&self, req: &RequestView<'_>, mut f: impl FnMut(&Arc<Rule>)) {
        let mut buckets = Buckets::default();
        if !self.rest.is_empty() {
            buckets.push(&self.rest);
        }
        if let Some(r) = self.exact.get(req.path) {
            buckets.push(r);
        }
        for &len in self.prefix_lens.iter() {
            if len > req.path.len() {
                break;
            }
            if let Some(r) = req.path.get(..len).and_then(|p| self.prefixes.get(p)) {
                buckets.push(r);
            }
        }
        if let (Some(host), false) = (req.host, self.hosts.is_empty()) {
            let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                self.hosts.get(host.to_ascii_lowercase().as_str())
            } else {
                self.hosts.get(host)
            };
            if let Some(r) = found {
                buckets.push(r);
            }
        }
        if buckets.spilled.is_empty() {
            let n = buckets.n;
            merge(buckets.inline.get_mut(..n).unwrap_or_default(), &mut f);
        } else {
            let mut all = buckets.inline.to_vec();
            all.extend(buckets.spilled);
            merge(&mut all, &mut f);
        }
    }
}

/// The buckets one request selects; on the stack unless there are many.
#[derive(Default)]
struct Buckets<'a> {
    inline: [&'a [Arc<Rule>]; INLINE_BUCKETS],
    n: usize,
    spilled: Vec<&'a [Arc<Rule>]>,
}

impl<'a> Buckets<'a> {
    fn push(&mut self, slice: &'a [Arc<Rule>]) {
        match self.inline.get_mut(self.n) {
            Some(slot) => {
                *slot = slice;
                self.n += 1;
            }
            None => self.spilled.push(slice),
        }
    }
}

/// Visits the rules of several start-ordered slices in overall start order.
fn merge(slices: &mut [&[Arc<Rule>]], f: &mut impl FnMut(&Arc<Rule>)) {
    if let [only] = slices {
        only.iter().for_each(f);
        return;
    }
    loop {
        // The slice whose first rule started earliest.
        let mut best: Option<(usize, u64)> = None;
        for (i, s) in slices.iter().enumerate() {
            if let Some(head) = s.first() {
                if best.is_none_or(|(_, seq)| head.seq < seq) {
                    best = Some((i, head.seq));
                }
            }
        }
        let Some(slice) = best.and_then(|(i, _)| slices.get_mut(i)) else { return };
        let Some((head, tail)) = slice.split_first() else { return };
        f(head);
        *slice = tail;
    }
}

/// A listener's name and the rules filed under it, in start order.
type ListenerRules = (Box<str>, Box<[Arc<Rule>]>);

/// What the faults a request asks for through its headers (`routes[].fault_headers`) share: the lifeline
/// the kill switch ends, as it ends every experiment's, and their counters, reported as the experiment
/// `fault-headers`.
#[derive(Debug, Clone, Default)]
pub struct HeaderFaultState {
    /// Ended by `AbortAll` (and every kill switch): a request held by a header delay or throttle lets go,
    /// and a header abort decided before it is dropped. The registry publishes a fresh one with the next
    /// rule set.
    pub lifeline: Lifeline,
    /// Counted like an experiment's: `injected`, `delayed`, `aborted`, and `by_kind` for `abort`, `delay`
    /// and `throttle`.
    pub counters: Arc<Counters>,
}

impl HeaderFaultState {
    /// The id and name header faults are reported under (metrics, logs).
    pub const ID: &'static str = "fault-headers";

    /// Counts a request that got header faults: `aborted` is counted when its abort is sent
    /// ([`HeaderFaultState::count_abort`]).
    pub fn count(&self, delayed: bool, throttled: bool) {
        Counters::bump(&self.counters.injected);
        if delayed {
            Counters::bump(&self.counters.delayed);
            self.bump_kind("delay");
        }
        if throttled {
            self.bump_kind("throttle");
        }
    }

    /// Counts an abort a request asked for and got.
    pub fn count_abort(&self) {
        Counters::bump(&self.counters.aborted);
        self.bump_kind("abort");
    }

    fn bump_kind(&self, kind: &str) {
        if let Some(c) = Fault::KINDS.iter().position(|k| *k == kind).and_then(|i| self.counters.by_kind.get(i)) {
            Counters::bump(c);
        }
    }
}

/// The running experiments, indexed by route, then by path and host within a route: a request only meets
/// the rules that could match it.
#[derive(Debug, Default)]
pub struct RuleSet {
    by_route: Box<[RouteRules]>,
    /// The TLS rules of each listener that terminates TLS and has some, in start order.
    tls: Box<[ListenerRules]>,
    len: usize,
    /// For the faults requests ask for through their headers.
    headers: HeaderFaultState,
}

impl RuleSet {
    /// Indexes `rules` (any order) over every route of the topology. An experiment with toxics is filed
    /// only under TCP listeners' routes, one with TLS faults only under the listeners that terminate TLS,
    /// and one with HTTP faults only under HTTP routes.
    pub fn build(topology: &Topology, mut rules: Vec<Arc<Rule>>) -> Self {
        rules.sort_by_key(|r| r.seq);
        let by_route = topology
            .routes()
            .map(|(listener, route)| {
                let tcp = topology.is_tcp_listener(listener);
                RouteRules::build(
                    rules
                        .iter()
                        .filter(|r| r.targets(listener, route) && r.is_tcp() == tcp && !r.is_tls())
                        .cloned()
                        .collect(),
                )
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let tls = topology
            .tls_listener_names()
            .iter()
            .filter_map(|listener| {
                let on: Box<[Arc<Rule>]> =
                    rules.iter().filter(|r| r.is_tls() && r.targets_listener(listener)).cloned().collect();
                (!on.is_empty()).then(|| (listener.as_str().into(), on))
            })
            .collect();
        RuleSet { by_route, tls, len: rules.len(), headers: HeaderFaultState::default() }
    }

    /// The same set, with the registry's state for header faults.
    pub fn with_header_faults(mut self, state: HeaderFaultState) -> Self {
        self.headers = state;
        self
    }

    /// The lifeline and counters of the faults requests ask for through their headers.
    pub fn header_faults(&self) -> &HeaderFaultState {
        &self.headers
    }

    /// How many experiments are running.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any rule targets the route; when not, the request needs no look at all.
    pub fn targets(&self, route: RouteId) -> bool {
        self.by_route.get(route.index()).is_some_and(|r| !r.is_empty())
    }

    /// Decides what a request on `route` gets. `None`: nothing, forward it untouched.
    ///
    /// Combination rule: every experiment in scope is sampled independently, in start order. A selected
    /// experiment applies its faults in order: its delays add to the request's delay; its body faults join
    /// the request's [`BodyPlan`] (earliest cut, slowest rate, slowest drip, first-byte waits added); its
    /// rewrites, body replacement and corruptions join the [`ResponsePlan`] (rewrites in order, the first
    /// replacement, every corruption); its first fault that ends the request
    /// (abort, hang, reset before the response) ends its list. The request then waits the sum of all
    /// delays, and is ended by the ending fault of the earliest-started selected experiment that has one,
    /// if any, else forwarded with the body plan applied to the response.
    pub fn decide(&self, route: RouteId, req: &RequestView<'_>) -> Option<Decision> {
        let rules = self.by_route.get(route.index())?;
        let mut now: Option<Instant> = None;
        let mut decision: Option<Decision> = None;
        rules.candidates(req, |rule| {
            if !rule.matcher.matches(req) {
                return;
            }
            let t = *now.get_or_insert_with(Instant::now);
            if t >= rule.ends_at {
                return;
            }
            // The 1-based count of this request among the experiment's matching ones.
            let n = rule.counters.matched.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if rule.trigger.is_some_and(|tr| !tr.fires(n, t.saturating_duration_since(rule.started))) {
                return;
            }
            let mut rng = RequestRng::next(rule.seed, &rule.draws);
            let state = rule.timeline_state(t);
            let percentage = match &state {
                Some(state) => state.percentage,
                None => rule.percentage,
            };
            let in_phase = rule.faults_of(state.as_ref());
            let selected = match &rule.sticky {
                Some(key) => key.selects(req, rule.seed, percentage),
                None => percentage.select(&mut rng),
            };
            if !selected {
                return;
            }
            if rule.dry_run {
                Counters::bump(&rule.counters.would_inject);
                return;
            }
            let d = decision.get_or_insert_with(Decision::default);
            let mut plan = Plan::new(&mut d.response, &mut rng, t);
            let (mut delayed, mut aborted, mut acted) = (false, false, false);
            // Bit i: the fault kind at Fault::KINDS[i] acted on this request.
            let mut kinds = 0u32;
            for (i, fault) in rule.faults.http().iter().enumerate().take(in_phase.end).skip(in_phase.start) {
                match fault.apply(&mut plan) {
                    Step::Passed => continue,
                    Step::Delayed => delayed = true,
                    Step::Acted => acted = true,
                    Step::Ends { retry_after } => {
                        let first = d.endings.is_empty();
                        d.endings.push(Ending { rule: Arc::clone(rule), index: i, retry_after, counted: first });
                        if first {
                            aborted = true;
                            kinds |= 1 << fault.kind_index();
                        }
                        break;
                    }
                }
                kinds |= 1 << fault.kind_index();
            }
            let share = plan.share;
            d.add(&rule.lifeline, share);
            rule.counters.count(kinds, delayed, aborted, acted);
        });
        decision.filter(|d| !d.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::{HeaderMap, Method};
    use rand::{rngs::SmallRng, RngExt, SeedableRng};

    use super::*;
    use crate::fault::Delay;

    fn rule(seq: u64, matcher: Matcher) -> Arc<Rule> {
        let def = ExperimentDef {
            matcher,
            seed: Some(seq),
            ..ExperimentDef::new(
                format!("r{seq}"),
                Duration::from_secs(60),
                vec![Fault::Delay(Delay::fixed(Duration::from_millis(1)))],
            )
        };
        Arc::new(Rule::new(
            format!("e{seq}").into(),
            seq,
            &def,
            seq,
            Instant::now() + Duration::from_secs(60),
            Arc::default(),
        ))
    }

    const PATHS: [&str; 6] = ["/", "/a", "/a/b", "/api/x", "/api", "/b"];
    const HOSTS: [&str; 4] = ["a.example.com", "B.example.com", "b.example.com", "x.cdn.net"];

    /// The index visits exactly the rules a full scan would match, in start order.
    #[test]
    fn the_index_only_prunes() {
        let mut rng = SmallRng::seed_from_u64(7);
        let topology = Topology::new(vec![("web".into(), vec!["default".into()])]);
        for round in 0..50 {
            let mut rules = Vec::new();
            for seq in 0..40u64 {
                let mut m = Matcher::default();
                match rng.random_range(0..5u32) {
                    0 => m.path_exact = Some(PATHS[rng.random_range(0..PATHS.len())].into()),
                    1 => m.path_prefix = Some(PATHS[rng.random_range(0..PATHS.len())].into()),
                    2 => m.hosts = vec![HostPattern::parse(HOSTS[rng.random_range(0..HOSTS.len())])],
                    3 => m.hosts = vec![HostPattern::parse("*.example.com"), HostPattern::parse("x.cdn.net")],
                    _ => {}
                }
                if rng.random_bool(0.3) {
                    m.methods = vec![Method::POST];
                }
                rules.push(rule(seq, m));
            }
            // Shuffle the build order: the set must sort by start order itself.
            let mut shuffled = rules.clone();
            shuffled.reverse();
            let set = RuleSet::build(&topology, shuffled);
            let headers = HeaderMap::new();
            for _ in 0..200 {
                let method = if rng.random_bool(0.5) { Method::GET } else { Method::POST };
                let host = rng.random_bool(0.8).then(|| HOSTS[rng.random_range(0..HOSTS.len())]);
                let view = RequestView {
                    method: &method,
                    host,
                    path: PATHS[rng.random_range(0..PATHS.len())],
                    query: None,
                    headers: &headers,
                    client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                };
                let want: Vec<u64> = rules.iter().filter(|r| r.matcher.matches(&view)).map(|r| r.seq).collect();
                let mut got = Vec::new();
                set.by_route[0].candidates(&view, |r| {
                    if r.matcher.matches(&view) {
                        got.push(r.seq);
                    }
                });
                assert_eq!(got, want, "round {round}, {} {:?} {}", view.method, view.host, view.path);
            }
        }
    }

    #[test]
    fn many_buckets_spill_and_stay_ordered() {
        let topology = Topology::new(vec![("web".into(), vec!["default".into()])]);
        let path = "/abcdefghijklmnop";
        let rules: Vec<Arc<Rule>> = (1..=path.len())
            .rev()
            .enumerate()
            .map(|(seq, len)| rule(seq as u64, Matcher { path_prefix: Some(path[..len].into()), ..Matcher::default() }))
            .collect();
        let set = RuleSet::build(&topology, rules);
        let headers = HeaderMap::new();
        let view = RequestView {
            method: &Method::GET,
            host: None,
            path,
            query: None,
            headers: &headers,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let mut seqs = Vec::new();
        set.by_route[0].candidates(&view, |r| seqs.push(r.seq));
        assert_eq!(seqs, (0..path.len() as u64).collect::<Vec<_>>());
    }
}
