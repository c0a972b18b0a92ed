//! Sticky targeting: the percentage selects clients, not requests. A client's key (a header, a cookie, or
//! its IP address) hashed with the experiment's seed gives it a fixed point in [0, 100); the client is in
//! while that point is below the current percentage. So a client stays in or out for the experiment's life,
//! and as a ramp grows, clients only join.

use http::HeaderName;

use super::{Percentage, RequestView};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// The value of this request header.
    Header(HeaderName),
    /// The value of this cookie.
    Cookie(String),
    /// The client's IP address (the TCP peer).
    ClientIp,
}

impl StickyKey {
    /// Whether the request's client is selected at `percentage`. A request without the key counts as the
    /// client whose key is empty.
    pub fn selects(&self, req: &RequestView<'_>, seed: u64, percentage: Percentage) -> bool {
        let h = match self {
            StickyKey::Header(name) => fnv1a(req.headers.get(name).map_or(&[][..], |v| v.as_bytes())),
            StickyKey::Cookie(name) => fnv1a(cookie(req, name).unwrap_or(&[])),
            StickyKey::ClientIp => match req.client_ip {
                std::net::IpAddr::V4(a) => fnv1a(&a.octets()),
                std::net::IpAddr::V6(a) => fnv1a(&a.octets()),
            },
        };
        point(h, seed) < percentage.percent()
    }
}

/// The value of cookie `name` in the request's `cookie` headers.
fn cookie<'a>(req: &RequestView<'a>, name: &'a str) -> Option<&'a [u8]> {
    super::matcher::cookie_values(req.headers, name).next()
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The client's point in [0, 100): its key's hash mixed with the seed.
pub(crate) fn point(hash: u64, seed: u64) -> f64 {
    let mut z = (hash ^ seed.rotate_left(17)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::{HeaderMap, HeaderValue, Method};

    use super::*;

    fn view<'a>(headers: &'a HeaderMap, ip: IpAddr) -> RequestView<'a> {
        RequestView { method: &Method::GET, host: None, path: "/", query: None, headers, client_ip: ip }
    }

    fn pct(p: f64) -> Percentage {
        Percentage::new(p).unwrap_or(Percentage::ALL)
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, HeaderValue::from_static("a=1; session = abc ;b=2"));
        h.append(http::header::COOKIE, HeaderValue::from_static("other=3"));
        let v = view(&h, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(cookie(&v, "session"), Some(&b"abc"[..]));
        assert_eq!(cookie(&v, "other"), Some(&b"3"[..]));
        assert_eq!(cookie(&v, "missing"), None);
    }

    /// A client in at some percentage stays in at every higher one; the share in is close to the percentage.
    #[test]
    fn clients_only_join_as_the_percentage_grows() {
        let key = StickyKey::Header(HeaderName::from_static("x-user"));
        let mut in_at_30 = 0;
        for user in 0..10_000u32 {
            let mut h = HeaderMap::new();
            h.insert("x-user", HeaderValue::from(user));
            let v = view(&h, IpAddr::V4(Ipv4Addr::LOCALHOST));
            let at30 = key.selects(&v, 9, pct(30.0));
            if at30 {
                in_at_30 += 1;
                assert!(key.selects(&v, 9, pct(60.0)), "user {user} left when the percentage grew");
            }
            assert!(key.selects(&v, 9, pct(100.0)));
            assert!(!key.selects(&v, 9, pct(0.0)));
        }
        // Binomial(10000, 0.3): sd 45.8; ±300 is beyond 6 sd.
        assert!((2700..=3300).contains(&in_at_30), "{in_at_30}");
    }
}
