//! Domain values as the wire carries them: experiments, their states and counters, events, times.

use std::time::{Duration, SystemTime};

use crate::{
    experiment::{events::Counts, Event, EventKind, ExperimentInfo, State},
    pb::v1,
    telemetry::history::{Query, Resolution, Snapshot},
};

pub fn timestamp(t: SystemTime) -> pbjson_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub fn state_to_proto(s: State) -> v1::ExperimentState {
    match s {
        State::Pending => v1::ExperimentState::Pending,
        State::Running => v1::ExperimentState::Running,
        State::Completed => v1::ExperimentState::Completed,
        State::Stopped => v1::ExperimentState::Stopped,
        State::Aborted => v1::ExperimentState::Aborted,
    }
}

/// An experiment state on the wire as people read it: `pending`, `running`, `completed`, `stopped`,
/// `aborted` (`unknown` for a value this build does not know).
pub fn state_name(state: i32) -> &'static str {
    match v1::ExperimentState::try_from(state) {
        Ok(v1::ExperimentState::Pending) => "pending",
        Ok(v1::ExperimentState::Running) => "running",
        Ok(v1::ExperimentState::Completed) => "completed",
        Ok(v1::ExperimentState::Stopped) => "stopped",
        Ok(v1::ExperimentState::Aborted) => "aborted",
        _ => "unknown",
    }
}

/// A sidecar target's state as people read it: `sent`, `applied`, `rejected`, `lost`, `ended`.
pub fn target_state_name(state: i32) -> &'static str {
    match v1::SidecarTargetState::try_from(state) {
        Ok(v1::SidecarTargetState::Sent) => "sent",
        Ok(v1::SidecarTargetState::Applied) => "applied",
        Ok(v1::SidecarTargetState::Rejected) => "rejected",
        Ok(v1::SidecarTargetState::Lost) => "lost",
        Ok(v1::SidecarTargetState::Ended) => "ended",
        _ => "unknown",
    }
}

/// Whether a state on the wire is pending or running.
pub fn is_active(state: i32) -> bool {
    state == v1::ExperimentState::Pending as i32 || state == v1::ExperimentState::Running as i32
}

pub fn to_proto(e: ExperimentInfo) -> v1::Experiment {
    let counts = e.counts();
    v1::Experiment {
        id: e.id,
        spec: Some(e.spec),
        state: state_to_proto(e.state) as i32,
        created_at: Some(timestamp(e.created_at)),
        started_at: e.started_at.map(timestamp),
        ends_at: e.ends_at.map(timestamp),
        ended_at: e.ended_at.map(timestamp),
        end_reason: e.end_reason,
        stats: Some(stats(counts)),
        lease_expires_at: e.lease_expires_at.map(timestamp),
        spec_omitted: false,
        effective_duration: Some(duration(e.effective_duration)),
        timeline_state: e.timeline_state.unwrap_or_default(),
        sidecars: Vec::new(),
        phase: e.phase.map(|p| v1::PhaseState {
            index: u32::try_from(p.index).unwrap_or(u32::MAX),
            name: p.name,
            next_change_at: p.next.as_ref().map(|(at, _)| timestamp(*at)),
            next_name: p.next.map(|(_, name)| name).unwrap_or_default(),
        }),
    }
}

pub fn experiment_counters(e: ExperimentInfo) -> v1::ExperimentCounters {
    let elapsed = match e.started_at {
        Some(start) => e.ended_at.unwrap_or_else(std::time::SystemTime::now).duration_since(start).unwrap_or_default(),
        None => Duration::ZERO,
    };
    let counts = e.counts();
    v1::ExperimentCounters {
        id: e.id,
        name: e.spec.name,
        state: state_to_proto(e.state) as i32,
        stats: Some(stats(counts)),
        injected_by_kind: e.by_kind.into_iter().map(|(k, n)| (k.to_owned(), n)).collect(),
        timeline_state: e.timeline_state.unwrap_or_default(),
        elapsed: Some(duration(elapsed)),
    }
}

pub fn duration(d: Duration) -> pbjson_types::Duration {
    pbjson_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub fn stats(c: Counts) -> v1::ExperimentStats {
    v1::ExperimentStats {
        matched: c.matched,
        injected: c.injected,
        aborted: c.aborted,
        delayed: c.delayed,
        would_inject: c.would_inject,
    }
}

/// A spec's problems as ValidateExperiment returns them.
pub fn violations(v: crate::fault::check::Violations) -> Vec<v1::FieldViolation> {
    v.0.into_iter().map(|v| v1::FieldViolation { field: v.field, description: v.description }).collect()
}

/// An event as the wire carries it.
pub fn event_to_proto(e: Event) -> v1::Event {
    use v1::event::Kind;
    let kind = match e.kind {
        EventKind::Started { state, spec } => {
            Kind::Started(v1::ExperimentStarted { state: state_to_proto(state) as i32, spec: Some(*spec) })
        }
        EventKind::Running => Kind::Running(v1::ExperimentRunning {}),
        EventKind::Timeline { phase, state } => Kind::Timeline(v1::TimelineChanged {
            phase,
            percentage: state.percentage.percent(),
            flap_cycle: state.flap.map(|(c, _)| c).unwrap_or_default(),
            state: state.to_string(),
        }),
        EventKind::GuardTripped { reason } => Kind::GuardTripped(v1::GuardTripped { reason }),
        EventKind::LeaseExpired => Kind::LeaseExpired(v1::LeaseExpired {}),
        EventKind::Ended { state, reason, counters } => {
            let ended = v1::ExperimentEnded { reason, stats: Some(stats(counters)) };
            match state {
                State::Completed => Kind::Expired(ended),
                State::Stopped => Kind::Stopped(ended),
                // Ended is only sent for ended states; an active one here would be a bug, reported as an abort.
                State::Aborted | State::Pending | State::Running => Kind::Aborted(ended),
            }
        }
    };
    v1::Event {
        time: Some(timestamp(e.time)),
        experiment_id: e.experiment.to_string(),
        experiment_name: e.name.to_string(),
        sidecar_id: String::new(),
        kind: Some(kind),
    }
}

/// A history snapshot on the wire.
pub fn history_to_proto(s: Snapshot) -> v1::GetHistoryResponse {
    v1::GetHistoryResponse {
        resolution_seconds: s.resolution_seconds,
        routes: s
            .routes
            .into_iter()
            .map(|r| v1::RouteHistory {
                listener: r.listener,
                route: r.route,
                points: r
                    .points
                    .into_iter()
                    .map(|p| v1::RoutePoint {
                        time: p.t,
                        requests: p.requests,
                        status: p.status.to_vec(),
                        injected: p.injected,
                        upstream_errors: p.upstream_errors,
                        p50_ms: p.p50_ms,
                        p99_ms: p.p99_ms,
                    })
                    .collect(),
            })
            .collect(),
        experiments: s
            .experiments
            .into_iter()
            .map(|e| v1::ExperimentHistory {
                id: e.id,
                name: e.name,
                points: e
                    .points
                    .into_iter()
                    .map(|p| v1::ExperimentPoint { time: p.t, matched: p.matched, injected: p.injected })
                    .collect(),
            })
            .collect(),
    }
}

/// What a GetHistory request asks for.
pub fn history_query(r: &v1::GetHistoryRequest) -> Result<Query, tonic::Status> {
    let since = match &r.since {
        None => None,
        Some(t) => match u64::try_from(t.seconds) {
            Ok(s) => Some(std::time::UNIX_EPOCH + Duration::from_secs(s)),
            Err(_) => return Err(tonic::Status::invalid_argument(format!("since: {}s is before 1970", t.seconds))),
        },
    };
    let resolution = match v1::HistoryResolution::try_from(r.resolution) {
        Ok(v1::HistoryResolution::Minute) => Resolution::Minute,
        Ok(_) => Resolution::Second,
        Err(_) => {
            return Err(tonic::Status::invalid_argument(format!("resolution: {} is not a resolution", r.resolution)))
        }
    };
    Ok(Query { since, resolution })
}
