//! `rewrite`: headers of the request changed before it is forwarded, headers and status of the upstream's
//! response changed on the way back: a bad configuration push at the edge, a cache bypass, an origin
//! answer turned into an error.

use http::{HeaderMap, HeaderName, StatusCode};

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

/// Rewrites the request's and the response's headers (and status), after the rewrites before it.
pub fn apply(rewrite: &std::sync::Arc<Rewrite>, plan: &mut super::Plan<'_>) -> super::Step {
    plan.response.rewrites.push(std::sync::Arc::clone(rewrite));
    super::Step::Acted
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
