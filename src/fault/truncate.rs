//! `truncate`: the upstream's response body is cut after some bytes and the connection closed, so the
//! client gets a status, headers and part of the body, then end of stream.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncate {
    pub after_bytes: u64,
}

use super::{Collector, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

impl HttpKind for Truncate {
    type Proto = pb::TruncateFault;

    fn convert(t: &pb::TruncateFault, _: &str, _: &mut Collector) -> Option<Self> {
        Some(Truncate { after_bytes: t.after_bytes })
    }

    /// Cuts the response body; with another cut, the earliest.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        plan.share.body.add_truncate(self);
        Step::Acted
    }
}
