//! The fault model: pure values that decide whether a request is in scope ([`Matcher`]), whether it is
//! selected ([`Percentage`]) and what it gets ([`Fault`]). No I/O here, and nothing that can fail on a
//! request: every value is valid by construction (see `experiment::spec` for how proto becomes domain).

mod abort;
pub mod body;
pub mod check;
mod delay;
mod drip;
mod egress;
mod fault_headers;
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
pub use check::{Collector, Violation, Violations};
pub use delay::{Delay, DelayDistribution};
pub use drip::Drip;
pub use egress::{Blackhole, Disconnect, DnsAnswer, Unresolvable};
pub use fault_headers::{Asked, BadHeader, Capped, FaultHeaders, HeaderNames};
pub use first_byte::FirstByteDelay;
pub use grpc_stream::GrpcStream;
pub use hang::{Hang, HangEnd};
pub use matcher::{HostPattern, Matcher, Predicate, RequestView, ValueMatch};
pub use page::Page;
pub use plan::{End, Plan, Share, Step};
pub use rate_limit::RateLimit;
pub use reset::Reset;
pub use response::{BodyPlan, CutKind, ResponsePlan};
pub use rewrite::{rewrite_refuses, HeaderEdit, Rewrite};
pub use sample::{Percentage, RequestRng};
pub use sticky::StickyKey;
pub(crate) use sticky::{fnv1a, point as sticky_point};
pub use throttle::Throttle;
pub use tls::{CertificateProblem, TlsAlert, TlsFault};
pub use toxic::{Direction, Toxic, ToxicKind};
pub use trigger::Trigger;

use crate::pb::v1 as pb;
pub use truncate::Truncate;

/// What every HTTP fault kind provides, in its own file; [`http_faults!`] below registers it.
///
/// A kind is converted from its proto message once, at the boundary (every problem recorded with its field
/// path), and applied to each selected request's [`Plan`]. A kind that ends the request says how
/// ([`End`]); the proxy answers every way of ending in one place.
pub trait HttpKind: Sized {
    /// Its message in the proto (`AbortFault`, …).
    type Proto;
    /// The proto message at `path` (`faults[0].abort`) → the fault. `None`: invalid (the problems are in
    /// `c`).
    fn convert(proto: &Self::Proto, path: &str, c: &mut Collector) -> Option<Self>;
    /// What it does to a selected request: its part of the experiment's plan.
    fn apply(&self, plan: &mut Plan<'_>) -> Step;
    /// How it ends the request when [`HttpKind::apply`] says [`Step::Ends`]. `None`: it never ends one.
    fn end(&self) -> Option<End<'_>> {
        None
    }
    /// Whether it ends every request it is applied to (nothing after it in a list could run). A rate
    /// limit ends only the requests beyond its rate.
    fn always_ends(&self) -> bool {
        self.end().is_some()
    }
}

/// Registers the HTTP fault kinds: each line is the variant of [`Fault`] and of the proto's `Fault.kind`
/// (the same name), the kind's type (implementing [`HttpKind`]) and its name in the YAML, the audit log,
/// metrics and messages. Generates [`Fault`], its names and indexes, and the dispatch to each kind.
macro_rules! http_faults {
    ($($(#[$doc:meta])* $kind:ident($ty:ty) = $name:literal;)+) => {
        /// One action taken on a selected HTTP request (toxics and TLS faults are the other families, see
        /// [`Faults`]).
        #[derive(Debug, Clone)]
        pub enum Fault {
            $($(#[$doc])* $kind($ty),)+
        }

        /// The position of each kind in [`Fault::KINDS`].
        #[allow(clippy::enum_variant_names)]
        enum Index {
            $($kind,)+
            Toxic,
            Tls,
        }

        impl Fault {
            /// Every kind's label, HTTP faults then the two other families (`toxic`, `tls`), in the order of
            /// [`Fault::kind_index`], [`Toxic::KIND_INDEX`] and [`TlsFault::KIND_INDEX`].
            pub const KINDS: [&'static str; [$($name,)+ "toxic", "tls"].len()] = [$($name,)+ "toxic", "tls"];

            /// The index of [`Fault::kind`] in [`Fault::KINDS`].
            pub fn kind_index(&self) -> usize {
                match self {
                    $(Fault::$kind(_) => Index::$kind as usize,)+
                }
            }

            /// What the fault does to a request: its part of the experiment's [`Plan`].
            pub fn apply(&self, plan: &mut Plan<'_>) -> Step {
                match self {
                    $(Fault::$kind(x) => <$ty as HttpKind>::apply(x, plan),)+
                }
            }

            /// How the fault ends a request, when [`Fault::apply`] says it does.
            pub fn end(&self) -> Option<End<'_>> {
                match self {
                    $(Fault::$kind(x) => <$ty as HttpKind>::end(x),)+
                }
            }

            /// Whether the fault always ends the request before the upstream is asked (nothing after it
            /// can run).
            pub fn ends_request(&self) -> bool {
                match self {
                    $(Fault::$kind(x) => <$ty as HttpKind>::always_ends(x),)+
                }
            }

            /// A spec's HTTP fault at `path` (`faults[0]`) → the fault; `None` when it is invalid (the
            /// problems are in `c`) or of another family.
            pub fn convert(kind: &pb::fault::Kind, path: &str, c: &mut Collector) -> Option<Fault> {
                match kind {
                    $(pb::fault::Kind::$kind(p) => {
                        <$ty as HttpKind>::convert(p, &format!("{path}.{}", $name), c).map(Fault::$kind)
                    })+
                    pb::fault::Kind::Toxic(_) | pb::fault::Kind::Tls(_) => None,
                }
            }
        }

        /// The name of a spec's fault kind, as the audit log, `ctl` and messages give it.
        pub fn kind_name(kind: &pb::fault::Kind) -> &'static str {
            match kind {
                $(pb::fault::Kind::$kind(_) => $name,)+
                pb::fault::Kind::Toxic(_) => "toxic",
                pb::fault::Kind::Tls(_) => "tls",
            }
        }

        impl Toxic {
            /// The index of `toxic` in [`Fault::KINDS`].
            pub const KIND_INDEX: usize = Index::Toxic as usize;
        }

        impl TlsFault {
            /// The index of `tls` in [`Fault::KINDS`].
            pub const KIND_INDEX: usize = Index::Tls as usize;
        }
    };
}

http_faults! {
    /// Answer from the proxy instead of the upstream.
    Abort(Abort) = "abort";
    /// Hold the request before it goes on.
    Delay(Delay) = "delay";
    /// Hold the request without answering, then close, reset or answer.
    Hang(Hang) = "hang";
    /// Reset the connection, before the response or after some body bytes.
    Reset(Reset) = "reset";
    /// Cut the response body after some bytes.
    Truncate(Truncate) = "truncate";
    /// Send the response body at a limited rate.
    Throttle(Throttle) = "throttle";
    /// Beyond a token-bucket rate, answer 429 with `retry-after`.
    RateLimit(RateLimit) = "rate_limit";
    /// Accept and never answer (a CONNECT tunnel is opened and swallows what the client sends).
    Blackhole(Blackhole) = "blackhole";
    /// Answer as if the destination's name did not resolve.
    Unresolvable(Unresolvable) = "unresolvable";
    /// End a gRPC response stream with a status after some messages or some time.
    GrpcStream(GrpcStream) = "grpc_stream";
    /// End a WebSocket or a CONNECT tunnel some time after it opens.
    Disconnect(Disconnect) = "disconnect";
    /// Hold the upstream's response on its way back (slow time-to-first-byte).
    FirstByteDelay(FirstByteDelay) = "first_byte_delay";
    /// Send the response body in chunks with pauses.
    Drip(Drip) = "drip";
    /// Change request and response headers, replace the status.
    Rewrite(std::sync::Arc<Rewrite>) = "rewrite";
    /// Replace or corrupt the response body.
    Body(BodyFault) = "body";
}

impl Fault {
    /// The label used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        Self::KINDS.get(self.kind_index()).copied().unwrap_or("unknown")
    }
}

/// What an experiment does, by family: HTTP faults on requests, toxics on a TCP listener's connections,
/// or faults on a TLS listener's handshakes. The families never meet: an experiment (and each of its
/// phases) has faults of one.
#[derive(Debug, Clone)]
pub enum Faults {
    Http(Vec<Fault>),
    Tcp(Vec<Toxic>),
    Tls(Vec<TlsFault>),
}

impl Faults {
    pub fn len(&self) -> usize {
        match self {
            Faults::Http(f) => f.len(),
            Faults::Tcp(f) => f.len(),
            Faults::Tls(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The HTTP faults; none for the other families.
    pub fn http(&self) -> &[Fault] {
        match self {
            Faults::Http(f) => f,
            Faults::Tcp(_) | Faults::Tls(_) => &[],
        }
    }

    /// The toxics; none for the other families.
    pub fn toxics(&self) -> &[Toxic] {
        match self {
            Faults::Tcp(f) => f,
            Faults::Http(_) | Faults::Tls(_) => &[],
        }
    }

    /// The TLS faults; none for the other families.
    pub fn tls(&self) -> &[TlsFault] {
        match self {
            Faults::Tls(f) => f,
            Faults::Http(_) | Faults::Tcp(_) => &[],
        }
    }

    /// Adds `more` of the same family (a phase's faults after the experiment's); those of another family
    /// are left out (validation never lets families meet).
    pub fn extend(&mut self, more: &Faults) {
        match (self, more) {
            (Faults::Http(a), Faults::Http(b)) => a.extend(b.iter().cloned()),
            (Faults::Tcp(a), Faults::Tcp(b)) => a.extend(b.iter().cloned()),
            (Faults::Tls(a), Faults::Tls(b)) => a.extend(b.iter().cloned()),
            _ => {}
        }
    }
}

impl From<Vec<Fault>> for Faults {
    fn from(f: Vec<Fault>) -> Self {
        Faults::Http(f)
    }
}

impl From<Vec<Toxic>> for Faults {
    fn from(f: Vec<Toxic>) -> Self {
        Faults::Tcp(f)
    }
}

impl From<Vec<TlsFault>> for Faults {
    fn from(f: Vec<TlsFault>) -> Self {
        Faults::Tls(f)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_kind_has_one_name_and_the_families_theirs() {
        let mut names = Fault::KINDS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Fault::KINDS.len(), "a name is given twice: {:?}", Fault::KINDS);
        assert_eq!(Fault::KINDS[Toxic::KIND_INDEX], "toxic");
        assert_eq!(Fault::KINDS[TlsFault::KIND_INDEX], "tls");
        assert_eq!(kind_name(&pb::fault::Kind::Toxic(pb::ToxicFault::default())), "toxic");
    }

    #[test]
    fn a_converted_fault_keeps_its_spec_name_and_says_how_it_ends() {
        let mut c = Collector::new(None, Duration::from_secs(3600));
        let cases = [
            (pb::fault::Kind::Abort(pb::AbortFault::default()), true),
            (pb::fault::Kind::Reset(pb::ResetFault { after_bytes: None }), true),
            (pb::fault::Kind::Reset(pb::ResetFault { after_bytes: Some(10) }), false),
            (pb::fault::Kind::Truncate(pb::TruncateFault { after_bytes: 10 }), false),
            (pb::fault::Kind::RateLimit(pb::RateLimitFault { requests_per_second: 1.0, burst: None }), false),
            (pb::fault::Kind::Unresolvable(pb::UnresolvableFault::default()), true),
        ];
        for (kind, ends) in cases {
            let fault = Fault::convert(&kind, "faults[0]", &mut c).expect("valid");
            assert_eq!(fault.kind(), kind_name(&kind));
            assert_eq!(fault.ends_request(), ends, "{kind:?}");
        }
        assert!(Fault::convert(&pb::fault::Kind::Toxic(pb::ToxicFault::default()), "faults[0]", &mut c).is_none());
        assert!(c.finish(|| ()).is_ok(), "no problem was recorded");
    }
}
