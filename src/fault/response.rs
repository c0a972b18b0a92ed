//! What the selected experiments do to the upstream's response body, combined: a plain value the proxy's
//! body wrapper (`proxy::act`) carries out.

use std::num::NonZeroU64;

use super::{Reset, Throttle, Truncate};

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
}

impl BodyPlan {
    pub fn is_empty(&self) -> bool {
        self.cut.is_none() && self.rate.is_none()
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
