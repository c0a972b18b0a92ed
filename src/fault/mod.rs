//! The fault model: pure values that decide whether a request is in scope ([`Matcher`]), whether it is
//! selected ([`Percentage`]) and what it gets ([`Fault`]). No I/O here, and nothing that can fail on a
//! request: every value is valid by construction (see `experiment::spec` for how proto becomes domain).

mod abort;
pub mod body;
mod delay;
mod drip;
mod egress;
mod first_byte;
mod grpc_stream;
mod hang;
mod matcher;
pub mod page;
mod plan;
mod rate_limit;
mod reset;
mod response;
mod rewrite;
mod sample;
mod sticky;
mod throttle;
mod tls;
pub mod toxic;
mod trigger;
mod truncate;

pub use abort::{grpc_code_for_http, percent_encode_grpc, Abort, GrpcCode};
pub use body::{BodyFault, Corrupt, Corruptor, Pick, Replace};
pub use delay::{Delay, DelayDistribution};
pub use drip::Drip;
pub use egress::{Blackhole, Disconnect, Unresolvable};
pub use first_byte::FirstByteDelay;
pub use grpc_stream::GrpcStream;
pub use hang::{Hang, HangEnd};
pub use matcher::{HostPattern, Matcher, Predicate, RequestView, ValueMatch};
pub use page::Page;
pub use plan::{Plan, Share, Step};
pub use rate_limit::RateLimit;
pub use reset::Reset;
pub use response::{BodyPlan, CutKind, ResponsePlan};
pub use rewrite::{rewrite_refuses, HeaderEdit, Rewrite};
pub use sample::{Percentage, RequestRng};
pub use sticky::StickyKey;
pub use throttle::Throttle;
pub use tls::{CertificateProblem, TlsAlert, TlsFault};
pub use toxic::{Direction, Toxic, ToxicKind};
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
    /// Accept and never answer (a CONNECT tunnel is opened and swallows what the client sends).
    Blackhole(Blackhole),
    /// Answer as if the destination's name did not resolve.
    Unresolvable(Unresolvable),
    /// End a gRPC response stream with a status after some messages or some time.
    GrpcStream(GrpcStream),
    /// End a WebSocket or a CONNECT tunnel some time after it opens.
    Disconnect(Disconnect),
    /// Hold the upstream's response on its way back (slow time-to-first-byte).
    FirstByteDelay(FirstByteDelay),
    /// Send the response body in chunks with pauses.
    Drip(Drip),
    /// Change request and response headers, replace the status.
    Rewrite(std::sync::Arc<Rewrite>),
    /// Replace or corrupt the response body.
    Body(BodyFault),
    /// A byte-level fault on a TCP listener's connections (never on HTTP requests).
    Toxic(Toxic),
    /// A fault on a TLS listener's handshakes (never on HTTP requests).
    Tls(TlsFault),
}

impl Fault {
    /// The label used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        Self::KINDS.get(self.kind_index()).copied().unwrap_or("unknown")
    }

    /// Every kind's label, in the order of [`Fault::kind_index`].
    pub const KINDS: [&'static str; 17] = [
        "abort",
        "delay",
        "hang",
        "reset",
        "truncate",
        "throttle",
        "rate_limit",
        "blackhole",
        "unresolvable",
        "grpc_stream",
        "disconnect",
        "first_byte_delay",
        "drip",
        "rewrite",
        "body",
        "toxic",
        "tls",
    ];

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
            Fault::Blackhole(_) => 7,
            Fault::Unresolvable(_) => 8,
            Fault::GrpcStream(_) => 9,
            Fault::Disconnect(_) => 10,
            Fault::FirstByteDelay(_) => 11,
            Fault::Drip(_) => 12,
            Fault::Rewrite(_) => 13,
            Fault::Body(_) => 14,
            Fault::Toxic(_) => 15,
            Fault::Tls(_) => 16,
        }
    }

    /// Whether the fault always ends the request before the upstream is asked (nothing after it can run).
    /// A rate limit ends only the requests beyond its rate.
    pub fn ends_request(&self) -> bool {
        match self {
            Fault::Abort(_) | Fault::Hang(_) | Fault::Blackhole(_) | Fault::Unresolvable(_) => true,
            Fault::Reset(r) => r.after_bytes.is_none(),
            Fault::Delay(_)
            | Fault::Truncate(_)
            | Fault::Throttle(_)
            | Fault::RateLimit(_)
            | Fault::GrpcStream(_)
            | Fault::Disconnect(_) => false,
            Fault::FirstByteDelay(_) | Fault::Drip(_) | Fault::Rewrite(_) | Fault::Body(_) => false,
            // Act on connections, not requests.
            Fault::Toxic(_) | Fault::Tls(_) => false,
        }
    }

    /// What the fault does to a request: its part of the experiment's [`Plan`] (each kind's `apply`). Faults
    /// that act on connections (toxics, TLS faults) do nothing to a request.
    pub fn apply(&self, plan: &mut Plan<'_>) -> Step {
        match self {
            Fault::Abort(_) | Fault::Hang(_) | Fault::Blackhole(_) | Fault::Unresolvable(_) => Step::ENDS,
            Fault::Delay(x) => x.apply(plan),
            Fault::Reset(x) => x.apply(plan),
            Fault::Truncate(x) => x.apply(plan),
            Fault::Throttle(x) => x.apply(plan),
            Fault::RateLimit(x) => x.apply(plan),
            Fault::GrpcStream(x) => x.apply(plan),
            Fault::Disconnect(x) => x.apply(plan),
            Fault::FirstByteDelay(x) => x.apply(plan),
            Fault::Drip(x) => x.apply(plan),
            Fault::Rewrite(x) => rewrite::apply(x, plan),
            Fault::Body(x) => x.apply(plan),
            Fault::Toxic(_) | Fault::Tls(_) => Step::Passed,
        }
    }
}
