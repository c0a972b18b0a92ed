//! `throttle`: the upstream's response body is sent at a limited rate, like a congested link.

use std::num::NonZeroU64;

use super::{Collector, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub bytes_per_second: NonZeroU64,
}

impl HttpKind for Throttle {
    type Proto = pb::ThrottleFault;

    fn convert(t: &pb::ThrottleFault, path: &str, c: &mut Collector) -> Option<Self> {
        let Some(bytes_per_second) = NonZeroU64::new(t.bytes_per_second) else {
            c.add(format!("{path}.bytes_per_second"), "required: at least 1 byte per second");
            return None;
        };
        Some(Throttle { bytes_per_second })
    }

    /// Limits the response body's rate; with another throttle, the slowest rate.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        plan.share.body.add_throttle(self);
        Step::Acted
    }
}
