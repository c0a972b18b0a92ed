//! `hang`: hold the request without answering, then close, reset, or answer. The upstream never sees it:
//! this is the edge (or the origin behind it) that accepted the connection and went silent, which clients
//! meet as their own timeout, or as the edge's 524 after 100 s.

use std::time::Duration;

use super::{Abort, Collector, End, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

#[derive(Debug, Clone)]
pub struct Hang {
    /// How long the request is held; longer than zero.
    pub hold: Duration,
    pub then: HangEnd,
}

/// What ends a hang.
#[derive(Debug, Clone)]
pub enum HangEnd {
    /// Close the connection without a response (HTTP/2: reset the stream).
    Close,
    /// Reset the TCP connection.
    Reset,
    /// Answer as this abort does.
    Respond(Abort),
}

impl HttpKind for Hang {
    type Proto = pb::HangFault;

    /// A hold longer than zero and within the server's bound, and what ends it.
    fn convert(h: &pb::HangFault, path: &str, c: &mut Collector) -> Option<Self> {
        use pb::hang_fault::Then;
        let hold = c.duration(&h.duration, &format!("{path}.duration"), true);
        if hold.is_some_and(|d| d.is_zero()) {
            c.add(format!("{path}.duration"), "must be longer than zero");
        }
        let then = match &h.then {
            None | Some(Then::Close(_)) => HangEnd::Close,
            Some(Then::Reset(_)) => HangEnd::Reset,
            Some(Then::Respond(a)) => HangEnd::Respond(Abort::from_proto(a, &format!("{path}.respond"), c)),
        };
        Some(Hang { hold: hold.unwrap_or(Duration::ZERO), then })
    }

    fn apply(&self, _: &mut Plan<'_>) -> Step {
        Step::ENDS
    }

    fn end(&self) -> Option<End<'_>> {
        Some(End::Hang(self))
    }
}
