//! Proto → domain for guards (`ExperimentSpec.guards`), every problem named with its field path.

use std::time::Duration;

use super::{pb_duration, Collector};
use crate::{experiment::Guard, pb::v1 as pb};

/// At most this many guards per experiment.
const MAX_GUARDS: usize = 16;

pub fn convert(guards: &[pb::Guard], c: &mut Collector) -> Vec<Guard> {
    let mut bad = |field: String, description: String| c.add(field, description);
    if guards.len() > MAX_GUARDS {
        bad("guards".into(), format!("at most {MAX_GUARDS} guards"));
        return Vec::new();
    }
    let mut result = Vec::new();
    for (i, g) in guards.iter().enumerate() {
        let at = format!("guards[{i}]");
        match &g.kind {
            None => bad(at, "empty guard: set one of upstream_error_rate, upstream_latency, max_injected".into()),
            Some(pb::guard::Kind::MaxInjected(0)) => bad(format!("{at}.max_injected"), "must be at least 1".into()),
            Some(pb::guard::Kind::MaxInjected(n)) => result.push(Guard::MaxInjected(*n)),
            Some(pb::guard::Kind::UpstreamErrorRate(r)) => {
                let at = format!("{at}.upstream_error_rate");
                if !(0.0..1.0).contains(&r.max) {
                    bad(format!("{at}.max"), format!("a ratio from 0 up to (not including) 1, got {}", r.max));
                }
                let window = window(&r.window, &at, &mut bad);
                let min_requests = if r.min_requests == 0 { 10 } else { u64::from(r.min_requests) };
                result.push(Guard::UpstreamErrorRate { max: r.max, window, min_requests });
            }
            Some(pb::guard::Kind::UpstreamLatency(l)) => {
                let at = format!("{at}.upstream_latency");
                let max = match &l.max {
                    None => {
                        bad(
                            format!("{at}.max"),
                            "required: the latency above which the experiment is aborted (\"500ms\")".into(),
                        );
                        Duration::ZERO
                    }
                    Some(d) => match pb_duration(d) {
                        Err(why) => {
                            bad(format!("{at}.max"), why.into());
                            Duration::ZERO
                        }
                        Ok(d) => {
                            if !(Duration::from_millis(1)..=Duration::from_secs(3600)).contains(&d) {
                                bad(format!("{at}.max"), "from 1ms to 1h".into());
                            }
                            d
                        }
                    },
                };
                let percentile = l.percentile.unwrap_or(99.0);
                if !(percentile > 0.0 && percentile < 100.0) {
                    bad(format!("{at}.percentile"), format!("more than 0 and less than 100, got {percentile}"));
                }
                let window = window(&l.window, &at, &mut bad);
                let min_requests = if l.min_requests == 0 { 10 } else { u64::from(l.min_requests) };
                result.push(Guard::UpstreamLatency { percentile, max, window, min_requests });
            }
        }
    }
    result
}

/// A guard's `window`: default 10s, 1s to 1h.
fn window(d: &Option<pbjson_types::Duration>, at: &str, bad: &mut impl FnMut(String, String)) -> Duration {
    let window = match d {
        None => Duration::from_secs(10),
        Some(d) => match pb_duration(d) {
            Ok(d) => d,
            Err(why) => {
                bad(format!("{at}.window"), why.into());
                return Duration::from_secs(10);
            }
        },
    };
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&window) {
        bad(format!("{at}.window"), "from 1s to 1h".into());
    }
    window
}
