//! The experiment registry: the one writer of the active rule set, and the lifecycle of every experiment
//! (pending → running → completed | stopped | aborted).

use std::{
    collections::{HashMap, VecDeque},
    sync::{atomic::Ordering, Arc, Mutex, MutexGuard, Weak},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use tokio::{sync::broadcast, task::AbortHandle, time::Instant};

use super::{
    events::{self, Event, EventKind},
    timeline::TimelineState,
    Counters, ExperimentDef, HeaderFaultState, Rule, RuleSet,
};
use crate::{pb::v1 as pb, topology::Topology};

/// Longest end reason kept (a longer one is cut).
pub const MAX_REASON: usize = 256;

/// Server-side bounds on experiments.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Applied when a spec has no duration.
    pub default_duration: Duration,
    /// Longest duration a spec may ask for (`duration` plus nothing: `start_delay` is separate).
    pub max_duration: Duration,
    /// Longest start delay a spec may ask for.
    pub max_start_delay: Duration,
    /// How many ended experiments stay readable.
    pub history: usize,
    /// How many experiments may be pending or running at once.
    pub max_active: usize,
    /// Highest `percentage` a spec may ask for (an absent percentage means 100).
    pub max_percentage: f64,
    /// Routes experiments may target; a spec must name routes from this list. Empty: any route.
    pub allowed_routes: Vec<String>,
    /// How many requests may be faulted (delayed or aborted) at once; past it requests pass untouched.
    pub max_active_faults: usize,
    /// Open client connections per listener; past it, new connections wait to be accepted.
    pub max_connections: usize,
    /// Largest request head (request line and headers) a listener reads; larger gets 431.
    pub max_header_bytes: usize,
    /// A request head must arrive whole within this long (of the connection's start, for the first).
    pub header_read_timeout: Duration,
    /// A client connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_duration: Duration::from_secs(5 * 60),
            max_duration: Duration::from_secs(60 * 60),
            max_start_delay: Duration::from_secs(60 * 60),
            history: 100,
            max_active: 10_000,
            max_percentage: 100.0,
            allowed_routes: Vec::new(),
            max_active_faults: 10_000,
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    Completed,
    Stopped,
    Aborted,
}

impl State {
    pub fn is_active(self) -> bool {
        matches!(self, State::Pending | State::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Completed => "completed",
            State::Stopped => "stopped",
            State::Aborted => "aborted",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no experiment with id {id:?} (ended experiments are kept for the last {history} only)", id = crate::text::excerpt(.0, 64), history = .1)]
    NotFound(String, usize),
    #[error("experiment {} has already ended ({state})", crate::text::printable(id))]
    AlreadyEnded { id: String, state: &'static str },
    #[error("{0} experiments are already pending or running, the server's limit (limits.max_active); stop some first")]
    TooMany(usize),
    #[error("an experiment with the id {} exists already", crate::text::printable(.0))]
    Exists(String),
    #[error("experiment {} has no lease to renew (start it with `lease` in its spec)", crate::text::printable(.0))]
    NoLease(String),
}

/// Where a started experiment stands in its life: a fresh one (the default) or one placed by the
/// controller under its fleet id.
#[derive(Debug, Default)]
pub struct Placement {
    /// `None`: a new `exp-…` id.
    pub id: Option<String>,
    /// How far into its life it already is.
    pub age: Duration,
}

/// A running experiment with guards, for the guard supervisor.
pub struct Guarded {
    pub id: Arc<str>,
    pub def: Arc<ExperimentDef>,
    pub injected: u64,
    /// (when, answered, failed) of its routes when it started running.
    pub baseline: Option<(Instant, u64, u64)>,
}

/// A copy of an experiment's state, for reports.
#[derive(Debug, Clone)]
pub struct ExperimentInfo {
    pub id: String,
    pub spec: pb::ExperimentSpec,
    pub state: State,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub ends_at: Option<SystemTime>,
    pub ended_at: Option<SystemTime>,
    pub end_reason: String,
    pub effective_duration: Duration,
    pub matched: u64,
    pub injected: u64,
    pub aborted: u64,
    pub delayed: u64,
    /// When the lease runs out unless renewed (active experiments with a lease).
    pub lease_expires_at: Option<SystemTime>,
    /// Dry run: requests selected and left untouched.
    pub would_inject: u64,
    /// Where a running experiment's ramp, flap or phases stand.
    pub timeline_state: Option<String>,
    /// Requests that received each kind of fault (`Fault::KINDS`), kinds with none left out.
    pub by_kind: Vec<(&'static str, u64)>,
    /// The current phase of a running experiment with phases. A watcher that keeps the last `index` it saw
    /// per experiment sees each phase change by comparing.
    pub phase: Option<PhaseInfo>,
}

impl ExperimentInfo {
    /// The counters, as events carry them.
    pub fn counts(&self) -> events::Counts {
        events::Counts {
            matched: self.matched,
            injected: self.injected,
            aborted: self.aborted,
            delayed: self.delayed,
            would_inject: self.would_inject,
        }
    }
}

/// The phase a running experiment is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseInfo {
    pub index: usize,
    pub name: String,
    /// When the next phase begins, and its name; `None` in the last phase.
    pub next: Option<(SystemTime, String)>,
}

struct Entry {
    id: Arc<str>,
    spec: pb::ExperimentSpec,
    def: Arc<ExperimentDef>,
    seq: u64,
    seed: u64,
    state: State,
    created_at: SystemTime,
    started_at: Option<SystemTime>,
    ends_at: Option<SystemTime>,
    ended_at: Option<SystemTime>,
    end_reason: String,
    counters: Arc<Counters>,
    rule: Option<Arc<Rule>>,
    timer: Option<AbortHandle>,
    /// Its routes' real upstream outcomes when it started running, for its guards.
    guard_baseline: Option<(Instant, u64, u64)>,
    /// The lease's current deadline, moved by each renewal; `None` without a lease.
    lease_deadline: Option<Instant>,
    lease_timer: Option<AbortHandle>,
}

impl Entry {
    fn info(&self) -> ExperimentInfo {
        let c = &self.counters;
        ExperimentInfo {
            id: self.id.to_string(),
            spec: self.spec.clone(),
            state: self.state,
            created_at: self.created_at,
            started_at: self.started_at,
            ends_at: self.ends_at,
            ended_at: self.ended_at,
            end_reason: self.end_reason.clone(),
            effective_duration: self.def.duration,
            matched: c.matched.load(Ordering::Relaxed),
            injected: c.injected.load(Ordering::Relaxed),
            aborted: c.aborted.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
            would_inject: c.would_inject.load(Ordering::Relaxed),
            lease_expires_at: self
                .lease_deadline
                .filter(|_| self.state.is_active())
                .map(|d| SystemTime::now() + d.saturating_duration_since(Instant::now())),
            timeline_state: self.rule.as_ref().and_then(|r| r.timeline_summary(Instant::now())),
            phase: self.rule.as_ref().and_then(|r| r.phase(Instant::now())).map(|p| PhaseInfo {
                index: p.index,
                name: p.name.to_string(),
                next: p.next.map(|(wait, name)| (SystemTime::now() + wait, name.to_string())),
            }),
            by_kind: crate::fault::Fault::KINDS
                .iter()
                .zip(&c.by_kind)
                .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }

    fn counts(&self) -> events::Counts {
        let c = &self.counters;
        events::Counts {
            matched: c.matched.load(Ordering::Relaxed),
            injected: c.injected.load(Ordering::Relaxed),
            aborted: c.aborted.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
            would_inject: c.would_inject.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Arc<str>, Entry>,
    /// Ended experiments, oldest first, for the bounded history.
    ended: VecDeque<Arc<str>>,
    next_seq: u64,
    /// The lifeline and counters of header faults, published with every rule set.
    header_faults: HeaderFaultState,
}

/// Holds every experiment and publishes the rule set. Methods are synchronous and short: the lock is never
/// held across an await, and the data plane never takes it.
pub struct Registry {
    inner: Mutex<Inner>,
    rules: Arc<ArcSwap<RuleSet>>,
    /// Swapped when a TCP listener is created or removed at run time (the Toxiproxy API), under `inner`'s
    /// lock so the rule set is rebuilt for it.
    topology: ArcSwap<Topology>,
    /// Swapped by a config reload; each call reads the current one.
    limits: ArcSwap<Limits>,
    this: Weak<Registry>,
    /// The data plane's real upstream outcomes, when guards are supervised.
    health: std::sync::OnceLock<Arc<super::guard::Health>>,
    /// Lifecycle events, for WatchEvents.
    events: broadcast::Sender<Event>,
}

impl Registry {
    pub fn new(topology: Arc<Topology>, limits: Limits) -> Arc<Self> {
        let inner = Inner::default();
        let rules = Arc::new(ArcSwap::from_pointee(
            RuleSet::build(&topology, Vec::new()).with_header_faults(inner.header_faults.clone()),
        ));
        Arc::new_cyclic(|this| Registry {
            inner: Mutex::new(inner),
            rules,
            topology: ArcSwap::new(topology),
            limits: ArcSwap::from_pointee(limits),
            this: this.clone(),
            health: std::sync::OnceLock::new(),
            events: broadcast::Sender::new(events::CAPACITY),
        })
    }

    /// Lifecycle events from now on. A receiver that falls more than `events::CAPACITY` behind gets
    /// `RecvError::Lagged` with the count it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(super) fn send_event(&self, id: &Arc<str>, name: &str, kind: EventKind) {
        events::send(&self.events, id, name, kind);
    }

    /// (id, name, phase, state) of every running experiment with a ramp or flap.
    pub(super) fn timeline_phases(&self, now: Instant) -> Vec<(Arc<str>, Arc<str>, String, TimelineState)> {
        let inner = self.lock();
        inner
            .entries
            .values()
            .filter_map(|e| e.rule.as_ref())
            .filter_map(|r| {
                r.timeline_phase(now).map(|(phase, state)| (Arc::clone(&r.id), Arc::clone(&r.name), phase, state))
            })
            .collect()
    }

    /// Gives the registry the data plane's upstream outcomes, so experiments with guards record where
    /// they started from. Set once; later calls are ignored.
    pub fn watch_health(&self, health: Arc<super::guard::Health>) {
        let _ = self.health.set(health);
    }

    /// The handle the data plane loads the rule set from.
    pub fn rules(&self) -> Arc<ArcSwap<RuleSet>> {
        Arc::clone(&self.rules)
    }

    /// The listeners and routes now.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    /// Replaces the topology (a TCP listener taken or freed: the names of every other listener and route,
    /// and their ids, are unchanged) and rebuilds the rule set for it.
    pub fn set_topology(&self, topology: Topology) {
        let inner = self.lock();
        self.topology.store(Arc::new(topology));
        self.publish(&inner);
    }

    /// The limits now (a config reload may swap them; experiments already started keep theirs).
    pub fn limits(&self) -> Arc<Limits> {
        self.limits.load_full()
    }

    /// Applies reloaded limits to the experiments started from now on.
    pub fn set_limits(&self, limits: Limits) {
        self.limits.store(Arc::new(limits));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave an entry half-changed in a way that matters more
        // than losing the whole registry would: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a validated experiment. When this returns, a running experiment is visible to every new
    /// request. Must be called within a tokio runtime (it arms the experiment's timers).
    pub fn start(&self, spec: pb::ExperimentSpec, def: ExperimentDef) -> Result<ExperimentInfo, RegistryError> {
        self.start_placed(spec, def, Placement::default())
    }

    /// Starts a validated experiment under a given id and `age` into its life (a fleet experiment the
    /// controller created earlier): its start delay, timeline and duration are already that far along.
    pub fn start_placed(
        &self,
        spec: pb::ExperimentSpec,
        def: ExperimentDef,
        placement: Placement,
    ) -> Result<ExperimentInfo, RegistryError> {
        let mut inner = self.lock();
        let active = inner.entries.values().filter(|e| e.state.is_active()).count();
        if active >= self.limits.load().max_active {
            return Err(RegistryError::TooMany(active));
        }
        let id: Arc<str> = match placement.id {
            Some(id) if inner.entries.contains_key(id.as_str()) => return Err(RegistryError::Exists(id)),
            Some(id) => id.into(),
            None => loop {
                let candidate: Arc<str> = format!("exp-{:012x}", rand::random::<u64>() >> 16).into();
                if !inner.entries.contains_key(&candidate) {
                    break candidate;
                }
            },
        };
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let now = Instant::now();
        let wall = SystemTime::now();
        let start_at = now + def.start_delay.saturating_sub(placement.age);
        let end_at = now + (def.start_delay + def.duration).saturating_sub(placement.age);
        let def = Arc::new(def);
        let mut entry = Entry {
            id: Arc::clone(&id),
            spec,
            seed: def.seed.unwrap_or_else(rand::random),
            def,
            seq,
            state: State::Pending,
            created_at: wall,
            started_at: None,
            ends_at: Some(wall + (end_at - now)),
            ended_at: None,
            end_reason: String::new(),
            counters: Arc::default(),
            rule: None,
            timer: None,
            lease_deadline: None,
            lease_timer: None,
            guard_baseline: None,
        };
        if let Some(lease) = entry.def.lease {
            let deadline = now + lease;
            entry.lease_deadline = Some(deadline);
            entry.lease_timer = Some(super::lease::watch(self.this.clone(), Arc::clone(&id), deadline));
        }
        let registry = self.this.clone();
        let timer_id = Arc::clone(&id);
        let delayed_start = start_at > now;
        entry.timer = Some(
            tokio::spawn(async move {
                if delayed_start {
                    tokio::time::sleep_until(start_at).await;
                    match registry.upgrade() {
                        Some(r) => r.activate(&timer_id, end_at),
                        None => return,
                    }
                }
                tokio::time::sleep_until(end_at).await;
                if let Some(r) = registry.upgrade() {
                    r.end(&timer_id, State::Completed, String::new());
                }
            })
            .abort_handle(),
        );
        inner.entries.insert(Arc::clone(&id), entry);
        if !delayed_start {
            self.make_running(&mut inner, &id, end_at);
            self.publish(&inner);
        }
        let Some(e) = inner.entries.get(&id) else {
            return Err(RegistryError::NotFound(id.to_string(), self.limits.load().history));
        };
        tracing::info!(experiment = %id, name = %e.def.name, "experiment started");
        self.send_event(&id, &e.def.name, EventKind::Started { state: e.state, spec: Box::new(e.spec.clone()) });
        Ok(e.info())
    }

    fn make_running(&self, inner: &mut Inner, id: &Arc<str>, end_at: Instant) {
        if let Some(e) = inner.entries.get_mut(id) {
            if let (false, Some(h)) = (e.def.guards.is_empty(), self.health.get()) {
                let (answered, failed) = h.totals(&super::guard::route_indices(&self.topology.load(), &e.def));
                e.guard_baseline = Some((Instant::now(), answered, failed));
            }
            e.state = State::Running;
            e.started_at = Some(SystemTime::now());
            e.rule =
                Some(Arc::new(Rule::new(Arc::clone(&e.id), e.seq, &e.def, e.seed, end_at, Arc::clone(&e.counters))));
        }
    }

    fn activate(&self, id: &Arc<str>, end_at: Instant) {
        let mut inner = self.lock();
        if inner.entries.get(id).is_some_and(|e| e.state == State::Pending) {
            self.make_running(&mut inner, id, end_at);
            self.publish(&inner);
            tracing::info!(experiment = %id, "experiment running (start delay over)");
            if let Some(e) = inner.entries.get(id) {
                self.send_event(id, &e.def.name, EventKind::Running);
            }
        }
    }

    /// Ends an active experiment; false if it was not active.
    fn end_locked(&self, inner: &mut Inner, id: &str, state: State, reason: String) -> bool {
        let Some(e) = inner.entries.get_mut(id) else { return false };
        // Free text from a caller: recorded, never refused (a bad reason must not stop a stop), but bounded
        // and without characters that would forge a log line or rewrite a terminal.
        let reason = crate::text::sanitized(&reason, MAX_REASON).into_owned();
        if !e.state.is_active() {
            return false;
        }
        let was_running = e.state == State::Running;
        e.state = state;
        e.ended_at = Some(SystemTime::now());
        e.end_reason = reason;
        if let Some(rule) = e.rule.take() {
            // Every request and connection it holds lets go now.
            rule.lifeline.end();
        }
        if let Some(t) = e.timer.take() {
            t.abort();
        }
        if let Some(t) = e.lease_timer.take() {
            t.abort();
        }
        let id = Arc::clone(&e.id);
        tracing::info!(experiment = %id, state = state.as_str(), reason = %e.end_reason, matched = e.counters.matched.load(Ordering::Relaxed), injected = e.counters.injected.load(Ordering::Relaxed), "experiment ended");
        let ended = EventKind::Ended { state, reason: e.end_reason.clone(), counters: e.counts() };
        events::send(&self.events, &id, &e.def.name, ended);
        inner.ended.push_back(id);
        while inner.ended.len() > self.limits.load().history {
            if let Some(old) = inner.ended.pop_front() {
                inner.entries.remove(&old);
            }
        }
        was_running
    }

    fn end(&self, id: &str, state: State, reason: String) {
        let mut inner = self.lock();
        if self.end_locked(&mut inner, id, state, reason) {
            self.publish(&inner);
        }
    }

    /// Stops a pending or running experiment. When this returns, new requests no longer see it.
    pub fn stop(&self, id: &str, reason: &str) -> Result<ExperimentInfo, RegistryError> {
        let mut inner = self.lock();
        let e =
            inner.entries.get(id).ok_or_else(|| RegistryError::NotFound(id.to_owned(), self.limits.load().history))?;
        if !e.state.is_active() {
            return Err(RegistryError::AlreadyEnded { id: id.to_owned(), state: e.state.as_str() });
        }
        let reason = if reason.is_empty() { "stopped by a control call" } else { reason };
        if self.end_locked(&mut inner, id, State::Stopped, reason.to_owned()) {
            self.publish(&inner);
        }
        inner
            .entries
            .get(id)
            .map(Entry::info)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned(), self.limits.load().history))
    }

    /// The kill switch: ends every pending and running experiment; returns their ids.
    pub fn abort_all(&self, reason: &str) -> Vec<String> {
        let mut inner = self.lock();
        let mut ids: Vec<(u64, Arc<str>)> =
            inner.entries.values().filter(|e| e.state.is_active()).map(|e| (e.seq, Arc::clone(&e.id))).collect();
        ids.sort();
        let reason = if reason.is_empty() { "abort-all" } else { reason };
        for (_, id) in &ids {
            self.end_locked(&mut inner, id, State::Aborted, reason.to_owned());
        }
        // What requests asked for through their headers ends too: held ones let go now; requests from
        // the next rule set on may ask again (header faults are configuration, not experiments).
        inner.header_faults.lifeline.end();
        inner.header_faults.lifeline = super::Lifeline::default();
        self.publish(&inner);
        ids.into_iter().map(|(_, id)| id.to_string()).collect()
    }

    /// Moves the lease of an active experiment to `lease` from now.
    pub fn renew_lease(&self, id: &str) -> Result<ExperimentInfo, RegistryError> {
        let mut inner = self.lock();
        let e = inner
            .entries
            .get_mut(id)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned(), self.limits.load().history))?;
        if !e.state.is_active() {
            return Err(RegistryError::AlreadyEnded { id: id.to_owned(), state: e.state.as_str() });
        }
        let Some(lease) = e.def.lease else { return Err(RegistryError::NoLease(id.to_owned())) };
        e.lease_deadline = Some(Instant::now() + lease);
        Ok(e.info())
    }

    /// The lease deadline of an active experiment with a lease.
    pub(super) fn lease_deadline(&self, id: &str) -> Option<Instant> {
        let inner = self.lock();
        inner.entries.get(id).filter(|e| e.state.is_active()).and_then(|e| e.lease_deadline)
    }

    /// Aborts an experiment whose lease has run out (checked again under the lock: a renewal may have
    /// come in since the watcher looked).
    pub(super) fn expire_lease(&self, id: &str) {
        let mut inner = self.lock();
        let due = inner.entries.get(id).and_then(|e| e.lease_deadline).is_some_and(|d| d <= Instant::now());
        if !due {
            return;
        }
        if let Some(e) = inner.entries.get(id).filter(|e| e.state.is_active()) {
            self.send_event(&e.id, &e.def.name, EventKind::LeaseExpired);
        }
        if self.end_locked(&mut inner, id, State::Aborted, super::LEASE_EXPIRED.to_owned()) {
            self.publish(&inner);
        }
    }

    /// Running experiments that have guards.
    pub fn guarded(&self) -> Vec<Guarded> {
        let inner = self.lock();
        inner
            .entries
            .values()
            .filter(|e| e.state == State::Running && !e.def.guards.is_empty())
            .map(|e| Guarded {
                id: Arc::clone(&e.id),
                def: Arc::clone(&e.def),
                injected: e.counters.injected.load(Ordering::Relaxed),
                baseline: e.guard_baseline,
            })
            .collect()
    }

    /// Aborts an active experiment because one of its guards held: a `GuardTripped` event, then the end.
    pub fn trip_guard(&self, id: &str, reason: &str) -> bool {
        let mut inner = self.lock();
        let Some(e) = inner.entries.get(id).filter(|e| e.state.is_active()) else { return false };
        self.send_event(&e.id, &e.def.name, EventKind::GuardTripped { reason: reason.to_owned() });
        let ended = self.end_locked(&mut inner, id, State::Aborted, reason.to_owned());
        if ended {
            self.publish(&inner);
        }
        ended
    }

    /// Aborts one active experiment (a safety mechanism ended it); true if it was running.
    pub fn abort(&self, id: &str, reason: &str) -> bool {
        let mut inner = self.lock();
        let ended = self.end_locked(&mut inner, id, State::Aborted, reason.to_owned());
        if ended {
            self.publish(&inner);
        }
        ended
    }

    pub fn get(&self, id: &str) -> Result<ExperimentInfo, RegistryError> {
        let inner = self.lock();
        inner
            .entries
            .get(id)
            .map(Entry::info)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned(), self.limits.load().history))
    }

    /// Active experiments in start order, then ended ones, newest first.
    pub fn list(&self) -> Vec<ExperimentInfo> {
        let inner = self.lock();
        let mut active: Vec<&Entry> = inner.entries.values().filter(|e| e.state.is_active()).collect();
        active.sort_by_key(|e| e.seq);
        let ended = inner.ended.iter().rev().filter_map(|id| inner.entries.get(id));
        active.into_iter().chain(ended).map(Entry::info).collect()
    }

    /// (id, name, matched, injected) of every experiment [`Self::list`] shows, without copying their specs:
    /// what the history's sampler reads each second.
    pub fn counts(&self) -> Vec<(Arc<str>, String, u64, u64)> {
        let inner = self.lock();
        inner
            .entries
            .values()
            .map(|e| {
                let c = &e.counters;
                (
                    Arc::clone(&e.id),
                    e.spec.name.clone(),
                    c.matched.load(Ordering::Relaxed),
                    c.injected.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// How many experiments are running (injecting) now.
    pub fn running(&self) -> usize {
        self.rules.load().len()
    }

    /// The counters of the faults requests asked for through their headers.
    pub fn header_fault_counters(&self) -> Arc<Counters> {
        Arc::clone(&self.lock().header_faults.counters)
    }

    fn publish(&self, inner: &Inner) {
        let rules: Vec<Arc<Rule>> = inner.entries.values().filter_map(|e| e.rule.clone()).collect();
        let set = RuleSet::build(&self.topology.load(), rules).with_header_faults(inner.header_faults.clone());
        self.rules.store(Arc::new(set));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        inner.header_faults.lifeline.end();
        for e in inner.entries.values_mut() {
            if let Some(rule) = e.rule.take() {
                rule.lifeline.end();
            }
            if let Some(t) = e.timer.take() {
                t.abort();
            }
            if let Some(t) = e.lease_timer.take() {
                t.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::{HeaderMap, Method};

    use super::*;
    use crate::{
        fault::{Abort, Fault, RequestView},
        topology::RouteId,
    };

    fn registry() -> Arc<Registry> {
        Registry::new(Arc::new(Topology::new(vec![("web".into(), vec!["default".into()])])), Limits::default())
    }

    fn def(duration: Duration, start_delay: Duration) -> ExperimentDef {
        ExperimentDef {
            start_delay,
            seed: Some(1),
            ..ExperimentDef::new("x", duration, vec![Fault::Abort(Abort::new(None, None, "", None, HeaderMap::new()))])
        }
    }

    fn injects(r: &Registry) -> bool {
        let headers = HeaderMap::new();
        let view = RequestView {
            method: &Method::GET,
            host: None,
            path: "/",
            query: None,
            headers: &headers,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        r.rules().load().decide(RouteId::first(), &view).is_some()
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_exact_to_the_clock() {
        let r = registry();
        let e = r.start(pb::ExperimentSpec::default(), def(Duration::from_secs(2), Duration::ZERO)).expect("starts");
        assert_eq!(e.state, State::Running);
        assert!(injects(&r));
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(injects(&r), "still running 1 ms before the end");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!injects(&r), "not a request later: the rule checks its own end");
        tokio::task::yield_now().await;
        assert_eq!(r.get(&e.id).expect("kept").state, State::Completed);
        assert_eq!(r.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_delay_keeps_it_pending_until_due() {
        let r = registry();
        let e = r
            .start(pb::ExperimentSpec::default(), def(Duration::from_secs(10), Duration::from_secs(60)))
            .expect("starts");
        assert_eq!(e.state, State::Pending);
        tokio::time::advance(Duration::from_millis(59_999)).await;
        assert!(!injects(&r));
        tokio::time::advance(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        assert!(injects(&r));
        assert_eq!(r.get(&e.id).expect("kept").state, State::Running);
        tokio::time::advance(Duration::from_secs(10)).await;
        tokio::task::yield_now().await;
        assert_eq!(r.get(&e.id).expect("kept").state, State::Completed);
    }

    #[tokio::test]
    async fn the_active_limit_holds() {
        let r = Registry::new(Arc::new(Topology::default()), Limits { max_active: 2, ..Limits::default() });
        for _ in 0..2 {
            r.start(pb::ExperimentSpec::default(), def(Duration::from_secs(60), Duration::ZERO)).expect("starts");
        }
        let err = r
            .start(pb::ExperimentSpec::default(), def(Duration::from_secs(60), Duration::ZERO))
            .expect_err("third refused");
        assert!(matches!(err, RegistryError::TooMany(2)));
        assert_eq!(r.abort_all("test").len(), 2);
        r.start(pb::ExperimentSpec::default(), def(Duration::from_secs(60), Duration::ZERO)).expect("room again");
    }
}
