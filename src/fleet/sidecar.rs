//! A sidecar's subscription to the controller (`serve --controller URL`): one long-lived stream, the
//! state of the world applied whole or rejected, a report once a second, and the fail-safe: when the
//! stream is lost, the fleet experiments end after `--controller-grace` unless it comes back.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::{broadcast::error::RecvError, mpsc, watch},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;

use super::selector::Labels;
use crate::{
    control::{
        events::StatsSource,
        proto::{duration, event_to_proto, experiment_counters, to_proto},
    },
    ctl::{BearerToken, ClientTls},
    experiment::{
        spec::{pb_duration, validate_spec, Context},
        Placement, Registry,
    },
    pb::v1::{self, fleet_client::FleetClient},
    telemetry::metrics::Metrics,
};

/// Shortest and longest wait before reconnecting (exponential, with full jitter).
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Removed fleet experiments remembered for passing on their end events.
const REMOVED: usize = 64;

/// How a sidecar joins the fleet.
#[derive(Clone)]
pub struct SidecarOptions {
    /// The controller's URL (`http://host:port`, or `https://` with `tls`).
    pub controller: String,
    pub id: String,
    pub labels: Labels,
    /// How long fleet experiments outlive a lost stream.
    pub grace: Duration,
    pub token: Option<String>,
    pub tls: Option<ClientTls>,
    /// How often the sidecar reports its counters.
    pub report_interval: Duration,
    /// HTTP/2 ping period on the stream; a ping unanswered for as long means the stream is lost (a silent
    /// partition closes nothing).
    pub keepalive: Duration,
}

/// A fleet experiment this sidecar holds: the spec as the controller sent it, and its origin on this
/// sidecar's clock (for the age it reports after a reconnect).
struct Held {
    spec: v1::ExperimentSpec,
    origin: Instant,
}

/// Why a session ended.
enum Ended {
    Stopped,
    Lost { why: String, established: bool },
}

pub struct Member {
    opts: SidecarOptions,
    registry: Arc<Registry>,
    stats: StatsSource,
    held: HashMap<String, Held>,
    /// Fleet experiments removed lately, whose end events are still to be passed on.
    removed: VecDeque<String>,
    /// The controller instance last talked to.
    instance: String,
}

impl Member {
    pub fn new(opts: SidecarOptions, registry: Arc<Registry>, metrics: Option<Arc<Metrics>>) -> Self {
        let stats = StatsSource { registry: Arc::clone(&registry), metrics };
        Member { opts, registry, stats, held: HashMap::new(), removed: VecDeque::new(), instance: String::new() }
    }

    /// Keeps the subscription up until `stop` turns true: reconnects with backoff, and ends the fleet
    /// experiments once the stream has been lost for the grace.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut lost_since: Option<Instant> = None;
        loop {
            match self.session(&mut stop).await {
                Ended::Stopped => return,
                Ended::Lost { why, established } => {
                    if established {
                        failures = 0;
                        lost_since = None;
                    }
                    tracing::warn!(controller = %self.opts.controller, reason = %why, "lost the controller");
                }
            }
            let lost = *lost_since.get_or_insert_with(Instant::now);
            failures = failures.saturating_add(1);
            let until = Instant::now() + backoff(failures);
            loop {
                let deadline = lost + self.opts.grace;
                if !self.held.is_empty() && Instant::now() >= deadline {
                    self.end_all_lost();
                }
                let next = if self.held.is_empty() { until } else { until.min(deadline) };
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if Instant::now() >= until {
                    break;
                }
            }
        }
    }

    /// The fail-safe: every fleet experiment ends (ABORTED) when the controller has been gone too long.
    fn end_all_lost(&mut self) {
        let reason = format!(
            "lost the controller {} for {} (--controller-grace)",
            self.opts.controller,
            humantime::format_duration(self.opts.grace)
        );
        let mut ended = 0;
        for id in self.held.keys() {
            ended += usize::from(self.registry.abort(id, &reason));
        }
        tracing::warn!(ended, grace = %humantime::format_duration(self.opts.grace), "fleet experiments ended: the controller is gone");
        self.held.clear();
    }

    fn hello(&self) -> v1::SidecarMessage {
        let topology = self.registry.topology();
        let now = Instant::now();
        let held = self
            .held
            .iter()
            .map(|(id, h)| {
                let info = self.registry.get(id).ok();
                v1::FleetExperiment {
                    id: id.clone(),
                    spec: Some(h.spec.clone()),
                    age: Some(duration(now.saturating_duration_since(h.origin))),
                    state: info.as_ref().map_or(v1::ExperimentState::Aborted as i32, |i| {
                        crate::control::proto::state_to_proto(i.state) as i32
                    }),
                    end_reason: info.map(|i| i.end_reason).unwrap_or_default(),
                }
            })
            .collect();
        let hello = v1::SidecarHello {
            id: self.opts.id.clone(),
            labels: self.opts.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            edgefault_version: env!("CARGO_PKG_VERSION").to_owned(),
            listeners: topology.listener_names().into_iter().map(str::to_owned).collect(),
            routes: topology.route_names().into_iter().map(str::to_owned).collect(),
            controller_instance: self.instance.clone(),
            held,
        };
        v1::SidecarMessage { kind: Some(v1::sidecar_message::Kind::Hello(hello)) }
    }

    fn status(&self) -> v1::SidecarMessage {
        let mut experiments = Vec::new();
        let mut counters = Vec::new();
        for id in self.held.keys() {
            if let Ok(info) = self.registry.get(id) {
                counters.push(experiment_counters(info.clone()));
                let mut e = to_proto(info);
                e.spec = None;
                experiments.push(e);
            }
        }
        let status = v1::SidecarStatus { proxy: Some(self.stats.proxy_totals()), experiments, counters };
        v1::SidecarMessage { kind: Some(v1::sidecar_message::Kind::Status(status)) }
    }

    /// One connection: hello, then assignments, reports and events until the stream ends or `stop`.
    async fn session(&mut self, stop: &mut watch::Receiver<bool>) -> Ended {
        let lost = |why: String| Ended::Lost { why, established: false };
        let endpoint = match crate::ctl::endpoint(&self.opts.controller, self.opts.tls.as_ref()) {
            Ok((_, e)) => e
                .http2_keep_alive_interval(self.opts.keepalive)
                .keep_alive_timeout(self.opts.keepalive)
                .keep_alive_while_idle(true),
            Err(e) => return lost(e.to_string()),
        };
        let channel = tokio::select! {
            c = endpoint.connect() => match c {
                Ok(c) => c,
                Err(e) => return lost(std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())),
            },
            _ = stop.wait_for(|s| *s) => return Ended::Stopped,
        };
        let token = match BearerToken::new(self.opts.token.as_deref()) {
            Ok(t) => t,
            Err(e) => return lost(e.to_string()),
        };
        let mut client = FleetClient::with_interceptor(channel, token).max_decoding_message_size(16 * 1024 * 1024);
        let (tx, rx) = mpsc::channel(32);
        if tx.send(self.hello()).await.is_err() {
            return lost("the stream closed before the hello".into());
        }
        let mut incoming = tokio::select! {
            r = client.subscribe(ReceiverStream::new(rx)) => match r {
                Ok(r) => r.into_inner(),
                Err(s) => return lost(format!("{:?}: {}", s.code(), s.message())),
            },
            _ = stop.wait_for(|s| *s) => return Ended::Stopped,
        };
        let mut events = self.registry.subscribe();
        let mut tick = tokio::time::interval(self.opts.report_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let history = self.stats.metrics.as_ref().map(|m| Arc::clone(&m.history));
        let history_due = tokio::time::sleep(to_report_point());
        tokio::pin!(history_due);
        let mut reported: Option<u64> = None;
        let mut established = false;
        loop {
            let out = tokio::select! {
                m = incoming.message() => match m {
                    Ok(Some(msg)) => {
                        established = true;
                        match self.handle(msg) {
                            Some(ack) => vec![ack, self.status()],
                            None => vec![self.status()],
                        }
                    }
                    Ok(None) => return Ended::Lost { why: "the controller ended the stream".into(), established },
                    Err(s) => return Ended::Lost { why: format!("{:?}: {}", s.code(), s.message()), established },
                },
                _ = tick.tick() => vec![self.status()],
                () = &mut history_due, if history.is_some() => {
                    history_due.as_mut().reset(Instant::now() + to_report_point());
                    match history.as_ref().and_then(|h| h.last_second()).filter(|r| reported != Some(r.time)) {
                        Some(r) => {
                            reported = Some(r.time);
                            vec![v1::SidecarMessage { kind: Some(v1::sidecar_message::Kind::History(r)) }]
                        }
                        None => continue,
                    }
                }
                e = events.recv() => match e {
                    Ok(e) if self.held.contains_key(&*e.experiment) || self.removed.contains(&e.experiment.to_string()) => {
                        vec![v1::SidecarMessage { kind: Some(v1::sidecar_message::Kind::Event(event_to_proto(e))) }]
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return Ended::Stopped,
                },
                _ = stop.wait_for(|s| *s) => return Ended::Stopped,
            };
            for m in out {
                if tx.send(m).await.is_err() {
                    return Ended::Lost { why: "the stream to the controller closed".into(), established };
                }
            }
        }
    }

    /// A message from the controller; returns the acknowledgement to send, if any.
    fn handle(&mut self, msg: v1::ControllerMessage) -> Option<v1::SidecarMessage> {
        match msg.kind? {
            v1::controller_message::Kind::Assignment(a) => {
                let ack = self.apply(a);
                Some(v1::SidecarMessage { kind: Some(v1::sidecar_message::Kind::Ack(ack)) })
            }
            v1::controller_message::Kind::AbortAll(a) => {
                let reason = if a.reason.is_empty() { "AbortAll on the controller".to_owned() } else { a.reason };
                let ids = self.registry.abort_all(&reason);
                tracing::warn!(count = ids.len(), "AbortAll from the controller");
                None
            }
        }
    }

    /// Applies a state of the world: fleet experiments no longer in it end (always, whatever else the
    /// version holds: ending a fault never waits); new ones are checked against this sidecar's routes and
    /// limits, and start all together, or none does and the version is rejected with every reason.
    fn apply(&mut self, a: v1::FleetAssignment) -> v1::VersionAck {
        self.instance.clone_from(&a.controller_instance);
        let wanted: HashSet<&str> = a.experiments.iter().map(|e| e.id.as_str()).collect();
        let ended: HashMap<&str, &v1::EndedFleetExperiment> = a.ended.iter().map(|e| (e.id.as_str(), e)).collect();
        let gone: Vec<String> = self.held.keys().filter(|id| !wanted.contains(id.as_str())).cloned().collect();
        for id in gone {
            match ended.get(id.as_str()) {
                Some(e) if e.state == v1::ExperimentState::Aborted as i32 => {
                    self.registry.abort(&id, &e.reason);
                }
                Some(e) if e.state == v1::ExperimentState::Completed as i32 => {
                    // Its own timer ends it at the same moment; this covers a clock a little behind.
                    let _ = self.registry.stop(&id, "its duration is over on the controller");
                }
                Some(e) => {
                    let _ = self.registry.stop(&id, &e.reason);
                }
                None => {
                    let _ = self.registry.stop(&id, "no longer in the controller's state of the world");
                }
            }
            self.held.remove(&id);
            self.removed.push_back(id);
            if self.removed.len() > REMOVED {
                self.removed.pop_front();
            }
        }
        let limits = self.registry.limits();
        let topology = self.registry.topology();
        let ctx = Context { topology: Some(&topology), limits: &limits };
        let mut rejected = Vec::new();
        let mut new = Vec::new();
        for fe in a.experiments.iter().filter(|e| !self.held.contains_key(&e.id)) {
            let reject = |reason: String| v1::Rejection { experiment_id: fe.id.clone(), reason };
            let Some(spec) = &fe.spec else {
                rejected.push(reject("no spec".into()));
                continue;
            };
            let age = fe.age.as_ref().and_then(|d| pb_duration(d).ok()).unwrap_or_default();
            // The controller holds the lease; the selector is the controller's business.
            let local = v1::ExperimentSpec { lease: None, sidecars: None, ..spec.clone() };
            match validate_spec(&local, &ctx) {
                Ok(def) => new.push((fe.id.clone(), spec.clone(), def, age)),
                Err(v) => rejected.push(reject(v.to_string())),
            }
        }
        let active = self.registry.running();
        if rejected.is_empty() && active + new.len() > limits.max_active {
            let why = format!("{active} experiments are already active here, the sidecar's limit (limits.max_active)");
            rejected
                .extend(new.iter().map(|(id, ..)| v1::Rejection { experiment_id: id.clone(), reason: why.clone() }));
        }
        if !rejected.is_empty() {
            return v1::VersionAck { version: a.version, rejected };
        }
        let now = Instant::now();
        let mut started: Vec<String> = Vec::new();
        for (id, spec, def, age) in new {
            let origin = now.checked_sub(age).unwrap_or(now);
            if age >= def.start_delay + def.duration {
                continue;
            }
            let shown = v1::ExperimentSpec { lease: None, ..spec.clone() };
            match self.registry.start_placed(shown, def, Placement { id: Some(id.clone()), age }) {
                Ok(_) => {
                    self.held.insert(id.clone(), Held { spec, origin });
                    started.push(id);
                }
                Err(e) => {
                    for s in &started {
                        let _ = self.registry.stop(s, "its fleet version was rejected");
                        self.held.remove(s);
                    }
                    return v1::VersionAck {
                        version: a.version,
                        rejected: vec![v1::Rejection { experiment_id: id, reason: e.to_string() }],
                    };
                }
            }
        }
        v1::VersionAck { version: a.version, rejected: Vec::new() }
    }
}

/// How long until the next report of a second's history: a tenth of a second into the next wall-clock
/// second, after the history has closed the last one (it does 2 ms in), and well before the controller
/// closes it (half a second in). Computed afresh for each report, so that the wall clock's adjustments
/// do not move the reports away from that point.
fn to_report_point() -> Duration {
    let into = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let wait = Duration::from_nanos(u64::from((1_100_000_000 - into) % 1_000_000_000));
    if wait < Duration::from_millis(1) {
        wait + Duration::from_secs(1)
    } else {
        wait
    }
}

/// The wait before reconnect attempt `n` (1 first): exponential from 200ms to 10s, each
/// drawn between half the step and the step, so a fleet that lost its controller does not come back at once.
fn backoff(n: u32) -> Duration {
    let ceiling = BACKOFF_MIN.saturating_mul(1u32 << n.saturating_sub(1).min(6)).min(BACKOFF_MAX);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::random_range(millis / 2..=millis))
}
