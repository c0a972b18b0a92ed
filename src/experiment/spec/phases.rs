//! Proto → domain for `phases`: a timeline of named phases, each with its own percentage, faults, ramp
//! and flap.

use std::time::Duration;

use super::{convert_faults, human, realism, Collector, Family, MAX_LIST};
use crate::{
    experiment::timeline::Phase,
    fault::{Faults, Percentage},
    pb::v1 as pb,
};

/// Checks `spec.phases` (already time-scaled): names given and unique, the first starting at 0, offsets
/// increasing and within `duration`, percentages within 0–100 (the server's cap is checked with every other percentage in
/// `limits.rs`), faults valid. A phase
/// without faults or percentage takes the experiment's (`faults`, `percentage`).
pub(super) fn convert(
    spec: &pb::ExperimentSpec,
    faults: &Faults,
    family: Family,
    percentage: Percentage,
    duration: Duration,
    c: &mut Collector,
) -> Vec<Phase> {
    if spec.phases.is_empty() {
        return Vec::new();
    }
    if spec.phases.len() > MAX_LIST {
        c.add("phases", format!("at most {MAX_LIST} phases"));
        return Vec::new();
    }
    if spec.ramp.is_some() {
        c.add("ramp", "an experiment with phases ramps within a phase: move ramp into the phase it belongs to");
    }
    if spec.flap.is_some() {
        c.add("flap", "an experiment with phases flaps within a phase: move flap into the phases that flap");
    }
    let mut out = Vec::with_capacity(spec.phases.len());
    let mut previous: Option<Duration> = None;
    for (i, p) in spec.phases.iter().enumerate() {
        let at = format!("phases[{i}]");
        let name = p.name.trim();
        let field = format!("{at}.name");
        super::check_name(name, &field, "phase", c);
        if !name.is_empty() && spec.phases.iter().take(i).any(|o| o.name.trim() == name) {
            c.add(field, format!("another phase is already named {name:?}"));
        }
        let start = c.duration(&p.start, &format!("{at}.start"), false).unwrap_or(Duration::ZERO);
        match previous {
            None if !start.is_zero() => c.add(
                format!("{at}.start"),
                format!(
                    "the first phase starts at 0s, got {} (add a quiet phase with percentage: 0 before it)",
                    human(start)
                ),
            ),
            Some(prev) if start <= prev => c.add(
                format!("{at}.start"),
                format!("must be later than phases[{}].start ({}), got {}", i - 1, human(prev), human(start)),
            ),
            _ if i > 0 && start >= duration => c.add(
                format!("{at}.start"),
                format!("{} is not before the experiment's end (duration {})", human(start), human(duration)),
            ),
            _ => {}
        }
        previous = Some(start);
        let phase_percentage = match p.percentage {
            None => percentage,
            Some(v) => Percentage::new(v).unwrap_or_else(|| {
                c.add(format!("{at}.percentage"), format!("must be between 0 and 100, got {v}"));
                percentage
            }),
        };
        let timeline =
            realism::timeline_of(p.ramp.as_ref(), p.flap.as_ref(), p.percentage.is_some(), &format!("{at}."), c);
        let phase_faults = if p.faults.is_empty() {
            faults.clone()
        } else {
            convert_faults(&p.faults, &format!("{at}.faults"), family, c)
        };
        out.push(Phase { name: name.to_owned(), start, percentage: phase_percentage, timeline, faults: phase_faults });
    }
    out
}
