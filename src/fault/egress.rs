//! Egress faults: a destination that never answers, or whose name does not resolve.

use std::time::Duration;

use super::{Collector, End, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

/// Accept and never answer; see `BlackholeFault` in traffic.proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackhole {
    /// `None`: until the client leaves or the experiment ends.
    pub hold: Option<Duration>,
}

/// End an upgraded connection or a tunnel some time after it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect {
    pub after: Duration,
    /// Reset (RST) rather than close (FIN).
    pub reset: bool,
}

/// The destination's name does not resolve: 502 without contacting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolvable;

impl HttpKind for Blackhole {
    type Proto = pb::BlackholeFault;

    fn convert(b: &pb::BlackholeFault, path: &str, c: &mut Collector) -> Option<Self> {
        let at = format!("{path}.duration");
        let hold = c.duration(&b.duration, &at, false);
        if hold.is_some_and(|d| d.is_zero()) {
            c.add(at, "must be longer than zero (leave it out to hold until the experiment ends)");
            return None;
        }
        Some(Blackhole { hold })
    }

    fn apply(&self, _: &mut Plan<'_>) -> Step {
        Step::ENDS
    }

    fn end(&self) -> Option<End<'_>> {
        Some(End::Blackhole(self))
    }
}

impl HttpKind for Unresolvable {
    type Proto = pb::UnresolvableFault;

    fn convert(_: &pb::UnresolvableFault, _: &str, _: &mut Collector) -> Option<Self> {
        Some(Unresolvable)
    }

    fn apply(&self, _: &mut Plan<'_>) -> Step {
        Step::ENDS
    }

    fn end(&self) -> Option<End<'_>> {
        Some(End::Unresolvable)
    }
}

impl HttpKind for Disconnect {
    type Proto = pb::DisconnectFault;

    fn convert(x: &pb::DisconnectFault, path: &str, c: &mut Collector) -> Option<Self> {
        let at = format!("{path}.after");
        let after = c.duration(&x.after, &at, true)?;
        if after.is_zero() {
            c.add(at, "must be longer than zero");
            return None;
        }
        Some(Disconnect { after, reset: x.reset })
    }

    /// Ends the upgraded connection or tunnel; with another disconnect, the earliest.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        if plan.share.disconnect.is_none_or(|earlier| self.after < earlier.after) {
            plan.share.disconnect = Some(*self);
        }
        Step::Acted
    }
}
