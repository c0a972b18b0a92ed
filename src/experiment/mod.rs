//! Experiments: validated definitions, the registry that runs them through their lifecycle, and the
//! immutable rule set it publishes for the data plane.
//!
//! One writer (the [`Registry`]) builds a new [`RuleSet`] on every change and swaps it in; the data plane
//! loads it with one atomic read per request. A request that starts after a change returned sees it.

pub mod events;
pub mod guard;
mod lease;
pub mod lifeline;
mod registry;
mod ruleset;
pub mod spec;
pub mod timeline;

use std::{future::Future, sync::Weak, time::Duration};

pub use events::{Event, EventKind};
pub use guard::Guard;
pub use lease::LEASE_EXPIRED;
pub use lifeline::{AnyEnded, Held, Lifeline};
pub use registry::{ExperimentInfo, Guarded, Limits, PhaseInfo, Placement, Registry, RegistryError, State, MAX_REASON};
pub use ruleset::{
    ActiveToxic, ConnectionRules, Counters, Decision, EndingFault, HeaderFaultState, PhaseNow, Rule, RuleSet,
    TlsDecision,
};

use crate::fault::{Faults, Matcher, Percentage, StickyKey, Trigger};

/// A validated experiment: what the control plane accepted. Built only by `experiment::spec`.
#[derive(Debug, Clone)]
pub struct ExperimentDef {
    pub name: String,
    /// Listener names the experiment is limited to; empty means all.
    pub listeners: Vec<String>,
    /// Route names the experiment is limited to; empty means all.
    pub routes: Vec<String>,
    pub matcher: Matcher,
    pub percentage: Percentage,
    /// The effective duration: the spec's, or the server's default; never over the server's cap.
    pub duration: Duration,
    pub start_delay: Duration,
    /// Applied in order; a fault that ends the request ends the list.
    pub faults: Faults,
    pub seed: Option<u64>,
    /// When set, the experiment must be renewed within this long, or it is aborted ("lease expired").
    pub lease: Option<Duration>,
    /// Match and count, inject nothing.
    pub dry_run: bool,
    /// Stop conditions, checked by the guard supervisor while the experiment runs.
    pub guards: Vec<Guard>,
    /// Deterministic conditions beside the percentage; `None`: every matching request is sampled.
    pub trigger: Option<Trigger>,
    /// Ramp and flap: the percentage over time.
    pub timeline: timeline::Timeline,
    /// Select clients by this key instead of requests at random.
    pub sticky: Option<StickyKey>,
    /// A timeline of phases (each with its percentage, timeline and faults); empty: one phase made of
    /// `percentage`, `timeline` and `faults`.
    pub phases: Vec<timeline::Phase>,
}

impl ExperimentDef {
    /// Every request, these faults, this long, with every optional feature off (no match conditions, 100 %,
    /// no start delay, seed, lease, dry run, guards, trigger, timeline, sticky key or phases). Code that builds a
    /// definition itself (tests, benchmarks) starts here and sets what it needs; specs from users go
    /// through `experiment::spec`.
    pub fn new(name: impl Into<String>, duration: Duration, faults: impl Into<Faults>) -> Self {
        ExperimentDef {
            name: name.into(),
            listeners: Vec::new(),
            routes: Vec::new(),
            matcher: Matcher::default(),
            percentage: Percentage::ALL,
            duration,
            start_delay: Duration::ZERO,
            faults: faults.into(),
            seed: None,
            lease: None,
            dry_run: false,
            guards: Vec::new(),
            trigger: None,
            timeline: timeline::Timeline::default(),
            sticky: None,
            phases: Vec::new(),
        }
    }
}

/// Runs `step` on the registry every `period` (a late tick is not made up for) until `shutdown` resolves
/// or the registry is gone: the loop of the background supervisors (guards, timeline events).
pub(crate) async fn every(
    period: Duration,
    registry: Weak<Registry>,
    shutdown: impl Future<Output = ()>,
    mut step: impl FnMut(&Registry),
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => return,
        }
        let Some(registry) = registry.upgrade() else { return };
        step(&registry);
    }
}
