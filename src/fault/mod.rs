//! The fault model: pure values that decide whether a request is in scope ([`Matcher`]), whether it is
//! selected ([`Percentage`]) and what it gets ([`Fault`]). No I/O here, and nothing that can fail on a
//! request: every value is valid by construction (see `control::convert` for how proto becomes domain).

mod abort;
mod delay;
mod matcher;
pub mod page;
mod sample;

pub use abort::{grpc_code_for_http, Abort, GrpcCode};
pub use delay::{Delay, DelayDistribution};
pub use matcher::{HostPattern, Matcher, Predicate, RequestView, ValueMatch};
pub use page::Page;
pub use sample::{Percentage, RequestRng};

/// One action taken on a selected request. Each proxy phase matches on this exhaustively, so a new kind
/// forces a decision everywhere it matters.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer from the proxy instead of the upstream.
    Abort(Abort),
    /// Hold the request before it goes on.
    Delay(Delay),
}

impl Fault {
    /// The label used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Abort(_) => "abort",
            Fault::Delay(_) => "delay",
        }
    }
}
