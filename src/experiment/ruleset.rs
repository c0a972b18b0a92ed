//! The active rule set: what the data plane consults for every request.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;

use super::ExperimentDef;
use crate::{
    config::{RouteId, Topology},
    fault::{Abort, Fault, Matcher, Percentage, RequestRng, RequestView},
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
    pub counters: Arc<Counters>,
}

impl Rule {
    pub fn new(id: Arc<str>, seq: u64, def: &ExperimentDef, seed: u64, ends_at: Instant, counters: Arc<Counters>) -> Self {
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
            counters,
        }
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
    /// The abort of the earliest-started selected experiment that aborts, as (rule, fault index).
    abort: Option<(Arc<Rule>, usize)>,
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

    /// The experiment whose abort answers the request.
    pub fn abort_rule(&self) -> Option<&Rule> {
        self.abort.as_ref().map(|(r, _)| &**r)
    }
}

/// The running experiments, indexed by route: a request only meets the rules that target its route.
#[derive(Debug, Default)]
pub struct RuleSet {
    by_route: Box<[Box<[Arc<Rule>]>]>,
    len: usize,
}

impl RuleSet {
    /// Indexes `rules` (any order) over every route of the topology.
    pub fn build(topology: &Topology, mut rules: Vec<Arc<Rule>>) -> Self {
        rules.sort_by_key(|r| r.seq);
        let by_route = topology
            .routes()
            .map(|(listener, route)| {
                rules.iter().filter(|r| r.targets(listener, route)).cloned().collect::<Vec<_>>().into_boxed_slice()
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
    /// experiment applies its faults in order: its delays add to the request's delay; its first abort ends
    /// its list. The request then waits the sum of all delays, and is answered by the abort of the
    /// earliest-started selected experiment that aborts, if any, else forwarded.
    pub fn decide(&self, route: RouteId, req: &RequestView<'_>) -> Option<Decision> {
        let rules = self.by_route.get(route.index())?;
        if rules.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut decision: Option<Decision> = None;
        for rule in rules.iter() {
            if now >= rule.ends_at || !rule.matcher.matches(req) {
                continue;
            }
            Counters::bump(&rule.counters.matched);
            let mut rng = RequestRng::next(rule.seed, &rule.draws);
            if !rule.percentage.select(&mut rng) {
                continue;
            }
            let d = decision.get_or_insert_with(Decision::default);
            let mut delayed = false;
            let mut aborted = false;
            for (i, fault) in rule.faults.iter().enumerate() {
                match fault {
                    Fault::Delay(delay) => {
                        d.delay = d.delay.saturating_add(delay.sample(&mut rng));
                        delayed = true;
                    }
                    Fault::Abort(_) => {
                        if d.abort.is_none() {
                            d.abort = Some((Arc::clone(rule), i));
                            aborted = true;
                        }
                        break;
                    }
                }
            }
            if delayed || aborted {
                Counters::bump(&rule.counters.injected);
            }
            if delayed {
                Counters::bump(&rule.counters.delayed);
            }
            if aborted {
                Counters::bump(&rule.counters.aborted);
            }
        }
        decision.filter(|d| d.abort.is_some() || !d.delay.is_zero())
    }
}
