//! Faults a request asks for itself, through headers modelled on Envoy's fault filter
//! (`x-envoy-fault-abort-request`, `x-envoy-fault-delay-request`, …): an abort, a gRPC abort, a delay
//! before the upstream, a limit on the response body's rate, each with its percentage.
//!
//! Off unless a route enables it (`routes[].fault_headers`). [`FaultHeaders`] is a route's setting (the
//! header names and the caps); [`FaultHeaders::read`] turns one request's headers into what it asked for
//! ([`Asked`]), or the first header it got wrong ([`BadHeader`]). Pure: the proxy applies the result
//! with the machinery experiments use (the hold of delays, the one abort responder, the throttled body).

use std::{num::NonZeroU64, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rand::RngExt;

use super::{Abort, GrpcCode, Percentage, Throttle};

/// The seven headers a route reads, by what each asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    /// An HTTP status, 200–599.
    pub abort: HeaderName,
    /// A gRPC status, 0–16 (ignored when `abort` is set too, as Envoy does).
    pub abort_grpc: HeaderName,
    /// The share of requests aborted, 0–100; absent: all.
    pub abort_percentage: HeaderName,
    /// Milliseconds before the request goes upstream.
    pub delay: HeaderName,
    pub delay_percentage: HeaderName,
    /// The response body's rate in KiB/s, at least 1.
    pub throughput: HeaderName,
    pub throughput_percentage: HeaderName,
}

impl HeaderNames {
    /// The keys of `fault_headers.names` in the config, in the order of [`HeaderNames::all`].
    pub const KEYS: [&'static str; 7] =
        ["abort", "abort_grpc", "abort_percentage", "delay", "delay_percentage", "throughput", "throughput_percentage"];

    /// Envoy's names.
    pub fn envoy() -> Self {
        HeaderNames {
            abort: HeaderName::from_static("x-envoy-fault-abort-request"),
            abort_grpc: HeaderName::from_static("x-envoy-fault-abort-grpc-request"),
            abort_percentage: HeaderName::from_static("x-envoy-fault-abort-request-percentage"),
            delay: HeaderName::from_static("x-envoy-fault-delay-request"),
            delay_percentage: HeaderName::from_static("x-envoy-fault-delay-request-percentage"),
            throughput: HeaderName::from_static("x-envoy-fault-throughput-response"),
            throughput_percentage: HeaderName::from_static("x-envoy-fault-throughput-response-percentage"),
        }
    }

    /// Every name, in the order of [`HeaderNames::KEYS`].
    pub fn all(&self) -> [&HeaderName; 7] {
        [
            &self.abort,
            &self.abort_grpc,
            &self.abort_percentage,
            &self.delay,
            &self.delay_percentage,
            &self.throughput,
            &self.throughput_percentage,
        ]
    }

    /// The name for one key of [`HeaderNames::KEYS`], to replace it.
    pub fn slot(&mut self, key: &str) -> Option<&mut HeaderName> {
        Some(match key {
            "abort" => &mut self.abort,
            "abort_grpc" => &mut self.abort_grpc,
            "abort_percentage" => &mut self.abort_percentage,
            "delay" => &mut self.delay,
            "delay_percentage" => &mut self.delay_percentage,
            "throughput" => &mut self.throughput,
            "throughput_percentage" => &mut self.throughput_percentage,
            _ => return None,
        })
    }
}

/// A route's fault headers: which names it reads and how far a request may go. Valid by construction
/// (`config` checks the names and the caps).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultHeaders {
    pub names: HeaderNames,
    /// The longest delay a request gets; a longer ask is cut to it.
    pub max_delay: Duration,
    /// The highest share a percentage header reaches (`limits.max_percentage`); a higher ask is cut to it.
    pub max_percentage: Percentage,
}

/// What one request asked for, within the caps.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// Answer with this instead of forwarding.
    pub abort: Option<Abort>,
    /// Hold the request this long before it goes upstream.
    pub delay: Option<Duration>,
    /// Limit the response body's rate.
    pub throttle: Option<Throttle>,
}

impl Asked {
    pub fn is_empty(&self) -> bool {
        self.abort.is_none() && self.delay.is_none() && self.throttle.is_none()
    }
}

/// A fault header whose value the request got wrong: the request then gets no fault from its headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHeader {
    #[error("{name}: sent {count} times; send it once")]
    Repeated { name: HeaderName, count: usize },
    #[error("{name}: {value:?} is not {want}")]
    Value { name: HeaderName, value: String, want: &'static str },
}

/// What [`FaultHeaders::read`] found, besides the faults: for the logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capped {
    /// The delay asked for was longer than `max_delay`.
    pub delay: bool,
    /// A percentage asked for was higher than `max_percentage`.
    pub percentage: bool,
}

impl FaultHeaders {
    /// Envoy's header names, with these caps.
    pub fn envoy(max_delay: Duration, max_percentage: Percentage) -> Self {
        FaultHeaders { names: HeaderNames::envoy(), max_delay, max_percentage }
    }

    /// Whether the request carries any of the fault headers (the one look a request without them pays).
    pub fn present(&self, headers: &HeaderMap) -> bool {
        !headers.is_empty() && self.names.all().iter().any(|n| headers.contains_key(*n))
    }

    /// Removes every fault header, so the upstream never sees them.
    pub fn strip(&self, headers: &mut HeaderMap) {
        for n in self.names.all() {
            headers.remove(n);
        }
    }

    /// What the request asks for. Each fault is selected by its percentage (absent: 100) with `draw`,
    /// which gives a number in `[0, 1)`; a percentage header without its fault's header is ignored, as
    /// Envoy does; with both abort headers, the HTTP one wins. `Err`: a header whose value is not one the
    /// fault takes (then nothing applies).
    pub fn read(&self, headers: &HeaderMap, rng: &mut impl rand::Rng) -> Result<(Asked, Capped), BadHeader> {
        let n = &self.names;
        let mut capped = Capped::default();
        let http = one(headers, &n.abort)?
            .map(|v| number(&n.abort, v, "an HTTP status from 200 to 599", |s| (200..=599).contains(&s)))
            .transpose()?;
        let grpc = one(headers, &n.abort_grpc)?
            .map(|v| number(&n.abort_grpc, v, "a gRPC status code from 0 to 16", |s| s <= 16))
            .transpose()?;
        let delay_ms = one(headers, &n.delay)?
            .map(|v| number(&n.delay, v, "a delay in whole milliseconds", |_| true))
            .transpose()?;
        let kib = one(headers, &n.throughput)?
            .map(|v| number(&n.throughput, v, "a rate in KiB/s, at least 1", |k| k >= 1))
            .transpose()?;
        // Absent, a percentage is 100, as Envoy's configured default; either way within the server's cap.
        let mut share = |fault: bool, name: &HeaderName| -> Result<bool, BadHeader> {
            if !fault {
                return Ok(false);
            }
            let percent = match one(headers, name)? {
                // A whole number of percent; any u64 converts to an f64 close enough to compare with 0–100.
                Some(v) => {
                    (number(name, v, "a percentage from 0 to 100 in whole numbers", |_| true)? as f64).min(100.0)
                }
                None => 100.0,
            };
            let cap = self.max_percentage.percent();
            if percent > cap {
                capped.percentage = true;
            }
            let p = Percentage::new(percent.min(cap)).unwrap_or(Percentage::ALL);
            Ok(p.percent() >= 100.0 || (p.percent() > 0.0 && rng.random::<f64>() * 100.0 < p.percent()))
        };
        let abort_on = share(http.is_some() || grpc.is_some(), &n.abort_percentage)?;
        let delay_on = share(delay_ms.is_some(), &n.delay_percentage)?;
        let throttle_on = share(kib.is_some(), &n.throughput_percentage)?;
        let mut asked = Asked::default();
        if abort_on {
            asked.abort = match (http, grpc) {
                (Some(s), _) => StatusCode::from_u16(u16::try_from(s).unwrap_or(503))
                    .ok()
                    .map(|s| Abort::new(Some(s), None, "", None, HeaderMap::new())),
                (None, Some(code)) => u32::try_from(code).ok().and_then(GrpcCode::new).map(grpc_abort),
                (None, None) => None,
            };
        }
        if let (true, Some(ms)) = (delay_on, delay_ms) {
            let d = Duration::from_millis(ms);
            if d > self.max_delay {
                capped.delay = true;
            }
            asked.delay = Some(d.min(self.max_delay)).filter(|d| !d.is_zero());
        }
        if let (true, Some(k)) = (throttle_on, kib) {
            asked.throttle =
                NonZeroU64::new(k.saturating_mul(1024)).map(|bytes_per_second| Throttle { bytes_per_second });
        }
        Ok((asked, capped))
    }
}

/// An abort with a gRPC status, as Envoy sends it: HTTP 200 with `grpc-status`. A gRPC request gets it
/// as a trailers-only response; any other request gets a 200 that carries the header.
fn grpc_abort(code: GrpcCode) -> Abort {
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("grpc-status"), code.header_value());
    Abort::new(Some(StatusCode::OK), Some(code), "", None, headers)
}

/// The one value of a header, if sent; a header sent more than once is refused (which one would count?).
fn one<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h HeaderValue>, BadHeader> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    match values.count() {
        0 => Ok(Some(first)),
        more => Err(BadHeader::Repeated { name: name.clone(), count: more + 1 }),
    }
}

/// A header's value as a whole decimal number (spaces around it allowed) that `ok` accepts.
fn number(name: &HeaderName, v: &HeaderValue, want: &'static str, ok: impl Fn(u64) -> bool) -> Result<u64, BadHeader> {
    let bad = || BadHeader::Value {
        name: name.clone(),
        value: crate::text::excerpt(&String::from_utf8_lossy(v.as_bytes()), 64).into_owned(),
        want,
    };
    let s = std::str::from_utf8(v.as_bytes()).map_err(|_| bad())?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse::<u64>().ok().filter(|n| ok(*n)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use rand::{rngs::SmallRng, SeedableRng};

    use super::*;

    fn settings() -> FaultHeaders {
        FaultHeaders::envoy(Duration::from_secs(5), Percentage::new(100.0).expect("valid"))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn read(s: &FaultHeaders, pairs: &[(&str, &str)]) -> Result<(Asked, Capped), BadHeader> {
        s.read(&headers(pairs), &mut SmallRng::seed_from_u64(1))
    }

    #[test]
    fn each_header_asks_for_its_fault() {
        let s = settings();
        let (a, _) = read(&s, &[("x-envoy-fault-abort-request", "503")]).expect("valid");
        assert_eq!(a.abort.expect("abort").http_status, StatusCode::SERVICE_UNAVAILABLE);
        let (a, _) = read(&s, &[("x-envoy-fault-abort-grpc-request", "8")]).expect("valid");
        let abort = a.abort.expect("grpc abort");
        assert_eq!((abort.http_status, abort.grpc_status.value()), (StatusCode::OK, 8));
        let (a, _) = read(&s, &[("x-envoy-fault-delay-request", " 250 ")]).expect("valid");
        assert_eq!(a.delay, Some(Duration::from_millis(250)));
        let (a, _) = read(&s, &[("x-envoy-fault-throughput-response", "2")]).expect("valid");
        assert_eq!(a.throttle.map(|t| t.bytes_per_second.get()), Some(2048));
        let (a, _) = read(&s, &[("x-envoy-fault-abort-request-percentage", "100")]).expect("alone: ignored");
        assert!(a.is_empty());
    }

    #[test]
    fn the_http_abort_wins_over_the_grpc_one() {
        let (a, _) =
            read(&settings(), &[("x-envoy-fault-abort-request", "429"), ("x-envoy-fault-abort-grpc-request", "8")])
                .expect("valid");
        let abort = a.abort.expect("abort");
        assert_eq!(abort.http_status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(abort.grpc_status.value(), 14, "a gRPC client sees 429 as UNAVAILABLE");
    }

    #[test]
    fn caps_cut_what_is_asked() {
        let s = FaultHeaders::envoy(Duration::from_millis(300), Percentage::new(100.0).expect("valid"));
        let (a, c) = read(&s, &[("x-envoy-fault-delay-request", "10000")]).expect("valid");
        assert_eq!((a.delay, c.delay), (Some(Duration::from_millis(300)), true));
        let s = FaultHeaders::envoy(Duration::from_millis(300), Percentage::new(0.0).expect("valid"));
        let (a, c) = read(&s, &[("x-envoy-fault-abort-request", "500")]).expect("valid");
        assert!(a.abort.is_none() && c.percentage, "no percentage header: 100 %, cut to 0 %");
        let (a, c) =
            read(&s, &[("x-envoy-fault-abort-request", "500"), ("x-envoy-fault-abort-request-percentage", "50")])
                .expect("valid");
        assert!(a.abort.is_none() && c.percentage, "cut to 0 %");
    }

    #[test]
    fn percentages_select_about_their_share() {
        let s = settings();
        let h = headers(&[("x-envoy-fault-abort-request", "500"), ("x-envoy-fault-abort-request-percentage", "30")]);
        let mut rng = SmallRng::seed_from_u64(7);
        let hits = (0..10_000).filter(|_| s.read(&h, &mut rng).expect("valid").0.abort.is_some()).count();
        assert!((2700..3300).contains(&hits), "{hits} of 10000");
        let h = headers(&[("x-envoy-fault-delay-request", "5"), ("x-envoy-fault-delay-request-percentage", "0")]);
        assert!(s.read(&h, &mut rng).expect("valid").0.delay.is_none());
    }

    #[test]
    fn bad_values_are_refused_with_the_header() {
        let s = settings();
        for (name, value) in [
            ("x-envoy-fault-abort-request", "199"),
            ("x-envoy-fault-abort-request", "600"),
            ("x-envoy-fault-abort-request", "5o3"),
            ("x-envoy-fault-abort-request", "+503"),
            ("x-envoy-fault-abort-grpc-request", "17"),
            ("x-envoy-fault-delay-request", "-1"),
            ("x-envoy-fault-delay-request", "1.5"),
            ("x-envoy-fault-delay-request", "99999999999999999999999"),
            ("x-envoy-fault-throughput-response", "0"),
            ("x-envoy-fault-throughput-response", ""),
        ] {
            let err = read(&s, &[(name, value)]).expect_err(value);
            assert!(matches!(&err, BadHeader::Value { name: n, .. } if n == name), "{err}");
        }
        let err = read(&s, &[("x-envoy-fault-abort-request", "500"), ("x-envoy-fault-abort-request-percentage", "x")])
            .expect_err("bad percentage");
        assert!(err.to_string().starts_with("x-envoy-fault-abort-request-percentage: \"x\""), "{err}");
        let err =
            read(&s, &[("x-envoy-fault-delay-request", "5"), ("x-envoy-fault-delay-request", "6")]).expect_err("twice");
        assert_eq!(err.to_string(), "x-envoy-fault-delay-request: sent 2 times; send it once");
        let mut h = headers(&[("x-envoy-fault-abort-request", "503")]);
        h.insert("x-envoy-fault-delay-request", HeaderValue::from_bytes(b"\xff").expect("opaque value"));
        assert!(s.read(&h, &mut SmallRng::seed_from_u64(1)).is_err(), "not UTF-8");
    }

    #[test]
    fn strip_removes_every_name() {
        let s = settings();
        let mut h = headers(&[
            ("x-envoy-fault-abort-request", "503"),
            ("x-envoy-fault-delay-request-percentage", "1"),
            ("x-keep", "1"),
        ]);
        assert!(s.present(&h));
        s.strip(&mut h);
        assert!(!s.present(&h));
        assert_eq!(h.len(), 1);
    }
}
