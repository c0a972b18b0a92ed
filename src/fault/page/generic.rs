//! The `generic` preset: a plain page naming the status, for any 4xx or 5xx, with an `x-request-id`.

use http::StatusCode;

use super::{base_headers, escape_html, hex16, html_document, put, utc_timestamp, PageRequest, Rendered};

pub const STATUSES: &str = "any 4xx or 5xx";

pub fn supports(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

/// The title of a status, including the edge-specific codes HTTP names none for.
pub(super) fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or(match status.as_u16() {
        520 => "Unknown Error",
        521 => "Web Server Is Down",
        522 => "Connection Timed Out",
        523 => "Origin Is Unreachable",
        524 => "A Timeout Occurred",
        525 => "SSL Handshake Failed",
        526 => "Invalid SSL Certificate",
        527 => "Origin Connection Error",
        530 => "Origin DNS Error",
        _ => "Error",
    })
}

pub fn render(status: StatusCode, req: &PageRequest<'_>) -> Rendered {
    let code = status.as_u16();
    let title = title(status);
    let id = hex16(req.id);
    let time = utc_timestamp(req.now);
    let mut headers = base_headers(req.json);
    put(&mut headers, "x-request-id", id.clone());
    let body = if req.json {
        bytes::Bytes::from(
            serde_json::json!({ "status": code, "error": title, "request_id": id, "timestamp": time }).to_string(),
        )
    } else {
        let host = req.host.map(|h| format!(" &middot; {}", escape_html(h))).unwrap_or_default();
        html_document(
            &format!("{code} {title}"),
            &format!(
                "<h1>{title}</h1>\n<p class=\"code\">Error {code}</p>\n<p>The server could not complete this request. Please try again later.</p>\n<footer>Request ID: <code>{id}</code> &middot; {time}{host}</footer>\n"
            ),
        )
    };
    Rendered { reason: status.canonical_reason().is_none().then_some(title.into()), headers, body }
}
