//! Experiments: validated definitions, the registry that runs them through their lifecycle, and the
//! immutable rule set it publishes for the data plane.
//!
//! One writer (the [`Registry`]) builds a new [`RuleSet`] on every change and swaps it in; the data plane
//! loads it with one atomic read per request. A request that starts after a change returned sees it.

mod registry;
mod ruleset;
pub mod timeline;

use std::time::Duration;

pub use registry::{ExperimentInfo, Limits, Registry, RegistryError, State};
pub use ruleset::{Counters, Decision, Rule, RuleSet};

use crate::fault::{Fault, Matcher, Percentage, StickyKey, Trigger};

/// A validated experiment: what the control plane accepted. Built only by `control::convert`.
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
    /// Applied in order; an abort ends the list.
    pub faults: Vec<Fault>,
    pub seed: Option<u64>,
    /// Deterministic conditions beside the percentage; `None`: every matching request is sampled.
    pub trigger: Option<Trigger>,
    /// Ramp and flap: the percentage over time.
    pub timeline: timeline::Timeline,
    /// Select clients by this key instead of requests at random.
    pub sticky: Option<StickyKey>,
}
