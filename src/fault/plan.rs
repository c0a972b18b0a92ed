//! What one experiment's faults do to one request, gathered fault by fault: each kind's `apply` adds its
//! part to the [`Plan`] and says what it did ([`Step`]). The rule set turns the plans of the selected
//! experiments into the request's decision (`experiment::Decision`).

use std::time::Duration;

use tokio::time::Instant;

use super::{Abort, Blackhole, BodyPlan, Disconnect, GrpcStream, Hang, RequestRng, ResponsePlan};

/// A request's faults as one experiment's apply them.
pub struct Plan<'a> {
    /// What is the experiment's own: its holds and body faults last only while it runs.
    pub share: Share,
    /// Rewrites, replacement and corruption of the response; shared by every selected experiment.
    pub response: &'a mut ResponsePlan,
    /// The request's random draws for this experiment.
    pub rng: &'a mut RequestRng,
    pub now: Instant,
}

impl<'a> Plan<'a> {
    pub fn new(response: &'a mut ResponsePlan, rng: &'a mut RequestRng, now: Instant) -> Self {
        Plan { share: Share::default(), response, rng, now }
    }
}

/// One experiment's share of a request's faults: released, each part, when the experiment ends.
#[derive(Debug, Default)]
pub struct Share {
    /// Holds before the request goes on (delays), added up.
    pub delay: Duration,
    /// Holds of the response head on its way back (`first_byte_delay` without `head_first`), added up.
    pub head_delay: Duration,
    /// What happens to the response body.
    pub body: BodyPlan,
    pub grpc_stream: Option<GrpcStream>,
    /// The earliest disconnect of an upgraded connection or tunnel.
    pub disconnect: Option<Disconnect>,
}

/// What a fault did to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing this time: a rate limit within its rate, or a fault that acts on connections, not requests.
    Passed,
    /// A hold before the request goes on.
    Delayed,
    /// The response or the connection will be acted on.
    Acted,
    /// The request ends here (abort, hang, reset before the response, blackhole, unresolvable, a rate
    /// limit beyond its rate, with its `retry-after`); the experiment's later faults are not applied.
    Ends { retry_after: Duration },
}

impl Step {
    /// The request ends here, with no `retry-after`.
    pub const ENDS: Step = Step::Ends { retry_after: Duration::ZERO };
}

/// How a fault ends a request (see [`Step::Ends`]): the proxy answers each of these in one place
/// (`proxy::service::ReverseProxy::end`).
#[derive(Debug, Clone, Copy)]
pub enum End<'a> {
    /// Answer from the proxy.
    Abort(&'a Abort),
    /// Hold without answering, then close, reset or answer.
    Hang(&'a Hang),
    /// Reset the client's connection.
    Reset,
    /// 429 with `retry-after`.
    RateLimited,
    /// 502 as for a name that does not resolve.
    Unresolvable(&'a super::Unresolvable),
    /// Accept and never answer.
    Blackhole(&'a Blackhole),
}
