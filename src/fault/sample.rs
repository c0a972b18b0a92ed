//! Sampling: which matching requests an experiment selects, with a per-experiment random stream.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::{rngs::SmallRng, RngExt, SeedableRng};

/// A share of requests, 0 to 100 percent, fractional. Valid by construction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentage {
    /// 0.0..=1.0
    ratio: f64,
}

impl Percentage {
    pub const ALL: Percentage = Percentage { ratio: 1.0 };

    /// `None` unless `percent` is a finite number in 0..=100.
    pub fn new(percent: f64) -> Option<Self> {
        (percent.is_finite() && (0.0..=100.0).contains(&percent)).then(|| Percentage { ratio: percent / 100.0 })
    }

    pub fn percent(self) -> f64 {
        self.ratio * 100.0
    }

    /// Whether a request is selected, given its random stream. 100 % and 0 % draw nothing.
    pub fn select(self, rng: &mut RequestRng) -> bool {
        if self.ratio >= 1.0 {
            true
        } else if self.ratio <= 0.0 {
            false
        } else {
            rng.rng().random::<f64>() < self.ratio
        }
    }
}

/// The random stream of one request within one experiment.
///
/// An experiment holds a seed and a counter; the n-th request it sees gets a generator seeded from
/// `(seed, n)`. No lock is shared between requests, and a run with a fixed seed and the same request order
/// makes the same choices. The generator itself is built only when a choice needs it.
pub struct RequestRng {
    seed: u64,
    rng: Option<SmallRng>,
}

impl RequestRng {
    /// The stream for the next request of an experiment whose seed and counter are given.
    pub fn next(seed: u64, counter: &AtomicU64) -> Self {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        RequestRng { seed: splitmix64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)), rng: None }
    }

    pub fn rng(&mut self) -> &mut SmallRng {
        let seed = self.seed;
        self.rng.get_or_insert_with(|| SmallRng::seed_from_u64(seed))
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentage_bounds() {
        assert!(Percentage::new(-0.1).is_none());
        assert!(Percentage::new(100.1).is_none());
        assert!(Percentage::new(f64::NAN).is_none());
        assert_eq!(Percentage::new(12.5).map(Percentage::percent), Some(12.5));
    }

    #[test]
    fn same_seed_same_choices() {
        let draw = |seed| {
            let counter = AtomicU64::new(0);
            let p = Percentage::new(30.0).expect("valid");
            (0..1000).map(|_| p.select(&mut RequestRng::next(seed, &counter))).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn share_is_close_to_the_percentage() {
        let counter = AtomicU64::new(0);
        let p = Percentage::new(25.0).expect("valid");
        let hits = (0..100_000).filter(|_| p.select(&mut RequestRng::next(42, &counter))).count();
        // 25 % of 100k: sd ~137, so ±1000 is beyond 7 sd.
        assert!((24_000..=26_000).contains(&hits), "{hits}");
    }
}
