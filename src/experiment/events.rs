//! Lifecycle events: what happens to experiments, on a broadcast bus the registry owns.
//!
//! The registry sends an [`Event`] on every change (start, start delay over, end, guard tripped, lease
//! expired); [`watch_timelines`] adds one when a running experiment's ramp or flap enters another phase.
//! Sending never waits: the bus keeps the last [`CAPACITY`] events, and a receiver that falls further
//! behind is told how many it missed (`RecvError::Lagged`) instead of holding anyone up. The data plane
//! sends nothing.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Weak},
    time::{Duration, SystemTime},
};

use tokio::{sync::broadcast, time::Instant};

use super::{timeline::TimelineState, Registry, State};

/// Events kept for receivers that are behind.
pub const CAPACITY: usize = 1024;

/// How often [`watch_timelines`] looks for a phase change.
pub const TIMELINE_TICK: Duration = Duration::from_millis(100);

/// One thing that happened to an experiment.
#[derive(Debug, Clone)]
pub struct Event {
    pub time: SystemTime,
    pub experiment: Arc<str>,
    pub name: Arc<str>,
    pub kind: EventKind,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    /// Accepted; `state` is pending (start delay) or running.
    Started { state: State, spec: Box<crate::pb::v1::ExperimentSpec> },
    /// A pending experiment's start delay is over.
    Running,
    /// The timeline entered `phase` (see `Timeline::phase`).
    Timeline { phase: String, state: TimelineState },
    /// A guard held; the experiment is aborted next.
    GuardTripped { reason: String },
    /// The lease ran out; the experiment is aborted next.
    LeaseExpired,
    /// Ended: stopped, completed (its duration ran out) or aborted, with the end reason and the counters.
    Ended { state: State, reason: String, counters: Counts },
}

/// The counters of an experiment when an event was sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub matched: u64,
    pub injected: u64,
    pub aborted: u64,
    pub delayed: u64,
    pub would_inject: u64,
}

/// Sends `kind` about an experiment. Never waits; no receiver is fine.
pub(super) fn send(bus: &broadcast::Sender<Event>, experiment: &Arc<str>, name: &str, kind: EventKind) {
    let _ = bus.send(Event { time: SystemTime::now(), experiment: Arc::clone(experiment), name: name.into(), kind });
}

/// Sends a `Timeline` event whenever a running experiment's ramp or flap enters another phase (or a new
/// flap cycle), checking every [`TIMELINE_TICK`] until `shutdown` resolves.
pub async fn watch_timelines(registry: Weak<Registry>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let mut last: HashMap<Arc<str>, (String, Option<u64>)> = HashMap::new();
    super::every(TIMELINE_TICK, registry, shutdown, |registry| {
        let now = Instant::now();
        let phases = registry.timeline_phases(now);
        last.retain(|id, _| phases.iter().any(|(i, ..)| i == id));
        for (id, name, phase, state) in phases {
            let key = (phase, state.flap.map(|(cycle, _)| cycle));
            if last.get(&id) != Some(&key) {
                let phase = key.0.clone();
                last.insert(Arc::clone(&id), key);
                registry.send_event(&id, &name, EventKind::Timeline { phase, state });
            }
        }
    })
    .await
}
