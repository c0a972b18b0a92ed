//! `reset`: the client's TCP connection is reset (RST), before any response or after some body bytes.
//! Clients see a connection error ("connection reset by peer"), not an HTTP status.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Reset after this many response body bytes; `None`: before the response, without the upstream.
    pub after_bytes: Option<u64>,
}

use super::{Collector, End, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

impl HttpKind for Reset {
    type Proto = pb::ResetFault;

    fn convert(r: &pb::ResetFault, _: &str, _: &mut Collector) -> Option<Self> {
        Some(Reset { after_bytes: r.after_bytes })
    }

    /// Before the response: ends the request. After some body bytes: cuts the body there with a reset.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        if self.after_bytes.is_none() {
            return Step::ENDS;
        }
        plan.share.body.add_reset(self);
        Step::Acted
    }

    fn end(&self) -> Option<End<'_>> {
        self.after_bytes.is_none().then_some(End::Reset)
    }
}
