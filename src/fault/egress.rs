//! Egress faults: a destination that never answers, or whose name does not resolve.

use std::time::Duration;

use super::{Collector, End, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

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
pub struct Unresolvable {
    pub answer: DnsAnswer,
}

/// What a resolver answers for a name it cannot give an address for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsAnswer {
    /// The name exists, with no address record (an emptied record).
    #[default]
    NoData,
    /// No such name.
    NxDomain,
    /// The name server failed to answer.
    ServFail,
}

impl DnsAnswer {
    /// `NODATA` (or empty), `NXDOMAIN` or `SERVFAIL`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "NODATA" => Some(DnsAnswer::NoData),
            "NXDOMAIN" => Some(DnsAnswer::NxDomain),
            "SERVFAIL" => Some(DnsAnswer::ServFail),
            _ => None,
        }
    }

    /// The resolver's words for it, as a proxy reports them.
    pub fn message(self) -> &'static str {
        match self {
            DnsAnswer::NoData => "no address for this name",
            DnsAnswer::NxDomain => "NXDOMAIN: no such name",
            DnsAnswer::ServFail => "SERVFAIL: the name server failed to answer",
        }
    }
}

impl HttpKind for Blackhole {
    type Proto = pb::BlackholeFault;

    fn convert(b: &pb::BlackholeFault, path: &str, c: &mut Collector) -> Option<Self> {
        let at = format!("{path}.duration");
        let hold = c.duration(&b.duration, &at, false);
        if hold.is_some_and(|d| d.is_zero()) {
            c.add(at, "must be longer than zero (leave it out to hold until the experiment ends)");
            return None;
        }
        Some(Blackhole { hold })
    }

    fn apply(&self, _: &mut Plan<'_>) -> Step {
        Step::ENDS
    }

    fn end(&self) -> Option<End<'_>> {
        Some(End::Blackhole(self))
    }
}

impl HttpKind for Unresolvable {
    type Proto = pb::UnresolvableFault;

    fn convert(u: &pb::UnresolvableFault, path: &str, c: &mut Collector) -> Option<Self> {
        let Some(answer) = DnsAnswer::parse(&u.answer) else {
            c.add(
                format!("{path}.answer"),
                format!("{:?} is not an answer: NODATA, NXDOMAIN or SERVFAIL", crate::text::excerpt(&u.answer, 32)),
            );
            return None;
        };
        Some(Unresolvable { answer })
    }

    fn apply(&self, _: &mut Plan<'_>) -> Step {
        Step::ENDS
    }

    fn end(&self) -> Option<End<'_>> {
        Some(End::Unresolvable(self))
    }
}

impl HttpKind for Disconnect {
    type Proto = pb::DisconnectFault;

    fn convert(x: &pb::DisconnectFault, path: &str, c: &mut Collector) -> Option<Self> {
        let at = format!("{path}.after");
        let after = c.duration(&x.after, &at, true)?;
        if after.is_zero() {
            c.add(at, "must be longer than zero");
            return None;
        }
        Some(Disconnect { after, reset: x.reset })
    }

    /// Ends the upgraded connection or tunnel; with another disconnect, the earliest.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        if plan.share.disconnect.is_none_or(|earlier| self.after < earlier.after) {
            plan.share.disconnect = Some(*self);
        }
        Step::Acted
    }
}
