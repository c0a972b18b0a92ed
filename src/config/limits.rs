//! `limits:` and their flags: the bounds every experiment and connection is held to.

use std::time::Duration;

use super::{file::FileLimits, listeners::HeaderCaps, opt_duration, Overrides};
use crate::{
    experiment::{spec, Limits},
    fault::Percentage,
    topology::Topology,
};

/// The limits, checked; `topology` names the routes `allowed_routes` may list.
pub(super) fn build(fl: &FileLimits, o: &Overrides, topology: &Topology, problems: &mut Vec<String>) -> Limits {
    let mut limits = Limits::default();
    if let Some(d) =
        o.default_duration.or_else(|| opt_duration(&fl.default_duration, "limits.default_duration", problems))
    {
        limits.default_duration = d;
    }
    if let Some(d) = o.max_duration.or_else(|| opt_duration(&fl.max_duration, "limits.max_duration", problems)) {
        limits.max_duration = d;
    }
    if let Some(d) = opt_duration(&fl.max_start_delay, "limits.max_start_delay", problems) {
        limits.max_start_delay = d;
    }
    if let Some(h) = fl.history {
        limits.history = h;
    }
    if let Some(m) = fl.max_active {
        limits.max_active = m;
    }
    if let Some(p) = o.max_percentage.or(fl.max_percentage) {
        let at = if o.max_percentage.is_some() { "--max-percentage" } else { "limits.max_percentage" };
        if (0.0..=100.0).contains(&p) {
            limits.max_percentage = p;
        } else {
            problems.push(format!("{at}: must be between 0 and 100, got {p}"));
        }
    }
    if let Some(m) = o.max_active_faults.or(fl.max_active_faults) {
        limits.max_active_faults = m;
    }
    if let Some(m) = fl.max_connections {
        if m == 0 {
            problems.push("limits.max_connections: must be at least 1".into());
        }
        limits.max_connections = m;
    }
    if let Some(m) = fl.max_header_bytes {
        if !(8192..=16 * 1024 * 1024).contains(&m) {
            problems.push(format!("limits.max_header_bytes: from 8192 to 16777216 bytes, got {m}"));
        }
        limits.max_header_bytes = m;
    }
    connection_timeouts(fl, &mut limits, problems);
    if let Some(routes) = allowed_routes(fl, o, topology, problems) {
        limits.allowed_routes = routes;
    }
    check_durations(&limits, problems);
    limits
}

/// The bounds routes' fault headers are held to, read before the listeners are built. A value that is
/// not valid leaves the default here; [`build`] reports it (and the config is refused).
pub(super) fn header_caps(fl: &FileLimits, o: &Overrides) -> HeaderCaps {
    let defaults = Limits::default();
    let max_duration = o
        .max_duration
        .or_else(|| fl.max_duration.as_deref().and_then(|s| humantime::parse_duration(s).ok()))
        .unwrap_or(defaults.max_duration);
    let max_percentage = o
        .max_percentage
        .or(fl.max_percentage)
        .and_then(Percentage::new)
        .or_else(|| Percentage::new(defaults.max_percentage))
        .unwrap_or(Percentage::ALL);
    HeaderCaps { max_duration, max_percentage }
}

/// `limits.header_read_timeout` and `limits.idle_timeout`, each within its range.
fn connection_timeouts(fl: &FileLimits, limits: &mut Limits, problems: &mut Vec<String>) {
    for (key, value, slot, range) in [
        (
            "limits.header_read_timeout",
            &fl.header_read_timeout,
            &mut limits.header_read_timeout,
            (Duration::from_secs(1), Duration::from_secs(300)),
        ),
        (
            "limits.idle_timeout",
            &fl.idle_timeout,
            &mut limits.idle_timeout,
            (Duration::from_secs(1), Duration::from_secs(24 * 3600)),
        ),
    ] {
        if let Some(d) = opt_duration(value, key, problems) {
            if !(range.0..=range.1).contains(&d) {
                problems.push(format!(
                    "{key}: from {} to {}, got {}",
                    humantime::format_duration(range.0),
                    humantime::format_duration(range.1),
                    humantime::format_duration(d)
                ));
            }
            *slot = d;
        }
    }
}

/// The default duration of an experiment within its maximum, both longer than zero.
fn check_durations(limits: &Limits, problems: &mut Vec<String>) {
    if limits.default_duration.is_zero() || limits.max_duration.is_zero() {
        problems.push("limits: default_duration and max_duration must be longer than zero".into());
    }
    if limits.default_duration > limits.max_duration {
        problems.push(format!(
            "limits.default_duration ({}) is longer than limits.max_duration ({})",
            spec::human(limits.default_duration),
            spec::human(limits.max_duration)
        ));
    }
}

/// `allowed_routes` (or `--allowed-routes`): each a route of the topology, and at least one.
fn allowed_routes(
    fl: &FileLimits,
    o: &Overrides,
    topology: &Topology,
    problems: &mut Vec<String>,
) -> Option<Vec<String>> {
    let routes = o.allowed_routes.as_ref().or(fl.allowed_routes.as_ref())?;
    let at = if o.allowed_routes.is_some() { "--allowed-routes" } else { "limits.allowed_routes" };
    for (i, r) in routes.iter().enumerate() {
        if !topology.has_route(r) {
            problems.push(format!("{at}[{i}]: no route is named {r:?}; routes: {}", topology.route_names().join(", ")));
        }
    }
    if routes.is_empty() {
        problems.push(format!("{at}: empty; name at least one route, or leave it out to allow every route"));
    }
    Some(routes.clone())
}
