//! Proto → domain for the faults that shape the upstream's response: first_byte_delay, drip, rewrite and
//! body (replace, corrupt).

use std::{collections::HashMap, num::NonZeroU64, sync::Arc};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use rand_distr::Geometric;

use super::{convert_delay, opt_duration, Collector, MAX_BODY, MAX_LIST};
use crate::{
    fault::{
        body::{DEFAULT_WITHIN, MAX_COUNT},
        BodyFault, Corrupt, Drip, Fault, FirstByteDelay, HeaderEdit, Pick, Replace, Rewrite,
    },
    pb::v1 as pb,
};

pub(super) fn first_byte_delay(f: &pb::FirstByteDelayFault, path: &str, c: &mut Collector) -> Option<Fault> {
    use pb::{delay_fault::Distribution as D, first_byte_delay_fault::Distribution as F};
    let distribution = f.distribution.as_ref().map(|d| match d {
        F::Fixed(v) => D::Fixed(*v),
        F::Uniform(v) => D::Uniform(*v),
        F::Normal(v) => D::Normal(*v),
        F::Lognormal(v) => D::Lognormal(*v),
    });
    let delay = convert_delay(&pb::DelayFault { distribution, max: f.max }, path, c)?;
    Some(Fault::FirstByteDelay(FirstByteDelay { delay, head_first: f.head_first }))
}

pub(super) fn drip(d: &pb::DripFault, path: &str, c: &mut Collector) -> Option<Fault> {
    let chunk = NonZeroU64::new(d.chunk_bytes);
    if chunk.is_none() {
        c.add(format!("{path}.chunk_bytes"), "required: at least 1 byte per chunk");
    }
    let interval = opt_duration(&d.interval, &format!("{path}.interval"), true, c);
    if interval.is_some_and(|i| i.is_zero()) {
        c.add(format!("{path}.interval"), "must be longer than zero (for an even rate, use throttle)");
    }
    Some(Fault::Drip(Drip { chunk: chunk?, interval: interval.filter(|i| !i.is_zero())? }))
}

pub(super) fn rewrite(r: &pb::RewriteFault, path: &str, c: &mut Collector) -> Option<Fault> {
    let request = header_edit(&r.set_request_headers, &r.remove_request_headers, path, "request", c);
    let response = header_edit(&r.set_response_headers, &r.remove_response_headers, path, "response", c);
    let status = r.status.and_then(|s| match u16::try_from(s).ok().and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(code) if (200..=599).contains(&code.as_u16()) => Some(code),
        Some(code) if code.is_informational() => {
            c.add(
                format!("{path}.status"),
                format!("{s} is an interim (1xx) status, which cannot end a response; use 200–599"),
            );
            None
        }
        _ => {
            c.add(format!("{path}.status"), format!("{s} is not an HTTP status (200–599)"));
            None
        }
    });
    let asks_nothing = r.set_request_headers.is_empty()
        && r.remove_request_headers.is_empty()
        && r.set_response_headers.is_empty()
        && r.remove_response_headers.is_empty()
        && r.status.is_none();
    if asks_nothing {
        c.add(
            path.to_owned(),
            "changes nothing: set status, or headers to set or remove (set_request_headers, remove_request_headers, \
             set_response_headers, remove_response_headers)",
        );
        return None;
    }
    Some(Fault::Rewrite(Arc::new(Rewrite { request, response, status })))
}

/// Checks one direction's header changes; `side` is "request" or "response".
fn header_edit(
    set: &HashMap<String, String>,
    remove: &[String],
    path: &str,
    side: &str,
    c: &mut Collector,
) -> HeaderEdit {
    let mut edit = HeaderEdit::default();
    let name = |n: &str, at: String, c: &mut Collector| match HeaderName::from_bytes(n.as_bytes()) {
        Ok(h) if crate::fault::rewrite_refuses(&h) => {
            c.add(at, format!("{n:?} frames the message or belongs to one hop; the proxy sets it, a rewrite cannot"));
            None
        }
        Ok(h) => Some(h),
        Err(_) => {
            c.add(at, format!("{n:?} is not a valid header name"));
            None
        }
    };
    let set_path = format!("{path}.set_{side}_headers");
    if set.len() > MAX_LIST {
        c.add(set_path, format!("at most {MAX_LIST} entries"));
    } else {
        let mut names: Vec<&String> = set.keys().collect();
        names.sort();
        for n in names {
            let at = format!("{set_path}[{n:?}]");
            let Some(h) = name(n, at.clone(), c) else { continue };
            match HeaderValue::from_str(&set[n]) {
                Ok(v) => {
                    edit.set.insert(h, v);
                }
                Err(_) => c.add(at, "not a valid header value (printable ASCII only)"),
            }
        }
    }
    let remove_path = format!("{path}.remove_{side}_headers");
    if remove.len() > MAX_LIST {
        c.add(remove_path, format!("at most {MAX_LIST} entries"));
    } else {
        for (i, n) in remove.iter().enumerate() {
            if let Some(h) = name(n, format!("{remove_path}[{i}]"), c) {
                edit.remove.push(h);
            }
        }
    }
    edit
}

pub(super) fn body(b: &pb::BodyFault, path: &str, c: &mut Collector) -> Option<Fault> {
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

fn replace(r: &pb::BodyReplace, path: &str, c: &mut Collector) -> Option<Fault> {
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
    Some(Fault::Body(BodyFault::Replace(Arc::new(Replace { body, content_type }))))
}

fn corrupt(k: &pb::BodyCorrupt, path: &str, c: &mut Collector) -> Option<Fault> {
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
    Some(Fault::Body(BodyFault::Corrupt(Arc::new(Corrupt { pick, garble: k.garble }))))
}
