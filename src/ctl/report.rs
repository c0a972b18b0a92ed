//! `edgefault ctl report` (and `edgefault demo --report`): one self-contained file for the post-mortem of
//! a rehearsal — the experiments with who started and stopped them (from the audit log), their phases on a
//! time axis, and per route what clients saw over the same axis (status mix, latency percentiles, injected
//! against real upstream errors), then the totals. HTML with inline SVG plots and no outside resource, or
//! Markdown with tables and sparklines.

use std::{
    fmt::Write as _,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use crate::{fault::page::escape_html, pb::v1};

/// What a report is made of.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// The control service it was read from.
    pub server: String,
    pub generated: SystemTime,
    /// The time axis.
    pub from: SystemTime,
    pub to: SystemTime,
    pub experiments: Vec<v1::Experiment>,
    pub history: v1::GetHistoryResponse,
    pub audit: Vec<AuditLine>,
}

/// One line of the audit log, as far as a report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    pub time: String,
    pub caller: String,
    pub action: String,
    pub experiments: Vec<String>,
    pub reason: String,
    pub ok: bool,
}

/// The lines of an audit log (JSON lines, as `audit.path` writes them); lines that are not are skipped
/// and counted.
pub fn parse_audit(text: &str) -> (Vec<AuditLine>, usize) {
    let mut lines = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            skipped += 1;
            continue;
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut experiments: Vec<String> = v
            .get("experiments")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(one) = v.get("experiment").and_then(Value::as_str) {
            experiments.push(one.to_owned());
        }
        lines.push(AuditLine {
            time: s("time"),
            caller: s("caller"),
            action: s("action"),
            experiments,
            reason: s("reason"),
            ok: s("outcome") == "ok",
        });
    }
    (lines, skipped)
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn ts(t: &Option<pbjson_types::Timestamp>) -> Option<f64> {
    t.as_ref().map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

fn clock(t: f64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn short_clock(t: f64) -> String {
    let c = clock(t);
    c.get(11..19).map(str::to_owned).unwrap_or(c)
}

fn state(e: &v1::Experiment) -> &'static str {
    super::render::state_name(e.state)
}

/// Who started an experiment and who (or what) ended it, from the audit log and its end reason.
fn who(e: &v1::Experiment, audit: &[AuditLine]) -> (String, String) {
    let about = |l: &&AuditLine| l.ok && l.experiments.contains(&e.id);
    let started = audit
        .iter()
        .filter(about)
        .find(|l| l.action.starts_with("Start") || l.action.starts_with("toxiproxy POST"))
        .map(|l| format!("{} ({})", l.caller, l.action))
        .unwrap_or_else(|| "not in the audit log".into());
    let ended = audit
        .iter()
        .filter(about)
        .find(|l| !(l.action.starts_with("Start") || l.action == "RenewLease"))
        .map(|l| format!("{} ({})", l.caller, l.action))
        .unwrap_or_else(|| match state(e) {
            "running" | "pending" => "still running".into(),
            "completed" => "its duration".into(),
            _ if !e.end_reason.is_empty() => e.end_reason.clone(),
            other => other.into(),
        });
    (started, ended)
}

/// An experiment's phases in wall-clock time: (name, from, to).
fn phases(e: &v1::Experiment, end: f64) -> Vec<(String, f64, f64)> {
    let Some(start) = ts(&e.started_at) else { return Vec::new() };
    let Some(spec) = &e.spec else { return Vec::new() };
    let scale = spec.time_scale.filter(|s| *s > 0.0).unwrap_or(1.0);
    if spec.phases.is_empty() {
        return vec![("running".into(), start, end)];
    }
    let offsets: Vec<f64> = spec
        .phases
        .iter()
        .map(|p| p.start.as_ref().map_or(0.0, |d| (d.seconds as f64 + f64::from(d.nanos) / 1e9) / scale))
        .collect();
    let mut out = Vec::new();
    for (i, p) in spec.phases.iter().enumerate() {
        let from = start + offsets.get(i).copied().unwrap_or(0.0);
        let to = offsets.get(i + 1).map_or(end, |o| start + o).min(end);
        if from < end {
            out.push((p.name.clone(), from, to));
        }
    }
    out
}

/// When an experiment ended, or the axis's end while it runs.
fn end_of(e: &v1::Experiment, to: f64) -> f64 {
    ts(&e.ended_at).unwrap_or(to).min(to)
}

/// A route's totals over the report's points.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    requests: u64,
    status: [u64; 6],
    injected: u64,
    upstream_errors: u64,
    worst_p99: f64,
}

fn totals(r: &v1::RouteHistory) -> Totals {
    let mut t = Totals::default();
    for p in &r.points {
        t.requests += p.requests;
        t.injected += p.injected;
        t.upstream_errors += p.upstream_errors;
        for (a, b) in t.status.iter_mut().zip(&p.status) {
            *a += b;
        }
        t.worst_p99 = t.worst_p99.max(p.p99_ms);
    }
    t
}

fn share(n: u64, of: u64) -> String {
    if of == 0 {
        return "–".into();
    }
    format!("{:.1}%", n as f64 * 100.0 / of as f64)
}

/// The routes that had traffic in the window.
fn routes(r: &ReportInput) -> Vec<&v1::RouteHistory> {
    r.history.routes.iter().filter(|h| h.points.iter().any(|p| p.requests > 0)).collect()
}

/// The experiments in the window (started before its end, not ended before its start), in start order.
fn in_window(r: &ReportInput) -> Vec<&v1::Experiment> {
    let (from, to) = (seconds(r.from), seconds(r.to));
    let mut v: Vec<&v1::Experiment> = r
        .experiments
        .iter()
        .filter(|e| ts(&e.started_at).or(ts(&e.created_at)).is_some_and(|s| s <= to))
        .filter(|e| ts(&e.ended_at).is_none_or(|end| end >= from))
        .collect();
    v.sort_by(|a, b| ts(&a.started_at).partial_cmp(&ts(&b.started_at)).unwrap_or(std::cmp::Ordering::Equal));
    v
}

const STATUS_COLOURS: [&str; 6] = ["#90caf9", "#2e7d32", "#1565c0", "#ef6c00", "#c62828", "#616161"];
const STATUS_NAMES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "dropped"];
const PHASE_COLOURS: [&str; 4] = ["#5c6bc0", "#8e24aa", "#00897b", "#6d4c41"];

/// The plots' geometry: a time axis `from`–`to` mapped to `LEFT`..`LEFT + WIDTH`.
struct Axis {
    from: f64,
    to: f64,
}

const LEFT: f64 = 170.0;
const WIDTH: f64 = 760.0;

impl Axis {
    fn x(&self, t: f64) -> f64 {
        let span = (self.to - self.from).max(1.0);
        LEFT + ((t - self.from) / span).clamp(0.0, 1.0) * WIDTH
    }

    /// Tick marks and labels along the bottom of a plot `height` high.
    fn ticks(&self, svg: &mut String, height: f64) {
        for i in 0..=6 {
            let t = self.from + (self.to - self.from) * f64::from(i) / 6.0;
            let x = self.x(t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="0" x2="{x:.1}" y2="{height}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.0}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
                height + 14.0,
                short_clock(t)
            );
        }
    }

    /// Dashed lines where experiments started and ended.
    fn marks(&self, svg: &mut String, experiments: &[&v1::Experiment], height: f64) {
        for e in experiments {
            for t in [ts(&e.started_at), ts(&e.ended_at)].into_iter().flatten() {
                let x = self.x(t);
                let _ = write!(
                    svg,
                    r##"<line x1="{x:.1}" y1="0" x2="{x:.1}" y2="{height}" stroke="#9e9e9e" stroke-dasharray="3,3"/>"##
                );
            }
        }
    }
}

fn svg_open(height: f64, label: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 {:.0}" role="img" aria-label="{}">"##,
        height + 20.0,
        escape_html(label)
    )
}

/// The experiments as bars on the axis, each phase a segment with its name.
fn timeline_svg(axis: &Axis, experiments: &[&v1::Experiment]) -> String {
    let row = 26.0;
    let height = row * experiments.len().max(1) as f64;
    let mut svg = svg_open(height, "experiments and their phases over time");
    axis.ticks(&mut svg, height);
    for (i, e) in experiments.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let name = e.spec.as_ref().map(|s| s.name.as_str()).unwrap_or(e.id.as_str());
        let _ = write!(
            svg,
            r##"<text x="{:.0}" y="{:.1}" font-size="12" text-anchor="end" fill="#222">{}</text>"##,
            LEFT - 6.0,
            y + 13.0,
            escape_html(name)
        );
        let end = end_of(e, axis.to);
        for (j, (phase, from, to)) in phases(e, end).iter().enumerate() {
            let (x0, x1) = (axis.x(*from), axis.x(*to));
            let colour = PHASE_COLOURS.get(j % PHASE_COLOURS.len()).copied().unwrap_or("#5c6bc0");
            let _ = write!(
                svg,
                r##"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="18" fill="{colour}" opacity="0.85"><title>{} / {}: {} – {}</title></rect>"##,
                (x1 - x0).max(1.0),
                escape_html(name),
                escape_html(phase),
                clock(*from),
                clock(*to)
            );
            if x1 - x0 > 8.0 * phase.len() as f64 {
                let _ = write!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#fff">{}</text>"##,
                    x0 + 4.0,
                    y + 13.0,
                    escape_html(phase)
                );
            }
        }
        if e.end_reason.contains("guard") {
            let x = axis.x(end);
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="14" fill="#c62828">⚑<title>{}</title></text>"##,
                x + 2.0,
                y + 14.0,
                escape_html(&e.end_reason)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// What each experiment injected, point by point: one row of bars per experiment, each scaled to its own
/// largest point (the window an experiment acted in shows even beside a far busier one).
fn injected_svg(axis: &Axis, experiments: &[&v1::Experiment], history: &v1::GetHistoryResponse, step: f64) -> String {
    let row = 26.0;
    let height = row * experiments.len().max(1) as f64;
    let mut svg = svg_open(height, "faults each experiment injected, per point");
    axis.ticks(&mut svg, height);
    let w = (axis.x(axis.from + step) - axis.x(axis.from)).max(1.0);
    for (i, e) in experiments.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let name = e.spec.as_ref().map(|s| s.name.as_str()).unwrap_or(e.id.as_str());
        let points = history.experiments.iter().find(|x| x.id == e.id).map(|x| x.points.as_slice()).unwrap_or_default();
        let max = points.iter().map(|p| p.injected).max().unwrap_or(0);
        let _ = write!(
            svg,
            r##"<text x="{:.0}" y="{:.1}" font-size="12" text-anchor="end" fill="#222">{}</text><line x1="{LEFT}" y1="{:.1}" x2="{:.0}" y2="{:.1}" stroke="#e0e0e0"/>"##,
            LEFT - 6.0,
            y + 13.0,
            escape_html(name),
            y + 18.0,
            LEFT + WIDTH,
            y + 18.0
        );
        for p in points.iter().filter(|p| p.injected > 0) {
            let h = p.injected as f64 / max.max(1) as f64 * 18.0;
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.2}" width="{w:.2}" height="{h:.2}" fill="#8e24aa"><title>{}: {} injected of {} matched</title></rect>"##,
                axis.x(p.time as f64),
                y + 18.0 - h,
                short_clock(p.time as f64),
                p.injected,
                p.matched
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{:.0}" y="{:.1}" font-size="10" fill="#555">max {max}</text>"##,
            LEFT + WIDTH + 4.0,
            y + 13.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The share of each status class per point, stacked.
fn status_svg(axis: &Axis, r: &v1::RouteHistory, step: f64, experiments: &[&v1::Experiment]) -> String {
    let height = 120.0;
    let mut svg = svg_open(height, &format!("status mix of route {}", r.route));
    axis.ticks(&mut svg, height);
    let w = (axis.x(axis.from + step) - axis.x(axis.from)).max(1.0);
    for p in &r.points {
        let total: u64 = p.status.iter().sum();
        if total == 0 {
            continue;
        }
        let x = axis.x(p.time as f64);
        let mut y = height;
        for (class, n) in p.status.iter().enumerate() {
            let h = *n as f64 / total as f64 * height;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            let colour = STATUS_COLOURS.get(class).copied().unwrap_or("#999");
            let _ = write!(svg, r##"<rect x="{x:.1}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{colour}"/>"##);
        }
    }
    axis.marks(&mut svg, experiments, height);
    let _ = write!(svg, r##"<text x="{:.0}" y="14" font-size="12" text-anchor="end">status mix</text>"##, LEFT - 6.0);
    for (i, (name, colour)) in STATUS_NAMES.iter().zip(STATUS_COLOURS).enumerate().skip(1) {
        let _ = write!(
            svg,
            r##"<rect x="{:.0}" y="{:.0}" width="10" height="10" fill="{colour}"/><text x="{:.0}" y="{:.0}" font-size="11">{name}</text>"##,
            LEFT - 70.0,
            24.0 + i as f64 * 14.0,
            LEFT - 56.0,
            33.0 + i as f64 * 14.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A line of a plot: its name, colour, and value at each point.
type Line = (&'static str, &'static str, fn(&v1::RoutePoint) -> f64);

/// Lines of `series`, on a linear or logarithmic scale.
fn lines_svg(axis: &Axis, r: &v1::RouteHistory, label: &str, series: &[Line], log: bool) -> String {
    let height = 100.0;
    let mut svg = svg_open(height, &format!("{label} of route {}", r.route));
    axis.ticks(&mut svg, height);
    let max = r.points.iter().flat_map(|p| series.iter().map(move |(_, _, f)| f(p))).fold(0.0f64, f64::max);
    let scale = |v: f64| -> f64 {
        if max <= 0.0 {
            return height;
        }
        if log {
            let (lo, hi) = (0.5f64.ln(), max.max(1.0).ln());
            height - ((v.max(0.5).ln() - lo) / (hi - lo).max(1e-9)).clamp(0.0, 1.0) * (height - 4.0)
        } else {
            height - (v / max).clamp(0.0, 1.0) * (height - 4.0)
        }
    };
    for (i, (name, colour, f)) in series.iter().enumerate() {
        let points: Vec<String> = r
            .points
            .iter()
            .filter(|p| p.requests > 0)
            .map(|p| format!("{:.1},{:.1}", axis.x(p.time as f64), scale(f(p))))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{}"/>"##,
            points.join(" ")
        );
        let _ = write!(
            svg,
            r##"<text x="{:.0}" y="{:.0}" font-size="11" text-anchor="end" fill="{colour}">{name}</text>"##,
            LEFT - 6.0,
            30.0 + i as f64 * 14.0
        );
    }
    let unit = if log { " (log)" } else { "" };
    let _ = write!(
        svg,
        r##"<text x="{:.0}" y="14" font-size="12" text-anchor="end">{label}{unit}</text><text x="{:.0}" y="12" font-size="10" fill="#555">max {max:.1}</text>"##,
        LEFT - 6.0,
        LEFT + 4.0
    );
    svg.push_str("</svg>");
    svg
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:980px;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.5em 0;font-size:.92em}\
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
svg{width:100%;height:auto;display:block;margin:.4em 0}.meta{color:#555}code{font-size:.92em}";

/// The report as one HTML file.
pub fn html(r: &ReportInput) -> String {
    let (from, to) = (seconds(r.from), seconds(r.to));
    let axis = Axis { from, to };
    let experiments = in_window(r);
    let step = f64::from(r.history.resolution_seconds.max(1));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>edgefault report {}</title><style>{STYLE}</style></head><body>",
        escape_html(&clock(from))
    );
    let _ = write!(
        h,
        "<h1>Game day report</h1><p class=\"meta\">From <b>{}</b> to <b>{}</b> ({}), server <code>{}</code>, points of {} s, generated {}.</p>",
        clock(from),
        clock(to),
        humantime::format_duration(Duration::from_secs_f64((to - from).max(0.0).round())),
        escape_html(&r.server),
        step,
        clock(seconds(r.generated))
    );
    h.push_str("<h2>Experiments</h2>");
    if experiments.is_empty() {
        h.push_str("<p>No experiment ran in this window.</p>");
    } else {
        h.push_str(&timeline_svg(&axis, &experiments));
        h.push_str(
            "<p class=meta>Faults each experiment injected, per point (each row scaled to its own largest):</p>",
        );
        h.push_str(&injected_svg(&axis, &experiments, &r.history, step));
        h.push_str("<table><tr><th>experiment</th><th>state</th><th>started</th><th>ended</th><th>started by</th><th>ended by</th><th>matched</th><th>injected</th><th>aborted</th><th>delayed</th></tr>");
        for e in &experiments {
            let (started_by, ended_by) = who(e, &r.audit);
            let s = e.stats.unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td><b>{}</b><br><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                escape_html(e.spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default()),
                escape_html(&e.id),
                state(e),
                ts(&e.started_at).map(short_clock).unwrap_or_default(),
                ts(&e.ended_at).map(short_clock).unwrap_or_default(),
                escape_html(&started_by),
                escape_html(&ended_by),
                s.matched,
                s.injected,
                s.aborted,
                s.delayed
            );
        }
        h.push_str("</table>");
        let trips: Vec<&&v1::Experiment> = experiments.iter().filter(|e| e.end_reason.contains("guard")).collect();
        if !trips.is_empty() {
            h.push_str("<p><b>Guard trips</b> (⚑ on the timeline):</p><ul>");
            for e in trips {
                let _ = write!(h, "<li><code>{}</code>: {}</li>", escape_html(&e.id), escape_html(&e.end_reason));
            }
            h.push_str("</ul>");
        }
    }
    h.push_str("<h2>What clients saw, per route</h2>");
    let routes = routes(r);
    if routes.is_empty() {
        h.push_str("<p>No request reached a route in this window.</p>");
    }
    for route in &routes {
        let t = totals(route);
        let _ = write!(
            h,
            "<h3>{} <span class=meta>(listener {})</span></h3><p class=meta>{} requests: {} 2xx, {} 4xx, {} 5xx, {} dropped; {} injected, {} real upstream errors; worst p99 {:.1} ms.</p>",
            escape_html(&route.route),
            escape_html(&route.listener),
            t.requests,
            share(t.status[1], t.requests),
            share(t.status[3], t.requests),
            share(t.status[4], t.requests),
            share(t.status[5], t.requests),
            t.injected,
            t.upstream_errors,
            t.worst_p99
        );
        h.push_str(&status_svg(&axis, route, step, &experiments));
        let latency: [Line; 2] = [("p50", "#1565c0", |p| p.p50_ms), ("p99", "#c62828", |p| p.p99_ms)];
        h.push_str(&lines_svg(&axis, route, "latency, ms", &latency, true));
        let errors: [Line; 2] = [
            ("injected", "#8e24aa", |p| p.injected as f64),
            ("upstream errors", "#ef6c00", |p| p.upstream_errors as f64),
        ];
        h.push_str(&lines_svg(&axis, route, "requests per point", &errors, false));
    }
    h.push_str("<h2>Totals</h2><table><tr><th>route</th><th>requests</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>dropped</th><th>injected</th><th>upstream errors</th><th>worst p99</th></tr>");
    for route in &routes {
        let t = totals(route);
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.1} ms</td></tr>",
            escape_html(&route.route),
            t.requests,
            t.status[1],
            t.status[2],
            t.status[3],
            t.status[4],
            t.status[5],
            t.injected,
            t.upstream_errors,
            t.worst_p99
        );
    }
    h.push_str("</table><p class=meta>Latency is the time to the response head as clients saw it, injected delays included, by buckets that double from 0.5 ms. \"Dropped\": no response (a reset, a hang that closed). Made by <code>edgefault ctl report</code>.</p></body></html>\n");
    h
}

/// A row of block characters, one per point (at most `width`, points merged), for a share from 0 to 1.
fn sparkline(values: &[f64], width: usize) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() {
        return String::new();
    }
    let per = values.len().div_ceil(width.max(1));
    values
        .chunks(per.max(1))
        .map(|c| {
            let v = c.iter().sum::<f64>() / c.len() as f64;
            // The nearest of the eight levels: how many of the midpoints between them `v` is past.
            let level = (1..8u8).filter(|k| v >= (f64::from(*k) - 0.5) / 7.0).count();
            BLOCKS.get(level).copied().unwrap_or('▁')
        })
        .collect()
}

/// The report as Markdown.
pub fn markdown(r: &ReportInput) -> String {
    let (from, to) = (seconds(r.from), seconds(r.to));
    let experiments = in_window(r);
    let mut m = String::new();
    let _ = writeln!(m, "# Game day report\n");
    let _ = writeln!(
        m,
        "From {} to {}, server `{}`, points of {} s, generated {}.\n",
        clock(from),
        clock(to),
        r.server,
        r.history.resolution_seconds.max(1),
        clock(seconds(r.generated))
    );
    let _ = writeln!(m, "## Experiments\n");
    if experiments.is_empty() {
        let _ = writeln!(m, "No experiment ran in this window.\n");
    } else {
        let _ =
            writeln!(m, "| experiment | id | state | started | ended | started by | ended by | matched | injected |");
        let _ = writeln!(m, "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: |");
        for e in &experiments {
            let (started_by, ended_by) = who(e, &r.audit);
            let s = e.stats.unwrap_or_default();
            let _ = writeln!(
                m,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
                md(e.spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default()),
                e.id,
                state(e),
                ts(&e.started_at).map(short_clock).unwrap_or_default(),
                ts(&e.ended_at).map(short_clock).unwrap_or_default(),
                md(&started_by),
                md(&ended_by),
                s.matched,
                s.injected
            );
        }
        let _ = writeln!(m, "\n### Injected, per point\n");
        for e in &experiments {
            let name = e.spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
            let points =
                r.history.experiments.iter().find(|x| x.id == e.id).map(|x| x.points.as_slice()).unwrap_or_default();
            let max = points.iter().map(|p| p.injected).max().unwrap_or(0).max(1) as f64;
            let values: Vec<f64> = points.iter().map(|p| p.injected as f64 / max).collect();
            let _ = writeln!(m, "- {}: `{}`", md(name), sparkline(&values, 100));
        }
        let _ = writeln!(m, "\n### Phases\n\n| experiment | phase | from | to |\n| --- | --- | --- | --- |");
        for e in &experiments {
            let name = e.spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
            for (phase, a, b) in phases(e, end_of(e, to)) {
                let _ = writeln!(m, "| {} | {} | {} | {} |", md(name), md(&phase), short_clock(a), short_clock(b));
            }
        }
        m.push('\n');
    }
    let _ = writeln!(m, "## What clients saw, per route\n");
    for route in routes(r) {
        let t = totals(route);
        let fivexx: Vec<f64> = route
            .points
            .iter()
            .map(|p| {
                let total: u64 = p.status.iter().sum();
                if total == 0 {
                    0.0
                } else {
                    (p.status.get(4).copied().unwrap_or(0) + p.status.get(5).copied().unwrap_or(0)) as f64
                        / total as f64
                }
            })
            .collect();
        let _ = writeln!(
            m,
            "- **{}** ({} requests; 5xx {}, dropped {}; {} injected, {} upstream errors; worst p99 {:.1} ms)\n  5xx and dropped share: `{}`",
            md(&route.route),
            t.requests,
            share(t.status[4], t.requests),
            share(t.status[5], t.requests),
            t.injected,
            t.upstream_errors,
            t.worst_p99,
            sparkline(&fivexx, 100)
        );
    }
    m
}

/// The report's data as JSON, for tools and pipelines: the window, the experiments (`edgefault.v1.Experiment`
/// in the protobuf JSON mapping), the history (`GetHistoryResponse`), and who started and ended each one.
pub fn json(r: &ReportInput) -> String {
    let experiments = in_window(r);
    let who: Vec<Value> = experiments
        .iter()
        .map(|e| {
            let (started_by, ended_by) = who(e, &r.audit);
            serde_json::json!({ "id": e.id, "started_by": started_by, "ended_by": ended_by })
        })
        .collect();
    let doc = serde_json::json!({
        "server": r.server,
        "generated": clock(seconds(r.generated)),
        "from": clock(seconds(r.from)),
        "to": clock(seconds(r.to)),
        "experiments": experiments,
        "who": who,
        "history": r.history,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Which of the three a file name asks for: `.md` Markdown, `.json` JSON, anything else HTML.
pub fn by_extension(path: &std::path::Path, r: &ReportInput) -> String {
    match path.extension().and_then(|x| x.to_str()) {
        Some("md") => markdown(r),
        Some("json") => json(r),
        _ => html(r),
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(s: i64) -> Option<pbjson_types::Timestamp> {
        Some(pbjson_types::Timestamp { seconds: s, nanos: 0 })
    }

    fn input() -> ReportInput {
        let spec = v1::ExperimentSpec {
            name: "storm <b>".into(),
            phases: vec![
                v1::Phase { name: "warm".into(), ..Default::default() },
                v1::Phase {
                    name: "peak".into(),
                    start: Some(pbjson_types::Duration { seconds: 600, nanos: 0 }),
                    ..Default::default()
                },
            ],
            time_scale: Some(60.0),
            ..Default::default()
        };
        let e = v1::Experiment {
            id: "exp-1".into(),
            spec: Some(spec),
            state: v1::ExperimentState::Aborted as i32,
            started_at: stamp(1000),
            ended_at: stamp(1030),
            end_reason: "guard tripped: error rate".into(),
            ..Default::default()
        };
        let points = (0..40)
            .map(|i| v1::RoutePoint {
                time: 995 + i,
                requests: 10,
                status: vec![0, 5, 0, 0, 5, 0],
                injected: 5,
                upstream_errors: 0,
                p50_ms: 4.0,
                p99_ms: 64.0,
            })
            .collect();
        ReportInput {
            server: "http://127.0.0.1:7070".into(),
            generated: UNIX_EPOCH + Duration::from_secs(1040),
            from: UNIX_EPOCH + Duration::from_secs(995),
            to: UNIX_EPOCH + Duration::from_secs(1035),
            experiments: vec![e],
            history: v1::GetHistoryResponse {
                resolution_seconds: 1,
                routes: vec![v1::RouteHistory { listener: "web".into(), route: "api".into(), points }],
                experiments: Vec::new(),
            },
            audit: parse_audit(
                "{\"caller\":\"ops\",\"action\":\"StartExperiment\",\"experiment\":\"exp-1\",\"outcome\":\"ok\"}\nnot json\n",
            )
            .0,
        }
    }

    #[test]
    fn the_html_is_self_contained_and_escapes_names() {
        let h = html(&input());
        assert!(h.contains("storm &lt;b&gt;") && !h.contains("storm <b>"));
        assert!(h.contains("ops (StartExperiment)"));
        assert!(h.contains("guard tripped"));
        assert!(h.contains("<svg") && h.contains("status mix"));
        // The phase offsets are on the experiment's clock: 600 s at time scale 60 is 10 s.
        assert!(h.contains("peak: 1970-01-01T00:16:50Z"), "{h}");
        for outside in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!h.contains(outside), "{outside}");
        }
        // The only URL is the SVG namespace.
        assert_eq!(
            h.matches("http://").count(),
            h.matches("http://www.w3.org/2000/svg").count() + 1,
            "the server's URL"
        );
    }

    #[test]
    fn markdown_has_the_tables_and_a_sparkline() {
        let m = markdown(&input());
        assert!(m.contains("| storm <b> | `exp-1` | aborted |"), "{m}");
        assert!(m.contains("| storm <b> | peak | 00:16:50 | 00:17:10 |"), "{m}");
        assert!(m.contains("**api** (400 requests; 5xx 50.0%"), "{m}");
        assert!(m.contains('▅'), "{m}");
        assert_eq!(parse_audit("x\n{}\n").1, 1);
    }
}
