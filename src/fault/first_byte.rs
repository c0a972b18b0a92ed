//! `first_byte_delay`: the upstream is asked at once and answers as usual, but its response is held on the
//! way back, so the client's first byte comes late: a slow edge or a congested path rather than a slow
//! origin (for that, `delay` holds the request before it is forwarded).

use super::{Collector, Delay, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

#[derive(Debug, Clone)]
pub struct FirstByteDelay {
    /// How long the response is held, drawn per request.
    pub delay: Delay,
    /// `false`: the status and headers are held too; `true`: they go at once and the first body byte waits.
    pub head_first: bool,
}

impl HttpKind for FirstByteDelay {
    type Proto = pb::FirstByteDelayFault;

    /// The delay's distribution and cap, checked as a `delay`'s are.
    fn convert(f: &pb::FirstByteDelayFault, path: &str, c: &mut Collector) -> Option<Self> {
        use pb::{delay_fault::Distribution as D, first_byte_delay_fault::Distribution as F};
        let distribution = f.distribution.as_ref().map(|d| match d {
            F::Fixed(v) => D::Fixed(*v),
            F::Uniform(v) => D::Uniform(*v),
            F::Normal(v) => D::Normal(*v),
            F::Lognormal(v) => D::Lognormal(*v),
        });
        let delay = Delay::convert(&pb::DelayFault { distribution, max: f.max }, path, c)?;
        Some(FirstByteDelay { delay, head_first: f.head_first })
    }

    /// Holds the response head, or with `head_first` its first body byte, for a draw of the delay.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        let wait = self.delay.sample(plan.rng);
        if self.head_first {
            plan.share.body.first_byte = plan.share.body.first_byte.saturating_add(wait);
        } else {
            plan.share.head_delay = plan.share.head_delay.saturating_add(wait);
        }
        Step::Acted
    }
}
