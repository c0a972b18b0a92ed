//! Proxy header rules: hop-by-hop headers stay on their hop; `x-forwarded-*` record the client.

use std::net::IpAddr;

use http::{
    header::{self, HeaderName},
    HeaderMap, HeaderValue,
};

static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::UPGRADE,
];

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1), those named by `connection`, and `te` unless its
/// every value is `trailers` (which gRPC needs end to end). `transfer-encoding` goes too: each hop frames its own body.
///
/// One pass over the names finds which are present; only those are removed.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut connection = false;
    let mut others = false;
    for name in headers.keys() {
        if name == header::CONNECTION {
            connection = true;
        } else if HOP_BY_HOP.contains(name) || name == header::TRANSFER_ENCODING || name == header::TE {
            others = true;
        }
    }
    if connection {
        // Usually just `keep-alive` or `close`; remove what it names, then itself.
        let mut named: [Option<HeaderName>; 4] = Default::default();
        let mut extra = Vec::new();
        let tokens = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok());
        for (i, name) in tokens.enumerate() {
            match named.get_mut(i) {
                Some(slot) => *slot = Some(name),
                None => extra.push(name),
            }
        }
        // `Host` names the request's target, not the hop: a `Connection: host` cannot take it away.
        for name in named.into_iter().flatten().chain(extra).filter(|n| n != header::HOST) {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    if others {
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
        headers.remove(header::TRANSFER_ENCODING);
        // Every value: a second `te` line (`te: trailers` then `te: gzip`) must not ride on the first.
        if headers.get_all(header::TE).iter().any(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers")) {
            headers.remove(header::TE);
        }
    }
}

/// The client's address as `x-forwarded-for` writes it (an IPv4-mapped IPv6 address as IPv4). Formatting
/// an address costs more than the rest of the forwarded headers, and a sidecar's clients are few: each
/// thread keeps the last one it formatted, and a request from the same client takes a copy (a reference
/// count).
fn forwarded_for(client: IpAddr) -> Option<HeaderValue> {
    use std::{cell::RefCell, io::Write as _};

    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
        v4 => v4,
    };
    let cached = LAST.with(|last| match last.try_borrow() {
        Ok(last) => last.as_ref().filter(|(ip, _)| *ip == client).map(|(_, v)| v.clone()),
        Err(_) => None,
    });
    if cached.is_some() {
        return cached;
    }
    // An address is at most 39 characters: format it on the stack.
    let mut buf = [0u8; 48];
    let len = {
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let _ = write!(cursor, "{client}");
        usize::try_from(cursor.position()).unwrap_or(0)
    };
    let value = HeaderValue::from_bytes(buf.get(..len).unwrap_or_default()).ok()?;
    LAST.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((client, value.clone()));
        }
    });
    Some(value)
}

/// Appends the client's address to `x-forwarded-for` and the scheme to `x-forwarded-proto`.
pub fn append_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &'static str) {
    if let Some(addr) = forwarded_for(client) {
        let xff = match headers.get(&X_FORWARDED_FOR) {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + addr.len());
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(addr.as_bytes());
                HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
            }
            None => Some(addr),
        };
        if let Some(v) = xff {
            headers.insert(&X_FORWARDED_FOR, v);
        }
    }
    match headers.get(&X_FORWARDED_PROTO) {
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + proto.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(proto.as_bytes());
            if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(v)) {
                headers.insert(&X_FORWARDED_PROTO, v);
            }
        }
        None => {
            headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
    }
}

/// The `Upgrade` header of an HTTP/1.1 upgrade request (`connection: upgrade` + `upgrade: …`).
pub fn upgrade_request(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Whether a request is gRPC (`content-type: application/grpc…`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The request's host without port: the HTTP/2 `:authority` (or an absolute URI), else the `host` header.
pub fn request_host<B>(req: &http::Request<B>) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()))
        .map(strip_port)
}

/// Why a request's `Host` makes it ambiguous (RFC 9112 §3.2, RFC 9113 §8.3.1): answered 400, never
/// forwarded, since the proxy and the upstream could each read it as meant for another site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostProblem {
    #[error("the request has more than one Host header")]
    Several,
    #[error("an HTTP/1.1 request needs a Host header")]
    Missing,
    #[error("the Host header names another site than the request's :authority")]
    Differs,
}

/// Checks the request's `Host` and makes it agree with its target: an absolute-form HTTP/1 request
/// (`GET http://a.example/ HTTP/1.1`) goes on with `Host` set to the URI's authority, whatever `Host`
/// said (RFC 9112 §3.2.2).
pub fn check_host<B>(req: &mut http::Request<B>) -> Result<(), HostProblem> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HostProblem::Several);
    }
    match (req.version(), req.uri().authority()) {
        (http::Version::HTTP_2 | http::Version::HTTP_3, Some(authority)) => match host {
            Some(h) if !h.as_bytes().eq_ignore_ascii_case(authority.as_str().as_bytes()) => Err(HostProblem::Differs),
            _ => Ok(()),
        },
        (_, Some(authority)) => {
            let value = HeaderValue::from_str(authority.as_str()).map_err(|_| HostProblem::Differs)?;
            req.headers_mut().insert(header::HOST, value);
            Ok(())
        }
        (http::Version::HTTP_11, None) if host.is_none() => Err(HostProblem::Missing),
        _ => Ok(()),
    }
}

/// Host without port from an authority or Host value ("[::1]:80" → "::1").
pub fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        remove_hop_by_hop(&mut h);
        assert!(h.contains_key(header::TE));
    }

    /// Found by the `request_path` fuzz target (`fuzz/corpus/request_path/crash-te-second-value.txt`): only
    /// the first of two `te` lines was looked at, so `te: trailers` carried `te: gzip` upstream.
    #[test]
    fn a_second_te_value_is_not_forwarded() {
        let mut h = HeaderMap::new();
        h.append(header::TE, HeaderValue::from_static("trailers"));
        h.append(header::TE, HeaderValue::from_static("gzip"));
        remove_hop_by_hop(&mut h);
        assert!(!h.contains_key(header::TE), "{h:?}");
        let mut h = HeaderMap::new();
        h.append(header::TE, HeaderValue::from_static("trailers"));
        h.append(header::TE, HeaderValue::from_static("Trailers"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.get_all(header::TE).iter().count(), 2, "{h:?}");
    }

    #[test]
    fn every_header_connection_names_goes() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-a, x-b"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-c, x-d, x-e"));
        for n in ["x-a", "x-b", "x-c", "x-d", "x-e", "x-kept"] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("1"));
        }
        remove_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn connection_cannot_remove_host() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("host"));
        h.insert(header::HOST, HeaderValue::from_static("a.example"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h[header::HOST], "a.example");
    }

    #[test]
    fn host_ambiguity_is_refused_and_absolute_form_wins() {
        let req = |uri: &str, version, hosts: &[&str]| {
            let mut r = http::Request::builder().uri(uri).version(version);
            for h in hosts {
                r = r.header(header::HOST, *h);
            }
            r.body(()).expect("request")
        };
        let v11 = http::Version::HTTP_11;
        assert_eq!(check_host(&mut req("/", v11, &["a", "b"])), Err(HostProblem::Several));
        assert_eq!(check_host(&mut req("/", v11, &[])), Err(HostProblem::Missing));
        assert_eq!(check_host(&mut req("/", http::Version::HTTP_10, &[])), Ok(()));
        let mut absolute = req("http://b.example/x", v11, &["a.example"]);
        assert_eq!(check_host(&mut absolute), Ok(()));
        assert_eq!(absolute.headers()[header::HOST], "b.example");
        let v2 = http::Version::HTTP_2;
        assert_eq!(check_host(&mut req("http://b.example/", v2, &["a.example"])), Err(HostProblem::Differs));
        assert_eq!(check_host(&mut req("http://b.example/", v2, &["B.example"])), Ok(()));
        assert_eq!(check_host(&mut req("http://b.example/", v2, &[])), Ok(()));
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        append_forwarded(&mut h, "::ffff:10.0.0.1".parse().expect("ip"), "http");
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.9, 10.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    /// The per-thread copy of the last client's address never answers for another client.
    #[test]
    fn each_client_gets_its_own_address_whatever_came_before() {
        for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.1", "::1", "::ffff:10.0.0.2", "2001:db8::7", "2001:db8::7"] {
            let mut h = HeaderMap::new();
            append_forwarded(&mut h, ip.parse().expect("ip"), "https");
            let want = ip.strip_prefix("::ffff:").unwrap_or(ip);
            assert_eq!(h[&X_FORWARDED_FOR], want, "after the others, {ip}");
            assert_eq!(h[&X_FORWARDED_PROTO], "https");
        }
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
