//! `throttle`: the upstream's response body is sent at a limited rate, like a congested link.

use std::num::NonZeroU64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub bytes_per_second: NonZeroU64,
}

impl Throttle {
    /// Limits the response body's rate; with another throttle, the slowest rate.
    pub fn apply(&self, plan: &mut super::Plan<'_>) -> super::Step {
        plan.share.body.add_throttle(self);
        super::Step::Acted
    }
}
