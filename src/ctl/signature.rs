//! What a scenario's experiments look like to clients, phase by phase: which requests, what share, and
//! what they get (status, page and its headers, waits, resets, DNS answers), in incident time. The lines
//! `ctl scenario show` prints, and docs/scenarios.md carries, so a team can write its alert expectations
//! before the game day.

use std::{fmt::Write, time::SystemTime};

use http::StatusCode;

use crate::{
    fault::page::{Location, Page, PageRequest, Preset},
    pb::v1,
};

/// One line per phase (one for an experiment without phases), in incident time.
pub fn signature(e: &v1::ExperimentSpec) -> Vec<String> {
    let scope = scope(e);
    let end = e.duration.map(span).unwrap_or_else(|| "end".into());
    if e.phases.is_empty() {
        let share = share(e.percentage, e.ramp.as_ref(), e.flap.as_ref());
        return vec![format!("{}  t0–{end}  {scope}  {share}  {}", e.name, sees(&e.faults))];
    }
    let mut out = Vec::new();
    for (i, p) in e.phases.iter().enumerate() {
        let from = p.start.map(span).filter(|s| s != "0s").map_or_else(|| "t0".into(), |s| format!("t0+{s}"));
        let to = e.phases.get(i + 1).and_then(|n| n.start).map(span).unwrap_or_else(|| end.clone());
        let share = share(p.percentage.or(e.percentage), p.ramp.as_ref(), p.flap.as_ref());
        let faults = if p.faults.is_empty() { &e.faults } else { &p.faults };
        let sees = if share == "0 %" { "untouched".to_owned() } else { sees(faults) };
        out.push(format!("{}/{}  {from}–{to}  {scope}  {share}  {sees}", e.name, p.name));
    }
    out
}

/// A protobuf duration in a few characters: `1h30m`, `250ms`.
pub(super) fn span(d: pbjson_types::Duration) -> String {
    let d = std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32);
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// Which requests: routes or hosts, and every other condition; sticky targeting.
fn scope(e: &v1::ExperimentSpec) -> String {
    let m = e.r#match.clone().unwrap_or_default();
    let mut parts = Vec::new();
    match (m.routes.is_empty(), m.hosts.is_empty()) {
        (false, _) => parts.push(format!("routes {}", m.routes.join(","))),
        (true, false) => parts.push(format!("hosts {}", m.hosts.join(","))),
        (true, true) => parts.push("every route".into()),
    }
    for c in &m.cookies {
        parts.push(condition(
            "cookie",
            &c.name,
            c.value.as_ref().map(|v| match v {
                v1::cookie_match::Value::Exact(s) => Cond::Exact(s),
                v1::cookie_match::Value::Regex(s) => Cond::Regex(s),
                v1::cookie_match::Value::Present(b) => Cond::Present(*b),
            }),
        ));
    }
    for h in &m.headers {
        parts.push(condition(
            "header",
            &h.name,
            h.value.as_ref().map(|v| match v {
                v1::header_match::Value::Exact(s) => Cond::Exact(s),
                v1::header_match::Value::Regex(s) => Cond::Regex(s),
                v1::header_match::Value::Present(b) => Cond::Present(*b),
            }),
        ));
    }
    if !m.client_cidrs.is_empty() {
        parts.push(format!("clients in {}", m.client_cidrs.join(",")));
    }
    if !m.path_prefix.is_empty() {
        parts.push(format!("paths {}*", m.path_prefix));
    }
    if let Some(s) = e.sticky.as_ref().and_then(|s| s.key.as_ref()) {
        parts.push(match s {
            v1::sticky::Key::Header(h) => format!("sticky by header {h}"),
            v1::sticky::Key::Cookie(c) => format!("sticky by cookie {c}"),
            v1::sticky::Key::ClientIp(_) => "sticky by client address".into(),
        });
    }
    parts.join(", ")
}

enum Cond<'a> {
    Exact(&'a str),
    Regex(&'a str),
    Present(bool),
}

fn condition(what: &str, name: &str, c: Option<Cond<'_>>) -> String {
    match c {
        Some(Cond::Present(false)) => format!("without {what} {name}"),
        Some(Cond::Present(true)) | None => format!("with {what} {name}"),
        Some(Cond::Exact(v)) => format!("{what} {name}={v}"),
        Some(Cond::Regex(r)) => format!("{what} {name} ~ {r}"),
    }
}

/// The share of matching requests (or clients, when sticky) selected, over the phase.
fn share(pct: Option<f64>, ramp: Option<&v1::Ramp>, flap: Option<&v1::Flap>) -> String {
    let base = match (ramp, pct) {
        (Some(r), _) => {
            format!("{} → {} %{}", r.from, r.to, r.over.map(|o| format!(" over {}", span(o))).unwrap_or_default())
        }
        (None, Some(p)) => format!("{p} %"),
        (None, None) => "100 %".into(),
    };
    let Some(f) = flap else { return base };
    let period = f.period.map(span).unwrap_or_default();
    match f.random_on {
        Some(on) => format!("{base} in {period} steps, each bad with chance {on} % (drawn from the seed)"),
        None => {
            let on = f.on.map(span).unwrap_or_else(|| "half".into());
            let jitter = f.jitter.map(|j| format!(" (±{})", span(j))).unwrap_or_default();
            format!("{base}, on {on} of every {period}{jitter}")
        }
    }
}

/// What the selected requests get, in order.
fn sees(faults: &[v1::Fault]) -> String {
    use v1::fault::Kind;
    let mut parts = Vec::new();
    for f in faults {
        parts.push(match &f.kind {
            Some(Kind::Abort(a)) => abort(a),
            Some(Kind::Delay(d)) => format!("a wait of {}", delay(d)),
            Some(Kind::Reset(_)) => "the connection reset".into(),
            Some(Kind::Unresolvable(u)) => {
                let answer = crate::fault::DnsAnswer::parse(&u.answer).unwrap_or_default();
                format!("502 \"could not resolve host …: {}\"", answer.message())
            }
            Some(Kind::Rewrite(r)) => {
                let mut set: Vec<String> = r.set_response_headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                set.sort();
                match r.status {
                    Some(s) => format!("the upstream's answer as {s}"),
                    None => format!("the upstream's answer with {}", set.join(", ")),
                }
            }
            _ => fault_summary(f),
        });
    }
    parts.join(", then ")
}

fn delay(d: &v1::DelayFault) -> String {
    use v1::delay_fault::Distribution;
    let max = d.max.map(|m| format!(" (at most {})", span(m))).unwrap_or_default();
    let what = match &d.distribution {
        Some(Distribution::Fixed(f)) => span(*f),
        Some(Distribution::Uniform(u)) => {
            format!("{}–{}", u.min.map(span).unwrap_or_default(), u.max.map(span).unwrap_or_default())
        }
        Some(Distribution::Normal(n)) => format!("around {}", n.mean.map(span).unwrap_or_default()),
        Some(Distribution::Lognormal(l)) => format!("median {} (log-normal)", l.median.map(span).unwrap_or_default()),
        None => "?".into(),
    };
    format!("{what}{max}")
}

/// An abort: its status, and for a page the page and the headers a client can tell it by.
fn abort(a: &v1::AbortFault) -> String {
    let status = a.http_status.unwrap_or(503);
    let Some(preset) = Preset::parse(&a.page) else {
        return if a.page.is_empty() { format!("{status}") } else { format!("{status} ({} page)", a.page) };
    };
    let location = Location::parse(if a.page_location.is_empty() { "FRA" } else { &a.page_location });
    let (Some(location), Ok(code)) = (location, StatusCode::from_u16(u16::try_from(status).unwrap_or(0))) else {
        return format!("{status} ({} page)", a.page);
    };
    let page = Page { preset, location };
    let req = PageRequest { host: Some("site.example"), json: false, now: SystemTime::UNIX_EPOCH, id: 0, client: None };
    let rendered = page.render(code, &req);
    let mut headers = String::new();
    for (name, value) in &rendered.headers {
        let shown = match name.as_str() {
            "content-type" | "cache-control" | "content-length" => continue,
            // Different on every request: say its shape.
            "cf-ray" => format!("<16 hex>-{}", location.as_str()),
            "x-request-id" | "x-varnish" => "<id>".into(),
            "x-served-by" => format!("cache-{}<node>-{}", location.as_str().to_ascii_lowercase(), location.as_str()),
            _ => value.to_str().unwrap_or("").to_owned(),
        };
        let _ = write!(headers, "{}{name}: {shown}", if headers.is_empty() { "" } else { ", " });
    }
    let reason = rendered.reason.map(|r| format!(" {r}")).unwrap_or_default();
    format!("{status}{reason} {} page [{headers}]", a.page)
}

/// One fault in a few words: "abort 500 (edge page)", "delay", "reset".
pub fn fault_summary(f: &v1::Fault) -> String {
    use v1::fault::Kind;
    let abort = |a: &v1::AbortFault| {
        let status = a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "503".into());
        if a.page.is_empty() {
            status
        } else {
            format!("{status} ({} page)", a.page)
        }
    };
    match &f.kind {
        Some(Kind::Abort(a)) => format!("abort {}", abort(a)),
        Some(Kind::Hang(h)) => match &h.then {
            Some(v1::hang_fault::Then::Respond(a)) => {
                format!("hang {} then {}", h.duration.map(span).unwrap_or_default(), abort(a))
            }
            _ => format!("hang {}", h.duration.map(span).unwrap_or_default()),
        },
        Some(Kind::Rewrite(v1::RewriteFault { status: Some(status), .. })) => format!("rewrite to {status}"),
        Some(Kind::Tls(t)) => match &t.kind {
            Some(v1::tls_fault::Kind::HandshakeFailure(h)) if h.reset => "TLS reset".into(),
            Some(v1::tls_fault::Kind::HandshakeFailure(h)) => {
                format!("TLS alert {}", if h.alert.is_empty() { "handshake_failure" } else { h.alert.as_str() })
            }
            Some(v1::tls_fault::Kind::Certificate(c)) => format!("TLS certificate {}", c.problem),
            Some(v1::tls_fault::Kind::Stall(s)) => match s.duration {
                Some(d) => format!("TLS stall {}", span(d)),
                None => "TLS stall".into(),
            },
            None => "tls".into(),
        },
        // The others by their name (`rate limit`, `first byte delay`).
        Some(kind) => crate::fault::kind_name(kind).replace('_', " "),
        None => "?".into(),
    }
}
