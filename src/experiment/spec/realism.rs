//! Proto → domain for when an experiment acts: its trigger, its timeline (ramp, flap), its sticky key and
//! its time scale.

use std::{num::NonZeroU64, time::Duration};

use super::Collector;
use crate::{
    experiment::timeline::{Flap, Ramp, Timeline},
    fault::{Percentage, StickyKey, Trigger},
    pb::v1 as pb,
};

/// `trigger`: counts at least 1, a window that ends after it starts.
pub(super) fn trigger(t: Option<&pb::Trigger>, c: &mut Collector) -> Option<Trigger> {
    let t = t?;
    let count = |v: Option<u64>, field: &str, c: &mut Collector| match v {
        None => None,
        Some(n) => NonZeroU64::new(n).or_else(|| {
            c.add(format!("trigger.{field}"), "must be at least 1");
            None
        }),
    };
    let first = count(t.first, "first", c);
    let every = count(t.every, "every", c);
    let after = c.duration(&t.after, "trigger.after", false).unwrap_or(Duration::ZERO);
    let until = c.duration(&t.until, "trigger.until", false);
    if until.is_some_and(|u| u <= after) {
        c.add("trigger.until", "must be later than trigger.after");
    }
    Some(Trigger { first, every, after, until })
}

/// `ramp` and `flap`.
pub(super) fn timeline(spec: &pb::ExperimentSpec, c: &mut Collector) -> Timeline {
    timeline_of(spec.ramp.as_ref(), spec.flap.as_ref(), spec.percentage.is_some(), "", c)
}

/// A ramp and a flap whose field paths start with `prefix` ("" or "phases[2]."); `percentage_set`: the
/// same message also sets a percentage.
pub(super) fn timeline_of(
    ramp: Option<&pb::Ramp>,
    flap: Option<&pb::Flap>,
    percentage_set: bool,
    prefix: &str,
    c: &mut Collector,
) -> Timeline {
    let ramp = ramp.and_then(|r| {
        let pct = |v: f64, field: &str, c: &mut Collector| {
            Percentage::new(v).or_else(|| {
                c.add(format!("{prefix}ramp.{field}"), format!("must be between 0 and 100, got {v}"));
                None
            })
        };
        let from = pct(r.from, "from", c);
        let to = pct(r.to, "to", c);
        let after = c.duration(&r.after, &format!("{prefix}ramp.after"), false).unwrap_or(Duration::ZERO);
        let over = c.duration(&r.over, &format!("{prefix}ramp.over"), true);
        Some(Ramp { from: from?, to: to?, after, over: over? })
    });
    if ramp.is_some() && percentage_set {
        c.add(format!("{prefix}percentage"), "set either percentage or ramp, not both");
    }
    let flap = flap.and_then(|f| {
        let period = c.duration(&f.period, &format!("{prefix}flap.period"), true)?;
        if period.is_zero() {
            c.add(format!("{prefix}flap.period"), "must be longer than zero");
            return None;
        }
        let on = c.duration(&f.on, &format!("{prefix}flap.on"), false).unwrap_or(period / 2);
        if on > period {
            c.add(format!("{prefix}flap.on"), "must not be longer than flap.period");
        }
        let jitter = c.duration(&f.jitter, &format!("{prefix}flap.jitter"), false).unwrap_or(Duration::ZERO);
        let random_on = f.random_on.and_then(|p| {
            if !(0.0..=100.0).contains(&p) {
                c.add(format!("{prefix}flap.random_on"), format!("must be between 0 and 100, got {p}"));
                return None;
            }
            for (set, field) in [(f.on.is_some(), "on"), (f.jitter.is_some(), "jitter")] {
                if set {
                    c.add(
                        format!("{prefix}flap.{field}"),
                        "random steps (random_on) turn whole periods on or off: leave on and jitter out",
                    );
                }
            }
            Some(p / 100.0)
        });
        Some(Flap { period, on, jitter, seed: 0, random_on })
    });
    Timeline { ramp, flap }
}

/// `sticky`: exactly one key, a valid header or cookie name.
pub(super) fn sticky(s: Option<&pb::Sticky>, c: &mut Collector) -> Option<StickyKey> {
    use pb::sticky::Key;
    match &s?.key {
        None => {
            c.add("sticky", "set one of header, cookie, client_ip");
            None
        }
        Some(Key::Header(h)) => http::HeaderName::from_bytes(h.as_bytes()).map(StickyKey::Header).ok().or_else(|| {
            c.add("sticky.header", format!("{h:?} is not a valid header name"));
            None
        }),
        Some(Key::Cookie(name)) => {
            if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == b'=' || b == b';' || b >= 0x7f) {
                c.add("sticky.cookie", format!("{name:?} is not a valid cookie name"));
                None
            } else {
                Some(StickyKey::Cookie(name.clone()))
            }
        }
        Some(Key::ClientIp(true)) => Some(StickyKey::ClientIp),
        Some(Key::ClientIp(false)) => {
            c.add("sticky.client_ip", "set it to true, or choose header or cookie");
            None
        }
    }
}

/// `time_scale`: the spec with its timeline values (duration, start_delay, trigger window, ramp, flap, phases)
/// divided by the scale, so a replay written in real-incident time runs faster. `None` without a scale.
/// Per-request fault durations (delay, hang) are not scaled: a client still waits as long per request.
pub(super) fn time_scaled(spec: &pb::ExperimentSpec, c: &mut Collector) -> Option<pb::ExperimentSpec> {
    let scale = spec.time_scale?;
    if !(scale.is_finite() && scale > 0.0 && scale <= 100_000.0) {
        c.add("time_scale", format!("must be more than 0 and at most 100000, got {scale}"));
        return None;
    }
    let div = |d: &mut Option<pbjson_types::Duration>| {
        if let Some(v) = d {
            // Negative values are left for the checks that follow to report.
            if v.seconds >= 0 && v.nanos >= 0 {
                let real = Duration::new(v.seconds as u64, v.nanos as u32).as_secs_f64() / scale;
                let real = Duration::from_secs_f64(real.min(1e12));
                *v = pbjson_types::Duration {
                    seconds: i64::try_from(real.as_secs()).unwrap_or(i64::MAX),
                    nanos: real.subsec_nanos() as i32,
                };
            }
        }
    };
    let mut s = spec.clone();
    div(&mut s.duration);
    div(&mut s.start_delay);
    if let Some(t) = &mut s.trigger {
        div(&mut t.after);
        div(&mut t.until);
    }
    if let Some(r) = &mut s.ramp {
        div(&mut r.after);
        div(&mut r.over);
    }
    if let Some(f) = &mut s.flap {
        div(&mut f.period);
        div(&mut f.on);
        div(&mut f.jitter);
    }
    for p in &mut s.phases {
        div(&mut p.start);
        if let Some(r) = &mut p.ramp {
            div(&mut r.after);
            div(&mut r.over);
        }
        if let Some(f) = &mut p.flap {
            div(&mut f.period);
            div(&mut f.on);
            div(&mut f.jitter);
        }
    }
    Some(s)
}
