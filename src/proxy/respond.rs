//! Every response the proxy writes itself, in one place: injected aborts (HTTP or gRPC) and the proxy's
//! own errors. The two never look alike: proxy errors carry `x-edgefault-error`, injected faults do not
//! (a rehearsal should look real).

use http::{header, HeaderName, HeaderValue, Response, StatusCode};

use super::{body::ProxyBody, upstream::UpstreamError};
use crate::fault::Abort;

pub static X_EDGEFAULT_ERROR: HeaderName = HeaderName::from_static("x-edgefault-error");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
static TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

/// An injected abort. A gRPC request gets a trailers-only response (HTTP 200, `grpc-status` in the only
/// header block); any other request gets the abort's status, headers and body.
pub fn abort(abort: &Abort, grpc: bool) -> Response<ProxyBody> {
    let mut resp = if grpc {
        let mut r = Response::new(ProxyBody::empty());
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, GRPC.clone());
        h.insert(&GRPC_STATUS, abort.grpc_status.header_value());
        if let Some(m) = &abort.grpc_message {
            h.insert(&GRPC_MESSAGE, m.clone());
        }
        r
    } else {
        let mut r = Response::new(ProxyBody::full(abort.body.clone()));
        *r.status_mut() = abort.http_status;
        r.headers_mut().insert(header::CONTENT_TYPE, TEXT.clone());
        r
    };
    for (name, value) in &abort.headers {
        resp.headers_mut().insert(name, value.clone());
    }
    resp
}

/// The proxy's own answer when the upstream failed: 504 for a timeout, 502 otherwise.
pub fn upstream_error(err: &UpstreamError) -> Response<ProxyBody> {
    let status = match err {
        UpstreamError::ConnectTimeout | UpstreamError::ResponseTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        UpstreamError::Connect(_) | UpstreamError::Request(_) => StatusCode::BAD_GATEWAY,
    };
    proxy_error(status, err.kind(), format!("edgefault: {err}\n"))
}

/// No route of the listener takes the request.
pub fn no_route(listener: &str) -> Response<ProxyBody> {
    proxy_error(
        StatusCode::NOT_FOUND,
        "no-route",
        format!("edgefault: no route of listener {listener:?} matches this request\n"),
    )
}

fn proxy_error(status: StatusCode, kind: &'static str, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, TEXT.clone());
    r.headers_mut().insert(&X_EDGEFAULT_ERROR, HeaderValue::from_static(kind));
    r
}
