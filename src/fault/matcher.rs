//! `Match`: whether a request is in an experiment's scope.
//!
//! Listener and route conditions are not tested here: the active rule set indexes rules by route, so a rule
//! is only ever asked about requests on routes it targets (`experiment::RuleSet`).

use std::net::IpAddr;

use http::{HeaderMap, Method};
use ipnet::IpNet;
use regex::Regex;

/// What a matcher may look at in a request. Borrowed: building one allocates nothing.
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// Host without port, from the `host` header or the HTTP/2 `:authority`.
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
}

/// How a header or query value is tested.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    Exact(String),
    Regex(Regex),
    /// true: present with any value; false: absent.
    Present(bool),
}

/// A named header or query parameter and its test.
#[derive(Debug, Clone)]
pub struct Predicate {
    pub name: String,
    pub value: ValueMatch,
}

impl Predicate {
    /// Tests every value the name has; present(false) holds when there is none.
    fn test<'v>(&self, mut values: impl Iterator<Item = &'v str>) -> bool {
        match &self.value {
            ValueMatch::Present(want) => values.next().is_some() == *want,
            ValueMatch::Exact(s) => values.any(|v| v == s),
            ValueMatch::Regex(re) => values.any(|v| re.is_match(v)),
        }
    }
}

/// An exact host, or `*.suffix` for any subdomain of suffix. Stored lowercase.
#[derive(Debug, Clone)]
pub enum HostPattern {
    Exact(String),
    /// The suffix includes its leading dot: ".example.com".
    Wildcard(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> Self {
        let s = s.to_ascii_lowercase();
        match s.strip_prefix('*') {
            Some(rest) if rest.starts_with('.') => HostPattern::Wildcard(rest.to_owned()),
            _ => HostPattern::Exact(s),
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && {
                    let tail = &host[host.len() - suffix.len()..];
                    host.is_char_boundary(host.len() - suffix.len()) && tail.eq_ignore_ascii_case(suffix)
                }
            }
        }
    }
}

/// The request-level conditions of an experiment. All must hold; within a list, any entry may match.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub hosts: Vec<HostPattern>,
    pub path_prefix: Option<String>,
    pub path_exact: Option<String>,
    pub path_regex: Option<Regex>,
    pub methods: Vec<Method>,
    pub headers: Vec<Predicate>,
    pub query: Vec<Predicate>,
    pub cookies: Vec<Predicate>,
    pub client_cidrs: Vec<IpNet>,
}

impl Matcher {
    /// Whether the request is in scope. Cheapest tests first.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return false;
        }
        if let Some(p) = &self.path_exact {
            if req.path != p {
                return false;
            }
        }
        if let Some(p) = &self.path_prefix {
            if !req.path.starts_with(p.as_str()) {
                return false;
            }
        }
        if !self.hosts.is_empty() {
            match req.host {
                Some(h) if self.hosts.iter().any(|p| p.matches(h)) => {}
                _ => return false,
            }
        }
        if !self.client_cidrs.is_empty() && !self.client_cidrs.iter().any(|n| n.contains(&canonical(req.client_ip))) {
            return false;
        }
        for h in &self.headers {
            let values = req.headers.get_all(h.name.as_str()).iter().filter_map(|v| v.to_str().ok());
            if !h.test(values) {
                return false;
            }
        }
        for c in &self.cookies {
            let values = cookie_values(req.headers, &c.name).filter_map(|v| std::str::from_utf8(v).ok());
            if !c.test(values) {
                return false;
            }
        }
        for q in &self.query {
            let query = req.query.unwrap_or("");
            let values = query_values(query, &q.name);
            if !q.test(values.iter().map(String::as_str)) {
                return false;
            }
        }
        if let Some(re) = &self.path_regex {
            if !re.is_match(req.path) {
                return false;
            }
        }
        true
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 client) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The decoded values of one query parameter.
/// The values of cookie `name` in the request's `cookie` headers, in order.
pub(crate) fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.get_all(http::header::COOKIE).iter().flat_map(move |v| {
        v.as_bytes().split(|b| *b == b';').filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            let (key, value) = pair.split_at(eq);
            (key.trim_ascii() == name.as_bytes()).then(|| value.get(1..).unwrap_or_default().trim_ascii())
        })
    })
}

fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` and `+` (form encoding); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => match tail {
                [h, l, after @ ..] if hex(*h).is_some() && hex(*l).is_some() => {
                    out.push(hex(*h).unwrap_or(0) << 4 | hex(*l).unwrap_or(0));
                    rest = after;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn view<'a>(method: &'a Method, path: &'a str, query: Option<&'a str>, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method,
            host: Some("api.example.com"),
            path,
            query,
            headers,
            client_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        }
    }

    #[test]
    fn empty_matcher_matches_everything() {
        let h = HeaderMap::new();
        assert!(Matcher::default().matches(&view(&Method::GET, "/", None, &h)));
    }

    #[test]
    fn hosts_and_wildcards() {
        assert!(HostPattern::parse("*.example.com").matches("API.example.com"));
        assert!(!HostPattern::parse("*.example.com").matches("example.com"));
        assert!(HostPattern::parse("Example.com").matches("example.COM"));
        assert!(!HostPattern::parse("*.é.com").matches("é.com"));
    }

    #[test]
    fn query_conditions() {
        let h = HeaderMap::new();
        let m = Matcher {
            query: vec![
                Predicate { name: "user id".into(), value: ValueMatch::Exact("a&b".into()) },
                Predicate { name: "debug".into(), value: ValueMatch::Present(false) },
            ],
            ..Matcher::default()
        };
        assert!(m.matches(&view(&Method::GET, "/", Some("x=1&user+id=a%26b"), &h)));
        assert!(!m.matches(&view(&Method::GET, "/", Some("user%20id=a%26b&debug"), &h)));
        assert!(!m.matches(&view(&Method::GET, "/", None, &h)));
    }

    #[test]
    fn percent_decode_leaves_bad_escapes() {
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%"), "A%");
    }

    #[test]
    fn cidrs_see_mapped_ipv4() {
        let h = HeaderMap::new();
        let m = Matcher { client_cidrs: vec!["10.0.0.0/8".parse().expect("cidr")], ..Matcher::default() };
        let mut v = view(&Method::GET, "/", None, &h);
        v.client_ip = "::ffff:10.9.9.9".parse().expect("ip");
        assert!(m.matches(&v));
        v.client_ip = "192.168.1.1".parse().expect("ip");
        assert!(!m.matches(&v));
    }
}
