//! `truncate`: the upstream's response body is cut after some bytes and the connection closed, so the
//! client gets a status, headers and part of the body, then end of stream.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncate {
    pub after_bytes: u64,
}

impl Truncate {
    /// Cuts the response body; with another cut, the earliest.
    pub fn apply(&self, plan: &mut super::Plan<'_>) -> super::Step {
        plan.share.body.add_truncate(self);
        super::Step::Acted
    }
}
