//! `pages:` of the config: named page templates, checked into [`PageTemplates`] with every problem's place
//! (`pages.maintenance.statuses[1].html`).

use std::{collections::BTreeMap, sync::Arc};

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::fault::{
    page::{PageTemplate, PageTemplates, Preset, Template, Variant},
    rewrite_refuses,
};

/// Longest page body template.
const MAX_TEMPLATE: usize = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePage {
    title: Option<String>,
    html: Option<String>,
    json: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    request_id_header: Option<String>,
    #[serde(default)]
    statuses: Vec<FileVariant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileVariant {
    status: u16,
    title: Option<String>,
    html: Option<String>,
    json: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Checks every template; the problems go to `problems`, the valid templates are returned.
pub fn templates(file: &BTreeMap<String, FilePage>, problems: &mut Vec<String>) -> PageTemplates {
    let mut out = BTreeMap::new();
    for (name, page) in file {
        let at = format!("pages.{name}");
        let before = problems.len();
        let ok_name = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok_name {
            problems.push(format!("{at}: {name:?} is not a valid page name (1–63 of letters, digits, '-', '_', '.')"));
        }
        if Preset::parse(name).is_some() {
            problems.push(format!("{at}: {name:?} is a built-in page; give the template another name"));
        }
        let base = variant(page.title.as_deref(), &page.html, &page.json, &page.headers, &at, problems);
        let request_id_header =
            page.request_id_header.as_ref().and_then(|h| match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) if !rewrite_refuses(&n) => Some(n),
                _ => {
                    problems.push(format!("{at}.request_id_header: {h:?} is not a header name a page may set"));
                    None
                }
            });
        let has_base_body = base.html.is_some() || base.json.is_some();
        if page.html.is_none() && page.json.is_none() && page.statuses.is_empty() {
            problems.push(format!("{at}: give html or json (or both), or per-status pages under statuses"));
        }
        let mut statuses = BTreeMap::new();
        for (i, v) in page.statuses.iter().enumerate() {
            let at = format!("{at}.statuses[{i}]");
            if !(200..=599).contains(&v.status) {
                problems.push(format!("{at}.status: {} is not a status a page can answer with (200–599)", v.status));
            }
            if statuses.contains_key(&v.status) {
                problems.push(format!("{at}.status: {} is listed twice", v.status));
            }
            let var = variant(v.title.as_deref(), &v.html, &v.json, &v.headers, &at, problems);
            if var.html.is_none() && var.json.is_none() && !has_base_body && v.html.is_none() && v.json.is_none() {
                problems.push(format!("{at}: no html or json, here or at the top of the template"));
            }
            statuses.insert(v.status, var);
        }
        if problems.len() == before {
            let t = PageTemplate { name: name.clone(), base, statuses, request_id_header };
            out.insert(name.clone(), Arc::new(t));
        }
    }
    PageTemplates::new(out)
}

fn variant(
    title: Option<&str>,
    html: &Option<String>,
    json: &Option<String>,
    headers: &BTreeMap<String, String>,
    at: &str,
    problems: &mut Vec<String>,
) -> Variant {
    let body = |text: &Option<String>, field: &str, problems: &mut Vec<String>| {
        let text = text.as_ref()?;
        if text.len() > MAX_TEMPLATE {
            problems.push(format!("{at}.{field}: at most {MAX_TEMPLATE} bytes"));
            return None;
        }
        Template::parse(text).map_err(|e| problems.push(format!("{at}.{field}: {e}"))).ok()
    };
    let html = body(html, "html", problems);
    let json = body(json, "json", problems);
    if let Some(t) = title {
        if t.is_empty() || t.chars().any(char::is_control) {
            problems.push(format!("{at}.title: {t:?} must be one line of text"));
        }
    }
    let mut out = Vec::new();
    for (name, value) in headers {
        let here = format!("{at}.headers[{name:?}]");
        let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(format!("{here}: not a valid header name"));
            continue;
        };
        if rewrite_refuses(&n) {
            problems.push(format!("{here}: frames the message or belongs to one hop; the proxy sets it"));
            continue;
        }
        // The literal text must be a valid header value; placeholders render to valid text.
        if HeaderValue::from_str(&value.replace("{{", "").replace("}}", "")).is_err() {
            problems.push(format!("{here}: not a valid header value (printable ASCII only)"));
            continue;
        }
        match Template::parse(value) {
            Ok(t) => out.push((n, t)),
            Err(e) => problems.push(format!("{here}: {e}")),
        }
    }
    Variant { title: title.map(str::to_owned), html, json, headers: out }
}
