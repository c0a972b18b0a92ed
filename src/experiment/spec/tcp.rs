//! Proto → domain for toxics (the byte-level faults of TCP listeners), and the rules that keep TCP and HTTP
//! experiments apart: an experiment with toxics names the TCP listeners it targets and nothing else, has no
//! HTTP matcher and no HTTP fault; an experiment that names a TCP listener has only toxics.

use std::{num::NonZeroU64, time::Duration};

use super::Collector;
use crate::{
    fault::{Direction, Toxic, ToxicKind},
    pb::v1 as pb,
    topology::Topology,
};

/// `faults[i].toxic`; `None` when invalid (the problems are in `c`).
pub(super) fn convert(t: &pb::ToxicFault, path: &str, c: &mut Collector) -> Option<Toxic> {
    use pb::toxic_fault::Kind as K;
    let direction = match t.direction.to_ascii_lowercase().as_str() {
        "" | "downstream" => Some(Direction::Downstream),
        "upstream" => Some(Direction::Upstream),
        other => {
            c.add(
                format!("{path}.direction"),
                format!("{other:?} is not a direction: \"upstream\" (client to server) or \"downstream\" (server to client)"),
            );
            None
        }
    };
    let kind = match &t.kind {
        None => {
            c.add(path, "set one of latency, bandwidth, slicer, reset_peer, timeout, limit_data, slow_close");
            return None;
        }
        Some(K::Latency(l)) => {
            let p = format!("{path}.latency");
            let latency = c.duration(&l.latency, &format!("{p}.latency"), true)?;
            let jitter = c.duration(&l.jitter, &format!("{p}.jitter"), false).unwrap_or(Duration::ZERO);
            ToxicKind::Latency { latency, jitter }
        }
        Some(K::Bandwidth(b)) => match NonZeroU64::new(b.bytes_per_second) {
            Some(bytes_per_second) => ToxicKind::Bandwidth { bytes_per_second },
            None => {
                c.add(format!("{path}.bandwidth.bytes_per_second"), "required: at least 1 byte per second");
                return None;
            }
        },
        Some(K::Slicer(s)) => {
            let p = format!("{path}.slicer");
            let Some(average_size) = NonZeroU64::new(s.average_size) else {
                c.add(format!("{p}.average_size"), "required: at least 1 byte");
                return None;
            };
            if s.size_variation >= s.average_size {
                c.add(
                    format!("{p}.size_variation"),
                    format!("must be less than average_size ({}), got {}", s.average_size, s.size_variation),
                );
                return None;
            }
            let delay = c.duration(&s.delay, &format!("{p}.delay"), false).unwrap_or(Duration::ZERO);
            ToxicKind::Slicer { average_size, size_variation: s.size_variation, delay }
        }
        Some(K::ResetPeer(r)) => {
            let timeout = c.duration(&r.timeout, &format!("{path}.reset_peer.timeout"), false);
            ToxicKind::ResetPeer { timeout: timeout.unwrap_or(Duration::ZERO) }
        }
        Some(K::Timeout(t)) => {
            let timeout = c.duration(&t.timeout, &format!("{path}.timeout.timeout"), false);
            ToxicKind::Timeout { timeout: timeout.filter(|d| !d.is_zero()) }
        }
        Some(K::LimitData(l)) => ToxicKind::LimitData { bytes: l.bytes },
        Some(K::SlowClose(s)) => {
            let delay = c.duration(&s.delay, &format!("{path}.slow_close.delay"), false);
            ToxicKind::SlowClose { delay: delay.unwrap_or(Duration::ZERO) }
        }
    };
    Some(Toxic { direction: direction?, kind })
}

/// The HTTP-only conditions of a match, by field name, that are set: a TCP connection has no host either.
fn http_matchers(m: &pb::Match) -> Vec<&'static str> {
    let hosts = (!m.hosts.is_empty()).then_some("hosts");
    hosts.into_iter().chain(super::tls::request_matchers(m)).collect()
}

/// Keeps TCP and HTTP apart (see the module's doc). `topology`: `None` when validated without the server's
/// config (the kinds of listeners are then unknown, and only what the spec alone shows is checked).
pub(super) fn check_kinds(spec: &pb::ExperimentSpec, topology: Option<&Topology>, c: &mut Collector) {
    let default_match = pb::Match::default();
    let m = spec.r#match.as_ref().unwrap_or(&default_match);
    // Where the toxics and the HTTP faults are, in `faults` and in every phase's (TLS faults are kept apart
    // by `convert::tls`).
    let (toxic_at, http_at): (Vec<_>, Vec<_>) = super::fault_paths(spec)
        .filter(|(_, f)| !matches!(f.kind, Some(pb::fault::Kind::Tls(_)) | None))
        .map(|(path, f)| (path, matches!(f.kind, Some(pb::fault::Kind::Toxic(_)))))
        .partition(|(_, toxic)| *toxic);
    // The TCP listeners the match names, by field path.
    let named_tcp: Vec<(String, &str)> = match topology {
        Some(t) => m
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| t.is_tcp_listener(l))
            .map(|(i, l)| (format!("match.listeners[{i}]"), l.as_str()))
            .chain(
                m.routes
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| t.is_tcp_route(r))
                    .map(|(i, r)| (format!("match.routes[{i}]"), r.as_str())),
            )
            .collect(),
        None => Vec::new(),
    };

    if !toxic_at.is_empty() || !named_tcp.is_empty() {
        let why = match (named_tcp.first(), toxic_at.first()) {
            (Some((_, l)), _) => format!("the experiment targets tcp listener {l:?}"),
            (None, _) => "the experiment has toxic faults (TCP listeners)".to_owned(),
        };
        for field in http_matchers(m) {
            c.add(format!("match.{field}"), format!("an HTTP condition, and {why}: a connection has no {field}"));
        }
        for (path, _) in &http_at {
            c.add(
                path,
                format!("an HTTP fault, and {why}: TCP listeners take toxic faults only (latency, bandwidth, slicer, reset_peer, timeout, limit_data, slow_close)"),
            );
        }
        if let Some(s) = &spec.sticky {
            if !matches!(s.key, Some(pb::sticky::Key::ClientIp(_)) | None) {
                c.add("sticky", format!("{why}: a connection is identified by client_ip only (no header or cookie)"));
            }
        }
    }
    if let Some((first, _)) = toxic_at.first() {
        check_toxic_targets(spec, m, first, topology, c);
    }
}

/// An experiment with toxics (the first at `first`): no phases, and only TCP listeners or their routes as
/// targets.
fn check_toxic_targets(
    spec: &pb::ExperimentSpec,
    m: &pb::Match,
    first: &str,
    topology: Option<&Topology>,
    c: &mut Collector,
) {
    if !spec.phases.is_empty() {
        c.add(
            "phases",
            format!(
                "the experiment has toxic faults ({first}.toxic): a connection takes its toxics once, so \
                 phases cannot change them; start one experiment per step (start_delay)"
            ),
        );
    }
    if m.listeners.is_empty() && m.routes.is_empty() {
        c.add(
            format!("{first}.toxic"),
            "toxics act on TCP listeners: name them in match.listeners (or their routes in match.routes)",
        );
    }
    if let Some(t) = topology {
        for (i, l) in m.listeners.iter().enumerate() {
            if t.has_listener(l) && !t.is_tcp_listener(l) {
                c.add(
                    format!("match.listeners[{i}]"),
                    format!("{l:?} is an HTTP listener; toxic faults apply to tcp listeners only (mode: tcp)"),
                );
            }
        }
        for (i, r) in m.routes.iter().enumerate() {
            if t.has_route(r) && !t.is_tcp_route(r) {
                c.add(
                    format!("match.routes[{i}]"),
                    format!("{r:?} is an HTTP route; toxic faults apply to tcp listeners only (mode: tcp)"),
                );
            }
        }
    }
}
