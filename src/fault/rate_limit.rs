//! `rate_limit`: a token bucket per experiment; requests beyond it get 429 with `retry-after`, like an edge
//! rate-limiting during a spike. Requests within the limit pass on untouched.
//!
//! The bucket is a GCRA ("theoretical arrival time") in one atomic, so the data plane takes no lock.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;

use super::{Collector, End, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Time between two tokens.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run: (burst − 1) intervals.
    tolerance: Duration,
    bucket: Arc<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// The clock's origin for `tat`.
    base: Instant,
    /// Theoretical arrival time of the next request, in nanoseconds since `base`.
    tat: AtomicU64,
}

impl RateLimit {
    /// The slowest rate a spec may ask for: one request per 1000 s.
    pub const MIN_RATE: f64 = 0.001;
    /// The fastest.
    pub const MAX_RATE: f64 = 1e9;

    /// `per_second` in [`RateLimit::MIN_RATE`, `RateLimit::MAX_RATE`] and `burst` ≥ 1 (checked by the
    /// caller); anything else still makes a limit (a rate that is not positive lets nothing through).
    pub fn new(per_second: f64, burst: u32) -> Self {
        let interval = Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(Duration::MAX);
        RateLimit {
            interval,
            tolerance: interval.saturating_mul(burst.saturating_sub(1)),
            bucket: Arc::new(Bucket { base: Instant::now(), tat: AtomicU64::new(0) }),
        }
    }

    /// Takes a token at `now`: `None` when the request is within the limit, else how long until a token
    /// is free (for `retry-after`).
    pub fn take(&self, now: Instant) -> Option<Duration> {
        let now = nanos(now.saturating_duration_since(self.bucket.base));
        let interval = nanos(self.interval);
        let tolerance = nanos(self.tolerance);
        let mut tat = self.bucket.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > tolerance {
                return Some(Duration::from_nanos(start - now - tolerance));
            }
            match self.bucket.tat.compare_exchange_weak(
                tat,
                start.saturating_add(interval),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return None,
                Err(current) => tat = current,
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl HttpKind for RateLimit {
    type Proto = pb::RateLimitFault;

    /// A rate from [`RateLimit::MIN_RATE`] to [`RateLimit::MAX_RATE`], a burst of at least 1.
    fn convert(r: &pb::RateLimitFault, path: &str, c: &mut Collector) -> Option<Self> {
        let rps = r.requests_per_second;
        if !(RateLimit::MIN_RATE..=RateLimit::MAX_RATE).contains(&rps) {
            c.add(
                format!("{path}.requests_per_second"),
                format!("must be from {} to {:e}, got {rps}", RateLimit::MIN_RATE, RateLimit::MAX_RATE),
            );
            return None;
        }
        Some(RateLimit::new(rps, r.burst.unwrap_or(1).max(1)))
    }

    /// Within the rate: nothing, the request goes on. Beyond it: ends the request (429, `retry-after`).
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        match self.take(plan.now) {
            Some(retry_after) => Step::Ends { retry_after },
            None => Step::Passed,
        }
    }

    fn end(&self) -> Option<End<'_>> {
        Some(End::RateLimited)
    }

    /// Only the requests beyond its rate end; the faults after it run for the others.
    fn always_ends(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let rl = RateLimit::new(10.0, 3);
        let now = Instant::now();
        assert_eq!(rl.take(now), None);
        assert_eq!(rl.take(now), None);
        assert_eq!(rl.take(now), None);
        assert_eq!(rl.take(now), Some(Duration::from_millis(100)), "the burst is spent");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(rl.take(Instant::now()), None, "one token back after one interval");
        assert!(rl.take(Instant::now()).is_some());
        // Over ten seconds at most 10 per second pass, whatever the demand.
        let mut passed = 0;
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(10)).await;
            for _ in 0..5 {
                if rl.take(Instant::now()).is_none() {
                    passed += 1;
                }
            }
        }
        assert!((9..=11).contains(&passed), "{passed} in 1 s at 10/s");
    }
}
