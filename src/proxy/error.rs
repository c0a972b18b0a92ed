//! Why a request or a response did not go as the client asked: the upstream failed, the client's body
//! failed, or a fault ended it on purpose.

use std::time::Duration;

/// The request's connection is dropped on purpose by a fault; hyper closes it (HTTP/2: resets the stream).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
pub struct Dropped;

/// Why a response body ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The upstream's body failed.
    #[error(transparent)]
    Upstream(#[from] hyper::Error),
    /// A truncate or reset fault cut the body.
    #[error("response body cut by an injected fault")]
    Cut,
}

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream connection failed: {0}")]
    Connect(String),
    #[error("upstream connection timed out")]
    ConnectTimeout,
    #[error("upstream sent no response within {}", humantime::format_duration(*.0))]
    ResponseTimeout(Duration),
    #[error("upstream request failed: {0}")]
    Request(String),
    #[error("upstream TLS handshake failed: {0}")]
    Tls(String),
    #[error("the request has no destination: {0}")]
    Destination(String),
    /// The client's request body failed on the way (a client that left mid-upload, a malformed chunked
    /// body): the client's doing, answered 400 and counted `client_error`, never `upstream_error`.
    #[error("{0}")]
    ClientBody(String),
}

impl UpstreamError {
    /// A short label for logs and the `x-edgefault-error` header.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "upstream-connect",
            UpstreamError::ConnectTimeout => "upstream-connect-timeout",
            UpstreamError::ResponseTimeout(_) => "upstream-timeout",
            UpstreamError::Request(_) => "upstream-request",
            UpstreamError::Tls(_) => "upstream-tls",
            UpstreamError::Destination(_) => "no-destination",
            UpstreamError::ClientBody(_) => "client-request",
        }
    }

    /// Whether the client caused it.
    pub fn is_client(&self) -> bool {
        matches!(self, UpstreamError::ClientBody(_))
    }

    /// A failed send: the client's body, or the upstream.
    pub(super) fn of_send(e: hyper::Error) -> Self {
        if ClientBodyError::is_in(&e) {
            let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
            UpstreamError::ClientBody(why)
        } else {
            UpstreamError::Request(e.to_string())
        }
    }
}

/// Reading the client's request body failed.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body could not be read: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

impl ClientBodyError {
    /// Whether `e` (or what caused it) is a client body error.
    pub fn is_in(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err.is::<ClientBodyError>() {
                return true;
            }
            cur = err.source();
        }
        false
    }
}
