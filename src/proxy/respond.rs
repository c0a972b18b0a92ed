//! Every response the proxy writes itself, in one place: injected aborts (HTTP or gRPC) and the proxy's
//! own errors. The two never look alike: proxy errors carry `x-edgefault-error`, injected faults do not
//! (a rehearsal should look real).

use std::{
    net::IpAddr,
    time::{Duration, SystemTime},
};

use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::ext::ReasonPhrase;

use super::{body::ProxyBody, error::UpstreamError, headers};
use crate::fault::{
    page::{wants_json, PageRequest},
    Abort, GrpcCode, Page,
};

pub static X_EDGEFAULT_ERROR: HeaderName = HeaderName::from_static("x-edgefault-error");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
static TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

/// An injected abort. A gRPC request gets a trailers-only response (HTTP 200, `grpc-status` in the only
/// header block); any other request gets the abort's status, headers and body, or its page.
pub fn abort<B>(abort: &Abort, req: &Request<B>, client: IpAddr) -> Response<ProxyBody> {
    let mut resp = if headers::is_grpc(req.headers()) {
        let mut r = Response::new(ProxyBody::empty());
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, GRPC.clone());
        h.insert(&GRPC_STATUS, abort.grpc_status.header_value());
        if let Some(m) = &abort.grpc_message {
            h.insert(&GRPC_MESSAGE, m.clone());
        }
        r
    } else if let Some(p) = &abort.page {
        page(abort.http_status, p, req, client)
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

/// A request beyond a rate limit: 429 with `retry-after` in whole seconds (at least 1); a gRPC request gets
/// UNAVAILABLE, the code gRPC's HTTP mapping gives 429.
pub fn rate_limited<B>(retry_after: Duration, req: &Request<B>) -> Response<ProxyBody> {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut r = if headers::is_grpc(req.headers()) {
        let mut r = Response::new(ProxyBody::empty());
        r.headers_mut().insert(header::CONTENT_TYPE, GRPC.clone());
        r.headers_mut().insert(&GRPC_STATUS, GrpcCode::UNAVAILABLE.header_value());
        r
    } else {
        let mut r = Response::new(ProxyBody::full("429 Too Many Requests\n"));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        r.headers_mut().insert(header::CONTENT_TYPE, TEXT.clone());
        r
    };
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// A built-in error page for `req`, with a fresh request id and the current time.
fn page<B>(status: StatusCode, page: &Page, req: &Request<B>, client: IpAddr) -> Response<ProxyBody> {
    let host = headers::request_host(req);

    let rendered = page.render(
        status,
        &PageRequest {
            host,
            json: wants_json(req.headers()),
            now: SystemTime::now(),
            id: rand::random(),
            client: Some(client),
        },
    );
    let mut r = Response::new(ProxyBody::full(rendered.body));
    *r.status_mut() = status;
    *r.headers_mut() = rendered.headers;
    if let Some(Ok(reason)) = rendered.reason.map(|r| ReasonPhrase::try_from(r.as_bytes())) {
        r.extensions_mut().insert(reason);
    }
    r
}

/// The proxy's own answer when the upstream failed: 504 for a timeout, 502 otherwise; to a gRPC client, a
/// trailers-only response with the status gRPC's HTTP mapping gives them (UNAVAILABLE; INTERNAL for the
/// client's own broken request), so it reads a gRPC error, not a garbled message.
pub fn upstream_error(err: &UpstreamError, grpc: bool) -> Response<ProxyBody> {
    let status = match err {
        UpstreamError::ConnectTimeout | UpstreamError::ResponseTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        UpstreamError::Connect(_) | UpstreamError::Request(_) | UpstreamError::Tls(_) => StatusCode::BAD_GATEWAY,
        UpstreamError::Destination(_) | UpstreamError::ClientBody(_) => StatusCode::BAD_REQUEST,
    };
    if grpc {
        let mut r = Response::new(ProxyBody::empty());
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, GRPC.clone());
        let code = if status == StatusCode::BAD_REQUEST { GrpcCode::INTERNAL } else { GrpcCode::UNAVAILABLE };
        h.insert(&GRPC_STATUS, code.header_value());
        if let Ok(m) = HeaderValue::from_str(&crate::fault::percent_encode_grpc(&format!("edgefault: {err}"))) {
            h.insert(&GRPC_MESSAGE, m);
        }
        h.insert(&X_EDGEFAULT_ERROR, HeaderValue::from_static(err.kind()));
        return r;
    }
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

/// A request a forward listener cannot proxy (not absolute-form, not a CONNECT to host:port).
pub fn not_a_proxy_request(why: &str) -> Response<ProxyBody> {
    proxy_error(StatusCode::BAD_REQUEST, "not-a-proxy-request", format!("edgefault: {why}\n"))
}

/// A request the proxy refuses to forward as it stands (ambiguous framing or target).
pub fn bad_request(kind: &'static str, why: &str) -> Response<ProxyBody> {
    proxy_error(StatusCode::BAD_REQUEST, kind, format!("edgefault: {why}\n"))
}

/// A CONNECT on a listener that is not a forward proxy.
pub fn connect_refused(listener: &str) -> Response<ProxyBody> {
    let mut r = proxy_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "connect-refused",
        format!("edgefault: listener {listener:?} is a reverse proxy; CONNECT tunnels are for forward listeners\n"),
    );
    if let Ok(allow) = HeaderValue::from_str("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS") {
        r.headers_mut().insert(header::ALLOW, allow);
    }
    r
}

fn proxy_error(status: StatusCode, kind: &'static str, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, TEXT.clone());
    r.headers_mut().insert(&X_EDGEFAULT_ERROR, HeaderValue::from_static(kind));
    r
}
