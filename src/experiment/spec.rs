//! Proto → domain, checked once at the boundary. A spec either becomes an [`ExperimentDef`] that is valid
//! by construction, or every problem in it is reported with its field path.

use std::{fmt, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use ipnet::IpNet;
use rand_distr::{LogNormal, Normal};
use regex::{Regex, RegexBuilder};

use crate::{
    experiment::{ExperimentDef, Limits},
    fault::{
        page::{Location, PageTemplates, Preset},
        Abort, Delay, DelayDistribution, Fault, GrpcCode, HostPattern, Matcher, Page, Percentage, Predicate,
        ValueMatch,
    },
    pb::v1 as pb,
    topology::Topology,
};

mod guards;
mod limits;
mod phases;
mod realism;
mod response;
mod tcp;
mod tls;
mod traffic;

/// Regexes are compiled with this size limit, so a hostile pattern cannot take the server's memory.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// At most this many entries in any one matcher list or header map.
const MAX_LIST: usize = 256;
const MAX_NAME: usize = 128;
/// Longest `description`.
pub const MAX_DESCRIPTION: usize = 1024;
/// At most this many problems are reported for one spec (then one saying how many more there were).
const MAX_VIOLATIONS: usize = 100;
/// What a violation may echo of the input: its field path and its description are cut to these lengths.
const MAX_FIELD: usize = 256;
const MAX_VIOLATION_TEXT: usize = 1024;
const MAX_BODY: usize = 1024 * 1024;

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// protobuf field path: `faults[0].abort.http_status`.
    pub field: String,
    pub description: String,
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid experiment: ")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// What validation checks a spec against: the routes that exist and the server's limits.
pub struct Context<'a> {
    /// `None`: listener and route names are not checked (a file validated without its server's config).
    pub topology: Option<&'a Topology>,
    pub limits: &'a Limits,
}

/// The problems found so far, and the config's page templates a spec may name (`None`: not known, when a
/// file is validated without its server's config).
struct Collector(Vec<Violation>, Option<PageTemplates>, MaxDuration);

/// The server's `limits.max_duration`: no duration in a spec may be longer (what the experiment would
/// not outlive, a fault of it could not use).
#[derive(Clone, Copy)]
struct MaxDuration(Duration);

impl Collector {
    /// Records a problem. Whatever it echoes of the input is bounded (see [`MAX_FIELD`]), and so is the
    /// count of problems.
    fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        match self.0.len() {
            n if n < MAX_VIOLATIONS => {
                let (field, description) = (field.into(), description.into());
                self.0.push(Violation {
                    field: crate::text::excerpt(&field, MAX_FIELD).into_owned(),
                    description: crate::text::excerpt(&description, MAX_VIOLATION_TEXT).into_owned(),
                });
            }
            n if n == MAX_VIOLATIONS => self.0.push(Violation {
                field: "(spec)".into(),
                description: format!("more than {MAX_VIOLATIONS} problems; fix these first"),
            }),
            _ => {}
        }
    }
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
    let mut c = Collector(Vec::new(), ctx.topology.map(|t| t.pages().clone()), MaxDuration(ctx.limits.max_duration));
    let scaled = realism::time_scaled(spec, &mut c);
    let spec = scaled.as_ref().unwrap_or(spec);

    let name = spec.name.trim();
    check_name(name, "name", "experiment", &mut c);
    if spec.description.chars().count() > MAX_DESCRIPTION {
        c.add("description", format!("at most {MAX_DESCRIPTION} characters"));
    } else if let Some(bad) = spec.description.chars().find(|&ch| ch != '\n' && crate::text::is_unsafe(ch)) {
        c.add(
            "description",
            format!("must not contain control characters other than newlines (found {})", bad.escape_unicode()),
        );
    }

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

    let duration = match &spec.duration {
        None => ctx.limits.default_duration,
        Some(d) => match to_duration(d) {
            Some(d) if d.is_zero() => {
                c.add("duration", "must be longer than zero (leave it out for the server's default)");
                d
            }
            Some(d) if d > ctx.limits.max_duration => {
                c.add(
                    "duration",
                    format!(
                        "{} exceeds the server's maximum of {} (limits.max_duration)",
                        human(d),
                        human(ctx.limits.max_duration)
                    ),
                );
                d
            }
            Some(d) => d,
            None => {
                c.add("duration", "must not be negative");
                Duration::ZERO
            }
        },
    };

    let start_delay = match &spec.start_delay {
        None => Duration::ZERO,
        Some(d) => match to_duration(d) {
            Some(d) if d > ctx.limits.max_start_delay => {
                c.add(
                    "start_delay",
                    format!("{} exceeds the server's maximum of {}", human(d), human(ctx.limits.max_start_delay)),
                );
                d
            }
            Some(d) => d,
            None => {
                c.add("start_delay", "must not be negative");
                Duration::ZERO
            }
        },
    };

    if spec.faults.is_empty() && (spec.phases.is_empty() || spec.phases.iter().any(|p| p.faults.is_empty())) {
        let where_ = if spec.phases.is_empty() { "" } else { " here, or in every phase" };
        c.add("faults", format!("at least one fault is required (abort or delay){where_}"));
    }
    let faults = convert_faults(&spec.faults, "faults", &mut c);
    tcp::check_kinds(spec, ctx.topology, &mut c);
    tls::check(spec, ctx.topology, &mut c);
    c.0.extend(limits::check(spec, &routes, ctx.limits));
    let lease = limits::lease(spec.lease.as_ref(), ctx.limits, &mut c.0);
    let guards = guards::convert(&spec.guards, &mut c.0);
    let trigger = realism::trigger(spec.trigger.as_ref(), &mut c);
    let timeline = realism::timeline(spec, &mut c);
    let sticky = realism::sticky(spec.sticky.as_ref(), &mut c);
    let phases = phases::convert(spec, &faults, percentage, duration, &mut c);
    if !c.0.is_empty() {
        return Err(Violations(c.0));
    }
    Ok(ExperimentDef {
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

/// Every fault of a spec with its field path: `faults[i]`, then `phases[p].faults[i]`.
fn fault_paths(spec: &pb::ExperimentSpec) -> impl Iterator<Item = (String, &pb::Fault)> {
    let phases = spec.phases.iter().enumerate().flat_map(|(p, phase)| {
        phase.faults.iter().enumerate().map(move |(i, f)| (format!("phases[{p}].faults[{i}]"), f))
    });
    spec.faults.iter().enumerate().map(|(i, f)| (format!("faults[{i}]"), f)).chain(phases)
}

/// Converts a list of faults whose field path is `prefix` ("faults", "phases[1].faults").
fn convert_faults(list: &[pb::Fault], prefix: &str, c: &mut Collector) -> Vec<Fault> {
    if list.len() > MAX_LIST {
        c.add(prefix, format!("at most {MAX_LIST} faults"));
    }
    let mut faults = Vec::with_capacity(list.len());
    let first_abort = list.iter().position(realism::ends_request);
    for (i, f) in list.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        if first_abort.is_some_and(|a| i == a + 1) {
            c.add(
                &path,
                "comes after a fault that ends the request (abort, hang, reset): it would never run (put it before)",
            );
        }
        match &f.kind {
            None => c.add(
                path,
                "empty fault: set one of abort, delay, hang, reset, truncate, throttle, rate_limit, first_byte_delay, \
                 drip, rewrite, body, blackhole, unresolvable, grpc_stream, disconnect, toxic, tls",
            ),
            Some(pb::fault::Kind::Abort(a)) => faults.push(Fault::Abort(convert_abort(a, &format!("{path}.abort"), c))),
            Some(pb::fault::Kind::Delay(d)) => {
                if let Some(d) = convert_delay(d, &format!("{path}.delay"), c) {
                    faults.push(Fault::Delay(d));
                }
            }
            Some(pb::fault::Kind::Toxic(t)) => {
                if let Some(f) = tcp::convert(t, &format!("{path}.toxic"), c) {
                    faults.push(f);
                }
            }
            Some(pb::fault::Kind::Tls(t)) => {
                if let Some(f) = tls::convert(t, &format!("{path}.tls"), c) {
                    faults.push(f);
                }
            }
            Some(kind) => {
                if let Some(f) = realism::convert(kind, &path, c) {
                    faults.push(f);
                }
            }
        }
    }
    faults
}

fn to_duration(d: &pbjson_types::Duration) -> Option<Duration> {
    pb_duration(d).ok()
}

/// A `google.protobuf.Duration` as a duration: neither part negative, nanos under one second.
pub fn pb_duration(d: &pbjson_types::Duration) -> Result<Duration, &'static str> {
    let (Ok(secs), Ok(nanos)) = (u64::try_from(d.seconds), u32::try_from(d.nanos)) else {
        return Err("must not be negative");
    };
    if nanos >= 1_000_000_000 {
        return Err("not a duration: nanos must be under 1 second (999999999)");
    }
    Ok(Duration::new(secs, nanos))
}

pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn bounded_list(list: &[String], path: &str, c: &mut Collector) -> bool {
    if list.len() > MAX_LIST {
        c.add(path, format!("at most {MAX_LIST} entries"));
        return false;
    }
    true
}

fn compile_regex(pattern: &str, path: &str, c: &mut Collector) -> Option<Regex> {
    match RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build() {
        Ok(re) => Some(re),
        Err(e) => {
            c.add(path, format!("not a valid regular expression: {}", e.to_string().replace('\n', " ")));
            None
        }
    }
}

fn convert_match(m: &pb::Match, topology: Option<&Topology>, c: &mut Collector) -> (Vec<String>, Vec<String>, Matcher) {
    let mut matcher = Matcher::default();

    if let Some(topology) = topology {
        check_targets(m, topology, c);
    }
    bounded_list(&m.listeners, "match.listeners", c);
    bounded_list(&m.routes, "match.routes", c);
    if bounded_list(&m.hosts, "match.hosts", c) {
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
        matcher.path_regex = compile_regex(&m.path_regex, "match.path_regex", c);
    }
    if bounded_list(&m.methods, "match.methods", c) {
        for (i, name) in m.methods.iter().enumerate() {
            match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
                Ok(method) if !name.is_empty() => matcher.methods.push(method),
                _ => c.add(format!("match.methods[{i}]"), format!("{name:?} is not an HTTP method")),
            }
        }
    }
    if m.headers.len() > MAX_LIST {
        c.add("match.headers", format!("at most {MAX_LIST} entries"));
    } else {
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
    if m.query.len() > MAX_LIST {
        c.add("match.query", format!("at most {MAX_LIST} entries"));
    } else {
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
    if bounded_list(&m.client_cidrs, "match.client_cidrs", c) {
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
        Some(Val::Regex(s)) => ValueMatch::Regex(compile_regex(s, &format!("{path}.regex"), c)?),
        Some(Val::Present(b)) => ValueMatch::Present(b),
    };
    Some(Predicate { name: name.to_owned(), value })
}

fn convert_abort(a: &pb::AbortFault, path: &str, c: &mut Collector) -> Abort {
    let http_status = a.http_status.and_then(|s| match StatusCode::from_u16(u16::try_from(s).unwrap_or(0)) {
        Ok(code) if (200..=599).contains(&code.as_u16()) => Some(code),
        _ => {
            c.add(format!("{path}.http_status"), format!("{s} is not an HTTP status an abort can send (200–599)"));
            None
        }
    });
    let grpc_status = a.grpc_status.and_then(|s| {
        GrpcCode::new(s).or_else(|| {
            c.add(format!("{path}.grpc_status"), format!("{s} is not a gRPC status code (0–16)"));
            None
        })
    });
    if a.body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
        c.add(format!("{path}.body"), format!("at most {MAX_BODY} bytes"));
    }
    let mut headers = HeaderMap::new();
    if a.headers.len() > MAX_LIST {
        c.add(format!("{path}.headers"), format!("at most {MAX_LIST} entries"));
    } else {
        let mut entries: Vec<(&String, &String)> = a.headers.iter().collect();
        entries.sort();
        for (name, value) in entries {
            match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                (Ok(n), Ok(v)) => {
                    headers.append(n, v);
                }
                (Err(_), _) => c.add(format!("{path}.headers[{name:?}]"), "not a valid header name"),
                (_, Err(_)) => {
                    c.add(format!("{path}.headers[{name:?}]"), "not a valid header value (printable ASCII only)")
                }
            }
        }
    }
    let body = a.body.as_ref().map(|b| Bytes::from(b.clone()));
    let page = convert_page(a, http_status, path, c);
    let abort = Abort::new(http_status, grpc_status, &a.grpc_message, body, headers);
    match page {
        Some(page) => abort.with_page(page),
        None => abort,
    }
}

/// `abort.page` and `abort.page_location`: a known preset that has a page for the abort's status.
fn convert_page(a: &pb::AbortFault, http_status: Option<StatusCode>, path: &str, c: &mut Collector) -> Option<Page> {
    if a.page.is_empty() {
        if !a.page_location.is_empty() {
            c.add(format!("{path}.page_location"), "only applies with a page (set page as well)");
        }
        return None;
    }
    let custom = |c: &Collector| c.1.as_ref().and_then(|p| p.get(&a.page)).map(|t| Preset::Custom(t.clone()));
    let Some(preset) = Preset::parse(&a.page).or_else(|| custom(c)) else {
        let known = match &c.1 {
            Some(pages) => {
                let mut names: Vec<&str> = Preset::NAMES.to_vec();
                names.extend(pages.names());
                format!("use one of {} (the config's pages: templates included)", names.join(", "))
            }
            None => format!(
                "use one of {}, or a page template of the server's config (check with --config CONFIG)",
                Preset::NAMES.join(", ")
            ),
        };
        c.add(format!("{path}.page"), format!("unknown page {:?}: {known}", a.page));
        return None;
    };
    if a.body.is_some() {
        c.add(format!("{path}.body"), "set either body or page, not both");
    }
    let status = http_status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if a.http_status.is_none_or(|_| http_status.is_some()) && !preset.supports(status) {
        c.add(
            format!("{path}.http_status"),
            format!("page {:?} has no page for {}: it covers {}", preset.name(), status.as_u16(), preset.statuses()),
        );
    }
    let location = if a.page_location.is_empty() {
        Location::DEFAULT
    } else {
        Location::parse(&a.page_location).unwrap_or_else(|| {
            c.add(
                format!("{path}.page_location"),
                format!("{:?} is not a three-letter location code", a.page_location),
            );
            Location::DEFAULT
        })
    };
    Some(Page { preset, location })
}

fn convert_delay(d: &pb::DelayFault, path: &str, c: &mut Collector) -> Option<Delay> {
    use pb::delay_fault::Distribution as D;
    let dur = |field: &str, v: &Option<pbjson_types::Duration>, required: bool, c: &mut Collector| {
        opt_duration(v, &format!("{path}.{field}"), required, c)
    };
    let max = dur("max", &d.max, false, c);
    let distribution = match &d.distribution {
        None => {
            c.add(path, "set one of fixed, uniform, normal, lognormal");
            return None;
        }
        Some(D::Fixed(f)) => DelayDistribution::Fixed(dur("fixed", &Some(*f), true, c)?),
        Some(D::Uniform(u)) => {
            let min = dur("uniform.min", &u.min, false, c).unwrap_or(Duration::ZERO);
            let hi = dur("uniform.max", &u.max, true, c)?;
            if hi < min {
                c.add(format!("{path}.uniform.max"), "must not be less than uniform.min");
            }
            DelayDistribution::Uniform { min, max: hi }
        }
        Some(D::Normal(n)) => {
            let mean = dur("normal.mean", &n.mean, true, c)?;
            let sd = dur("normal.stddev", &n.stddev, true, c)?;
            if max.is_none() {
                c.add(format!("{path}.max"), "required for a normal delay (it has no upper bound)");
            }
            DelayDistribution::Normal(Normal::new(mean.as_secs_f64(), sd.as_secs_f64()).ok()?)
        }
        Some(D::Lognormal(l)) => {
            let median = dur("lognormal.median", &l.median, true, c)?;
            if median.is_zero() {
                c.add(format!("{path}.lognormal.median"), "must be longer than zero");
                return None;
            }
            if !(l.sigma.is_finite() && l.sigma >= 0.0 && l.sigma <= 10.0) {
                c.add(format!("{path}.lognormal.sigma"), format!("must be between 0 and 10, got {}", l.sigma));
                return None;
            }
            if max.is_none() {
                c.add(format!("{path}.max"), "required for a lognormal delay (it has no upper bound)");
            }
            DelayDistribution::LogNormal(LogNormal::new(median.as_secs_f64().ln(), l.sigma).ok()?)
        }
    };
    Some(Delay { distribution, max })
}

fn opt_duration(v: &Option<pbjson_types::Duration>, path: &str, required: bool, c: &mut Collector) -> Option<Duration> {
    match v {
        None if required => {
            c.add(path, "required");
            None
        }
        None => None,
        Some(v) => match pb_duration(v) {
            Err(why) => {
                c.add(path, why);
                None
            }
            Ok(d) if d > c.2 .0 => {
                c.add(
                    path,
                    format!("{} exceeds the server's maximum of {} (limits.max_duration)", human(d), human(c.2 .0)),
                );
                None
            }
            Ok(d) => Some(d),
        },
    }
}
