//! Safety checks of a spec, run with the rest of validation: the server's blast-radius limits
//! (`limits.max_percentage`, `limits.allowed_routes`) and the lease.

use std::time::Duration;

use super::{human, Collector};
use crate::{experiment::Limits, pb::v1 as pb};

/// The violations of the server's blast-radius limits by a spec: every percentage it can produce (its
/// `percentage`, or 100 when absent; a ramp's ends; each phase's percentage or ramp, or the experiment's
/// percentage it inherits) within `limits.max_percentage`, and its `routes` (empty: every route) within
/// `limits.allowed_routes`.
pub fn check(spec: &pb::ExperimentSpec, routes: &[String], limits: &Limits, c: &mut Collector) {
    let cap = limits.max_percentage;
    // A percentage outside 0–100 is already reported by validation.
    let mut over = |field: String, pct: f64, given: bool| {
        if pct <= 100.0 && pct > cap {
            let given = if given { format!("{pct}") } else { "absent, which means 100".to_owned() };
            c.add(
                field,
                format!("{given} exceeds the server's maximum of {cap} (limits.max_percentage); ask for {cap} or less"),
            );
        }
    };
    let ramp = |r: &pb::Ramp, prefix: &str, over: &mut dyn FnMut(String, f64, bool)| {
        over(format!("{prefix}ramp.from"), r.from, true);
        over(format!("{prefix}ramp.to"), r.to, true);
    };
    // The experiment's own percentage counts where something uses it: without phases, or as the default
    // of a phase that sets neither percentage nor ramp.
    let inherited = spec.phases.iter().any(|p| p.percentage.is_none() && p.ramp.is_none());
    match &spec.ramp {
        Some(r) => ramp(r, "", &mut over),
        None if spec.phases.is_empty() || inherited => {
            over("percentage".into(), spec.percentage.unwrap_or(100.0), spec.percentage.is_some())
        }
        None => {}
    }
    for (i, p) in spec.phases.iter().enumerate() {
        match (&p.ramp, p.percentage) {
            (Some(r), _) => ramp(r, &format!("phases[{i}]."), &mut over),
            (None, Some(v)) => over(format!("phases[{i}].percentage"), v, true),
            (None, None) => {}
        }
    }
    if !limits.allowed_routes.is_empty() {
        let allowed = limits.allowed_routes.join(", ");
        if routes.is_empty() {
            c.add(
                "match.routes",
                format!(
                    "required: the server lets experiments target only these routes (limits.allowed_routes): {allowed}"
                ),
            );
        }
        for (i, r) in routes.iter().enumerate() {
            if !limits.allowed_routes.contains(r) {
                c.add(
                    format!("match.routes[{i}]"),
                    format!("{r:?} is not one of the routes experiments may target (limits.allowed_routes): {allowed}"),
                );
            }
        }
    }
}

/// Shortest lease: a renewal every lease/3 must be possible over a real network.
pub const MIN_LEASE: Duration = Duration::from_millis(100);

/// The spec's lease, checked: at least [`MIN_LEASE`], at most `limits.max_duration`.
pub fn lease(lease: Option<&pbjson_types::Duration>, limits: &Limits, c: &mut Collector) -> Option<Duration> {
    let d = match super::pb_duration(lease?) {
        Ok(d) => d,
        Err(why) => {
            c.add("lease", why);
            return None;
        }
    };
    if d < MIN_LEASE {
        c.add(
            "lease",
            format!("{} is shorter than the minimum of {} (leave it out for no lease)", human(d), human(MIN_LEASE)),
        );
    } else {
        c.within(d, limits.max_duration, "lease", "limits.max_duration");
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> pb::ExperimentSpec {
        crate::document::parse_specs(yaml).unwrap_or_default().remove(0)
    }

    fn violations(s: &pb::ExperimentSpec, routes: &[String], limits: &Limits) -> Vec<crate::fault::Violation> {
        let mut c = Collector::new(None, limits.max_duration);
        check(s, routes, limits, &mut c);
        c.finish(|| ()).err().map(|v| v.0).unwrap_or_default()
    }

    fn fields(yaml: &str, limits: &Limits) -> Vec<String> {
        let s = spec(yaml);
        let routes = s.r#match.as_ref().map(|m| m.routes.clone()).unwrap_or_default();
        violations(&s, &routes, limits).into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn percentage_and_routes_are_bounded() {
        let limits = Limits { max_percentage: 25.0, allowed_routes: vec!["api".into()], ..Limits::default() };
        let f = "faults: [{ abort: {} }]\n";
        assert!(fields(&format!("name: x\npercentage: 25\nmatch: {{ routes: [api] }}\n{f}"), &limits).is_empty());
        assert_eq!(fields(&format!("name: x\n{f}"), &limits), ["percentage", "match.routes"]);
        let v = violations(&spec(&format!("name: x\n{f}")), &[], &limits);
        assert!(v[0].description.contains("absent, which means 100"), "{}", v[0].description);
        assert_eq!(
            fields(&format!("name: x\npercentage: 10\nmatch: {{ routes: [api, checkout] }}\n{f}"), &limits),
            ["match.routes[1]"]
        );
        assert!(fields(&format!("name: x\n{f}"), &Limits::default()).is_empty(), "no limit by default");
    }

    /// Every percentage a spec can produce is held to the cap, and one it cannot produce is not.
    #[test]
    fn ramps_and_phases_are_held_to_the_cap() {
        let limits = Limits { max_percentage: 25.0, ..Limits::default() };
        let f = "faults: [{ abort: {} }]";
        // A ramp under the cap needs no percentage.
        assert!(fields(&format!("name: x\nramp: {{ from: 0, to: 25, over: 1m }}\n{f}\n"), &limits).is_empty());
        assert_eq!(fields(&format!("name: x\nramp: {{ from: 0, to: 30, over: 1m }}\n{f}\n"), &limits), ["ramp.to"]);
        let phases =
            "phases: [{ name: a, percentage: 10 }, { name: b, start: 1m, ramp: { from: 100, to: 100, over: 1s } }]";
        assert_eq!(
            fields(&format!("name: x\nduration: 10m\n{f}\n{phases}\n"), &limits),
            ["phases[1].ramp.from", "phases[1].ramp.to"],
            "every phase sets its own: the experiment's absent percentage is not used"
        );
        let inherit = "phases: [{ name: a }, { name: b, start: 1m, percentage: 20 }]";
        assert_eq!(fields(&format!("name: x\nduration: 10m\n{f}\n{inherit}\n"), &limits), ["percentage"]);
    }
}
