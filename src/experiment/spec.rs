//! Proto → domain, checked once at the boundary. A spec either becomes an [`ExperimentDef`] that is valid
//! by construction, or every problem in it is reported with its field path.

use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;

pub use crate::fault::check::{human, pb_duration, Violation, Violations};
use crate::{
    experiment::{ExperimentDef, Limits},
    fault::{
        check::{Collector, MAX_LIST},
        Fault, Faults, HostPattern, Matcher, Percentage, Predicate, TlsFault, ValueMatch,
    },
    pb::v1 as pb,
    topology::Topology,
};

mod guards;
mod limits;
mod phases;
mod realism;
mod tcp;
mod tls;
mod traffic;

const MAX_NAME: usize = 128;
/// Longest `description`.
pub const MAX_DESCRIPTION: usize = 1024;

/// What validation checks a spec against: the routes that exist and the server's limits.
pub struct Context<'a> {
    /// `None`: listener and route names are not checked (a file validated without its server's config).
    pub topology: Option<&'a Topology>,
    pub limits: &'a Limits,
}

/// Checks a name (of an experiment, a phase): given, bounded, printable.
fn check_name(name: &str, field: &str, what: &str, c: &mut Collector) {
    if name.is_empty() {
        c.add(field, format!("required: give the {what} a name (shown in lists, logs and metrics)"));
    } else if name.chars().count() > MAX_NAME {
        c.add(field, format!("at most {MAX_NAME} characters"));
    } else if let Some(bad) = name.chars().find(|c| crate::text::is_unsafe(*c)) {
        c.add(
            field,
            format!(
                "must not contain control characters or bidirectional overrides (found {}): names are printed \
                 in terminals and logs",
                bad.escape_unicode()
            ),
        );
    }
}

/// Checks a spec and builds the domain value.
pub fn validate_spec(spec: &pb::ExperimentSpec, ctx: &Context<'_>) -> Result<ExperimentDef, Violations> {
    let mut c = Collector::new(ctx.topology.map(|t| t.pages().clone()), ctx.limits.max_duration);
    let scaled = realism::time_scaled(spec, &mut c);
    let spec = scaled.as_ref().unwrap_or(spec);

    let name = spec.name.trim();
    check_name(name, "name", "experiment", &mut c);
    check_description(&spec.description, &mut c);
    let default_match = pb::Match::default();
    let m = spec.r#match.as_ref().unwrap_or(&default_match);
    let (listeners, routes, matcher) = convert_match(m, ctx.topology, &mut c);
    let percentage = match spec.percentage {
        None => Percentage::ALL,
        Some(p) => Percentage::new(p).unwrap_or_else(|| {
            c.add("percentage", format!("must be between 0 and 100, got {p}"));
            Percentage::ALL
        }),
    };
    let duration = run_duration(spec.duration.as_ref(), ctx.limits, &mut c);
    let start_delay = spec.start_delay.as_ref().map_or(Duration::ZERO, |d| {
        match pb_duration(d) {
            Ok(d) => c.within(d, ctx.limits.max_start_delay, "start_delay", "limits.max_start_delay"),
            Err(why) => {
                c.add("start_delay", why);
                None
            }
        }
        .unwrap_or(Duration::ZERO)
    });

    if spec.faults.is_empty() && (spec.phases.is_empty() || spec.phases.iter().any(|p| p.faults.is_empty())) {
        let where_ = if spec.phases.is_empty() { "" } else { " here, or in every phase" };
        c.add("faults", format!("at least one fault is required (abort or delay){where_}"));
    }
    let family = Family::of(spec);
    let faults = convert_faults(&spec.faults, "faults", family, &mut c);
    tcp::check_kinds(spec, ctx.topology, &mut c);
    tls::check(spec, ctx.topology, &mut c);
    limits::check(spec, &routes, ctx.limits, &mut c);
    let lease = limits::lease(spec.lease.as_ref(), ctx.limits, &mut c);
    let guards = guards::convert(&spec.guards, &mut c);
    let trigger = realism::trigger(spec.trigger.as_ref(), &mut c);
    let timeline = realism::timeline(spec, &mut c);
    let sticky = realism::sticky(spec.sticky.as_ref(), &mut c);
    let phases = phases::convert(spec, &faults, family, percentage, duration, &mut c);
    c.finish(|| ExperimentDef {
        name: name.to_owned(),
        listeners,
        routes,
        matcher,
        percentage,
        duration,
        start_delay,
        faults,
        seed: spec.seed,
        lease,
        dry_run: spec.dry_run,
        guards,
        trigger,
        timeline,
        sticky,
        phases,
    })
}

/// `description`: bounded, printable (newlines allowed).
fn check_description(description: &str, c: &mut Collector) {
    if description.chars().count() > MAX_DESCRIPTION {
        c.add("description", format!("at most {MAX_DESCRIPTION} characters"));
    } else if let Some(bad) = description.chars().find(|&ch| ch != '\n' && crate::text::is_unsafe(ch)) {
        c.add(
            "description",
            format!("must not contain control characters other than newlines (found {})", bad.escape_unicode()),
        );
    }
}

/// `duration`: longer than zero and within `limits.max_duration`; absent, the server's default.
fn run_duration(d: Option<&pbjson_types::Duration>, limits: &Limits, c: &mut Collector) -> Duration {
    let Some(d) = d else { return limits.default_duration };
    match pb_duration(d) {
        Ok(d) if d.is_zero() => {
            c.add("duration", "must be longer than zero (leave it out for the server's default)");
            d
        }
        Ok(d) => c.within(d, limits.max_duration, "duration", "limits.max_duration").unwrap_or(d),
        Err(why) => {
            c.add("duration", why);
            Duration::ZERO
        }
    }
}

/// The family of an experiment's faults: its first toxic or TLS fault decides, else HTTP (a mix is reported
/// by `tcp::check_kinds` and `tls::check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Http,
    Tcp,
    Tls,
}

impl Family {
    fn of(spec: &pb::ExperimentSpec) -> Family {
        let family = |(_, f): (String, &pb::Fault)| match f.kind {
            Some(pb::fault::Kind::Toxic(_)) => Some(Family::Tcp),
            Some(pb::fault::Kind::Tls(_)) => Some(Family::Tls),
            _ => None,
        };
        fault_paths(spec).find_map(family).unwrap_or(Family::Http)
    }
}

/// Every fault of a spec with its field path: `faults[i]`, then `phases[p].faults[i]`.
fn fault_paths(spec: &pb::ExperimentSpec) -> impl Iterator<Item = (String, &pb::Fault)> {
    let phases = spec.phases.iter().enumerate().flat_map(|(p, phase)| {
        phase.faults.iter().enumerate().map(move |(i, f)| (format!("phases[{p}].faults[{i}]"), f))
    });
    spec.faults.iter().enumerate().map(|(i, f)| (format!("faults[{i}]"), f)).chain(phases)
}

/// Converts a list of faults of `family` whose field path is `prefix` ("faults", "phases[1].faults"). Faults
/// of another family are left out: the checks of kinds report them.
fn convert_faults(list: &[pb::Fault], prefix: &str, family: Family, c: &mut Collector) -> Faults {
    if list.len() > MAX_LIST {
        c.add(prefix, format!("at most {MAX_LIST} faults"));
    }
    let mut faults = match family {
        Family::Http => Faults::Http(Vec::with_capacity(list.len())),
        Family::Tcp => Faults::Tcp(Vec::with_capacity(list.len())),
        Family::Tls => Faults::Tls(Vec::with_capacity(list.len())),
    };
    // The first fault that ends every request (or handshake): the one after it would never run.
    let mut ends_at: Option<usize> = None;
    for (i, f) in list.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        if ends_at.is_some_and(|a| i == a + 1) {
            c.add(
                &path,
                "comes after a fault that ends the request (abort, hang, reset): it would never run (put it before)",
            );
        }
        let Some(kind) = &f.kind else {
            c.add(path, format!("empty fault: set one of {}", Fault::KINDS.join(", ")));
            continue;
        };
        let ends = match (&mut faults, kind) {
            (Faults::Http(list), kind) => Fault::convert(kind, &path, c).map(|f| {
                let ends = f.ends_request();
                list.push(f);
                ends
            }),
            (Faults::Tcp(list), pb::fault::Kind::Toxic(t)) => {
                list.extend(tcp::convert(t, &format!("{path}.toxic"), c));
                None
            }
            (Faults::Tls(list), pb::fault::Kind::Tls(t)) => tls::convert(t, &format!("{path}.tls"), c).map(|f| {
                let ends = !matches!(f, TlsFault::Stall(_));
                list.push(f);
                ends
            }),
            (Faults::Tcp(_) | Faults::Tls(_), _) => None,
        };
        if ends == Some(true) && ends_at.is_none() {
            ends_at = Some(i);
        }
    }
    faults
}

fn convert_match(m: &pb::Match, topology: Option<&Topology>, c: &mut Collector) -> (Vec<String>, Vec<String>, Matcher) {
    let mut matcher = Matcher::default();

    if let Some(topology) = topology {
        check_targets(m, topology, c);
    }
    c.bounded(&m.listeners, "match.listeners");
    c.bounded(&m.routes, "match.routes");
    if c.bounded(&m.hosts, "match.hosts") {
        for (i, h) in m.hosts.iter().enumerate() {
            if h.is_empty() || h.contains(['/', ' ']) {
                c.add(
                    format!("match.hosts[{i}]"),
                    format!("{h:?} is not a host name (\"api.example.com\" or \"*.example.com\")"),
                );
            } else {
                matcher.hosts.push(HostPattern::parse(h.split(':').next().unwrap_or(h)));
            }
        }
    }
    if !m.path_prefix.is_empty() {
        if m.path_prefix.starts_with('/') {
            matcher.path_prefix = Some(m.path_prefix.clone());
        } else {
            c.add("match.path_prefix", format!("must start with '/', got {:?}", m.path_prefix));
        }
    }
    if !m.path_exact.is_empty() {
        if m.path_exact.starts_with('/') {
            matcher.path_exact = Some(m.path_exact.clone());
        } else {
            c.add("match.path_exact", format!("must start with '/', got {:?}", m.path_exact));
        }
    }
    if !m.path_regex.is_empty() {
        matcher.path_regex = c.regex(&m.path_regex, "match.path_regex");
    }
    if c.bounded(&m.methods, "match.methods") {
        for (i, name) in m.methods.iter().enumerate() {
            match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
                Ok(method) if !name.is_empty() => matcher.methods.push(method),
                _ => c.add(format!("match.methods[{i}]"), format!("{name:?} is not an HTTP method")),
            }
        }
    }
    header_and_query(m, &mut matcher, c);
    if c.bounded(&m.client_cidrs, "match.client_cidrs") {
        for (i, s) in m.client_cidrs.iter().enumerate() {
            match s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)) {
                Ok(net) => matcher.client_cidrs.push(net),
                Err(_) => c.add(
                    format!("match.client_cidrs[{i}]"),
                    format!("{s:?} is not a network (\"10.0.0.0/8\", \"::1/128\") or an address"),
                ),
            }
        }
    }
    if let Some(g) = &m.grpc {
        traffic::grpc(g, m, &mut matcher, c);
    }
    (m.listeners.clone(), m.routes.clone(), matcher)
}

/// `match.headers` and `match.query`: valid names, one way of matching each value.
fn header_and_query(m: &pb::Match, matcher: &mut Matcher, c: &mut Collector) {
    if c.bounded(&m.headers, "match.headers") {
        for (i, h) in m.headers.iter().enumerate() {
            let path = format!("match.headers[{i}]");
            let value = h.value.as_ref().map(|v| match v {
                pb::header_match::Value::Exact(s) => Val::Exact(s),
                pb::header_match::Value::Regex(s) => Val::Regex(s),
                pb::header_match::Value::Present(b) => Val::Present(*b),
            });
            match HeaderName::from_bytes(h.name.as_bytes()) {
                Ok(name) => {
                    if let Some(p) = predicate(name.as_str(), value, &path, c) {
                        matcher.headers.push(p);
                    }
                }
                Err(_) => c.add(format!("{path}.name"), format!("{:?} is not a valid header name", h.name)),
            }
        }
    }
    if c.bounded(&m.cookies, "match.cookies") {
        for (i, k) in m.cookies.iter().enumerate() {
            let path = format!("match.cookies[{i}]");
            let value = k.value.as_ref().map(|v| match v {
                pb::cookie_match::Value::Exact(s) => Val::Exact(s),
                pb::cookie_match::Value::Regex(s) => Val::Regex(s),
                pb::cookie_match::Value::Present(b) => Val::Present(*b),
            });
            let token = !k.name.is_empty()
                && k.name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !token {
                c.add(format!("{path}.name"), format!("{:?} is not a cookie name", crate::text::excerpt(&k.name, 64)));
            } else if let Some(p) = predicate(&k.name, value, &path, c) {
                matcher.cookies.push(p);
            }
        }
    }
    if c.bounded(&m.query, "match.query") {
        for (i, q) in m.query.iter().enumerate() {
            let path = format!("match.query[{i}]");
            let value = q.value.as_ref().map(|v| match v {
                pb::query_match::Value::Exact(s) => Val::Exact(s),
                pb::query_match::Value::Regex(s) => Val::Regex(s),
                pb::query_match::Value::Present(b) => Val::Present(*b),
            });
            if q.name.is_empty() {
                c.add(format!("{path}.name"), "required");
            } else if let Some(p) = predicate(&q.name, value, &path, c) {
                matcher.query.push(p);
            }
        }
    }
}

fn check_targets(m: &pb::Match, topology: &Topology, c: &mut Collector) {
    for (i, l) in m.listeners.iter().enumerate() {
        if !topology.has_listener(l) {
            c.add(
                format!("match.listeners[{i}]"),
                format!("no listener named {l:?} (listeners: {})", topology.listener_names().join(", ")),
            );
        }
    }
    for (i, r) in m.routes.iter().enumerate() {
        if !topology.has_route(r) {
            c.add(
                format!("match.routes[{i}]"),
                format!("no route named {r:?} (routes: {})", topology.route_names().join(", ")),
            );
        } else if !m.listeners.is_empty() && !m.listeners.iter().any(|l| topology.listener_has_route(l, r)) {
            c.add(format!("match.routes[{i}]"), format!("route {r:?} is on none of the listeners in match.listeners"));
        }
    }
}

enum Val<'a> {
    Exact(&'a str),
    Regex(&'a str),
    Present(bool),
}

fn predicate(name: &str, value: Option<Val<'_>>, path: &str, c: &mut Collector) -> Option<Predicate> {
    let value = match value {
        None => {
            c.add(path, "set one of exact, regex, present");
            return None;
        }
        Some(Val::Exact(s)) => ValueMatch::Exact(s.to_owned()),
        Some(Val::Regex(s)) => ValueMatch::Regex(c.regex(s, &format!("{path}.regex"))?),
        Some(Val::Present(b)) => ValueMatch::Present(b),
    };
    Some(Predicate { name: name.to_owned(), value })
}
