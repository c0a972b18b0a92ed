//! Proto → domain for the edge-realism faults (hang, reset, truncate, throttle).

use std::{num::NonZeroU64, time::Duration};

use super::{convert_abort, opt_duration, Collector};
use crate::{
    experiment::timeline::{Flap, Ramp, Timeline},
    fault::{
        Blackhole, Disconnect, Fault, Hang, HangEnd, Percentage, RateLimit, Reset, StickyKey, Throttle, Trigger,
        Truncate, Unresolvable,
    },
    pb::v1 as pb,
};

/// Whether a proto fault ends the request (nothing after it in the list could run).
pub(super) fn ends_request(f: &pb::Fault) -> bool {
    use pb::fault::Kind as K;
    match &f.kind {
        Some(K::Abort(_)) | Some(K::Hang(_)) | Some(K::Blackhole(_)) | Some(K::Unresolvable(_)) => true,
        Some(K::Reset(r)) => r.after_bytes.is_none(),
        // A rate limit ends only the requests beyond its rate; faults after it run for the others.
        Some(K::Delay(_))
        | Some(K::Truncate(_))
        | Some(K::Throttle(_))
        | Some(K::RateLimit(_))
        | Some(K::GrpcStream(_))
        | Some(K::Disconnect(_))
        | None => false,
        Some(K::FirstByteDelay(_)) | Some(K::Drip(_)) | Some(K::Rewrite(_)) | Some(K::Body(_)) => false,
        // Acts on TCP connections, not requests.
        Some(K::Toxic(_)) => false,
        // Ends the handshake, and with it the connection.
        Some(K::Tls(t)) => !matches!(t.kind, Some(pb::tls_fault::Kind::Stall(_)) | None),
    }
}

/// Converts a fault of the realism kinds; `None` when it is invalid (the problems are in `c`). Abort and
/// delay are converted by convert.rs before it gets here.
pub(super) fn convert(kind: &pb::fault::Kind, path: &str, c: &mut Collector) -> Option<Fault> {
    use pb::fault::Kind as K;
    match kind {
        // Converted by `validate_spec` itself (toxics by `convert::tcp`, TLS faults by `convert::tls`).
        K::Abort(_) | K::Delay(_) | K::Toxic(_) | K::Tls(_) => None,
        K::Hang(h) => hang(h, &format!("{path}.hang"), c).map(Fault::Hang),
        K::Reset(r) => Some(Fault::Reset(Reset { after_bytes: r.after_bytes })),
        K::Blackhole(b) => {
            let at = format!("{path}.blackhole.duration");
            let hold = opt_duration(&b.duration, &at, false, c);
            match hold {
                Some(d) if d.is_zero() => {
                    c.add(at, "must be longer than zero (leave it out to hold until the experiment ends)");
                    None
                }
                _ => Some(Fault::Blackhole(Blackhole { hold })),
            }
        }
        K::Unresolvable(_) => Some(Fault::Unresolvable(Unresolvable)),
        K::Disconnect(x) => {
            let at = format!("{path}.disconnect.after");
            match opt_duration(&x.after, &at, true, c) {
                Some(d) if d.is_zero() => {
                    c.add(at, "must be longer than zero");
                    None
                }
                Some(after) => Some(Fault::Disconnect(Disconnect { after, reset: x.reset })),
                None => None,
            }
        }
        K::GrpcStream(g) => super::traffic::grpc_stream(g, &format!("{path}.grpc_stream"), c).map(Fault::GrpcStream),
        K::Truncate(t) => Some(Fault::Truncate(Truncate { after_bytes: t.after_bytes })),
        K::RateLimit(r) => {
            let rps = r.requests_per_second;
            if !(RateLimit::MIN_RATE..=RateLimit::MAX_RATE).contains(&rps) {
                c.add(
                    format!("{path}.rate_limit.requests_per_second"),
                    format!("must be from {} to {:e}, got {rps}", RateLimit::MIN_RATE, RateLimit::MAX_RATE),
                );
                return None;
            }
            Some(Fault::RateLimit(RateLimit::new(r.requests_per_second, r.burst.unwrap_or(1).max(1))))
        }
        K::Throttle(t) => match NonZeroU64::new(t.bytes_per_second) {
            Some(bytes_per_second) => Some(Fault::Throttle(Throttle { bytes_per_second })),
            None => {
                c.add(format!("{path}.throttle.bytes_per_second"), "required: at least 1 byte per second");
                None
            }
        },
        K::FirstByteDelay(f) => super::response::first_byte_delay(f, &format!("{path}.first_byte_delay"), c),
        K::Drip(d) => super::response::drip(d, &format!("{path}.drip"), c),
        K::Rewrite(r) => super::response::rewrite(r, &format!("{path}.rewrite"), c),
        K::Body(b) => super::response::body(b, &format!("{path}.body"), c),
    }
}

fn hang(h: &pb::HangFault, path: &str, c: &mut Collector) -> Option<Hang> {
    use pb::hang_fault::Then;
    let hold = opt_duration(&h.duration, &format!("{path}.duration"), true, c);
    if hold.is_some_and(|d| d.is_zero()) {
        c.add(format!("{path}.duration"), "must be longer than zero");
    }
    let then = match &h.then {
        None | Some(Then::Close(_)) => HangEnd::Close,
        Some(Then::Reset(_)) => HangEnd::Reset,
        Some(Then::Respond(a)) => HangEnd::Respond(convert_abort(a, &format!("{path}.respond"), c)),
    };
    Some(Hang { hold: hold.unwrap_or(Duration::ZERO), then })
}

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
    let after = opt_duration(&t.after, "trigger.after", false, c).unwrap_or(Duration::ZERO);
    let until = opt_duration(&t.until, "trigger.until", false, c);
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
        let after = opt_duration(&r.after, &format!("{prefix}ramp.after"), false, c).unwrap_or(Duration::ZERO);
        let over = opt_duration(&r.over, &format!("{prefix}ramp.over"), true, c);
        Some(Ramp { from: from?, to: to?, after, over: over? })
    });
    if ramp.is_some() && percentage_set {
        c.add(format!("{prefix}percentage"), "set either percentage or ramp, not both");
    }
    let flap = flap.and_then(|f| {
        let period = opt_duration(&f.period, &format!("{prefix}flap.period"), true, c)?;
        if period.is_zero() {
            c.add(format!("{prefix}flap.period"), "must be longer than zero");
            return None;
        }
        let on = opt_duration(&f.on, &format!("{prefix}flap.on"), false, c).unwrap_or(period / 2);
        if on > period {
            c.add(format!("{prefix}flap.on"), "must not be longer than flap.period");
        }
        let jitter = opt_duration(&f.jitter, &format!("{prefix}flap.jitter"), false, c).unwrap_or(Duration::ZERO);
        Some(Flap { period, on, jitter, seed: 0 })
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
