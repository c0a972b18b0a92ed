//! `abort`: answer from the proxy instead of the upstream, as HTTP or as gRPC.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::Page;

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
