//! The Toxiproxy-compatible REST API (`toxiproxy.bind`, `--toxiproxy`): Toxiproxy's clients and scripts
//! create TCP proxies and toxics on edgefault as they would on Toxiproxy, and keep their tests.
//!
//! A proxy is a TCP listener created at run time: it takes one of the topology's free slots (sized by
//! `toxiproxy.max_proxies`), so experiments name it like a listener of the config. Each toxic is a TCP
//! experiment of its own on that listener (`toxiproxy <proxy>/<toxic>`), and a disabled proxy is one too
//! (`toxiproxy <proxy> disabled`, while its listener is closed): they show in `ListExperiments`, events,
//! metrics and the audit log, obey the server's limits, end with `AbortAll` (a disabled proxy then listens
//! again) and are gone on restart. docs/compat.md lists every endpoint, toxic and attribute.
//!
//! `api` is the HTTP side (routes, tokens, JSON shapes and error bodies); `proxies` the collection of
//! proxies and their listeners; `toxic` the toxics in Toxiproxy's units.

use http::StatusCode;

mod api;
mod proxies;
mod toxic;

pub use api::serve;
pub use proxies::{Settings, Toxiproxy};

/// A refused call: the status and message of Toxiproxy's error body, `{"error": …, "status": …}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({status})")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// A limit of the server (`limits.max_active`, `toxiproxy.max_proxies`) is reached.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message)
    }

    /// Something the server could not do (a port it cannot listen on), as Toxiproxy answers it.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Toxiproxy's error body.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "status": self.status.as_u16() })
    }
}

/// Longest proxy or toxic name.
const MAX_NAME: usize = 64;

/// Checks a proxy or toxic name: it becomes part of a URL path, of experiment names and of metric labels.
fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if name.is_empty() {
        return Err(ApiError::bad_request("missing required field: name"));
    }
    if name.len() > MAX_NAME || !name.chars().all(fine) {
        return Err(ApiError::bad_request(format!(
            "name: a {what} name is 1 to {MAX_NAME} letters, digits, '_', '-', '.' or ':', got {:?}",
            crate::text::printable(name)
        )));
    }
    Ok(())
}
