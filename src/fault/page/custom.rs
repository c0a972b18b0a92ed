//! Page templates from the config (`pages:`): a team's own error pages, rendered per request like the
//! built-in presets, with placeholders for what changes per request.
//!
//! A template is parsed once, when the config is loaded: its text becomes literal pieces and
//! placeholders, so rendering only concatenates and escapes (HTML-escaped in HTML, JSON-escaped in JSON,
//! as is in header values).

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{escape_html, generic, hex16, utc_timestamp, Location, PageRequest, Rendered};

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    /// The status code, e.g. `503`.
    Code,
    /// The title: the template's, or the status's name.
    Title,
    /// 16 lowercase hex digits, new for every request.
    RequestId,
    /// `YYYY-MM-DD HH:MM:SS UTC`.
    Timestamp,
    /// The abort's `page_location`, e.g. `FRA`.
    Location,
    /// The requested host, or empty.
    Host,
}

pub const PLACEHOLDERS: &str = "{{code}}, {{title}}, {{request_id}}, {{timestamp}}, {{location}}, {{host}}";

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name.trim() {
            "code" => Var::Code,
            "title" => Var::Title,
            "request_id" => Var::RequestId,
            "timestamp" => Var::Timestamp,
            "location" => Var::Location,
            "host" => Var::Host,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A text with placeholders, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses `{{name}}` placeholders; an unknown name or an unclosed `{{` is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err("a placeholder opened with {{ is not closed with }}".into());
            };
            let name = &after[..close];
            let var = Var::parse(name)
                .ok_or_else(|| format!("unknown placeholder {{{{{name}}}}}; placeholders: {PLACEHOLDERS}"))?;
            pieces.push(Piece::Var(var));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    fn render(&self, v: &Values<'_>, escape: Escape) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(var) => {
                    let value = v.get(*var);
                    match escape {
                        Escape::Html => out.push_str(&escape_html(&value)),
                        Escape::Json => {
                            let quoted = serde_json::Value::String(value).to_string();
                            out.push_str(&quoted[1..quoted.len() - 1]);
                        }
                        Escape::None => out.push_str(&value),
                    }
                }
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
enum Escape {
    Html,
    Json,
    None,
}

/// The values of one rendering.
struct Values<'a> {
    code: u16,
    title: &'a str,
    request_id: String,
    timestamp: String,
    location: Location,
    host: &'a str,
}

impl Values<'_> {
    fn get(&self, v: Var) -> String {
        match v {
            Var::Code => self.code.to_string(),
            Var::Title => self.title.to_owned(),
            Var::RequestId => self.request_id.clone(),
            Var::Timestamp => self.timestamp.clone(),
            Var::Location => self.location.as_str().to_owned(),
            Var::Host => self.host.to_owned(),
        }
    }
}

/// A page's variant: a title, bodies and headers; what a per-status variant leaves out comes from the
/// template's own.
#[derive(Debug, Clone, Default)]
pub struct Variant {
    pub title: Option<String>,
    pub html: Option<Template>,
    pub json: Option<Template>,
    /// Header values may hold placeholders too.
    pub headers: Vec<(HeaderName, Template)>,
}

/// A page template of the config.
#[derive(Debug, Clone, Default)]
pub struct PageTemplate {
    pub name: String,
    /// Used for any status the template has no variant for, when it has a body; else only `statuses` are
    /// served.
    pub base: Variant,
    pub statuses: BTreeMap<u16, Variant>,
    /// The header that carries the request id, if any.
    pub request_id_header: Option<HeaderName>,
}

impl PageTemplate {
    fn has_body(v: &Variant) -> bool {
        v.html.is_some() || v.json.is_some()
    }

    /// Whether the template has a page for this status.
    pub fn supports(&self, status: StatusCode) -> bool {
        self.statuses.contains_key(&status.as_u16()) || Self::has_body(&self.base)
    }

    /// The statuses served, for error messages.
    pub fn statuses(&self) -> String {
        if Self::has_body(&self.base) {
            "any status".into()
        } else {
            self.statuses.keys().map(u16::to_string).collect::<Vec<_>>().join(", ")
        }
    }

    pub fn render(&self, status: StatusCode, location: Location, req: &PageRequest<'_>) -> Rendered {
        let variant = self.statuses.get(&status.as_u16());
        let pick = |f: fn(&Variant) -> Option<&Template>| variant.and_then(f).or_else(|| f(&self.base));
        let title = variant
            .and_then(|v| v.title.as_deref())
            .or(self.base.title.as_deref())
            .unwrap_or_else(|| generic::title(status));
        let values = Values {
            code: status.as_u16(),
            title,
            request_id: hex16(req.id),
            timestamp: utc_timestamp(req.now),
            location,
            host: req.host.unwrap_or(""),
        };
        let html = pick(|v| v.html.as_ref());
        let json = pick(|v| v.json.as_ref());
        // JSON to clients that ask for it, when there is a JSON variant; else whichever variant exists.
        let (body, is_json) = match (html, json) {
            (_, Some(j)) if req.json || html.is_none() => (j.render(&values, Escape::Json), true),
            (Some(h), _) => (h.render(&values, Escape::Html), false),
            (None, _) => (String::new(), false),
        };
        let mut headers = super::base_headers(is_json);
        for (name, value) in &self.base.headers {
            put(&mut headers, name, value.render(&values, Escape::None));
        }
        for (name, value) in variant.map(|v| v.headers.as_slice()).unwrap_or_default() {
            put(&mut headers, name, value.render(&values, Escape::None));
        }
        if let Some(h) = &self.request_id_header {
            put(&mut headers, h, values.request_id.clone());
        }
        let reason = status.canonical_reason().is_none().then(|| std::borrow::Cow::Owned(title.to_owned()));
        Rendered { reason, headers, body: Bytes::from(body) }
    }
}

fn put(headers: &mut HeaderMap, name: &HeaderName, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(name.clone(), v);
    }
}

/// The config's page templates by name; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PageTemplates(Arc<BTreeMap<String, Arc<PageTemplate>>>);

impl PageTemplates {
    pub fn new(templates: BTreeMap<String, Arc<PageTemplate>>) -> Self {
        PageTemplates(Arc::new(templates))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<PageTemplate>> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn req(json: bool) -> PageRequest<'static> {
        PageRequest {
            host: Some("shop.example.com"),
            json,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_464_800),
            id: 0xabc,
            client: None,
        }
    }

    #[test]
    fn placeholders_are_parsed_and_checked() {
        assert!(Template::parse("{{ code }} {{title}}").is_ok());
        assert!(Template::parse("a {{nope}}").expect_err("unknown").contains("{{nope}}"));
        assert!(Template::parse("a {{code").is_err());
        assert_eq!(Template::parse("body{margin:0}").map(|t| t.0.len()), Ok(1), "single braces are text");
    }

    #[test]
    fn renders_escaped_per_variant() {
        let t = PageTemplate {
            name: "t".into(),
            base: Variant {
                title: None,
                html: Template::parse("<p>{{code}} {{title}} {{host}} {{request_id}} {{timestamp}} {{location}}</p>")
                    .ok(),
                json: Template::parse("{\"t\":\"{{title}}\",\"c\":{{code}}}").ok(),
                headers: vec![(
                    HeaderName::from_static("x-served-by"),
                    Template::parse("node-{{location}}").expect("ok"),
                )],
            },
            statuses: BTreeMap::from([(
                522,
                Variant { title: Some("Origin \"slow\" <down>".into()), ..Variant::default() },
            )]),
            request_id_header: Some(HeaderName::from_static("x-rid")),
        };
        let loc = Location::parse("LHR").expect("loc");
        let r = t.render(StatusCode::from_u16(522).expect("status"), loc, &req(false));
        assert_eq!(
            std::str::from_utf8(&r.body).expect("utf8"),
            "<p>522 Origin &quot;slow&quot; &lt;down&gt; shop.example.com 0000000000000abc 2025-11-18 11:20:00 UTC LHR</p>"
        );
        assert_eq!(r.headers["x-served-by"], "node-LHR");
        assert_eq!(r.headers["x-rid"], "0000000000000abc");
        assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.reason.as_deref(), Some("Origin \"slow\" <down>"));
        let j = t.render(StatusCode::SERVICE_UNAVAILABLE, loc, &req(true));
        assert_eq!(&j.body[..], br#"{"t":"Service Unavailable","c":503}"#);
        assert_eq!(j.headers["content-type"], "application/json");
        assert!(j.reason.is_none());
        let v: serde_json::Value =
            serde_json::from_slice(&t.render(StatusCode::from_u16(522).expect("s"), loc, &req(true)).body)
                .expect("json");
        assert_eq!(v["t"], "Origin \"slow\" <down>");
    }
}
