//! `toxic`: byte-level faults on the connections of TCP listeners, after Toxiproxy's toxics (latency,
//! bandwidth, slicer, reset_peer, timeout, limit_data, slow_close), each in one direction. Pure values; the data plane
//! that applies them is `proxy::tcp`.

use std::{num::NonZeroU64, time::Duration};

use rand::{Rng, RngExt};

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
}

/// One toxic: what it does, and in which direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toxic {
    pub direction: Direction,
    pub kind: ToxicKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToxicKind {
    /// Every chunk waits `latency` ± a uniform `jitter`, counted from its arrival.
    Latency { latency: Duration, jitter: Duration },
    /// At most this many bytes per second.
    Bandwidth { bytes_per_second: NonZeroU64 },
    /// Chunks cut into pieces of `average_size` ± `size_variation` bytes (`size_variation < average_size`),
    /// `delay` between pieces.
    Slicer { average_size: NonZeroU64, size_variation: u64, delay: Duration },
    /// Reset the connection `timeout` after the first data; that data and what follows are dropped.
    ResetPeer { timeout: Duration },
    /// Hold all data; close after `timeout` (`None`: hold until the toxic goes away).
    Timeout { timeout: Option<Duration> },
    /// Close once this many bytes have passed.
    LimitData { bytes: u64 },
    /// Pass the sender's close (FIN) on only `delay` after it came.
    SlowClose { delay: Duration },
}

impl ToxicKind {
    /// The name used in logs and docs (Toxiproxy's).
    pub fn name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::SlowClose { .. } => "slow_close",
        }
    }
}

/// A latency toxic's delay for one chunk: uniform in `latency ± jitter`, never below zero.
pub fn sample_latency(latency: Duration, jitter: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let spread = jitter.as_secs_f64();
    let offset = rng.random_range(-spread..=spread);
    Duration::from_secs_f64((latency.as_secs_f64() + offset).max(0.0))
}

/// The length of a slicer's next piece: uniform in `average ± variation`, at least 1 byte.
pub fn slice_len(average: NonZeroU64, variation: u64, rng: &mut impl Rng) -> usize {
    let avg = average.get();
    let len = if variation == 0 {
        avg
    } else {
        let v = variation.min(avg - 1);
        rng.random_range(avg - v..=avg.saturating_add(v))
    };
    usize::try_from(len.max(1)).unwrap_or(usize::MAX)
}

/// How long `bytes` take at `rate` bytes per second.
pub fn transfer_time(bytes: usize, rate: NonZeroU64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate.get() as f64)
}

#[cfg(test)]
mod tests {
    use rand::{rngs::SmallRng, SeedableRng};

    use super::*;

    #[test]
    fn latency_stays_within_its_jitter_and_above_zero() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (lat, jit) = (Duration::from_millis(100), Duration::from_millis(30));
        let samples: Vec<Duration> = (0..1000).map(|_| sample_latency(lat, jit, &mut rng)).collect();
        assert!(samples.iter().all(|d| (Duration::from_millis(70)..=Duration::from_millis(130)).contains(d)));
        assert!(samples.iter().any(|d| *d < Duration::from_millis(90)) && samples.iter().any(|d| *d > lat));
        let wide: Vec<Duration> =
            (0..1000).map(|_| sample_latency(Duration::from_millis(5), Duration::from_millis(50), &mut rng)).collect();
        assert!(wide.iter().all(|d| *d <= Duration::from_millis(55)));
        assert!(wide.iter().any(|d| d.is_zero()));
        assert_eq!(sample_latency(lat, Duration::ZERO, &mut rng), lat);
    }

    #[test]
    fn slices_vary_around_the_average() {
        let mut rng = SmallRng::seed_from_u64(2);
        let avg = NonZeroU64::new(10).unwrap_or(NonZeroU64::MIN);
        let lens: Vec<usize> = (0..1000).map(|_| slice_len(avg, 4, &mut rng)).collect();
        assert!(lens.iter().all(|l| (6..=14).contains(l)), "{lens:?}");
        assert!(lens.contains(&6) && lens.contains(&14));
        assert!((0..100).all(|_| slice_len(avg, 0, &mut rng) == 10));
        assert!((0..100).all(|_| slice_len(NonZeroU64::MIN, 5, &mut rng) == 1));
    }

    #[test]
    fn transfer_time_is_bytes_over_rate() {
        let rate = NonZeroU64::new(1000).unwrap_or(NonZeroU64::MIN);
        assert_eq!(transfer_time(500, rate), Duration::from_millis(500));
        assert_eq!(transfer_time(0, rate), Duration::ZERO);
    }
}
