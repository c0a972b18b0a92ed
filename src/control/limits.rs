//! Safety checks of a spec, run with the rest of validation: the server's blast-radius limits
//! (`limits.max_percentage`, `limits.allowed_routes`) and the lease.

use std::time::Duration;

use super::convert::{human, Violation};
use crate::experiment::Limits;

/// The violations of the server's blast-radius limits by an experiment that targets `routes` (empty: every
/// route) with `percentage` (absent: 100).
pub fn check(routes: &[String], percentage: Option<f64>, limits: &Limits) -> Vec<Violation> {
    let mut out = Vec::new();
    let pct = percentage.unwrap_or(100.0);
    // A percentage outside 0–100 is already reported by validation.
    if pct <= 100.0 && pct > limits.max_percentage {
        let given = if percentage.is_some() { format!("{pct}") } else { "absent, which means 100".to_owned() };
        out.push(Violation {
            field: "percentage".into(),
            description: format!(
                "{given} exceeds the server's maximum of {} (limits.max_percentage); ask for {} or less",
                limits.max_percentage, limits.max_percentage
            ),
        });
    }
    if !limits.allowed_routes.is_empty() {
        let allowed = limits.allowed_routes.join(", ");
        if routes.is_empty() {
            out.push(Violation {
                field: "match.routes".into(),
                description: format!(
                    "required: the server lets experiments target only these routes (limits.allowed_routes): {allowed}"
                ),
            });
        }
        for (i, r) in routes.iter().enumerate() {
            if !limits.allowed_routes.contains(r) {
                out.push(Violation {
                    field: format!("match.routes[{i}]"),
                    description: format!(
                        "{r:?} is not one of the routes experiments may target (limits.allowed_routes): {allowed}"
                    ),
                });
            }
        }
    }
    out
}

/// Shortest lease: a renewal every lease/3 must be possible over a real network.
pub const MIN_LEASE: Duration = Duration::from_millis(100);

/// The spec's lease, checked: at least [`MIN_LEASE`], at most `limits.max_duration`.
pub fn lease(lease: Option<&pbjson_types::Duration>, limits: &Limits, out: &mut Vec<Violation>) -> Option<Duration> {
    let d = lease?;
    let mut bad = |description: String| out.push(Violation { field: "lease".into(), description });
    if d.seconds < 0 || d.nanos < 0 {
        bad("must not be negative".into());
        return None;
    }
    let d = Duration::new(d.seconds as u64, d.nanos as u32);
    if d < MIN_LEASE {
        bad(format!("{} is shorter than the minimum of {} (leave it out for no lease)", human(d), human(MIN_LEASE)));
    } else if d > limits.max_duration {
        bad(format!(
            "{} exceeds the server's maximum duration of {} (limits.max_duration)",
            human(d),
            human(limits.max_duration)
        ));
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentage_and_routes_are_bounded() {
        let limits = Limits { max_percentage: 25.0, allowed_routes: vec!["api".into()], ..Limits::default() };
        assert!(check(&["api".into()], Some(25.0), &limits).is_empty());
        let v = check(&[], None, &limits);
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["percentage", "match.routes"]);
        assert!(v[0].description.contains("absent, which means 100"), "{}", v[0].description);
        let v = check(&["api".into(), "checkout".into()], Some(10.0), &limits);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "match.routes[1]");
        assert!(check(&[], None, &Limits::default()).is_empty(), "no limit by default");
    }
}
