//! `abort`: answer from the proxy instead of the upstream, as HTTP or as gRPC.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{
    check::{MAX_BODY, MAX_LIST},
    page::{Location, Preset},
    Collector, End, HttpKind, Page, Plan, Step,
};
use crate::pb::v1 as pb;

/// A gRPC status code, 0 (OK) to 16 (UNAUTHENTICATED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcCode(u8);

impl GrpcCode {
    pub const UNKNOWN: GrpcCode = GrpcCode(2);
    pub const INTERNAL: GrpcCode = GrpcCode(13);
    pub const UNAVAILABLE: GrpcCode = GrpcCode(14);

    pub fn new(code: u32) -> Option<Self> {
        u8::try_from(code).ok().filter(|c| *c <= 16).map(GrpcCode)
    }

    pub fn value(self) -> u8 {
        self.0
    }

    /// The `grpc-status` header value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from(u16::from(self.0))
    }
}

/// The gRPC status a gRPC client reports for an HTTP status, per gRPC's "HTTP to gRPC status code
/// mapping" (doc/http-grpc-status-mapping.md).
pub fn grpc_code_for_http(status: StatusCode) -> GrpcCode {
    match status.as_u16() {
        400 => GrpcCode::INTERNAL,
        401 => GrpcCode(16), // UNAUTHENTICATED
        403 => GrpcCode(7),  // PERMISSION_DENIED
        404 => GrpcCode(12), // UNIMPLEMENTED
        429 | 502 | 503 | 504 => GrpcCode::UNAVAILABLE,
        _ => GrpcCode::UNKNOWN,
    }
}

/// A validated abort. Everything a response needs is prepared here, once, so serving one copies nothing
/// but reference counts.
#[derive(Debug, Clone)]
pub struct Abort {
    /// Status for non-gRPC requests.
    pub http_status: StatusCode,
    /// Status for gRPC requests.
    pub grpc_status: GrpcCode,
    /// `grpc-message`, already percent-encoded; absent when empty.
    pub grpc_message: Option<HeaderValue>,
    /// Body for non-gRPC requests.
    pub body: Bytes,
    /// Extra response headers (both kinds of request).
    pub headers: HeaderMap,
    /// A built-in page rendered per request instead of `body` (non-gRPC requests only).
    pub page: Option<Page>,
}

impl Abort {
    /// Builds an abort from validated parts; the defaults of the proto contract apply to what is absent.
    pub fn new(
        http_status: Option<StatusCode>,
        grpc_status: Option<GrpcCode>,
        grpc_message: &str,
        body: Option<Bytes>,
        headers: HeaderMap,
    ) -> Self {
        let http_status = http_status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let grpc_status = grpc_status.unwrap_or_else(|| grpc_code_for_http(http_status));
        let body = body.unwrap_or_else(|| {
            let reason = http_status.canonical_reason().unwrap_or("Error");
            Bytes::from(format!("{} {}\n", http_status.as_u16(), reason))
        });
        let grpc_message = (!grpc_message.is_empty())
            .then(|| HeaderValue::from_maybe_shared(Bytes::from(percent_encode_grpc(grpc_message))).ok())
            .flatten();
        Abort { http_status, grpc_status, grpc_message, body, headers, page: None }
    }

    /// Answers with a built-in page instead of the body. The caller has checked that the page's preset
    /// supports the status.
    pub fn with_page(mut self, page: Page) -> Self {
        self.page = Some(page);
        self
    }
}

impl HttpKind for Abort {
    type Proto = pb::AbortFault;

    fn convert(a: &pb::AbortFault, path: &str, c: &mut Collector) -> Option<Self> {
        Some(Abort::from_proto(a, path, c))
    }

    fn apply(&self, _: &mut Plan<'_>) -> Step {
        Step::ENDS
    }

    fn end(&self) -> Option<End<'_>> {
        Some(End::Abort(self))
    }
}

impl Abort {
    /// An abort's message (also a hang's `respond`) at `path`; what is invalid is left at its default, the
    /// problem recorded in `c`.
    pub fn from_proto(a: &pb::AbortFault, path: &str, c: &mut Collector) -> Abort {
        let http_status = a.http_status.and_then(|s| match StatusCode::from_u16(u16::try_from(s).unwrap_or(0)) {
            Ok(code) if (200..=599).contains(&code.as_u16()) => Some(code),
            _ => {
                c.add(format!("{path}.http_status"), format!("{s} is not an HTTP status an abort can send (200–599)"));
                None
            }
        });
        let grpc_status = a.grpc_status.and_then(|s| {
            GrpcCode::new(s).or_else(|| {
                c.add(format!("{path}.grpc_status"), format!("{s} is not a gRPC status code (0–16)"));
                None
            })
        });
        if a.body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
            c.add(format!("{path}.body"), format!("at most {MAX_BODY} bytes"));
        }
        let headers = headers_from_proto(a, path, c);
        let body = a.body.as_ref().map(|b| Bytes::from(b.clone()));
        let page = page_from_proto(a, http_status, path, c);
        let abort = Abort::new(http_status, grpc_status, &a.grpc_message, body, headers);
        match page {
            Some(page) => abort.with_page(page),
            None => abort,
        }
    }
}

/// `abort.headers`, in name order.
fn headers_from_proto(a: &pb::AbortFault, path: &str, c: &mut Collector) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if a.headers.len() > MAX_LIST {
        c.add(format!("{path}.headers"), format!("at most {MAX_LIST} entries"));
        return headers;
    }
    let mut entries: Vec<(&String, &String)> = a.headers.iter().collect();
    entries.sort();
    for (name, value) in entries {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            (Err(_), _) => c.add(format!("{path}.headers[{name:?}]"), "not a valid header name"),
            (_, Err(_)) => {
                c.add(format!("{path}.headers[{name:?}]"), "not a valid header value (printable ASCII only)")
            }
        }
    }
    headers
}

/// `abort.page` and `abort.page_location`: a known preset that has a page for the abort's status.
fn page_from_proto(a: &pb::AbortFault, http_status: Option<StatusCode>, path: &str, c: &mut Collector) -> Option<Page> {
    if a.page.is_empty() {
        if !a.page_location.is_empty() {
            c.add(format!("{path}.page_location"), "only applies with a page (set page as well)");
        }
        return None;
    }
    let custom = |c: &Collector| c.pages().and_then(|p| p.get(&a.page)).map(|t| Preset::Custom(t.clone()));
    let Some(preset) = Preset::parse(&a.page).or_else(|| custom(c)) else {
        let known = match c.pages() {
            Some(pages) => {
                let mut names: Vec<&str> = Preset::NAMES.to_vec();
                names.extend(pages.names());
                format!("use one of {} (the config's pages: templates included)", names.join(", "))
            }
            None => format!(
                "use one of {}, or a page template of the server's config (check with --config CONFIG)",
                Preset::NAMES.join(", ")
            ),
        };
        c.add(format!("{path}.page"), format!("unknown page {:?}: {known}", a.page));
        return None;
    };
    if a.body.is_some() {
        c.add(format!("{path}.body"), "set either body or page, not both");
    }
    let status = http_status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if a.http_status.is_none_or(|_| http_status.is_some()) && !preset.supports(status) {
        c.add(
            format!("{path}.http_status"),
            format!("page {:?} has no page for {}: it covers {}", preset.name(), status.as_u16(), preset.statuses()),
        );
    }
    let location = if a.page_location.is_empty() {
        Location::DEFAULT
    } else {
        Location::parse(&a.page_location).unwrap_or_else(|| {
            c.add(
                format!("{path}.page_location"),
                format!("{:?} is not a three-letter location code", a.page_location),
            );
            Location::DEFAULT
        })
    };
    Some(Page { preset, location })
}

/// Percent-encodes a `grpc-message` as the gRPC HTTP/2 protocol asks: bytes outside printable ASCII, and
/// `%`, become `%XX`.
pub fn percent_encode_grpc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let only_grpc = Abort::new(None, GrpcCode::new(8), "", None, HeaderMap::new());
        assert_eq!(only_grpc.http_status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(only_grpc.grpc_status.value(), 8);

        let only_http = Abort::new(Some(StatusCode::NOT_FOUND), None, "", None, HeaderMap::new());
        assert_eq!(only_http.grpc_status.value(), 12);
        assert_eq!(&only_http.body[..], b"404 Not Found\n");
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        let a = Abort::new(None, None, "edge down: 100% é", None, HeaderMap::new());
        assert_eq!(a.grpc_message.as_ref().map(|v| v.as_bytes()), Some(&b"edge down: 100%25 %C3%A9"[..]));
    }

    #[test]
    fn grpc_codes_are_bounded() {
        assert!(GrpcCode::new(16).is_some());
        assert!(GrpcCode::new(17).is_none());
        assert!(GrpcCode::new(u32::MAX).is_none());
    }
}
