//! Built-in error pages: what a browser or an API client really got from an edge during an outage. An
//! abort with a page answers with the preset's status line, headers and body (HTML, or JSON when the
//! client's `accept` asks for it), rendered per request because each carries its own request id and time.
//!
//! One file per preset; this file holds what they share. The markup is our own; the presets imitate only
//! the shapes clients key on (status, header names, id formats), as described in docs/faults.md.

mod cdn;
mod custom;
mod edge;
mod generic;

use std::{borrow::Cow, fmt::Write as _, net::IpAddr, sync::Arc, time::SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

pub use custom::{PageTemplate, PageTemplates, Template, Variant, PLACEHOLDERS};

/// The built-in pages, and the config's page templates.
#[derive(Debug, Clone)]
pub enum Preset {
    /// A plain page naming the status, with an `x-request-id`.
    Generic,
    /// An edge provider's page, modelled on the provider of the 18 November 2025 outage.
    Edge,
    /// A Varnish-based CDN's synthetic 503, modelled on the CDN outage of 8 June 2021.
    Cdn,
    /// A page template of the config (`pages:`).
    Custom(Arc<PageTemplate>),
}

impl Preset {
    pub const NAMES: [&'static str; 3] = ["generic", "edge", "cdn"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "generic" => Some(Preset::Generic),
            "edge" => Some(Preset::Edge),
            "cdn" => Some(Preset::Cdn),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Preset::Generic => "generic",
            Preset::Edge => "edge",
            Preset::Cdn => "cdn",
            Preset::Custom(t) => &t.name,
        }
    }

    /// Whether the preset has a page for this status.
    pub fn supports(&self, status: StatusCode) -> bool {
        match self {
            Preset::Generic => generic::supports(status),
            Preset::Edge => edge::supports(status),
            Preset::Cdn => cdn::supports(status),
            Preset::Custom(t) => t.supports(status),
        }
    }

    /// The statuses the preset has pages for, for error messages.
    pub fn statuses(&self) -> Cow<'static, str> {
        match self {
            Preset::Generic => generic::STATUSES.into(),
            Preset::Edge => edge::STATUSES.into(),
            Preset::Cdn => cdn::STATUSES.into(),
            Preset::Custom(t) => t.statuses().into(),
        }
    }
}

/// A three-letter location code, upper case (the airport-code style edges use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location([u8; 3]);

impl Location {
    pub const DEFAULT: Location = Location(*b"FRA");

    /// Three ASCII letters, any case.
    pub fn parse(s: &str) -> Option<Self> {
        let b: [u8; 3] = s.as_bytes().try_into().ok()?;
        b.iter().all(u8::is_ascii_alphabetic).then(|| Location(b.map(|c| c.to_ascii_uppercase())))
    }

    pub fn as_str(&self) -> &str {
        // Built only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("FRA")
    }

    /// The city of an airport code edges commonly name their locations by; `None` for codes not listed.
    pub fn city(&self) -> Option<&'static str> {
        CITIES.iter().find(|(code, _)| code.as_bytes() == self.0).map(|&(_, city)| city)
    }

    /// `Frankfurt (FRA)`, or the bare code when its city is not listed.
    fn label(&self) -> String {
        match self.city() {
            Some(city) => format!("{city} ({})", self.as_str()),
            None => self.as_str().to_owned(),
        }
    }
}

/// Airport codes of the cities large edge networks have locations in, and the cities' names.
const CITIES: [(&str, &str); 48] = [
    ("AMS", "Amsterdam"),
    ("ARN", "Stockholm"),
    ("ATL", "Atlanta"),
    ("BCN", "Barcelona"),
    ("BOG", "Bogotá"),
    ("BOM", "Mumbai"),
    ("BOS", "Boston"),
    ("BRU", "Brussels"),
    ("CDG", "Paris"),
    ("CPH", "Copenhagen"),
    ("DEL", "New Delhi"),
    ("DEN", "Denver"),
    ("DFW", "Dallas"),
    ("DUB", "Dublin"),
    ("DUS", "Düsseldorf"),
    ("DXB", "Dubai"),
    ("EWR", "Newark"),
    ("EZE", "Buenos Aires"),
    ("FRA", "Frankfurt"),
    ("GRU", "São Paulo"),
    ("HAM", "Hamburg"),
    ("HEL", "Helsinki"),
    ("HKG", "Hong Kong"),
    ("IAD", "Ashburn"),
    ("ICN", "Seoul"),
    ("JNB", "Johannesburg"),
    ("KIX", "Osaka"),
    ("LAX", "Los Angeles"),
    ("LCY", "London"),
    ("LHR", "London"),
    ("LIS", "Lisbon"),
    ("MAD", "Madrid"),
    ("MAN", "Manchester"),
    ("MEL", "Melbourne"),
    ("MIA", "Miami"),
    ("MRS", "Marseille"),
    ("MUC", "Munich"),
    ("MXP", "Milan"),
    ("NRT", "Tokyo"),
    ("ORD", "Chicago"),
    ("OSL", "Oslo"),
    ("PRG", "Prague"),
    ("SEA", "Seattle"),
    ("SIN", "Singapore"),
    ("SJC", "San Jose"),
    ("SYD", "Sydney"),
    ("VIE", "Vienna"),
    ("WAW", "Warsaw"),
];

/// A validated page choice: a preset that has a page for the abort's status, and a location.
#[derive(Debug, Clone)]
pub struct Page {
    pub preset: Preset,
    pub location: Location,
}

/// What a page shows of the request it answers.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    /// The requested host (port stripped), if the request named one.
    pub host: Option<&'a str>,
    /// Whether the client asked for JSON rather than HTML.
    pub json: bool,
    /// When the page is served.
    pub now: SystemTime,
    /// Random bits for the request id.
    pub id: u64,
    /// The client's address as the proxy saw it, for pages that offer to show it.
    pub client: Option<IpAddr>,
}

/// A page ready to send.
#[derive(Debug)]
pub struct Rendered {
    /// The reason phrase of the HTTP/1 status line, when it differs from the canonical one (or the status
    /// has none, like the 52x codes).
    pub reason: Option<Cow<'static, str>>,
    /// Every header of the response, `content-type` included.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Page {
    pub fn render(&self, status: StatusCode, req: &PageRequest<'_>) -> Rendered {
        match &self.preset {
            Preset::Generic => generic::render(status, req),
            Preset::Edge => edge::render(status, self.location, req),
            Preset::Cdn => cdn::render(status, self.location, req),
            Preset::Custom(t) => t.render(status, self.location, req),
        }
    }
}

/// Whether the `accept` header prefers JSON: the first of an HTML or a JSON media type it names decides;
/// naming neither means HTML.
pub fn wants_json(headers: &HeaderMap) -> bool {
    for value in headers.get_all(http::header::ACCEPT) {
        let Ok(v) = value.to_str() else { continue };
        for item in v.split(',') {
            let media = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if media == "text/html" || media == "application/xhtml+xml" {
                return false;
            }
            if media == "application/json" || media.ends_with("+json") {
                return true;
            }
        }
    }
    false
}

// === helpers shared by the presets ===

static HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
static JSON: HeaderValue = HeaderValue::from_static("application/json");
static NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");

/// The headers every page sends: content type and no caching.
fn base_headers(json: bool) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    h.insert(http::header::CONTENT_TYPE, if json { JSON.clone() } else { HTML.clone() });
    h.insert(http::header::CACHE_CONTROL, NO_STORE.clone());
    h
}

/// Inserts a header whose value we built; values that are not valid header text (none should be) are
/// left out rather than failing the response.
fn put(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Day 1–31 and month 1–12 by construction.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `{:016x}` without the formatting machinery's allocation per call site.
fn hex16(id: u64) -> String {
    let mut s = String::with_capacity(16);
    let _ = write!(s, "{id:016x}");
    s
}

/// The shared page skeleton: our own design, one stylesheet, one card.
fn html_document(title: &str, card: &str) -> Bytes {
    Bytes::from(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<style>\nbody{{margin:0;font:16px/1.5 system-ui,sans-serif;background:#f3f4f6;color:#1f2937}}\nmain{{max-width:44rem;margin:4rem auto;padding:2rem;background:#fff;border-top:6px solid #b91c1c}}\nh1{{margin:0 0 .25rem;font-size:1.75rem}}\n.code{{color:#6b7280;margin:0 0 1.5rem}}\n.path{{display:flex;gap:.5rem;margin:1.5rem 0}}\n.path span{{flex:1;padding:.5rem;text-align:center;border:1px solid #d1d5db}}\n.path .down{{border-color:#b91c1c;color:#b91c1c}}\nfooter{{margin-top:2rem;font-size:.85rem;color:#6b7280}}\ndetails,summary{{display:inline}}\nsummary{{cursor:pointer;text-decoration:underline}}\n</style>\n</head>\n<body>\n<main>\n{card}</main>\n</body>\n</html>\n"
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_464_800 + 8 * 60 + 3);
        assert_eq!(utc_timestamp(t), "2025-11-18 11:28:03 UTC");
        assert_eq!(utc_timestamp(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        // A leap day.
        assert_eq!(utc_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn accept_decides_json_or_html() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(http::header::ACCEPT, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
            m
        };
        assert!(wants_json(&h("application/json")));
        assert!(wants_json(&h("application/problem+json; q=0.9, */*")));
        assert!(!wants_json(&h("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")));
        assert!(!wants_json(&h("*/*")));
        assert!(!wants_json(&HeaderMap::new()));
        assert!(wants_json(&h("Application/JSON")));
    }

    #[test]
    fn locations_are_three_letters() {
        assert_eq!(Location::parse("lhr").map(|l| l.as_str().to_owned()), Some("LHR".into()));
        assert!(Location::parse("LH").is_none());
        assert!(Location::parse("L1R").is_none());
        assert!(Location::parse("LHRX").is_none());
        assert!(Location::parse("ÄBC").is_none());
        let code = |s| Location::parse(s).expect("three letters");
        assert_eq!(code("fra").label(), "Frankfurt (FRA)");
        assert_eq!(code("GRU").city(), Some("São Paulo"));
        assert_eq!(code("XQZ").label(), "XQZ");
        assert!(CITIES.windows(2).all(|w| w.first().map(|a| a.0) < w.get(1).map(|b| b.0)), "sorted, once each");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape_html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
