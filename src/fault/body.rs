//! `body`: the upstream's response body replaced by other bytes, or corrupted as it streams through.
//!
//! A corruption never buffers the body: each piece is checked against the next chosen offset and copied
//! only when a chosen byte falls in it. Which bytes are chosen, and what they become, is drawn from a seed
//! the experiment's random stream gives the request, so a run with a fixed seed corrupts the same bytes.

use std::{collections::HashSet, sync::Arc};

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use rand::{rngs::SmallRng, RngExt, SeedableRng};
use rand_distr::{Distribution, Geometric};

use super::{check::MAX_BODY, Collector, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

/// At most this many random offsets per corruption (`count`).
pub const MAX_COUNT: u64 = 65_536;
/// The window of `count` when neither `within` nor a content-length says how long the body is.
pub const DEFAULT_WITHIN: u64 = 65_536;

#[derive(Debug, Clone)]
pub enum BodyFault {
    Replace(Arc<Replace>),
    Corrupt(Arc<Corrupt>),
}

/// The body sent instead of the upstream's.
#[derive(Debug, Clone)]
pub struct Replace {
    pub body: Bytes,
    /// The new body's `content-type`; `None` keeps the upstream's.
    pub content_type: Option<HeaderValue>,
}

/// Which bytes a corruption picks.
#[derive(Debug, Clone)]
pub enum Pick {
    /// Each byte with this probability (more than 0, at most 1).
    Share(Geometric),
    /// These offsets, ascending, distinct.
    Offsets(Arc<[u64]>),
    /// This many distinct random offsets in the first `within` bytes (default: the content-length, or
    /// [`DEFAULT_WITHIN`]).
    Random { count: u64, within: Option<u64> },
}

#[derive(Debug, Clone)]
pub struct Corrupt {
    pub pick: Pick,
    /// `false`: flip one random bit of each chosen byte; `true`: replace it with a different random byte.
    pub garble: bool,
}

impl Corrupt {
    /// The streaming state for one response. `length`: the body's length when known (content-length).
    pub fn start(&self, seed: u64, length: Option<u64>) -> Corruptor {
        let mut rng = SmallRng::seed_from_u64(seed);
        let positions = match &self.pick {
            Pick::Share(geo) => {
                let first = geo.sample(&mut rng);
                Positions::Share { geo: *geo, next: first }
            }
            Pick::Offsets(list) => Positions::List { list: Arc::clone(list), next: 0 },
            Pick::Random { count, within } => {
                let window = within.or(length).unwrap_or(DEFAULT_WITHIN);
                Positions::List { list: floyd(&mut rng, window, (*count).min(window)).into(), next: 0 }
            }
        };
        Corruptor { rng, garble: self.garble, positions }
    }
}

/// `amount` distinct values in `0..length`, ascending (Floyd's algorithm: memory in `amount`, not `length`).
fn floyd(rng: &mut SmallRng, length: u64, amount: u64) -> Vec<u64> {
    let mut chosen = HashSet::with_capacity(usize::try_from(amount).unwrap_or(0));
    for j in length - amount..length {
        let t = rng.random_range(0..=j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    let mut out: Vec<u64> = chosen.into_iter().collect();
    out.sort_unstable();
    out
}

#[derive(Debug)]
enum Positions {
    Share { geo: Geometric, next: u64 },
    List { list: Arc<[u64]>, next: usize },
}

/// One corruption at work on one response body.
#[derive(Debug)]
pub struct Corruptor {
    rng: SmallRng,
    garble: bool,
    positions: Positions,
}

impl Corruptor {
    fn peek(&self) -> Option<u64> {
        match &self.positions {
            Positions::Share { next, .. } => Some(*next),
            Positions::List { list, next } => list.get(*next).copied(),
        }
    }

    fn advance(&mut self) {
        match &mut self.positions {
            Positions::Share { geo, next } => {
                *next = next.saturating_add(1).saturating_add(geo.sample(&mut self.rng));
            }
            Positions::List { next, .. } => *next += 1,
        }
    }

    /// Corrupts the chosen bytes of `data`, the body's bytes from offset `start` on. Copies `data` only when
    /// a chosen byte falls in it.
    pub fn apply(&mut self, start: u64, data: Bytes) -> Bytes {
        let end = start.saturating_add(data.len() as u64);
        match self.peek() {
            Some(p) if p < end => {}
            _ => return data,
        }
        let mut buf = BytesMut::from(&data[..]);
        while let Some(p) = self.peek().filter(|p| *p < end) {
            if let Some(b) = p.checked_sub(start).and_then(|i| buf.get_mut(usize::try_from(i).unwrap_or(usize::MAX))) {
                *b = if self.garble {
                    *b ^ self.rng.random_range(1..=255u8)
                } else {
                    *b ^ (1u8 << self.rng.random_range(0..8u32))
                };
            }
            self.advance();
        }
        buf.freeze()
    }
}

impl HttpKind for BodyFault {
    type Proto = pb::BodyFault;

    fn convert(b: &pb::BodyFault, path: &str, c: &mut Collector) -> Option<Self> {
        use pb::body_fault::Action;
        match &b.action {
            None => {
                c.add(path.to_owned(), "set one of replace, corrupt");
                None
            }
            Some(Action::Replace(r)) => replace(r, &format!("{path}.replace"), c),
            Some(Action::Corrupt(k)) => corrupt(k, &format!("{path}.corrupt"), c),
        }
    }

    /// Replaces (the first replacement wins) or corrupts (every corruption, each with its own seed) the
    /// response body.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        let seed = rand::RngExt::random(plan.rng.rng());
        plan.response.add_body(self, seed);
        Step::Acted
    }
}

/// `body.replace`: text or data (not both), bounded, and a content type.
fn replace(r: &pb::BodyReplace, path: &str, c: &mut Collector) -> Option<BodyFault> {
    if !r.text.is_empty() && !r.data.is_empty() {
        c.add(format!("{path}.data"), "set either text or data, not both");
    }
    let body = if r.data.is_empty() { Bytes::from(r.text.clone()) } else { Bytes::from(r.data.clone()) };
    if body.len() > MAX_BODY {
        c.add(
            format!("{path}.{}", if r.data.is_empty() { "text" } else { "data" }),
            format!("at most {MAX_BODY} bytes"),
        );
    }
    let content_type = if r.content_type.is_empty() {
        None
    } else {
        HeaderValue::from_str(&r.content_type).ok().or_else(|| {
            c.add(format!("{path}.content_type"), "not a valid header value (printable ASCII only)");
            None
        })
    };
    Some(BodyFault::Replace(Arc::new(Replace { body, content_type })))
}

/// `body.corrupt`: exactly one way of picking bytes (a share, offsets, a count within a window).
fn corrupt(k: &pb::BodyCorrupt, path: &str, c: &mut Collector) -> Option<BodyFault> {
    let given = [k.percentage.is_some(), !k.offsets.is_empty(), k.count.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        c.add(path.to_owned(), "set exactly one of percentage, offsets, count");
        return None;
    }
    if k.within.is_some() && k.count.is_none() {
        c.add(format!("{path}.within"), "only applies with count");
    }
    let pick = if let Some(p) = k.percentage {
        if !(p.is_finite() && p > 0.0 && p <= 100.0) {
            c.add(format!("{path}.percentage"), format!("must be more than 0 and at most 100, got {p}"));
            return None;
        }
        Pick::Share(Geometric::new(p / 100.0).ok()?)
    } else if let Some(n) = k.count {
        if n == 0 || n > MAX_COUNT {
            c.add(format!("{path}.count"), format!("from 1 to {MAX_COUNT}, got {n}"));
            return None;
        }
        if k.within == Some(0) {
            c.add(
                format!("{path}.within"),
                format!("must be at least 1 (default: the content-length, or {DEFAULT_WITHIN})"),
            );
            return None;
        }
        Pick::Random { count: n, within: k.within }
    } else {
        if k.offsets.len() as u64 > MAX_COUNT {
            c.add(format!("{path}.offsets"), format!("at most {MAX_COUNT} entries"));
            return None;
        }
        let mut offsets = k.offsets.clone();
        offsets.sort_unstable();
        offsets.dedup();
        Pick::Offsets(offsets.into())
    };
    Some(BodyFault::Corrupt(Arc::new(Corrupt { pick, garble: k.garble })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: &Corrupt, seed: u64, body: &[u8], piece: usize) -> Vec<u8> {
        let mut k = c.start(seed, Some(body.len() as u64));
        let mut out = Vec::new();
        for (i, chunk) in body.chunks(piece).enumerate() {
            out.extend_from_slice(&k.apply((i * piece) as u64, Bytes::copy_from_slice(chunk)));
        }
        out
    }

    fn diff(a: &[u8], b: &[u8]) -> Vec<usize> {
        a.iter().zip(b).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i).collect()
    }

    #[test]
    fn offsets_are_exact_whatever_the_pieces() {
        let body = vec![0u8; 1000];
        let c = Corrupt { pick: Pick::Offsets(vec![0, 63, 64, 999, 5000].into()), garble: false };
        for piece in [1, 7, 64, 1000] {
            let out = run(&c, 1, &body, piece);
            assert_eq!(diff(&body, &out), [0, 63, 64, 999], "piece {piece}");
            // A flip changes exactly one bit.
            assert!(out.iter().all(|b| b.count_ones() <= 1));
        }
    }

    #[test]
    fn random_count_is_distinct_deterministic_and_within() {
        let body = vec![7u8; 10_000];
        let c = Corrupt { pick: Pick::Random { count: 50, within: Some(2000) }, garble: true };
        let a = run(&c, 9, &body, 333);
        let d = diff(&body, &a);
        assert_eq!(d.len(), 50);
        assert!(d.iter().all(|i| *i < 2000));
        assert_eq!(a, run(&c, 9, &body, 1000), "same seed, same bytes, whatever the pieces");
        assert_ne!(a, run(&c, 10, &body, 333));
        // A count beyond the window corrupts the whole window.
        let all = Corrupt { pick: Pick::Random { count: 100, within: Some(10) }, garble: true };
        assert_eq!(diff(&body, &run(&all, 1, &body, 4)), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn share_is_close() {
        let body = vec![0u8; 100_000];
        let c = Corrupt { pick: Pick::Share(Geometric::new(0.01).expect("p")), garble: true };
        let n = diff(&body, &run(&c, 3, &body, 4096)).len();
        // Binomial(100000, 0.01): sd ~31; ±300 is beyond 9 sd.
        assert!((700..=1300).contains(&n), "{n}");
        let every = Corrupt { pick: Pick::Share(Geometric::new(1.0).expect("p")), garble: false };
        assert_eq!(diff(&body, &run(&every, 3, &body, 100)).len(), body.len());
    }
}
