//! The rule set as a TCP connection sees it. An experiment selects a connection or not once, when the
//! connection first meets it (at open, or at its first look after the experiment started); the toxics of
//! the experiments that selected it then apply to every chunk of data until those experiments end.

use std::{net::IpAddr, sync::Arc};

use tokio::time::Instant;

use super::{Lifeline, Rule, RuleSet};
use crate::{fault::Toxic, topology::RouteId};

/// One toxic in force on a connection.
#[derive(Debug, Clone)]
pub struct ActiveToxic {
    /// The experiment's start order and the fault's index in it: a toxic's identity on the connection.
    pub key: (u64, usize),
    pub experiment: Arc<str>,
    pub toxic: Toxic,
    /// When the experiment selected the connection: the origin of the `timeout` toxic's clock.
    pub since: Instant,
    /// Past this, the experiment is over: its toxics stop even before the registry removes it.
    pub ends_at: Instant,
    /// This connection's draw from the experiment's random stream: the seed of its jitter and slice sizes.
    pub seed: u64,
    /// The experiment's: once ended, the toxic lets go of the connection at once.
    pub lifeline: Lifeline,
}

impl ActiveToxic {
    /// Whether the toxic still acts at `now`.
    pub fn in_force(&self, now: Instant) -> bool {
        now < self.ends_at && !self.lifeline.is_ended()
    }
}

/// What one experiment decided for the connection.
#[derive(Debug)]
struct Met {
    rule: Arc<Rule>,
    /// `Some(seed)` when the experiment selected the connection.
    selected: Option<u64>,
    since: Instant,
}

/// The experiments one connection has met, and the toxics in force for the rule set it saw last. Shared
/// by the connection's two directions.
#[derive(Debug)]
pub struct ConnectionRules {
    route: RouteId,
    client_ip: IpAddr,
    seen: Arc<RuleSet>,
    met: Vec<Met>,
    active: Arc<[ActiveToxic]>,
    /// Whether any experiment ever selected the connection.
    injected: bool,
}

impl ConnectionRules {
    /// Meets the rules of `set` for a connection from `client_ip` on `route`.
    pub fn new(route: RouteId, client_ip: IpAddr, set: Arc<RuleSet>, now: Instant) -> Self {
        let mut c = ConnectionRules {
            route,
            client_ip,
            seen: Arc::new(RuleSet::default()),
            met: Vec::new(),
            active: Arc::from([]),
            injected: false,
        };
        c.refresh(&set, now);
        c
    }

    /// The rule set these toxics were computed from.
    pub fn seen(&self) -> &Arc<RuleSet> {
        &self.seen
    }

    pub fn injected(&self) -> bool {
        self.injected
    }

    /// The toxics in force under `set`: experiments met before keep their choice; new ones choose now;
    /// ended ones are forgotten.
    pub fn refresh(&mut self, set: &Arc<RuleSet>, now: Instant) -> Arc<[ActiveToxic]> {
        if Arc::ptr_eq(set, &self.seen) {
            return Arc::clone(&self.active);
        }
        let mut met = Vec::new();
        // Validation keeps HTTP matchers off experiments with toxics, so their rules are all in `rest`.
        if let Some(rules) = set.by_route.get(self.route.index()) {
            for rule in rules.rest.iter() {
                match self.met.iter().position(|m| Arc::ptr_eq(&m.rule, rule)) {
                    Some(i) => met.push(self.met.swap_remove(i)),
                    None => {
                        let selected = rule.select_connection(None, self.client_ip, now).map(|(seed, _)| seed);
                        met.push(Met { rule: Arc::clone(rule), selected, since: now });
                    }
                }
            }
        }
        self.met = met;
        let active: Vec<ActiveToxic> = self
            .met
            .iter()
            .filter_map(|m| m.selected.map(|seed| (m, seed)))
            .flat_map(|(m, seed)| {
                m.rule.faults.toxics().iter().enumerate().map(move |(i, t)| ActiveToxic {
                    key: (m.rule.seq, i),
                    experiment: Arc::clone(&m.rule.id),
                    toxic: t.clone(),
                    since: m.since,
                    ends_at: m.rule.ends_at,
                    seed: seed ^ i as u64,
                    lifeline: m.rule.lifeline.clone(),
                })
            })
            .collect();
        self.injected |= !active.is_empty();
        self.active = Arc::from(active);
        self.seen = Arc::clone(set);
        Arc::clone(&self.active)
    }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, sync::atomic::Ordering, time::Duration};

    use super::*;
    use crate::{
        experiment::ExperimentDef,
        fault::{Direction, Percentage, ToxicKind},
        topology::Topology,
    };

    fn topology() -> Topology {
        Topology::new(vec![("web".into(), vec!["default".into()]), ("db".into(), vec!["db".into()])])
            .with_tcp_listeners(vec!["db".into()])
    }

    fn rule(seq: u64, pct: f64) -> Arc<Rule> {
        let toxic = Toxic { direction: Direction::Downstream, kind: ToxicKind::LimitData { bytes: 1 } };
        let def = ExperimentDef {
            listeners: vec!["db".into()],
            percentage: Percentage::new(pct).unwrap_or(Percentage::ALL),
            ..ExperimentDef::new(format!("r{seq}"), Duration::from_secs(60), vec![toxic])
        };
        let ends = Instant::now() + Duration::from_secs(60);
        Arc::new(Rule::new(format!("e{seq}").into(), seq, &def, seq, ends, Arc::default()))
    }

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn toxic_rules_are_filed_under_tcp_routes_only() {
        let set = RuleSet::build(&topology(), vec![rule(1, 100.0)]);
        assert!(!set.targets(RouteId::first()));
        assert!(set.targets(RouteId::first().next()));
    }

    /// A connection keeps its choice for an experiment across rule-set changes, and meets new experiments
    /// when it next looks.
    #[test]
    fn choices_stick_and_new_experiments_join() {
        let t = topology();
        let route = RouteId::first().next();
        let (always, never) = (rule(1, 100.0), rule(2, 0.0));
        let now = Instant::now();
        let mut conn = ConnectionRules::new(route, IP, Arc::new(RuleSet::build(&t, vec![Arc::clone(&never)])), now);
        assert!(!conn.injected());
        let set = Arc::new(RuleSet::build(&t, vec![Arc::clone(&never), Arc::clone(&always)]));
        let active = conn.refresh(&set, now + Duration::from_secs(1));
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].key, (1, 0));
        assert_eq!(active[0].since, now + Duration::from_secs(1));
        // Met once each: a second look at the same set (or a new set with the same rules) counts nothing more.
        conn.refresh(&set, now + Duration::from_secs(2));
        let again = Arc::new(RuleSet::build(&t, vec![Arc::clone(&never), Arc::clone(&always)]));
        let active = conn.refresh(&again, now + Duration::from_secs(3));
        assert_eq!(active[0].since, now + Duration::from_secs(1));
        assert_eq!(always.counters.matched.load(Ordering::Relaxed), 1);
        assert_eq!(never.counters.matched.load(Ordering::Relaxed), 1);
        // The experiment ends: its toxics go.
        assert!(conn.refresh(&Arc::new(RuleSet::build(&t, vec![never])), now).is_empty());
        assert!(conn.injected());
    }
}
