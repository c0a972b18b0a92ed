//! `reset`: the client's TCP connection is reset (RST), before any response or after some body bytes.
//! Clients see a connection error ("connection reset by peer"), not an HTTP status.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Reset after this many response body bytes; `None`: before the response, without the upstream.
    pub after_bytes: Option<u64>,
}

impl Reset {
    /// Before the response: ends the request. After some body bytes: cuts the body there with a reset.
    pub fn apply(&self, plan: &mut super::Plan<'_>) -> super::Step {
        if self.after_bytes.is_none() {
            return super::Step::ENDS;
        }
        plan.share.body.add_reset(self);
        super::Step::Acted
    }
}
