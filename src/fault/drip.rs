//! `drip`: the response body goes out in chunks of a fixed size with a pause between them, like a stalled
//! stream that still makes progress (a progressive download or an event stream crawling).

use std::{num::NonZeroU64, time::Duration};

use super::{Collector, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

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

impl HttpKind for Drip {
    type Proto = pb::DripFault;

    /// A chunk of at least one byte, an interval longer than zero.
    fn convert(d: &pb::DripFault, path: &str, c: &mut Collector) -> Option<Self> {
        let chunk = NonZeroU64::new(d.chunk_bytes);
        if chunk.is_none() {
            c.add(format!("{path}.chunk_bytes"), "required: at least 1 byte per chunk");
        }
        let interval = c.duration(&d.interval, &format!("{path}.interval"), true);
        if interval.is_some_and(|i| i.is_zero()) {
            c.add(format!("{path}.interval"), "must be longer than zero (for an even rate, use throttle)");
        }
        Some(Drip { chunk: chunk?, interval: interval.filter(|i| !i.is_zero())? })
    }

    /// Drips the response body; with another drip, the slowest of both.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        plan.share.body.add_drip(self);
        Step::Acted
    }
}
