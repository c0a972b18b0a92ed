//! The rule set as a TLS handshake sees it: decided once per connection, when its ClientHello arrives.

use std::{net::IpAddr, sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{Counters, Held, Lifeline, RuleSet};
use crate::fault::TlsFault;

/// What the TLS rules decided for one handshake.
#[derive(Debug, Default)]
pub struct TlsDecision {
    /// How long to hold the handshake after the ClientHello: each selected experiment's stalls (summed per
    /// experiment, each at most until the experiment's end), kept while the experiment runs.
    pub stall: Held<Duration>,
    /// The fault that ends the handshake (alert, reset, bad certificate) of the earliest-started selected
    /// experiment that has one, with that experiment's id and lifeline (an ended experiment's fault is
    /// dropped).
    pub end: Option<(Arc<str>, TlsFault, Lifeline)>,
    /// The experiments that acted, in start order.
    pub experiments: Vec<Arc<str>>,
}

impl RuleSet {
    /// Whether any TLS fault may act on the handshakes of `listener`.
    pub fn has_tls(&self, listener: &str) -> bool {
        self.tls.iter().any(|(l, _)| &**l == listener)
    }

    /// Decides what a handshake on `listener` from `client_ip`, asking for `sni`, gets. `None`: nothing.
    ///
    /// Every experiment in scope is sampled independently, in start order. A selected experiment applies its
    /// faults (of its current phase) in order: its stalls add to the handshake's; its first fault that ends
    /// the handshake ends its list. The handshake is then held for the sum of the stalls, and ended by the
    /// ending fault of the earliest-started selected experiment that has one, if any, else completed.
    pub fn decide_tls(
        &self,
        listener: &str,
        sni: Option<&str>,
        client_ip: IpAddr,
        now: Instant,
    ) -> Option<TlsDecision> {
        let (_, rules) = self.tls.iter().find(|(l, _)| &**l == listener)?;
        let mut decision = TlsDecision::default();
        for rule in rules.iter() {
            let Some((_, in_phase)) = rule.select_connection(sni, client_ip, now) else {
                continue;
            };
            let left = rule.ends_at.saturating_duration_since(now);
            // The index of the `tls` kind in the counters, once a fault acted.
            let mut acted = None;
            let mut stall = Duration::ZERO;
            for fault in rule.faults.tls().iter().take(in_phase.end).skip(in_phase.start) {
                match fault {
                    TlsFault::Stall(hold) => {
                        stall = stall.saturating_add(hold.map_or(left, |h| h.min(left))).min(left);
                        acted = Some(TlsFault::KIND_INDEX);
                    }
                    ending => {
                        if decision.end.is_none() {
                            decision.end = Some((Arc::clone(&rule.id), ending.clone(), rule.lifeline.clone()));
                            acted = Some(TlsFault::KIND_INDEX);
                        }
                        break;
                    }
                }
            }
            if !stall.is_zero() {
                decision.stall.push(&rule.lifeline, stall);
            }
            if let Some(kind) = acted {
                if let Some(c) = rule.counters.by_kind.get(kind) {
                    Counters::bump(c);
                }
                decision.experiments.push(Arc::clone(&rule.id));
            }
        }
        (!decision.experiments.is_empty()).then_some(decision)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{
        experiment::{ExperimentDef, Rule},
        fault::{CertificateProblem, Percentage, TlsAlert},
        topology::Topology,
    };

    fn topology() -> Topology {
        Topology::new(vec![("web".into(), vec!["default".into()]), ("secure".into(), vec!["app".into()])])
            .with_tls_listeners(vec!["secure".into()])
    }

    fn rule(seq: u64, pct: f64, faults: Vec<TlsFault>) -> Arc<Rule> {
        let def = ExperimentDef {
            percentage: Percentage::new(pct).unwrap_or(Percentage::ALL),
            ..ExperimentDef::new(format!("r{seq}"), Duration::from_secs(60), faults)
        };
        let ends = Instant::now() + Duration::from_secs(60);
        Arc::new(Rule::new(format!("e{seq}").into(), seq, &def, seq, ends, Arc::default()))
    }

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn tls_rules_are_filed_under_tls_listeners_only() {
        let set = RuleSet::build(&topology(), vec![rule(1, 100.0, vec![TlsFault::Reset])]);
        assert!(set.has_tls("secure"));
        assert!(!set.has_tls("web"));
        assert!(!set.targets(crate::topology::RouteId::first()), "no request meets a TLS rule");
        assert!(set.decide_tls("web", None, IP, Instant::now()).is_none());
    }

    /// Stalls add up (each within its experiment), the earliest experiment's ending fault wins, and a fault
    /// after an ending one never runs.
    #[test]
    fn stalls_add_and_the_earliest_ending_fault_wins() {
        let now = Instant::now();
        let stall = TlsFault::Stall(Some(Duration::from_secs(2)));
        let expired = TlsFault::Certificate(CertificateProblem::Expired);
        let alert = TlsFault::Alert(TlsAlert::InternalError);
        let set = RuleSet::build(
            &topology(),
            vec![
                rule(1, 100.0, vec![stall.clone(), expired.clone(), TlsFault::Stall(None)]),
                rule(2, 100.0, vec![TlsFault::Stall(None), alert]),
                rule(3, 0.0, vec![TlsFault::Reset]),
            ],
        );
        let d = set.decide_tls("secure", Some("a.example"), IP, now).expect("selected");
        // 2 s, then until the second experiment's end (60 s from its creation, just after `now`).
        let stall = d.stall.fold(Duration::ZERO, Duration::saturating_add);
        assert!(stall >= Duration::from_secs(62) && stall < Duration::from_secs(63), "{stall:?}");
        assert_eq!(d.end.map(|(id, f, _)| (id, f)), Some(("e1".into(), expired)));
        assert_eq!(d.experiments, vec![Arc::<str>::from("e1"), "e2".into()]);
    }
}
