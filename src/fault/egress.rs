//! Egress faults: a destination that never answers, or whose name does not resolve.

use std::time::Duration;

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

impl Disconnect {
    /// Ends the upgraded connection or tunnel; with another disconnect, the earliest.
    pub fn apply(&self, plan: &mut super::Plan<'_>) -> super::Step {
        if plan.share.disconnect.is_none_or(|earlier| self.after < earlier.after) {
            plan.share.disconnect = Some(*self);
        }
        super::Step::Acted
    }
}
