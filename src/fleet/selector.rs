//! Sidecar selectors: Kubernetes label-selector semantics over a sidecar's labels, and a stable share.
//!
//! `match_labels` and `match_expressions` all hold (AND); an empty selector selects every sidecar. The
//! share (`percentage`) is decided per sidecar by a hash of its id and the experiment's seed, so each
//! sidecar is in or out whatever else is in the fleet, and one joining later is judged the same way.

use std::collections::BTreeMap;

use crate::{fault::check::Collector, pb::v1};

/// Labels of one sidecar.
pub type Labels = BTreeMap<String, String>;

/// One `match_expressions` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn holds(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            // As in Kubernetes: a sidecar without the label is not in the set, so NotIn holds for it.
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A checked `SidecarSelector`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub labels: Labels,
    pub requirements: Vec<Requirement>,
    /// Share of the matching sidecars, in (0, 100]; `None`: all.
    pub percentage: Option<f64>,
    /// At most this many, chosen at start; `None`: no cap.
    pub max_sidecars: Option<u32>,
}

impl Selector {
    /// Checks a selector; problems go to `c` under `at` (`sidecars`).
    pub fn convert(s: &v1::SidecarSelector, at: &str, c: &mut Collector) -> Selector {
        let mut labels = Labels::new();
        for (k, v) in &s.match_labels {
            let path = format!("{at}.match_labels[{k:?}]");
            check_key(k, &path, c);
            check_value(v, &path, c);
            labels.insert(k.clone(), v.clone());
        }
        let mut requirements = Vec::new();
        if c.bounded(&s.match_expressions, &format!("{at}.match_expressions")) {
            for (i, e) in s.match_expressions.iter().enumerate() {
                if let Some(r) = requirement(e, &format!("{at}.match_expressions[{i}]"), c) {
                    requirements.push(r);
                }
            }
        }
        let percentage = s.percentage.filter(|p| {
            let ok = *p > 0.0 && *p <= 100.0;
            if !ok {
                c.add(format!("{at}.percentage"), format!("must be more than 0 and at most 100, got {p}"));
            }
            ok
        });
        let max_sidecars = (s.max_sidecars > 0).then_some(s.max_sidecars);
        Selector { labels, requirements, percentage, max_sidecars }
    }

    /// Whether a sidecar with these labels matches (the share aside).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) && self.requirements.iter().all(|r| r.holds(labels))
    }

    /// The sidecar's point in [0, 100) for an experiment's seed: in the share when below `percentage`.
    pub fn point(sidecar_id: &str, seed: u64) -> f64 {
        crate::fault::sticky_point(crate::fault::fnv1a(sidecar_id.as_bytes()), seed)
    }

    /// Whether a sidecar is selected: it matches and is in the share.
    pub fn selects(&self, sidecar_id: &str, labels: &Labels, seed: u64) -> bool {
        self.matches(labels) && self.percentage.is_none_or(|p| Self::point(sidecar_id, seed) < p)
    }

    /// The sidecars selected out of `fleet` (id, labels), capped by `max_sidecars` (lowest points first).
    pub fn choose<'a>(&self, fleet: impl IntoIterator<Item = (&'a str, &'a Labels)>, seed: u64) -> Vec<&'a str> {
        let mut chosen: Vec<(f64, &str)> = fleet
            .into_iter()
            .filter(|(id, labels)| self.selects(id, labels, seed))
            .map(|(id, _)| (Self::point(id, seed), id))
            .collect();
        chosen.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        if let Some(n) = self.max_sidecars {
            chosen.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        chosen.into_iter().map(|(_, id)| id).collect()
    }
}

fn requirement(e: &v1::LabelSelectorRequirement, path: &str, c: &mut Collector) -> Option<Requirement> {
    check_key(&e.key, &format!("{path}.key"), c);
    for (i, v) in e.values.iter().enumerate() {
        check_value(v, &format!("{path}.values[{i}]"), c);
    }
    let key = e.key.clone();
    let values = e.values.clone();
    let needs_values = |c: &mut Collector| {
        if values.is_empty() {
            c.add(format!("{path}.values"), format!("{} needs at least one value", e.operator));
        }
    };
    let no_values = |c: &mut Collector| {
        if !values.is_empty() {
            c.add(format!("{path}.values"), format!("{} takes no values", e.operator));
        }
    };
    match e.operator.as_str() {
        "In" => {
            needs_values(c);
            Some(Requirement::In(key, values))
        }
        "NotIn" => {
            needs_values(c);
            Some(Requirement::NotIn(key, values))
        }
        "Exists" => {
            no_values(c);
            Some(Requirement::Exists(key))
        }
        "DoesNotExist" => {
            no_values(c);
            Some(Requirement::DoesNotExist(key))
        }
        other => {
            c.add(
                format!("{path}.operator"),
                format!("{:?} is not an operator: In, NotIn, Exists or DoesNotExist", crate::text::printable(other)),
            );
            None
        }
    }
}

/// A label key as Kubernetes takes it: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters.
fn check_key(key: &str, path: &str, c: &mut Collector) {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            c.add(path, format!("key prefix {:?} is not a DNS subdomain", crate::text::printable(p)));
        }
    }
    if name.is_empty() {
        c.add(path, "a label key needs a name (1 to 63 characters)");
    } else if !is_label_token(name) {
        c.add(
            path,
            format!(
                "{:?} is not a label name: at most 63 characters, letters, digits, '-', '_' and '.', starting and \
                 ending with a letter or digit",
                crate::text::printable(name)
            ),
        );
    }
}

/// A label value: empty, or a label token.
fn check_value(value: &str, path: &str, c: &mut Collector) {
    if !value.is_empty() && !is_label_token(value) {
        c.add(
            path,
            format!(
                "{:?} is not a label value: at most 63 characters, letters, digits, '-', '_' and '.', starting and \
                 ending with a letter or digit",
                crate::text::printable(value)
            ),
        );
    }
}

fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    b.len() <= 63
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Parses a selector as `kubectl -l` writes it: `app=web,zone in (eu-1,eu-2),!canary,tier!=db`, plus
/// `percent=30` and `max=5` for the share and the cap. Errors name the term.
pub fn parse(text: &str) -> Result<v1::SidecarSelector, String> {
    let mut s = v1::SidecarSelector::default();
    for term in split_terms(text) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("--selector: {term:?}: {why}");
        if let Some((key, rest)) = split_set(term, " notin ") {
            s.match_expressions.push(expression(key, "NotIn", set_values(rest).ok_or_else(|| bad("expected (a,b)"))?));
        } else if let Some((key, rest)) = split_set(term, " in ") {
            s.match_expressions.push(expression(key, "In", set_values(rest).ok_or_else(|| bad("expected (a,b)"))?));
        } else if let Some((key, value)) = term.split_once("!=") {
            s.match_expressions.push(expression(key, "NotIn", vec![value.trim().to_owned()]));
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            match key.trim() {
                "percent" => {
                    s.percentage = Some(value.trim().parse().map_err(|_| bad("percent= takes a number"))?);
                }
                "max" => s.max_sidecars = value.trim().parse().map_err(|_| bad("max= takes a whole number"))?,
                key => {
                    s.match_labels.insert(key.to_owned(), value.trim().to_owned());
                }
            }
        } else if let Some(key) = term.strip_prefix('!') {
            s.match_expressions.push(expression(key, "DoesNotExist", Vec::new()));
        } else {
            s.match_expressions.push(expression(term, "Exists", Vec::new()));
        }
    }
    let mut c = Collector::new(None, std::time::Duration::MAX);
    Selector::convert(&s, "--selector", &mut c);
    c.finish(|| s)
        .map_err(|v| v.0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))
}

fn expression(key: &str, operator: &str, values: Vec<String>) -> v1::LabelSelectorRequirement {
    v1::LabelSelectorRequirement { key: key.trim().to_owned(), operator: operator.to_owned(), values }
}

/// Splits on the commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(text.get(start..).unwrap_or_default());
    out
}

fn split_set<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    term.split_once(op).filter(|(k, _)| !k.trim().is_empty())
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect())
}

/// Reads the labels of `--label k=v` flags.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (k, v) = text.split_once('=').ok_or_else(|| format!("--label {text:?}: expected KEY=VALUE"))?;
    let mut c = Collector::new(None, std::time::Duration::MAX);
    check_key(k, &format!("--label {k:?}"), &mut c);
    check_value(v, &format!("--label {k:?}"), &mut c);
    c.finish(|| (k.to_owned(), v.to_owned()))
        .map_err(|v| v.0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))
}

/// Reads a Kubernetes downward-API `labels` file: one `key="value"` per line, the value quoted and escaped
/// as Go's `%q` writes it. Errors name the line.
pub fn parse_labels_file(text: &str, origin: &str) -> Result<Labels, String> {
    let mut labels = Labels::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{origin}:{}", n + 1);
        let (key, quoted) = line.split_once('=').ok_or_else(|| format!("{}: expected key=\"value\"", at()))?;
        let value = unquote(quoted).ok_or_else(|| format!("{}: the value is not a quoted string", at()))?;
        let (k, v) = parse_label(&format!("{key}={value}")).map_err(|e| format!("{}: {e}", at()))?;
        labels.insert(k, v);
    }
    Ok(labels)
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                _ => return None,
            }
        } else {
            out.push(ch);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn selector(text: &str) -> Selector {
        let mut c = Collector::new(None, std::time::Duration::MAX);
        let s = Selector::convert(&parse(text).expect("parses"), "sidecars", &mut c);
        assert!(c.finish(|| ()).is_ok());
        s
    }

    #[test]
    fn kubernetes_semantics() {
        let web_eu = labels(&[("app", "web"), ("zone", "eu-1")]);
        let web_us = labels(&[("app", "web"), ("zone", "us-1"), ("canary", "true")]);
        let db = labels(&[("app", "db")]);
        assert!(selector("app=web").matches(&web_eu));
        assert!(!selector("app=web").matches(&db));
        assert!(selector("zone in (eu-1, eu-2)").matches(&web_eu));
        assert!(!selector("zone in (eu-1,eu-2)").matches(&db));
        assert!(selector("zone notin (us-1)").matches(&db), "a missing label is not in the set");
        assert!(selector("!canary").matches(&web_eu));
        assert!(!selector("canary").matches(&web_eu));
        assert!(selector("app=web,canary").matches(&web_us));
        assert!(!selector("app!=web").matches(&web_us));
        assert!(selector("").matches(&db), "an empty selector selects everything");
    }

    #[test]
    fn the_share_is_stable_and_close_to_the_percentage() {
        let s = selector("percent=30");
        let fleet: Vec<(String, Labels)> = (0..1000).map(|i| (format!("web-{i}"), Labels::new())).collect();
        let chosen = s.choose(fleet.iter().map(|(id, l)| (id.as_str(), l)), 7);
        assert!((250..350).contains(&chosen.len()), "{}", chosen.len());
        let again = s.choose(fleet.iter().rev().map(|(id, l)| (id.as_str(), l)), 7);
        assert_eq!(chosen, again, "the order of the fleet does not matter");
        let capped = selector("percent=30,max=5").choose(fleet.iter().map(|(id, l)| (id.as_str(), l)), 7);
        assert_eq!(capped, chosen[..5].to_vec());
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = v1::SidecarSelector {
            match_labels: [("bad key!".to_string(), "ok".to_string())].into(),
            match_expressions: vec![
                v1::LabelSelectorRequirement { key: "zone".into(), operator: "Near".into(), values: vec![] },
                v1::LabelSelectorRequirement { key: "zone".into(), operator: "In".into(), values: vec![] },
                v1::LabelSelectorRequirement { key: "a".into(), operator: "Exists".into(), values: vec!["x".into()] },
            ],
            percentage: Some(0.0),
            max_sidecars: 0,
        };
        let mut c = Collector::new(None, std::time::Duration::MAX);
        Selector::convert(&bad, "sidecars", &mut c);
        let fields: Vec<String> = c.finish(|| ()).expect_err("invalid").0.into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "sidecars.match_labels[\"bad key!\"]",
                "sidecars.match_expressions[0].operator",
                "sidecars.match_expressions[1].values",
                "sidecars.match_expressions[2].values",
                "sidecars.percentage"
            ]
        );
    }

    #[test]
    fn downward_api_labels_file() {
        let text = "app=\"web\"\npod-template-hash=\"5d4f8\"\nedgefault.io/zone=\"eu-1\"\n";
        let l = parse_labels_file(text, "labels").expect("reads");
        assert_eq!(l.get("edgefault.io/zone").map(String::as_str), Some("eu-1"));
        assert_eq!(l.len(), 3);
        assert!(parse_labels_file("app=web\n", "labels").expect_err("unquoted").starts_with("labels:1:"));
    }
}
