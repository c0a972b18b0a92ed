//! How `ctl` shows experiments, scenarios and faults: tables for people, JSON for scripts.

use std::{fmt::Write as _, time::SystemTime};

use super::signature::span;
use super::Output;
pub use crate::control::proto::{state_name, target_state_name};
use crate::pb::v1;

/// Renders the scenario list as a table or JSON.
pub fn render_scenarios(scenarios: &[v1::Scenario], output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(scenarios).unwrap_or_default(),
        Output::Text => {
            let mut out = format!("{:<32} {:<8} {}\n", "NAME", "ORIGIN", "SUMMARY");
            for s in scenarios {
                let origin = if s.builtin { "built-in" } else { "file" };
                let _ = writeln!(out, "{:<32} {:<8} {}", s.name, origin, s.summary);
            }
            out
        }
    }
}

/// Renders one scenario, its parameters and the experiments it expands into.
pub fn render_scenario(r: &v1::GetScenarioResponse, output: Output) -> String {
    if output == Output::Json {
        return serde_json::to_string_pretty(r).unwrap_or_default();
    }
    let s = r.scenario.clone().unwrap_or_default();
    let mut out = format!("{} — {}\n", s.name, s.summary);
    if !s.file.is_empty() {
        let _ = writeln!(out, "file: {}", s.file);
    }
    if !s.source.is_empty() {
        let _ = writeln!(out, "source: {}", s.source);
    }
    let _ = writeln!(out, "\n{}", s.description.trim_end());
    let _ = writeln!(out, "\nparameters (--param NAME=VALUE):");
    let _ = writeln!(out, "  {:<18} {:<10} {:<34} DESCRIPTION", "NAME", "TYPE", "DEFAULT");
    for p in &s.params {
        let choices = if p.choices.is_empty() { String::new() } else { format!(" (one of {})", p.choices.join(", ")) };
        let default = if p.default_value.is_empty() { "(empty)".to_owned() } else { p.default_value.clone() };
        let _ = writeln!(out, "  {:<18} {:<10} {:<34} {}{choices}", p.name, p.r#type, default, p.description);
    }
    let _ = writeln!(out, "\nexperiments with these parameters on this server:");
    for e in &r.experiments {
        let scale = e.time_scale.unwrap_or(1.0);
        let routes = e.r#match.as_ref().map(|m| m.routes.join(",")).filter(|r| !r.is_empty());
        let hosts = e.r#match.as_ref().map(|m| m.hosts.join(",")).filter(|h| !h.is_empty());
        let scope = match (routes, hosts) {
            (Some(r), _) => format!("routes {r}"),
            (None, Some(h)) => format!("hosts {h}"),
            (None, None) => "every route".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {}: {scope}, {} of incident time{}, {}",
            e.name,
            e.duration.map(span).unwrap_or_else(|| "the server's default".into()),
            if scale == 1.0 {
                String::new()
            } else {
                format!(" (runs {} at time_scale {scale})", scaled(e.duration, scale))
            },
            e.faults.iter().map(super::signature::fault_summary).collect::<Vec<_>>().join(" + "),
        );
        if e.phases.is_empty() {
            continue;
        }
        let _ = writeln!(out, "    {:<24} {:>10} {:>10} {:>6}  FAULTS", "PHASE", "START", "REAL", "PCT");
        for p in &e.phases {
            let pct = match (&p.ramp, p.percentage.or(e.percentage)) {
                (Some(r), _) => format!("{}→{}", r.from, r.to),
                (None, Some(v)) => format!("{v}"),
                (None, None) => "100".into(),
            };
            let mut faults = if p.faults.is_empty() {
                "(the experiment's)".to_owned()
            } else {
                p.faults.iter().map(super::signature::fault_summary).collect::<Vec<_>>().join(" + ")
            };
            if let Some(f) = &p.flap {
                let _ = write!(faults, ", flapping every {}", f.period.map(span).unwrap_or_default());
            }
            let _ = writeln!(
                out,
                "    {:<24} {:>10} {:>10} {:>6}  {faults}",
                p.name,
                p.start.map(span).unwrap_or_else(|| "0s".into()),
                scaled(p.start, scale),
                pct
            );
        }
    }
    let _ = writeln!(out, "\nwhat clients see, phase by phase (incident time):");
    for e in &r.experiments {
        for line in super::signature::signature(e) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

fn scaled(d: Option<pbjson_types::Duration>, scale: f64) -> String {
    let d = d.map(|d| std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)).unwrap_or_default();
    let real =
        std::time::Duration::try_from_secs_f64((d.as_secs_f64() / scale * 1000.0).round() / 1000.0).unwrap_or_default();
    humantime::format_duration(real).to_string().replace(' ', "")
}

/// Renders experiments as a table or JSON.
pub fn render(experiments: &[v1::Experiment], output: Output) -> String {
    match output {
        // One experiment (`get`, `stop`): its object.
        Output::Json if experiments.len() == 1 => {
            experiments.first().and_then(|e| serde_json::to_string_pretty(e).ok()).unwrap_or_default()
        }
        Output::Json => render_list(experiments),
        Output::Text => {
            let mut out = format!(
                "{:<18} {:<24} {:<10} {:>7} {:>9} {:>9}  {}\n",
                "ID", "NAME", "STATE", "PCT", "MATCHED", "INJECTED", "ENDS/ENDED"
            );
            for e in experiments {
                let spec = e.spec.clone().unwrap_or_default();
                let stats = e.stats.unwrap_or_default();
                let when = e.ended_at.or(e.ends_at).map(format_time).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:<18} {:<24} {:<10} {:>7} {:>9} {:>9}  {when}{}",
                    e.id,
                    truncate(&spec.name, 24),
                    state_name(e.state),
                    format!("{}%", spec.percentage.unwrap_or(100.0)),
                    stats.matched,
                    stats.injected,
                    if e.end_reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", crate::text::printable(&e.end_reason))
                    },
                );
                // A fleet experiment (on the controller): where it stands on each sidecar.
                for t in &e.sidecars {
                    let stats = t.stats.unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  └ {:<28} {:<10} {:>7} {:>9} {:>9}  {}",
                        truncate(&t.sidecar_id, 28),
                        target_state_name(t.state),
                        "",
                        stats.matched,
                        stats.injected,
                        crate::text::printable(&t.reason),
                    );
                }
            }
            out
        }
    }
}

/// `ctl sidecars`: the controller's fleet, with each sidecar's last rejection under it.
pub fn render_sidecars(sidecars: &[v1::Sidecar], output: Output) -> String {
    if output == Output::Json {
        return serde_json::to_string_pretty(sidecars).unwrap_or_default();
    }
    let mut out =
        format!("{:<28} {:<10} {:>9} {:>5}  {:<20} {}\n", "ID", "STATE", "VERSION", "EXPS", "LAST SEEN", "LABELS");
    for s in sidecars {
        let mut labels: Vec<(&String, &String)> = s.labels.iter().collect();
        labels.sort();
        let labels: Vec<String> = labels.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "{:<28} {:<10} {:>9} {:>5}  {:<20} {}",
            truncate(&s.id, 28),
            if s.connected { "connected" } else { "lost" },
            format!("{}/{}", s.version_applied, s.version_sent),
            s.experiments_running,
            s.last_seen.map(format_time).unwrap_or_default(),
            crate::text::printable(&labels.join(",")),
        );
        if !s.last_rejection.is_empty() {
            let _ = writeln!(out, "  └ last rejection: {}", truncate(&s.last_rejection, 160));
        }
    }
    out
}

/// `s` made printable (see [`crate::text::printable`]) and cut to `n` characters.
/// A list of experiments as JSON: always an array (`list`, `scenario start`), whatever its length.
pub fn render_list(experiments: &[v1::Experiment]) -> String {
    serde_json::to_string_pretty(experiments).unwrap_or_default()
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    let s = crate::text::printable(s);
    if s.chars().count() <= n {
        s.into_owned()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// Parses a state name for `list --state`.
pub fn parse_state(s: &str) -> Result<v1::ExperimentState, String> {
    match s.to_ascii_lowercase().as_str() {
        "pending" => Ok(v1::ExperimentState::Pending),
        "running" => Ok(v1::ExperimentState::Running),
        "completed" => Ok(v1::ExperimentState::Completed),
        "stopped" => Ok(v1::ExperimentState::Stopped),
        "aborted" => Ok(v1::ExperimentState::Aborted),
        other => Err(format!("{other:?} is not a state (pending, running, completed, stopped, aborted)")),
    }
}

fn format_time(t: pbjson_types::Timestamp) -> String {
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32);
    humantime::format_rfc3339_seconds(t).to_string()
}
