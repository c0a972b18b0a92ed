//! Deterministic triggers, beside the percentage: the first N matching requests, every Nth, or only within
//! a window of the experiment's run. For resilience tests in CI that must fail exactly the same requests
//! on every run.

use std::{num::NonZeroU64, time::Duration};

/// When an experiment's faults may fire. Every condition given must hold; the percentage then samples
/// among the requests the trigger lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trigger {
    /// Only the first N matching requests.
    pub first: Option<NonZeroU64>,
    /// Only every Nth matching request: the Nth, the 2Nth, …
    pub every: Option<NonZeroU64>,
    /// Only from this long after the experiment started…
    pub after: Duration,
    /// …and before this long after it started.
    pub until: Option<Duration>,
}

impl Trigger {
    /// Whether the `n`th matching request (counting from 1), `elapsed` after the start, may get faults.
    pub fn fires(&self, n: u64, elapsed: Duration) -> bool {
        self.first.is_none_or(|f| n <= f.get())
            && self.every.is_none_or(|e| n % e.get() == 0)
            && elapsed >= self.after
            && self.until.is_none_or(|u| elapsed < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(n)
    }

    #[test]
    fn counts_and_windows() {
        let first3 = Trigger { first: nz(3), ..Trigger::default() };
        let fired: Vec<u64> = (1..=10).filter(|n| first3.fires(*n, Duration::ZERO)).collect();
        assert_eq!(fired, [1, 2, 3]);

        let every4 = Trigger { every: nz(4), ..Trigger::default() };
        let fired: Vec<u64> = (1..=10).filter(|n| every4.fires(*n, Duration::ZERO)).collect();
        assert_eq!(fired, [4, 8]);

        let both = Trigger { first: nz(9), every: nz(3), ..Trigger::default() };
        let fired: Vec<u64> = (1..=20).filter(|n| both.fires(*n, Duration::ZERO)).collect();
        assert_eq!(fired, [3, 6, 9]);

        let window =
            Trigger { after: Duration::from_secs(10), until: Some(Duration::from_secs(20)), ..Trigger::default() };
        assert!(!window.fires(1, Duration::from_millis(9_999)));
        assert!(window.fires(1, Duration::from_secs(10)));
        assert!(window.fires(1, Duration::from_millis(19_999)));
        assert!(!window.fires(1, Duration::from_secs(20)));

        assert!(Trigger::default().fires(u64::MAX, Duration::MAX));
    }
}
