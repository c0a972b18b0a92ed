//! The fault model: pure values that decide whether a request is in scope ([`Matcher`]), whether it is
//! selected ([`Percentage`]) and what it gets ([`Fault`]). No I/O here, and nothing that can fail on a
//! request: every value is valid by construction (see `control::convert` for how proto becomes domain).

mod abort;
mod delay;
mod hang;
mod matcher;
pub mod page;
mod rate_limit;
mod reset;
mod response;
mod sample;
mod sticky;
mod throttle;
mod trigger;
mod truncate;

pub use abort::{grpc_code_for_http, Abort, GrpcCode};
pub use delay::{Delay, DelayDistribution};
pub use hang::{Hang, HangEnd};
pub use matcher::{HostPattern, Matcher, Predicate, RequestView, ValueMatch};
pub use page::Page;
pub use rate_limit::RateLimit;
pub use reset::Reset;
pub use response::{BodyPlan, CutKind};
pub use sample::{Percentage, RequestRng};
pub use sticky::StickyKey;
pub use throttle::Throttle;
pub use trigger::Trigger;
pub use truncate::Truncate;

/// One action taken on a selected request. Each proxy phase matches on this exhaustively, so a new kind
/// forces a decision everywhere it matters.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer from the proxy instead of the upstream.
    Abort(Abort),
    /// Hold the request before it goes on.
    Delay(Delay),
    /// Hold the request without answering, then close, reset or answer.
    Hang(Hang),
    /// Reset the connection, before the response or after some body bytes.
    Reset(Reset),
    /// Cut the response body after some bytes.
    Truncate(Truncate),
    /// Send the response body at a limited rate.
    Throttle(Throttle),
    /// Beyond a token-bucket rate, answer 429 with `retry-after`.
    RateLimit(RateLimit),
}

impl Fault {
    /// The label used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Abort(_) => "abort",
            Fault::Delay(_) => "delay",
            Fault::Hang(_) => "hang",
            Fault::Reset(_) => "reset",
            Fault::Truncate(_) => "truncate",
            Fault::Throttle(_) => "throttle",
            Fault::RateLimit(_) => "rate_limit",
        }
    }

    /// Every kind's label, in the order of [`Fault::kind_index`].
    pub const KINDS: [&'static str; 7] = ["abort", "delay", "hang", "reset", "truncate", "throttle", "rate_limit"];

    /// The index of [`Fault::kind`] in [`Fault::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            Fault::Abort(_) => 0,
            Fault::Delay(_) => 1,
            Fault::Hang(_) => 2,
            Fault::Reset(_) => 3,
            Fault::Truncate(_) => 4,
            Fault::Throttle(_) => 5,
            Fault::RateLimit(_) => 6,
        }
    }

    /// Whether the fault always ends the request before the upstream is asked (nothing after it can run).
    /// A rate limit ends only the requests beyond its rate.
    pub fn ends_request(&self) -> bool {
        match self {
            Fault::Abort(_) | Fault::Hang(_) => true,
            Fault::Reset(r) => r.after_bytes.is_none(),
            Fault::Delay(_) | Fault::Truncate(_) | Fault::Throttle(_) | Fault::RateLimit(_) => false,
        }
    }
}
