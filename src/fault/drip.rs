//! `drip`: the response body goes out in chunks of a fixed size with a pause between them, like a stalled
//! stream that still makes progress (a progressive download or an event stream crawling).

use std::{num::NonZeroU64, time::Duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drip {
    /// Bytes per chunk.
    pub chunk: NonZeroU64,
    /// The pause before every chunk but the first; longer than zero.
    pub interval: Duration,
}

impl Drip {
    /// Two drips on one response: the smaller chunk and the longer pause.
    pub fn slowest(self, other: Drip) -> Drip {
        Drip { chunk: self.chunk.min(other.chunk), interval: self.interval.max(other.interval) }
    }
}

impl Drip {
    /// Drips the response body; with another drip, the slowest of both.
    pub fn apply(&self, plan: &mut super::Plan<'_>) -> super::Step {
        plan.share.body.add_drip(self);
        super::Step::Acted
    }
}
