//! The controller's view of the fleet: the connected sidecars and the fleet experiments, with what each
//! targeted sidecar did with each experiment.
//!
//! Nothing here is stored: a restarted controller starts empty and rebuilds its view from what the
//! sidecars report on reconnecting (`SidecarHello.held`), so the sidecars hold the truth. Each sidecar gets
//! its state of the world (every fleet experiment meant for it) as a versioned [`v1::FleetAssignment`] on a
//! `watch` channel: a slow sidecar only ever gets the latest one.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{broadcast, mpsc, watch},
    task::AbortHandle,
    time::Instant,
};

use super::selector::{Labels, Selector};
use crate::{
    control::proto::{duration, is_active, timestamp},
    experiment::{Limits, State},
    fault::check::Collector,
    pb::v1::{self, SidecarTargetState as TargetState},
};

/// Lifecycle events buffered for the controller's watchers.
const EVENTS: usize = 1024;
/// Versions a sidecar may have in flight (sent, not acknowledged) before the oldest are forgotten.
const IN_FLIGHT: usize = 16;
/// How long a sidecar that went away stays in ListSidecars.
pub const FORGET_LOST: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("no connected sidecar matches the selector ({connected} connected): check `edgefault ctl sidecars`")]
    NoSidecars { connected: usize },
    #[error("no fleet experiment with id {} (ended ones are kept for the last {history} only)", crate::text::excerpt(.id, 64))]
    NotFound { id: String, history: usize },
    #[error("fleet experiment {} has already ended ({state})", crate::text::printable(.id))]
    AlreadyEnded { id: String, state: &'static str },
    #[error("{0} fleet experiments are already pending or running, the controller's limit (limits.max_active)")]
    TooMany(usize),
    #[error("fleet experiment {} has no lease to renew (start it with `lease` in its spec)", crate::text::printable(.0))]
    NoLease(String),
}

/// What the controller checked in a spec, to place it.
pub struct Plan {
    pub selector: Selector,
    pub duration: Duration,
    pub start_delay: Duration,
    pub lease: Option<Duration>,
}

/// Where one targeted sidecar stands with one fleet experiment.
#[derive(Debug, Clone)]
struct Target {
    state: TargetState,
    reason: String,
}

impl Target {
    fn new(state: TargetState) -> Self {
        Target { state, reason: String::new() }
    }
}

struct FleetExp {
    id: String,
    /// As sent to sidecars: seed and duration fixed by the controller, the selector and lease kept.
    spec: v1::ExperimentSpec,
    selector: Selector,
    seed: u64,
    seq: u64,
    duration: Duration,
    start_delay: Duration,
    /// When it was created, on this controller's clock (earlier, for one adopted after a restart).
    origin: Instant,
    created_at: SystemTime,
    state: State,
    ended_at: Option<SystemTime>,
    end_reason: String,
    targets: BTreeMap<String, Target>,
    lease: Option<Duration>,
    lease_deadline: Option<Instant>,
    timers: Vec<AbortHandle>,
    /// Taken over from the sidecars after a restart: it stays on the sidecars that reported it and
    /// reaches no other (a sidecar's word is not enough to start faults elsewhere).
    adopted: bool,
}

impl FleetExp {
    fn active(&self) -> bool {
        self.state.is_active()
    }

    fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.origin)
    }

    /// Its state as shown: PENDING until its start delay is over.
    fn shown_state(&self, now: Instant) -> State {
        match self.state {
            State::Running if self.age(now) < self.start_delay => State::Pending,
            s => s,
        }
    }

    fn wall(&self, now: Instant, offset: Duration) -> SystemTime {
        let at = self.origin + offset;
        if at >= now {
            SystemTime::now() + (at - now)
        } else {
            SystemTime::now() - (now - at)
        }
    }
}

/// The stream's side of a connected sidecar.
struct Conn {
    serial: u64,
    assignments: watch::Sender<Option<v1::FleetAssignment>>,
    commands: mpsc::Sender<v1::ControllerMessage>,
}

struct SidecarEntry {
    hello: v1::SidecarHello,
    labels: Labels,
    address: String,
    conn: Option<Conn>,
    version_sent: u64,
    version_applied: u64,
    /// The ids (running, then ended) of the last assignment sent, to send only changes.
    sent: Option<(Vec<String>, Vec<String>)>,
    in_flight: VecDeque<(u64, Vec<String>)>,
    last_seen: SystemTime,
    lost_at: Option<Instant>,
    last_rejection: String,
    proxy: Option<v1::ProxyTotals>,
    reported: HashMap<String, v1::Experiment>,
    counters: HashMap<String, v1::ExperimentCounters>,
}

#[derive(Default)]
struct Inner {
    sidecars: BTreeMap<String, SidecarEntry>,
    experiments: HashMap<String, FleetExp>,
    ended: VecDeque<String>,
    next_serial: u64,
    next_seq: u64,
}

/// What a sidecar's stream task reads: its assignments and the commands for it.
pub struct Subscription {
    pub serial: u64,
    pub assignments: watch::Receiver<Option<v1::FleetAssignment>>,
    pub commands: mpsc::Receiver<v1::ControllerMessage>,
}

pub struct FleetState {
    inner: Mutex<Inner>,
    /// Changes with every start of the controller: a sidecar that saw another one reports what it holds.
    instance: String,
    limits: Limits,
    events: broadcast::Sender<v1::Event>,
    this: Weak<FleetState>,
}

impl FleetState {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new_cyclic(|this| FleetState {
            inner: Mutex::default(),
            instance: format!("ctl-{:012x}", rand::random::<u64>() >> 16),
            limits,
            events: broadcast::Sender::new(EVENTS),
            this: this.clone(),
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn subscribe(&self) -> broadcast::Receiver<v1::Event> {
        self.events.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(&self, id: &str) -> FleetError {
        FleetError::NotFound { id: id.to_owned(), history: self.limits.history }
    }

    fn send_event(&self, id: &str, name: &str, kind: v1::event::Kind) {
        let _ = self.events.send(v1::Event {
            time: Some(timestamp(SystemTime::now())),
            experiment_id: id.to_owned(),
            experiment_name: name.to_owned(),
            sidecar_id: String::new(),
            kind: Some(kind),
        });
    }

    /// Starts a fleet experiment on every connected sidecar its selector chooses. When this returns, each
    /// of them has been sent its new state of the world.
    pub fn start(&self, mut spec: v1::ExperimentSpec, plan: Plan) -> Result<v1::Experiment, FleetError> {
        let mut inner = self.lock();
        let active = inner.experiments.values().filter(|e| e.active()).count();
        if active >= self.limits.max_active {
            return Err(FleetError::TooMany(active));
        }
        let seed = *spec.seed.get_or_insert_with(rand::random);
        if spec.duration.is_none() {
            // The controller's default, so that every sidecar runs it as long whatever its own default; in
            // the spec's own time (the sidecars divide it by time_scale as the controller did).
            let scale = spec.time_scale.unwrap_or(1.0);
            spec.duration = Duration::try_from_secs_f64(plan.duration.as_secs_f64() * scale).ok().map(duration);
        }
        let connected = inner.sidecars.values().filter(|s| s.conn.is_some()).count();
        let chosen: Vec<String> = plan
            .selector
            .choose(
                inner.sidecars.iter().filter(|(_, s)| s.conn.is_some()).map(|(id, s)| (id.as_str(), &s.labels)),
                seed,
            )
            .into_iter()
            .map(str::to_owned)
            .collect();
        if chosen.is_empty() {
            return Err(FleetError::NoSidecars { connected });
        }
        let id = loop {
            let candidate = format!("flt-{:012x}", rand::random::<u64>() >> 16);
            if !inner.experiments.contains_key(&candidate) {
                break candidate;
            }
        };
        let now = Instant::now();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let mut e = FleetExp {
            id: id.clone(),
            spec,
            selector: plan.selector,
            seed,
            seq,
            duration: plan.duration,
            start_delay: plan.start_delay,
            origin: now,
            created_at: SystemTime::now(),
            state: State::Running,
            ended_at: None,
            end_reason: String::new(),
            targets: chosen.iter().map(|s| (s.clone(), Target::new(TargetState::Sent))).collect(),
            lease: plan.lease,
            lease_deadline: plan.lease.map(|l| now + l),
            timers: Vec::new(),
            adopted: false,
        };
        self.arm(&mut e);
        let started = v1::ExperimentStarted {
            state: crate::control::proto::state_to_proto(e.shown_state(now)) as i32,
            spec: Some(e.spec.clone()),
        };
        let name = e.spec.name.clone();
        inner.experiments.insert(id.clone(), e);
        for sidecar in &chosen {
            self.push(&mut inner, sidecar);
        }
        tracing::info!(experiment = %id, name = %name, sidecars = chosen.len(), "fleet experiment started");
        self.send_event(&id, &name, v1::event::Kind::Started(started));
        self.view(&inner, &id).ok_or_else(|| self.not_found(&id))
    }

    /// Spawns the timers of an experiment: its start, its end, and its lease.
    fn arm(&self, e: &mut FleetExp) {
        let (id, name) = (e.id.clone(), e.spec.name.clone());
        let start_at = e.origin + e.start_delay;
        let end_at = start_at + e.duration;
        let this = self.this.clone();
        let pending = start_at > Instant::now();
        e.timers.push(
            tokio::spawn(async move {
                if pending {
                    tokio::time::sleep_until(start_at).await;
                    match this.upgrade() {
                        Some(f) => f.send_event(&id, &name, v1::event::Kind::Running(v1::ExperimentRunning {})),
                        None => return,
                    }
                }
                tokio::time::sleep_until(end_at).await;
                if let Some(f) = this.upgrade() {
                    f.end(&id, State::Completed, String::new());
                }
            })
            .abort_handle(),
        );
        if e.lease.is_some() {
            let (id, this) = (e.id.clone(), self.this.clone());
            e.timers.push(
                tokio::spawn(async move {
                    loop {
                        let Some(deadline) = this.upgrade().and_then(|f| f.lease_deadline(&id)) else { return };
                        tokio::time::sleep_until(deadline).await;
                        let Some(f) = this.upgrade() else { return };
                        if f.lease_deadline(&id).is_some_and(|d| d <= Instant::now()) {
                            f.end(&id, State::Aborted, crate::experiment::LEASE_EXPIRED.to_owned());
                            return;
                        }
                    }
                })
                .abort_handle(),
            );
        }
    }

    fn lease_deadline(&self, id: &str) -> Option<Instant> {
        self.lock().experiments.get(id).filter(|e| e.active()).and_then(|e| e.lease_deadline)
    }

    /// Ends an active experiment everywhere: every sidecar that runs it gets a state of the world without
    /// it (and the reason). Returns whether it was active.
    fn end_locked(&self, inner: &mut Inner, id: &str, state: State, reason: String) -> bool {
        let Some(e) = inner.experiments.get_mut(id) else { return false };
        if !e.active() {
            return false;
        }
        e.state = state;
        e.ended_at = Some(SystemTime::now());
        e.end_reason = crate::text::sanitized(&reason, crate::experiment::MAX_REASON).into_owned();
        for t in e.timers.drain(..) {
            t.abort();
        }
        let targets: Vec<String> = e.targets.keys().cloned().collect();
        let name = e.spec.name.clone();
        let ended = v1::ExperimentEnded { reason: e.end_reason.clone(), stats: Some(sum_stats(inner, id)) };
        let kind = match state {
            State::Completed => v1::event::Kind::Expired(ended),
            State::Stopped => v1::event::Kind::Stopped(ended),
            State::Aborted | State::Pending | State::Running => v1::event::Kind::Aborted(ended),
        };
        tracing::info!(experiment = %id, state = state.as_str(), "fleet experiment ended");
        self.send_event(id, &name, kind);
        inner.ended.push_back(id.to_owned());
        while inner.ended.len() > self.limits.history {
            if let Some(old) = inner.ended.pop_front() {
                inner.experiments.remove(&old);
            }
        }
        for sidecar in &targets {
            self.push(inner, sidecar);
        }
        true
    }

    fn end(&self, id: &str, state: State, reason: String) {
        let mut inner = self.lock();
        self.end_locked(&mut inner, id, state, reason);
    }

    pub fn stop(&self, id: &str, reason: &str) -> Result<v1::Experiment, FleetError> {
        let mut inner = self.lock();
        let e = inner.experiments.get(id).ok_or_else(|| self.not_found(id))?;
        if !e.active() {
            return Err(FleetError::AlreadyEnded { id: id.to_owned(), state: e.state.as_str() });
        }
        self.end_locked(&mut inner, id, State::Stopped, reason.to_owned());
        self.view(&inner, id).ok_or_else(|| self.not_found(id))
    }

    /// Ends every fleet experiment, and tells every connected sidecar to end everything it runs, its
    /// local experiments too. Returns the fleet experiments ended and the sidecars told.
    pub fn abort_all(&self, reason: &str) -> (Vec<String>, usize) {
        let mut inner = self.lock();
        let ids = active_in_order(&inner);
        for id in &ids {
            self.end_locked(&mut inner, id, State::Aborted, reason.to_owned());
        }
        let mut told = 0;
        for s in inner.sidecars.values() {
            if let Some(c) = &s.conn {
                let abort = v1::FleetAbortAll { reason: reason.to_owned() };
                let msg = v1::ControllerMessage { kind: Some(v1::controller_message::Kind::AbortAll(abort)) };
                // A sidecar whose command queue is full is not reading: its stream is about to fail, and a
                // lost stream ends its fleet experiments after the grace anyway.
                if c.commands.try_send(msg).is_ok() {
                    told += 1;
                }
            }
        }
        (ids, told)
    }

    pub fn renew_lease(&self, id: &str) -> Result<v1::Experiment, FleetError> {
        let mut inner = self.lock();
        let e = inner.experiments.get_mut(id).ok_or_else(|| self.not_found(id))?;
        if !e.active() {
            return Err(FleetError::AlreadyEnded { id: id.to_owned(), state: e.state.as_str() });
        }
        let lease = e.lease.ok_or_else(|| FleetError::NoLease(id.to_owned()))?;
        e.lease_deadline = Some(Instant::now() + lease);
        self.view(&inner, id).ok_or_else(|| self.not_found(id))
    }

    pub fn get(&self, id: &str) -> Result<v1::Experiment, FleetError> {
        let inner = self.lock();
        self.view(&inner, id).ok_or_else(|| self.not_found(id))
    }

    /// Active experiments in start order, then ended ones, newest first.
    pub fn list(&self) -> Vec<v1::Experiment> {
        let inner = self.lock();
        ordered(&inner).into_iter().filter_map(|id| self.view(&inner, &id)).collect()
    }

    pub fn running(&self) -> usize {
        self.lock().experiments.values().filter(|e| e.active()).count()
    }

    /// An experiment as GetExperiment shows it: its counters are the sum over its sidecars.
    fn view(&self, inner: &Inner, id: &str) -> Option<v1::Experiment> {
        let e = inner.experiments.get(id)?;
        let now = Instant::now();
        let state = e.shown_state(now);
        let sidecars: Vec<v1::SidecarTarget> = e
            .targets
            .iter()
            .map(|(sid, t)| {
                let reported = inner.sidecars.get(sid).and_then(|s| s.reported.get(id));
                v1::SidecarTarget {
                    sidecar_id: sid.clone(),
                    state: t.state as i32,
                    reason: t.reason.clone(),
                    stats: reported.and_then(|r| r.stats),
                    experiment_state: reported.map_or(0, |r| r.state),
                }
            })
            .collect();
        // The timeline as the first sidecar that runs it reports it: they all run the same clock.
        let first = e
            .targets
            .iter()
            .filter(|(_, t)| t.state == TargetState::Applied)
            .find_map(|(sid, _)| inner.sidecars.get(sid).and_then(|s| s.reported.get(id)));
        Some(v1::Experiment {
            id: e.id.clone(),
            spec: Some(e.spec.clone()),
            state: crate::control::proto::state_to_proto(state) as i32,
            created_at: Some(timestamp(e.created_at)),
            started_at: (state != State::Pending).then(|| timestamp(e.wall(now, e.start_delay))),
            ends_at: Some(timestamp(e.wall(now, e.start_delay + e.duration))),
            ended_at: e.ended_at.map(timestamp),
            end_reason: e.end_reason.clone(),
            stats: Some(sum_stats(inner, id)),
            effective_duration: Some(duration(e.duration)),
            lease_expires_at: e.lease_deadline.filter(|_| e.active()).map(|d| timestamp(e.wall(now, d - e.origin))),
            spec_omitted: false,
            timeline_state: first.filter(|_| e.active()).map(|r| r.timeline_state.clone()).unwrap_or_default(),
            phase: first.filter(|_| e.active()).and_then(|r| r.phase.clone()),
            sidecars,
        })
    }

    // === the sidecars' streams ===

    /// A sidecar said hello: it replaces any earlier stream of the same id, its held experiments are
    /// adopted when this controller has not seen them (it restarted), and it gets its state of the world.
    pub fn connect(&self, hello: v1::SidecarHello, address: String) -> Subscription {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let now = Instant::now();
        inner.next_serial += 1;
        let serial = inner.next_serial;
        let (assignments_tx, assignments) = watch::channel(None);
        let (commands_tx, commands) = mpsc::channel(8);
        let id = hello.id.clone();
        let labels: Labels = hello.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let held = hello.held.clone();
        let restarted = hello.controller_instance != self.instance;
        inner.sidecars.retain(|_, s| s.conn.is_some() || s.lost_at.is_none_or(|t| now - t < FORGET_LOST));
        let conn = Conn { serial, assignments: assignments_tx, commands: commands_tx };
        let entry = SidecarEntry {
            hello: v1::SidecarHello { held: Vec::new(), ..hello },
            labels: labels.clone(),
            address,
            conn: Some(conn),
            version_sent: 0,
            version_applied: 0,
            sent: None,
            in_flight: VecDeque::new(),
            last_seen: SystemTime::now(),
            lost_at: None,
            last_rejection: inner.sidecars.get(&id).map(|s| s.last_rejection.clone()).unwrap_or_default(),
            proxy: None,
            reported: HashMap::new(),
            counters: HashMap::new(),
        };
        inner.sidecars.insert(id.clone(), entry);
        let held_ids: HashMap<&str, &v1::FleetExperiment> = held.iter().map(|h| (h.id.as_str(), h)).collect();
        for h in &held {
            if restarted && !inner.experiments.contains_key(&h.id) && is_active(h.state) {
                self.adopt(inner, h, now);
            }
        }
        // What it already runs, what it ended, and what it should join.
        for e in inner.experiments.values_mut().filter(|e| e.active()) {
            let target = match held_ids.get(e.id.as_str()) {
                Some(h) if is_active(h.state) => Some(Target::new(TargetState::Applied)),
                Some(h) => Some(Target { state: TargetState::Ended, reason: h.end_reason.clone() }),
                None if e.targets.contains_key(&id) => Some(Target::new(TargetState::Sent)),
                None => (!e.adopted && e.selector.max_sidecars.is_none() && e.selector.selects(&id, &labels, e.seed))
                    .then(|| Target::new(TargetState::Sent)),
            };
            if let Some(t) = target {
                e.targets.insert(id.clone(), t);
            }
        }
        tracing::info!(sidecar = %id, serial, adopted = restarted, "sidecar connected");
        self.push(inner, &id);
        Subscription { serial, assignments, commands }
    }

    /// Takes over a fleet experiment a sidecar runs that this controller does not know: it was started by
    /// an earlier instance. Same id, same spec, same clock; nothing starts twice.
    fn adopt(&self, inner: &mut Inner, h: &v1::FleetExperiment, now: Instant) {
        let Some(spec) = h.spec.clone() else { return };
        let mut c = Collector::new(None, Duration::MAX);
        let selector = spec.sidecars.as_ref().map(|s| Selector::convert(s, "sidecars", &mut c)).unwrap_or_default();
        let ctx = crate::experiment::spec::Context { topology: None, limits: &self.limits };
        if let Err(v) = crate::experiment::spec::validate_spec(&spec, &ctx).and_then(|_| c.finish(|| ())) {
            tracing::warn!(experiment = %crate::text::excerpt(&h.id, 64), problems = %v, "a sidecar reports a fleet experiment this controller would not start: not adopted");
            return;
        }
        if !h.id.starts_with("flt-") || h.id.len() > 64 {
            return;
        }
        let pb = |d: &Option<pbjson_types::Duration>| {
            d.as_ref().and_then(|d| crate::fault::check::pb_duration(d).ok()).unwrap_or_default()
        };
        let age = pb(&h.age);
        let lease = spec.lease.as_ref().and_then(|d| crate::fault::check::pb_duration(d).ok());
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let mut e = FleetExp {
            id: h.id.clone(),
            seed: spec.seed.unwrap_or_default(),
            duration: pb(&spec.duration),
            start_delay: pb(&spec.start_delay),
            spec,
            selector,
            seq,
            origin: now.checked_sub(age).unwrap_or(now),
            created_at: SystemTime::now() - age,
            state: State::Running,
            ended_at: None,
            end_reason: String::new(),
            targets: BTreeMap::new(),
            lease,
            lease_deadline: lease.map(|l| now + l),
            timers: Vec::new(),
            adopted: true,
        };
        self.arm(&mut e);
        tracing::info!(experiment = %e.id, "fleet experiment adopted from a sidecar after a controller restart");
        inner.experiments.insert(e.id.clone(), e);
    }

    /// The sidecar applied a version, or refused it: the experiments it names are marked rejected for it
    /// (and left out of what it is sent next), the rest of the fleet carries on.
    pub fn ack(&self, sidecar: &str, serial: u64, ack: v1::VersionAck) {
        let mut inner = self.lock();
        let Some(s) = live(&mut inner, sidecar, serial) else { return };
        s.last_seen = SystemTime::now();
        let mut ids = Vec::new();
        while let Some((v, in_version)) = s.in_flight.pop_front() {
            if v == ack.version {
                ids = in_version;
                break;
            }
            if v > ack.version {
                s.in_flight.push_front((v, in_version));
                break;
            }
        }
        if ack.rejected.is_empty() {
            s.version_applied = ack.version;
            for id in ids {
                if let Some(t) = inner.experiments.get_mut(&id).and_then(|e| e.targets.get_mut(sidecar)) {
                    if matches!(t.state, TargetState::Sent | TargetState::Lost) {
                        *t = Target::new(TargetState::Applied);
                    }
                }
            }
            return;
        }
        if let Some(r) = ack.rejected.first() {
            s.last_rejection = format!("{}: {}", r.experiment_id, r.reason);
        }
        for r in &ack.rejected {
            tracing::warn!(sidecar, experiment = %r.experiment_id, reason = %r.reason, "sidecar rejected a fleet experiment");
            if let Some(t) = inner.experiments.get_mut(&r.experiment_id).and_then(|e| e.targets.get_mut(sidecar)) {
                *t = Target { state: TargetState::Rejected, reason: r.reason.clone() };
            }
        }
        self.push(&mut inner, sidecar);
    }

    /// A sidecar's periodic report: its totals and its fleet experiments' states and counters.
    pub fn status(&self, sidecar: &str, serial: u64, status: v1::SidecarStatus) {
        let mut inner = self.lock();
        let Some(s) = live(&mut inner, sidecar, serial) else { return };
        s.last_seen = SystemTime::now();
        s.proxy = status.proxy;
        s.reported = status.experiments.into_iter().map(|e| (e.id.clone(), e)).collect();
        s.counters = status.counters.into_iter().map(|c| (c.id.clone(), c)).collect();
        let ended: Vec<(String, String)> =
            s.reported.values().filter(|e| !is_active(e.state)).map(|e| (e.id.clone(), e.end_reason.clone())).collect();
        for (id, reason) in ended {
            if let Some(t) =
                inner.experiments.get_mut(&id).filter(|e| e.active()).and_then(|e| e.targets.get_mut(sidecar))
            {
                if matches!(t.state, TargetState::Applied | TargetState::Sent) {
                    *t = Target { state: TargetState::Ended, reason };
                }
            }
        }
    }

    /// An event of one of the sidecar's fleet experiments, passed on to the controller's watchers.
    pub fn event(&self, sidecar: &str, serial: u64, mut event: v1::Event) {
        let mut inner = self.lock();
        if live(&mut inner, sidecar, serial).is_none() {
            return;
        }
        event.sidecar_id = sidecar.to_owned();
        let _ = self.events.send(event);
    }

    /// The sidecar's stream ended: its targets are lost until it comes back.
    pub fn disconnect(&self, sidecar: &str, serial: u64) {
        let mut inner = self.lock();
        let Some(s) = live(&mut inner, sidecar, serial) else { return };
        s.conn = None;
        s.lost_at = Some(Instant::now());
        s.in_flight.clear();
        let reason = format!(
            "its stream to the controller was lost at {}; it ends the experiment after its --controller-grace \
             unless it reconnects",
            humantime::format_rfc3339_seconds(SystemTime::now())
        );
        for e in inner.experiments.values_mut().filter(|e| e.active()) {
            if let Some(t) = e.targets.get_mut(sidecar) {
                if matches!(t.state, TargetState::Applied | TargetState::Sent) {
                    *t = Target { state: TargetState::Lost, reason: reason.clone() };
                }
            }
        }
        tracing::warn!(sidecar, "sidecar disconnected");
    }

    /// Sends a sidecar its state of the world if it changed.
    fn push(&self, inner: &mut Inner, sidecar: &str) {
        let now = Instant::now();
        let mut running: Vec<&FleetExp> = inner
            .experiments
            .values()
            .filter(|e| e.active())
            .filter(|e| e.targets.get(sidecar).is_some_and(|t| t.state != TargetState::Rejected))
            .collect();
        running.sort_by_key(|e| e.seq);
        let ended: Vec<&FleetExp> = inner
            .ended
            .iter()
            .filter_map(|id| inner.experiments.get(id))
            .filter(|e| e.targets.get(sidecar).is_some_and(|t| t.state != TargetState::Rejected))
            .collect();
        let ids: Vec<String> = running.iter().map(|e| e.id.clone()).collect();
        let ended_ids: Vec<String> = ended.iter().map(|e| e.id.clone()).collect();
        let experiments = running
            .iter()
            .map(|e| v1::FleetExperiment {
                id: e.id.clone(),
                spec: Some(e.spec.clone()),
                age: Some(duration(e.age(now))),
                state: 0,
                end_reason: String::new(),
            })
            .collect();
        let ended = ended
            .iter()
            .map(|e| v1::EndedFleetExperiment {
                id: e.id.clone(),
                state: crate::control::proto::state_to_proto(e.state) as i32,
                reason: e.end_reason.clone(),
            })
            .collect();
        let Some(s) = inner.sidecars.get_mut(sidecar) else { return };
        let Some(conn) = &s.conn else { return };
        let signature = (ids, ended_ids);
        if s.sent.as_ref() == Some(&signature) {
            return;
        }
        s.version_sent += 1;
        let version = s.version_sent;
        s.in_flight.push_back((version, signature.0.clone()));
        while s.in_flight.len() > IN_FLIGHT {
            s.in_flight.pop_front();
        }
        s.sent = Some(signature);
        conn.assignments.send_replace(Some(v1::FleetAssignment {
            version,
            controller_instance: self.instance.clone(),
            experiments,
            ended,
        }));
    }

    // === views ===

    /// Connected sidecars and those lost in the last five minutes, by id.
    pub fn sidecars(&self) -> Vec<v1::Sidecar> {
        let inner = self.lock();
        let now = Instant::now();
        inner
            .sidecars
            .iter()
            .filter(|(_, s)| s.conn.is_some() || s.lost_at.is_none_or(|t| now - t < FORGET_LOST))
            .map(|(id, s)| v1::Sidecar {
                id: id.clone(),
                labels: s.hello.labels.clone(),
                address: s.address.clone(),
                connected: s.conn.is_some(),
                version_applied: s.version_applied,
                version_sent: s.version_sent,
                experiments_running: u32::try_from(
                    inner
                        .experiments
                        .values()
                        .filter(|e| e.active())
                        .filter(|e| e.targets.get(id).is_some_and(|t| t.state == TargetState::Applied))
                        .count(),
                )
                .unwrap_or(u32::MAX),
                last_seen: Some(timestamp(s.last_seen)),
                last_rejection: s.last_rejection.clone(),
                edgefault_version: s.hello.edgefault_version.clone(),
                listeners: s.hello.listeners.clone(),
                routes: s.hello.routes.clone(),
            })
            .collect()
    }

    /// GetStats on the controller: fleet experiments' counters summed over their sidecars, the proxy
    /// totals summed over the connected sidecars, and each sidecar's totals.
    pub fn stats(&self, only: Option<&str>) -> v1::GetStatsResponse {
        let inner = self.lock();
        let now = Instant::now();
        let experiments = ordered(&inner)
            .into_iter()
            .filter(|id| only.is_none_or(|o| o == id))
            .filter_map(|id| inner.experiments.get(&id))
            .map(|e| {
                let mut by_kind: HashMap<String, u64> = HashMap::new();
                let mut timeline = String::new();
                for sid in e.targets.keys() {
                    if let Some(c) = inner.sidecars.get(sid).and_then(|s| s.counters.get(&e.id)) {
                        for (k, n) in &c.injected_by_kind {
                            let total = by_kind.entry(k.clone()).or_default();
                            *total = total.saturating_add(*n);
                        }
                        if timeline.is_empty() {
                            timeline.clone_from(&c.timeline_state);
                        }
                    }
                }
                let state = e.shown_state(now);
                let elapsed = match state {
                    State::Pending => Duration::ZERO,
                    _ => e.age(now).saturating_sub(e.start_delay).min(e.duration),
                };
                v1::ExperimentCounters {
                    id: e.id.clone(),
                    name: e.spec.name.clone(),
                    state: crate::control::proto::state_to_proto(state) as i32,
                    stats: Some(sum_stats(&inner, &e.id)),
                    injected_by_kind: by_kind,
                    timeline_state: if e.active() { timeline } else { String::new() },
                    elapsed: Some(duration(elapsed)),
                }
            })
            .collect();
        let mut proxy = v1::ProxyTotals {
            experiments_running: u32::try_from(inner.experiments.values().filter(|e| e.active()).count())
                .unwrap_or(u32::MAX),
            ..Default::default()
        };
        let mut routes: BTreeMap<(String, String), v1::RouteTotals> = BTreeMap::new();
        let mut sidecars = Vec::new();
        for (id, s) in inner.sidecars.iter().filter(|(_, s)| s.conn.is_some()) {
            let Some(p) = &s.proxy else { continue };
            proxy.passed = proxy.passed.saturating_add(p.passed);
            proxy.injected = proxy.injected.saturating_add(p.injected);
            proxy.upstream_error = proxy.upstream_error.saturating_add(p.upstream_error);
            proxy.client_error = proxy.client_error.saturating_add(p.client_error);
            proxy.faults_active = proxy.faults_active.saturating_add(p.faults_active);
            proxy.faults_overflow = proxy.faults_overflow.saturating_add(p.faults_overflow);
            for r in &p.routes {
                let sum = routes.entry((r.listener.clone(), r.route.clone())).or_insert_with(|| v1::RouteTotals {
                    listener: r.listener.clone(),
                    route: r.route.clone(),
                    ..Default::default()
                });
                sum.passed = sum.passed.saturating_add(r.passed);
                sum.injected = sum.injected.saturating_add(r.injected);
                sum.upstream_error = sum.upstream_error.saturating_add(r.upstream_error);
                sum.client_error = sum.client_error.saturating_add(r.client_error);
            }
            sidecars.push(v1::SidecarStats { sidecar_id: id.clone(), proxy: Some(p.clone()) });
        }
        proxy.routes = routes.into_values().collect();
        v1::GetStatsResponse { time: Some(timestamp(SystemTime::now())), experiments, proxy: Some(proxy), sidecars }
    }
}

/// The sidecar's entry, if `serial` is its current stream.
fn live<'a>(inner: &'a mut Inner, sidecar: &str, serial: u64) -> Option<&'a mut SidecarEntry> {
    inner.sidecars.get_mut(sidecar).filter(|s| s.conn.as_ref().is_some_and(|c| c.serial == serial))
}

/// Active experiments in start order.
fn active_in_order(inner: &Inner) -> Vec<String> {
    let mut active: Vec<(u64, String)> =
        inner.experiments.values().filter(|e| e.active()).map(|e| (e.seq, e.id.clone())).collect();
    active.sort();
    active.into_iter().map(|(_, id)| id).collect()
}

/// Active experiments in start order, then ended ones, newest first.
fn ordered(inner: &Inner) -> Vec<String> {
    let mut ids = active_in_order(inner);
    ids.extend(inner.ended.iter().rev().cloned());
    ids
}

/// An experiment's counters summed over the sidecars that reported them.
fn sum_stats(inner: &Inner, id: &str) -> v1::ExperimentStats {
    let mut sum = v1::ExperimentStats::default();
    let Some(e) = inner.experiments.get(id) else { return sum };
    for sid in e.targets.keys() {
        if let Some(s) = inner.sidecars.get(sid).and_then(|s| s.reported.get(id)).and_then(|r| r.stats) {
            sum.matched = sum.matched.saturating_add(s.matched);
            sum.injected = sum.injected.saturating_add(s.injected);
            sum.aborted = sum.aborted.saturating_add(s.aborted);
            sum.delayed = sum.delayed.saturating_add(s.delayed);
            sum.would_inject = sum.would_inject.saturating_add(s.would_inject);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleets_totals_saturate_whatever_the_sidecars_report() {
        let fleet = FleetState::new(Limits::default());
        let huge = v1::ProxyTotals {
            passed: u64::MAX,
            injected: u64::MAX,
            upstream_error: u64::MAX,
            client_error: u64::MAX,
            faults_active: i64::MAX,
            faults_overflow: u64::MAX,
            routes: vec![v1::RouteTotals {
                listener: "web".into(),
                route: "api".into(),
                passed: u64::MAX,
                injected: u64::MAX,
                upstream_error: u64::MAX,
                client_error: u64::MAX,
            }],
            ..Default::default()
        };
        for id in ["s1", "s2"] {
            let sub = fleet.connect(v1::SidecarHello { id: id.into(), ..Default::default() }, "127.0.0.1:1".into());
            fleet.status(id, sub.serial, v1::SidecarStatus { proxy: Some(huge.clone()), ..Default::default() });
        }
        let stats = fleet.stats(None);
        let proxy = stats.proxy.expect("the fleet's totals");
        assert_eq!((proxy.passed, proxy.faults_active), (u64::MAX, i64::MAX));
        assert_eq!(proxy.routes.first().map(|r| r.passed), Some(u64::MAX));
        assert_eq!(stats.sidecars.len(), 2);
    }
}
