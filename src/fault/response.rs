//! What the selected experiments do to the upstream's response body, combined: a plain value the proxy's
//! body wrapper (`proxy::act`) carries out.

use std::{num::NonZeroU64, sync::Arc, time::Duration};

use super::{body::Replace, BodyFault, Corrupt, Drip, Reset, Rewrite, Throttle, Truncate};

/// How a body cut ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// Close (FIN): `truncate`.
    Close,
    /// Reset (RST): `reset` with `after_bytes`.
    Reset,
}

/// The combined body faults of one request. Combination: the earliest cut wins (at equal byte counts a
/// reset beats a close); the slowest rate wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyPlan {
    /// Cut the body after this many bytes.
    pub cut: Option<(u64, CutKind)>,
    /// At most this many bytes per second.
    pub rate: Option<NonZeroU64>,
    /// Chunks of a size, a pause between them.
    pub drip: Option<Drip>,
    /// How long the first body byte waits (`first_byte_delay` with `head_first`).
    pub first_byte: Duration,
}

impl BodyPlan {
    pub fn is_empty(&self) -> bool {
        self.cut.is_none() && self.rate.is_none() && self.drip.is_none() && self.first_byte.is_zero()
    }

    fn cut_at(&mut self, n: u64, kind: CutKind) {
        let earlier = match self.cut {
            None => true,
            Some((m, k)) => n < m || (n == m && k == CutKind::Close && kind == CutKind::Reset),
        };
        if earlier {
            self.cut = Some((n, kind));
        }
    }

    pub fn add_truncate(&mut self, t: &Truncate) {
        self.cut_at(t.after_bytes, CutKind::Close);
    }

    /// A reset after some bytes; a reset before the response is not a body fault and is ignored here.
    pub fn add_reset(&mut self, r: &Reset) {
        if let Some(n) = r.after_bytes {
            self.cut_at(n, CutKind::Reset);
        }
    }

    pub fn add_throttle(&mut self, t: &Throttle) {
        self.rate = Some(self.rate.map_or(t.bytes_per_second, |r| r.min(t.bytes_per_second)));
    }

    /// Drips combine into the smallest chunk and the longest pause.
    pub fn add_drip(&mut self, d: &Drip) {
        self.drip = Some(self.drip.map_or(*d, |old| old.slowest(*d)));
    }

    /// The combination of several experiments' plans (see [`BodyPlan::merge`]).
    pub fn combined<'a>(plans: impl IntoIterator<Item = &'a BodyPlan>) -> BodyPlan {
        let mut out = BodyPlan::default();
        for p in plans {
            out.merge(p);
        }
        out
    }

    /// Combines another experiment's plan into this one: the earliest cut, the slowest rate and drip, the
    /// first byte's waits added.
    pub fn merge(&mut self, other: &BodyPlan) {
        if let Some((n, kind)) = other.cut {
            self.cut_at(n, kind);
        }
        if let Some(rate) = other.rate {
            self.rate = Some(self.rate.map_or(rate, |r| r.min(rate)));
        }
        if let Some(d) = &other.drip {
            self.add_drip(d);
        }
        self.first_byte = self.first_byte.saturating_add(other.first_byte);
    }
}

/// What the selected experiments do to the request's and the response's heads and to which body the
/// response sends: the faults that are not plain values (`rewrite`, `body`). Empty (and allocation-free)
/// unless one of them was selected.
#[derive(Debug, Clone, Default)]
pub struct ResponsePlan {
    /// Applied in start order, then list order: for the same header or the status, the last applied wins.
    pub rewrites: Vec<Arc<Rewrite>>,
    /// The body sent instead of the upstream's: the earliest-started experiment's.
    pub replace: Option<Arc<Replace>>,
    /// Every selected corruption, each with the seed its experiment's random stream drew for the request.
    pub corrupt: Vec<(Arc<Corrupt>, u64)>,
}

impl ResponsePlan {
    pub fn is_empty(&self) -> bool {
        self.rewrites.is_empty() && self.replace.is_none() && self.corrupt.is_empty()
    }

    /// Whether the request itself is changed before forwarding.
    pub fn rewrites_request(&self) -> bool {
        self.rewrites.iter().any(|r| !r.request.is_empty())
    }

    /// Adds a body fault; `seed` is used by a corruption.
    pub fn add_body(&mut self, b: &BodyFault, seed: u64) {
        match b {
            BodyFault::Replace(r) => {
                if self.replace.is_none() {
                    self.replace = Some(Arc::clone(r));
                }
            }
            BodyFault::Corrupt(c) => self.corrupt.push((Arc::clone(c), seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_cut_and_slowest_rate_win() {
        let mut p = BodyPlan::default();
        assert!(p.is_empty());
        p.add_truncate(&Truncate { after_bytes: 100 });
        p.add_reset(&Reset { after_bytes: Some(200) });
        assert_eq!(p.cut, Some((100, CutKind::Close)));
        p.add_reset(&Reset { after_bytes: Some(100) });
        assert_eq!(p.cut, Some((100, CutKind::Reset)));
        p.add_truncate(&Truncate { after_bytes: 100 });
        assert_eq!(p.cut, Some((100, CutKind::Reset)));
        p.add_reset(&Reset { after_bytes: None });
        assert_eq!(p.cut, Some((100, CutKind::Reset)));
        let rate = |n| Throttle { bytes_per_second: NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN) };
        p.add_throttle(&rate(500));
        p.add_throttle(&rate(1000));
        assert_eq!(p.rate.map(NonZeroU64::get), Some(500));
    }
}
