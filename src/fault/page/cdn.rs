//! The `cdn` preset, modelled on the CDN outage of 8 June 2021 (docs/faults.md lists the source): that
//! CDN's own errors are a 503 whose reason names the failure ("backend read error"), served by a Varnish
//! cache node named in `x-served-by` and in the body, with `x-cache` and `via` headers, and a bare HTML
//! page of the shape Varnish writes (no styling).

use http::StatusCode;

use super::{base_headers, put, utc_timestamp, Location, PageRequest, Rendered};

pub const STATUSES: &str = "503";

const REASON: &str = "backend read error";

pub fn supports(status: StatusCode) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE
}

pub fn render(status: StatusCode, location: Location, req: &PageRequest<'_>) -> Rendered {
    let code = status.as_u16();
    let loc = location.as_str();
    // A cache node name like `cache-fra19127-FRA`: location, then a node number taken from the id.
    let node = format!("cache-{}{}-{loc}", loc.to_ascii_lowercase(), 19_000 + (req.id >> 48) % 1000);
    // Varnish transaction ids are decimal.
    let xid = req.id % 1_000_000_000;
    let time = utc_timestamp(req.now);

    let mut headers = base_headers(req.json);
    put(&mut headers, "server", "Varnish".into());
    put(&mut headers, "via", "1.1 varnish".into());
    put(&mut headers, "x-served-by", node.clone());
    put(&mut headers, "x-cache", "MISS".into());
    put(&mut headers, "x-cache-hits", "0".into());
    put(&mut headers, "x-varnish", xid.to_string());

    let body = if req.json {
        bytes::Bytes::from(
            serde_json::json!({
                "status": code,
                "error": REASON,
                "served_by": node,
                "xid": xid,
                "timestamp": time,
            })
            .to_string(),
        )
    } else {
        // That CDN's own errors are Varnish's bare synthetic page, not a styled one: a heading, the reason,
        // the "Guru Mediation" details (node, Unix time, transaction id) and the server's name.
        let unix = req.now.duration_since(std::time::SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        bytes::Bytes::from(format!(
            "<!DOCTYPE html>\n<html>\n<head>\n<title>{code} {REASON}</title>\n</head>\n<body>\n<h1>Error {code} {REASON}</h1>\n<p>{REASON}</p>\n<h3>Guru Mediation:</h3>\n<p>Details: {node} {unix} {xid}</p>\n<hr>\n<p>Varnish cache server</p>\n</body>\n</html>\n"
        ))
    };
    Rendered { reason: Some(REASON.into()), headers, body }
}
