//! `delay`: hold a request for a fixed or random time.

use std::time::Duration;

use rand_distr::{Distribution, LogNormal, Normal};

use super::{Collector, HttpKind, Plan, RequestRng, Step};
use crate::pb::v1 as pb;

#[derive(Debug, Clone)]
pub enum DelayDistribution {
    Fixed(Duration),
    Uniform {
        min: Duration,
        max: Duration,
    },
    /// In seconds.
    Normal(Normal<f64>),
    /// In seconds.
    LogNormal(LogNormal<f64>),
}

/// A delay and its cap. `max` is required by validation for the unbounded distributions.
#[derive(Debug, Clone)]
pub struct Delay {
    pub distribution: DelayDistribution,
    pub max: Option<Duration>,
}

impl Delay {
    pub fn fixed(d: Duration) -> Self {
        Delay { distribution: DelayDistribution::Fixed(d), max: None }
    }

    /// The delay for one request.
    pub fn sample(&self, rng: &mut RequestRng) -> Duration {
        let d = match &self.distribution {
            DelayDistribution::Fixed(d) => *d,
            DelayDistribution::Uniform { min, max } if min >= max => *min,
            DelayDistribution::Uniform { min, max } => {
                let span = (*max - *min).as_secs_f64();
                *min + secs(rand::RngExt::random::<f64>(rng.rng()) * span).min(*max - *min)
            }
            DelayDistribution::Normal(n) => secs(n.sample(rng.rng())),
            DelayDistribution::LogNormal(l) => secs(l.sample(rng.rng())),
        };
        match self.max {
            Some(max) => d.min(max),
            None => d,
        }
    }
}

/// Seconds to a duration; negative and non-finite become zero, huge values saturate.
fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

impl HttpKind for Delay {
    type Proto = pb::DelayFault;

    /// A distribution and its cap: every duration within the server's bound, a cap for the unbounded
    /// distributions.
    fn convert(d: &pb::DelayFault, path: &str, c: &mut Collector) -> Option<Self> {
        use pb::delay_fault::Distribution as D;
        let dur = |field: &str, v: &Option<pbjson_types::Duration>, required: bool, c: &mut Collector| {
            c.duration(v, &format!("{path}.{field}"), required)
        };
        let max = dur("max", &d.max, false, c);
        let distribution = match &d.distribution {
            None => {
                c.add(path, "set one of fixed, uniform, normal, lognormal");
                return None;
            }
            Some(D::Fixed(f)) => DelayDistribution::Fixed(dur("fixed", &Some(*f), true, c)?),
            Some(D::Uniform(u)) => {
                let min = dur("uniform.min", &u.min, false, c).unwrap_or(Duration::ZERO);
                let hi = dur("uniform.max", &u.max, true, c)?;
                if hi < min {
                    c.add(format!("{path}.uniform.max"), "must not be less than uniform.min");
                }
                DelayDistribution::Uniform { min, max: hi }
            }
            Some(D::Normal(n)) => {
                let mean = dur("normal.mean", &n.mean, true, c)?;
                let sd = dur("normal.stddev", &n.stddev, true, c)?;
                if max.is_none() {
                    c.add(format!("{path}.max"), "required for a normal delay (it has no upper bound)");
                }
                DelayDistribution::Normal(Normal::new(mean.as_secs_f64(), sd.as_secs_f64()).ok()?)
            }
            Some(D::Lognormal(l)) => {
                let median = dur("lognormal.median", &l.median, true, c)?;
                if median.is_zero() {
                    c.add(format!("{path}.lognormal.median"), "must be longer than zero");
                    return None;
                }
                if !(l.sigma.is_finite() && l.sigma >= 0.0 && l.sigma <= 10.0) {
                    c.add(format!("{path}.lognormal.sigma"), format!("must be between 0 and 10, got {}", l.sigma));
                    return None;
                }
                if max.is_none() {
                    c.add(format!("{path}.max"), "required for a lognormal delay (it has no upper bound)");
                }
                DelayDistribution::LogNormal(LogNormal::new(median.as_secs_f64().ln(), l.sigma).ok()?)
            }
        };
        Some(Delay { distribution, max })
    }

    /// Adds a draw of the delay to the request's hold.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        plan.share.delay = plan.share.delay.saturating_add(self.sample(plan.rng));
        Step::Delayed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn draws(d: &Delay, n: usize) -> Vec<Duration> {
        let c = AtomicU64::new(0);
        (0..n).map(|_| d.sample(&mut RequestRng::next(1, &c))).collect()
    }

    #[test]
    fn uniform_stays_in_range() {
        let d = Delay {
            distribution: DelayDistribution::Uniform { min: Duration::from_millis(10), max: Duration::from_millis(20) },
            max: None,
        };
        for x in draws(&d, 10_000) {
            assert!((Duration::from_millis(10)..Duration::from_millis(20)).contains(&x), "{x:?}");
        }
    }

    #[test]
    fn normal_is_clamped_at_zero_and_capped() {
        let d = Delay {
            distribution: DelayDistribution::Normal(Normal::new(0.010, 0.050).expect("valid")),
            max: Some(Duration::from_millis(30)),
        };
        let xs = draws(&d, 10_000);
        assert!(xs.iter().any(|x| x.is_zero()));
        assert!(xs.iter().all(|x| *x <= Duration::from_millis(30)));
    }

    #[test]
    fn lognormal_median_is_close() {
        let d = Delay {
            distribution: DelayDistribution::LogNormal(LogNormal::new((0.020f64).ln(), 0.5).expect("valid")),
            max: Some(Duration::from_secs(10)),
        };
        let mut xs = draws(&d, 20_001);
        xs.sort();
        let median = xs[10_000].as_secs_f64();
        assert!((0.018..0.022).contains(&median), "{median}");
    }
}
