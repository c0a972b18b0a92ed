//! The `edge` preset, modelled on the edge provider of the 18 November 2025 outage (docs/faults.md lists
//! the sources): `server` and a ray-id-style request id `<16 hex>-<LOC>`, a cache-status header saying the
//! edge answered before its cache, an error-type header, and a page with the code, title, "Ray ID", time,
//! the visitor's IP behind a "click to reveal", the location's city and code, and a "browser — edge — host"
//! diagram showing which hop failed.

use http::StatusCode;

use super::{base_headers, escape_html, hex16, html_document, put, utc_timestamp, Location, PageRequest, Rendered};

pub const STATUSES: &str = "403, 500, 502, 503, 504, 520–527, 530";

/// Which hop of "browser — edge — host" failed, for the diagram and the explanation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hop {
    Edge,
    Host,
}

struct Entry {
    /// The page's title, and the status line's reason for codes HTTP gives none.
    title: &'static str,
    hop: Hop,
    /// The error-type header, where the provider's docs name one.
    error_type: Option<&'static str>,
    /// "What happened?"
    happened: &'static str,
}

fn entry(status: StatusCode) -> Option<Entry> {
    let e = |title, hop, error_type, happened| Some(Entry { title, hop, error_type, happened });
    match status.as_u16() {
        // The block page: a firewall rule (or, on 18 November 2025 for sites on the older proxy, a bot score
        // gone wrong) had the edge refuse the request.
        403 => e(
            "Access denied",
            Hop::Edge,
            Some("1020"),
            "This site's owner has the edge block requests like this one: error 1020, access denied by a security rule.",
        ),
        500 => e("Internal server error", Hop::Edge, None, "The edge network failed while handling this request."),
        502 => e("Bad gateway", Hop::Host, None, "The edge could not get a valid response from the web server."),
        503 => e("Service unavailable", Hop::Edge, None, "The edge is overloaded or cannot serve this request now."),
        504 => e("Gateway time-out", Hop::Host, None, "The web server did not answer the edge in time."),
        520 => e(
            "Web server is returning an unknown error",
            Hop::Host,
            Some("52x"),
            "The web server sent the edge an empty or unexpected response.",
        ),
        521 => e("Web server is down", Hop::Host, Some("52x"), "The web server refused the edge's connection."),
        522 => {
            e("Connection timed out", Hop::Host, Some("52x"), "The edge could not connect to the web server in time.")
        }
        523 => e("Origin is unreachable", Hop::Host, Some("52x"), "The edge found no route to the web server."),
        524 => e(
            "A timeout occurred",
            Hop::Host,
            Some("52x"),
            "The edge connected to the web server, but the server sent no response in time.",
        ),
        525 => e(
            "SSL handshake failed",
            Hop::Host,
            Some("52x"),
            "The TLS handshake between the edge and the web server failed.",
        ),
        526 => e(
            "Invalid SSL certificate",
            Hop::Host,
            Some("52x"),
            "The web server presented a certificate the edge does not accept.",
        ),
        527 => e(
            "Origin connection error",
            Hop::Host,
            Some("52x"),
            "The connection between the edge and the web server broke.",
        ),
        530 => e(
            "Origin DNS error",
            Hop::Host,
            Some("1016"),
            "Error 1016: the edge could not resolve the web server's address.",
        ),
        _ => None,
    }
}

pub fn supports(status: StatusCode) -> bool {
    entry(status).is_some()
}

pub fn render(status: StatusCode, location: Location, req: &PageRequest<'_>) -> Rendered {
    let entry = entry(status).unwrap_or(Entry {
        title: "Error",
        hop: Hop::Edge,
        error_type: None,
        happened: "The edge could not serve this request.",
    });
    let code = status.as_u16();
    // The provider's own 1xxx code, where the page carries one (1020 access denied, 1016 origin DNS error).
    let error_code: Option<u16> = entry.error_type.and_then(|t| t.parse().ok()).filter(|c| (1000..2000).contains(c));
    let code_line = match error_code {
        Some(c) => format!("Error code {code} &middot; Error {c}"),
        None => format!("Error code {code}"),
    };
    let blocked = code == 403;
    let ray = format!("{}-{}", hex16(req.id), location.as_str());
    let time = utc_timestamp(req.now);
    let host = req.host.unwrap_or("this site");

    let mut headers = base_headers(req.json);
    put(&mut headers, "server", "cloudflare".into());
    put(&mut headers, "cf-ray", ray.clone());
    // The edge answered before its cache: NONE when the edge itself failed, UNKNOWN when it failed on the
    // way to the host.
    put(&mut headers, "cf-cache-status", if entry.hop == Hop::Edge { "NONE" } else { "UNKNOWN" }.into());
    if let Some(t) = entry.error_type {
        put(&mut headers, "cf-error-type", t.into());
    }

    let body = if req.json {
        let v = serde_json::json!({
            "success": false,
            "status": code,
            "error_code": error_code,
            "title": entry.title,
            "detail": entry.happened,
            "host": req.host,
            "ray_id": ray,
            "location": location.as_str(),
            "city": location.city(),
            "timestamp": time,
        });
        bytes::Bytes::from(v.to_string())
    } else {
        let host = escape_html(host);
        let title = format!("{host} | {code}: {}", entry.title);
        let (edge_class, host_class) = match entry.hop {
            Hop::Edge => (" class=\"down\"", ""),
            Hop::Host => ("", " class=\"down\""),
        };
        let todo = match (code, entry.hop) {
            (403, _) => {
                "If you think you should not be blocked, contact the site's owner and give them the Ray ID below."
            }
            (530, _) => {
                "Reload the page in a few minutes. If you run this site, check that its DNS records at the edge point to a host name that resolves, and that the host name's own DNS answers."
            }
            (_, Hop::Edge) => {
                "Wait a few minutes and reload the page. The problem is on the edge network, not on this site."
            }
            (_, Hop::Host) => {
                "Reload the page in a few minutes. If you run this site, check that your web server is up and reachable from the edge."
            }
        };
        // The visitor's address, behind a click like the provider's page (no script: a disclosure).
        let ip = req.client.map(|ip| {
            format!(" &middot; Your IP: <details><summary>Click to reveal</summary>{}</details>", ip.to_canonical())
        });
        html_document(
            &title,
            &format!(
                "<h1>{}</h1>\n<p class=\"code\">{code_line}</p>\n<div class=\"path\"><span>You<br>Browser<br>working</span><span{edge_class}>{city}<br>Edge<br>{edge_state}</span><span{host_class}>{host}<br>Host<br>{host_state}</span></div>\n<h2>What happened?</h2>\n<p>{}</p>\n<h2>What can I do?</h2>\n<p>{todo}</p>\n<footer>Ray ID: <code>{ray}</code> &middot; {time}{ip} &middot; {label}</footer>\n",
                entry.title,
                entry.happened,
                city = location.city().unwrap_or(location.as_str()),
                label = location.label(),
                ip = ip.as_deref().unwrap_or(""),
                edge_state = match (blocked, entry.hop) {
                    (true, _) => "blocked",
                    (false, Hop::Edge) => "error",
                    (false, Hop::Host) => "working",
                },
                host_state = if entry.hop == Hop::Host { "error" } else { "unknown" },
            ),
        )
    };
    let reason = status.canonical_reason().is_none().then_some(entry.title.into());
    Rendered { reason, headers, body }
}
