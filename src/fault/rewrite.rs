//! `rewrite`: headers of the request changed before it is forwarded, headers and status of the upstream's
//! response changed on the way back: a bad configuration push at the edge, a cache bypass, an origin
//! answer turned into an error.

use std::{collections::HashMap, sync::Arc};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{check::MAX_LIST, Collector, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

/// Header changes of one direction: removals first, then sets (each set replaces every value the header
/// had).
#[derive(Debug, Clone, Default)]
pub struct HeaderEdit {
    pub remove: Vec<HeaderName>,
    pub set: HeaderMap,
}

impl HeaderEdit {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name, value.clone());
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub request: HeaderEdit,
    pub response: HeaderEdit,
    /// Replaces the upstream's status.
    pub status: Option<StatusCode>,
}

impl Rewrite {
    /// Changes the response head: status, then headers.
    pub fn apply_response(&self, parts: &mut http::response::Parts) {
        if let Some(s) = self.status {
            parts.status = s;
            // The upstream's HTTP/1 reason phrase belonged to its status.
            parts.extensions.remove::<hyper::ext::ReasonPhrase>();
        }
        self.response.apply(&mut parts.headers);
    }
}

/// Whether a rewrite may not touch this header: it frames the message or belongs to one hop, and the proxy
/// sets it.
pub fn rewrite_refuses(name: &HeaderName) -> bool {
    FRAMING.contains(&name.as_str())
}

const FRAMING: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "host",
];

impl HttpKind for Arc<Rewrite> {
    type Proto = pb::RewriteFault;

    /// Headers that can be set or removed, a final status; at least one change.
    fn convert(r: &pb::RewriteFault, path: &str, c: &mut Collector) -> Option<Self> {
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
                "changes nothing: set status, or headers to set or remove (set_request_headers, \
                 remove_request_headers, set_response_headers, remove_response_headers)",
            );
            return None;
        }
        Some(Arc::new(Rewrite { request, response, status }))
    }

    /// Rewrites the request's and the response's headers (and status), after the rewrites before it.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        plan.response.rewrites.push(Arc::clone(self));
        Step::Acted
    }
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
        Ok(h) if rewrite_refuses(&h) => {
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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn removals_then_sets_replacing_every_value() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert("x-b", HeaderValue::from_static("b"));
        let mut set = HeaderMap::new();
        set.insert("x-a", HeaderValue::from_static("3"));
        set.insert("x-b", HeaderValue::from_static("back"));
        let edit = HeaderEdit { remove: vec![HeaderName::from_static("x-b")], set };
        edit.apply(&mut h);
        assert_eq!(h.get_all("x-a").iter().collect::<Vec<_>>(), [HeaderValue::from_static("3")]);
        assert_eq!(h.get("x-b"), Some(&HeaderValue::from_static("back")));
    }
}
