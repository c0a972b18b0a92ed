//! `first_byte_delay`: the upstream is asked at once and answers as usual, but its response is held on the
//! way back, so the client's first byte comes late: a slow edge or a congested path rather than a slow
//! origin (for that, `delay` holds the request before it is forwarded).

use super::Delay;

#[derive(Debug, Clone)]
pub struct FirstByteDelay {
    /// How long the response is held, drawn per request.
    pub delay: Delay,
    /// `false`: the status and headers are held too; `true`: they go at once and the first body byte waits.
    pub head_first: bool,
}

impl FirstByteDelay {
    /// Holds the response head, or with `head_first` its first body byte, for a draw of the delay.
    pub fn apply(&self, plan: &mut super::Plan<'_>) -> super::Step {
        let wait = self.delay.sample(plan.rng);
        if self.head_first {
            plan.share.body.first_byte = plan.share.body.first_byte.saturating_add(wait);
        } else {
            plan.share.head_delay = plan.share.head_delay.saturating_add(wait);
        }
        super::Step::Acted
    }
}
