//! The active rule set: what the data plane consults for every request.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;

use super::{
    timeline::{Timeline, TimelineState},
    ExperimentDef,
};
use crate::{
    config::{RouteId, Topology},
    fault::{
        Abort, BodyPlan, Fault, HostPattern, Matcher, Percentage, RequestRng, RequestView, Reset, StickyKey, Trigger,
    },
};

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
    faults: Box<[Fault]>,
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
        Rule {
            id,
            name: def.name.as_str().into(),
            seq,
            listeners: def.listeners.clone(),
            routes: def.routes.clone(),
            matcher: def.matcher.clone(),
            percentage: def.percentage,
            faults: def.faults.clone().into_boxed_slice(),
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
        }
    }

    /// The phase of the experiment's timeline at `now` ("ramping", "flap off", …) with its state; `None`
    /// without ramp or flap.
    pub fn timeline_phase(&self, now: Instant) -> Option<(String, TimelineState)> {
        let t = self.timeline?;
        let elapsed = now.saturating_duration_since(self.started);
        Some((t.phase(elapsed), t.at(self.percentage, elapsed)))
    }

    /// Where the experiment's timeline stands at `now`; `None` without ramp or flap.
    pub fn timeline_state(&self, now: Instant) -> Option<TimelineState> {
        self.timeline.map(|t| t.at(self.percentage, now.saturating_duration_since(self.started)))
    }

    fn targets(&self, listener: &str, route: &str) -> bool {
        (self.listeners.is_empty() || self.listeners.iter().any(|l| l == listener))
            && (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
    }
}

/// What the rule set decided for one request.
#[derive(Debug, Default)]
pub struct Decision {
    /// The sum of every selected experiment's delays.
    pub delay: Duration,
    /// The abort (or other fault that ends the request: hang, reset) of the earliest-started selected
    /// experiment that has one, as (rule, fault index).
    abort: Option<(Arc<Rule>, usize)>,
    /// What happens to the upstream's response body (truncate, throttle, reset after bytes).
    pub body: BodyPlan,
    /// When a rate limit ends the request: how long until its bucket has a token.
    pub retry_after: Duration,
}

impl Decision {
    pub fn abort(&self) -> Option<&Abort> {
        match &self.abort {
            Some((rule, i)) => match rule.faults.get(*i) {
                Some(Fault::Abort(a)) => Some(a),
                _ => None,
            },
            None => None,
        }
    }

    /// The fault that ends the request instead of forwarding it: an abort, a hang or a reset.
    pub fn ending(&self) -> Option<&Fault> {
        self.abort.as_ref().and_then(|(rule, i)| rule.faults.get(*i))
    }

    /// The experiment whose abort answers the request.
    pub fn abort_rule(&self) -> Option<&Rule> {
        self.abort.as_ref().map(|(r, _)| &**r)
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
            merge(&mut buckets.inline[..buckets.n], &mut f);
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
        if self.n < INLINE_BUCKETS {
            self.inline[self.n] = slice;
            self.n += 1;
        } else {
            self.spilled.push(slice);
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
        let mut best: Option<usize> = None;
        for (i, s) in slices.iter().enumerate() {
            if let Some(head) = s.first() {
                if best.is_none_or(|b| slices[b].first().is_none_or(|bh| head.seq < bh.seq)) {
                    best = Some(i);
                }
            }
        }
        let Some(i) = best else { return };
        let (head, tail) = slices[i].split_at(1);
        f(&head[0]);
        slices[i] = tail;
    }
}

/// The running experiments, indexed by route, then by path and host within a route: a request only meets
/// the rules that could match it.
#[derive(Debug, Default)]
pub struct RuleSet {
    by_route: Box<[RouteRules]>,
    len: usize,
}

impl RuleSet {
    /// Indexes `rules` (any order) over every route of the topology.
    pub fn build(topology: &Topology, mut rules: Vec<Arc<Rule>>) -> Self {
        rules.sort_by_key(|r| r.seq);
        let by_route = topology
            .routes()
            .map(|(listener, route)| {
                RouteRules::build(rules.iter().filter(|r| r.targets(listener, route)).cloned().collect())
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        RuleSet { by_route, len: rules.len() }
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
    /// the request's [`BodyPlan`] (earliest cut, slowest rate); its first fault that ends the request
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
            let percentage = match rule.timeline_state(t) {
                Some(state) => state.percentage,
                None => rule.percentage,
            };
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
            let mut delayed = false;
            let mut aborted = false;
            let mut acted = false;
            // Bit i: the fault kind at Fault::KINDS[i] acted on this request.
            let mut kinds = 0u8;
            for (i, fault) in rule.faults.iter().enumerate() {
                match fault {
                    Fault::Delay(delay) => {
                        d.delay = d.delay.saturating_add(delay.sample(&mut rng));
                        delayed = true;
                        kinds |= 1 << fault.kind_index();
                    }
                    // The faults that end the request (`Fault::ends_request`).
                    Fault::Abort(_) | Fault::Hang(_) | Fault::Reset(Reset { after_bytes: None }) => {
                        if d.abort.is_none() {
                            d.abort = Some((Arc::clone(rule), i));
                            aborted = true;
                            kinds |= 1 << fault.kind_index();
                        }
                        break;
                    }
                    Fault::Reset(r) => {
                        d.body.add_reset(r);
                        acted = true;
                        kinds |= 1 << fault.kind_index();
                    }
                    Fault::Truncate(t) => {
                        d.body.add_truncate(t);
                        acted = true;
                        kinds |= 1 << fault.kind_index();
                    }
                    Fault::Throttle(t) => {
                        d.body.add_throttle(t);
                        acted = true;
                        kinds |= 1 << fault.kind_index();
                    }
                    // Within the limit: nothing, go on with the list. Beyond it: ends the request (429).
                    Fault::RateLimit(rl) => {
                        if let Some(wait) = rl.take(t) {
                            if d.abort.is_none() {
                                d.abort = Some((Arc::clone(rule), i));
                                d.retry_after = wait;
                                aborted = true;
                                kinds |= 1 << fault.kind_index();
                            }
                            break;
                        }
                    }
                }
            }
            for (i, c) in rule.counters.by_kind.iter().enumerate().take_while(|_| kinds != 0) {
                if kinds & (1 << i) != 0 {
                    Counters::bump(c);
                }
            }
            if delayed || aborted || acted {
                Counters::bump(&rule.counters.injected);
            }
            if delayed {
                Counters::bump(&rule.counters.delayed);
            }
            if aborted {
                Counters::bump(&rule.counters.aborted);
            }
        });
        decision.filter(|d| d.abort.is_some() || !d.delay.is_zero() || !d.body.is_empty())
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
