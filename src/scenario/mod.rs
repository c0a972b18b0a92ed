//! The scenario catalogue: named, parameterised incidents that expand into experiments.
//!
//! A scenario is a YAML document (format in docs/scenarios.md): a name, a summary, typed parameters with
//! defaults, and a list of experiment specs in which `"${param}"` stands for a parameter's value. A string
//! that is exactly one placeholder becomes the typed value (a number, a list, a duration); a placeholder
//! inside a longer string is replaced by the value's text. An experiment with `when: "${param}"` is left
//! out when the parameter is false, zero, empty, a zero duration or an empty list, and one with `unless:`
//! when it is not (a list of conditions: `when` needs all, `unless` any). Two parameters exist in every scenario:
//! `speed` multiplies each experiment's `time_scale`, and `max_percentage` caps every percentage.
//!
//! The built-ins are compiled in from `src/scenario/builtin/*.yaml`; users add theirs as YAML files in the
//! config's `scenarios_dir`, checked at startup.

mod param;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;
use serde_json::Value;

pub use param::{Param, ParamKind};

use crate::{
    document,
    experiment::spec::{self, validate_spec},
    pb::v1 as pb,
};

/// The built-in scenarios, in catalogue order.
const BUILTIN: &[(&str, &str)] = &[
    ("edge-5xx-storm.yaml", include_str!("builtin/edge-5xx-storm.yaml")),
    ("edge-flapping.yaml", include_str!("builtin/edge-flapping.yaml")),
    ("dashboard-api-outage.yaml", include_str!("builtin/dashboard-api-outage.yaml")),
    ("origin-unreachable.yaml", include_str!("builtin/origin-unreachable.yaml")),
    ("edge-latency.yaml", include_str!("builtin/edge-latency.yaml")),
    ("regional-maintenance.yaml", include_str!("builtin/regional-maintenance.yaml")),
    ("nov-18-2025-edge-outage.yaml", include_str!("builtin/nov-18-2025-edge-outage.yaml")),
    ("oct-20-2025-cloud-region-outage.yaml", include_str!("builtin/oct-20-2025-cloud-region-outage.yaml")),
    ("dec-5-2025-global-step.yaml", include_str!("builtin/dec-5-2025-global-step.yaml")),
    ("jul-2-2019-global-502.yaml", include_str!("builtin/jul-2-2019-global-502.yaml")),
    ("nov-2-2023-control-plane-outage.yaml", include_str!("builtin/nov-2-2023-control-plane-outage.yaml")),
    ("jun-21-2022-19-locations.yaml", include_str!("builtin/jun-21-2022-19-locations.yaml")),
    ("jun-12-2025-storage-dependency.yaml", include_str!("builtin/jun-12-2025-storage-dependency.yaml")),
    ("jun-8-2021-cdn-global-503.yaml", include_str!("builtin/jun-8-2021-cdn-global-503.yaml")),
    ("jul-22-2021-dns-servfail.yaml", include_str!("builtin/jul-22-2021-dns-servfail.yaml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("no scenario named {name:?}; the catalogue has: {known}")]
    NotFound { name: String, known: String },
    #[error("params.{name}: {message}")]
    Param { name: String, message: String },
    #[error("params.{name}: scenario {scenario} has no such parameter; it takes: {known}")]
    UnknownParam { scenario: String, name: String, known: String },
    #[error("{0}")]
    File(String),
    #[error("scenario {scenario}: {problems}")]
    Invalid { scenario: String, problems: String },
}

/// A scenario's experiments for one server, with what was adapted to it.
#[derive(Debug, Clone, Default)]
pub struct Expansion {
    pub specs: Vec<pb::ExperimentSpec>,
    /// What was left out, and which parameter to set to include it.
    pub warnings: Vec<String>,
    /// The template each spec came from.
    templates: Vec<usize>,
}

/// One scenario of the catalogue.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub summary: String,
    pub description: String,
    pub source: String,
    /// Declared parameters, then `speed` and `max_percentage` unless declared.
    pub params: Vec<Param>,
    /// The experiment templates, with placeholders.
    experiments: Vec<Value>,
    /// `None` for built-ins.
    pub file: Option<PathBuf>,
    /// The YAML it was read from, to place errors on a line.
    text: Arc<str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    summary: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    params: Vec<param::ParamFile>,
    experiments: Vec<Value>,
}

/// Whether a YAML value looks like a scenario rather than an experiment or a config.
pub fn looks_like_scenario(v: &Value) -> bool {
    v.get("experiments").is_some() && v.get("summary").is_some() && v.get("listeners").is_none()
}

impl Scenario {
    /// Reads a scenario document; `origin` names it in errors (`file.yaml`). Checks its parameters and
    /// that its defaults expand into valid experiments (routes and listeners unchecked, default limits).
    pub fn parse(text: &str, origin: &str, file: Option<PathBuf>) -> Result<Scenario, ScenarioError> {
        crate::document::check_yaml_bounds(text).map_err(|e| ScenarioError::File(format!("{origin}: {e}")))?;
        let raw: ScenarioFile =
            serde_norway::from_str(text).map_err(|e| ScenarioError::File(format!("{origin}: {e}")))?;
        let at = |line: Option<usize>, what: String| match line {
            Some(l) => ScenarioError::File(format!("{origin}:{l}: {what}")),
            None => ScenarioError::File(format!("{origin}: {what}")),
        };
        if raw.name.is_empty() || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(at(
                line_of_key(text, "name"),
                format!("name: {:?} must be letters, digits, '-' and '_'", raw.name),
            ));
        }
        if raw.experiments.is_empty() {
            return Err(at(line_of_key(text, "experiments"), "experiments: at least one is required".into()));
        }
        let mut params = Vec::new();
        for (i, p) in raw.params.into_iter().enumerate() {
            let name = p.name.clone();
            let param =
                Param::from_file(p).map_err(|m| at(param_line(text, i), format!("params[{i}] ({name}): {m}")))?;
            if params.iter().any(|o: &Param| o.name == param.name) {
                return Err(at(param_line(text, i), format!("params[{i}]: another parameter is named {name:?}")));
            }
            params.push(param);
        }
        for common in Param::common() {
            match params.iter().find(|p| p.name == common.name) {
                Some(p) if std::mem::discriminant(&p.kind) != std::mem::discriminant(&common.kind) => {
                    return Err(at(
                        None,
                        format!("params: {} is a common parameter of type {}", common.name, common.kind.name()),
                    ))
                }
                Some(_) => {}
                None => params.push(common),
            }
        }
        let scenario = Scenario {
            name: raw.name,
            summary: raw.summary,
            description: raw.description,
            source: raw.source,
            params,
            experiments: raw.experiments,
            file,
            text: text.into(),
        };
        let specs = scenario.expand(&BTreeMap::new()).map_err(|e| ScenarioError::File(format!("{origin}: {e}")))?;
        let limits = crate::experiment::Limits { max_duration: std::time::Duration::MAX, ..Default::default() };
        scenario
            .check(&specs, &spec::Context { topology: None, limits: &limits })
            .map_err(|e| ScenarioError::File(format!("{origin}: with its defaults: {e}")))?;
        Ok(scenario)
    }

    /// The experiments this scenario starts with `given` parameters (the defaults for the others), not yet
    /// checked against a server.
    pub fn expand(&self, given: &BTreeMap<String, String>) -> Result<Vec<pb::ExperimentSpec>, ScenarioError> {
        self.expand_for(given, None).map(|e| e.specs)
    }

    /// The experiments this scenario starts on a server with `topology`. It adapts to the server where
    /// that is safe: a route parameter left at its default (`dashboard_route: dashboard`) that names a
    /// route the server lacks leaves out the experiments it would target (their `when` is false), with a
    /// warning saying which parameter to set. A value given explicitly is never changed.
    pub fn expand_for(
        &self,
        given: &BTreeMap<String, String>,
        topology: Option<&crate::topology::Topology>,
    ) -> Result<Expansion, ScenarioError> {
        for name in given.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(ScenarioError::UnknownParam {
                    scenario: self.name.clone(),
                    name: name.clone(),
                    known: self.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
                });
            }
        }
        let mut values = BTreeMap::new();
        let mut warnings = Vec::new();
        for p in &self.params {
            let mut v = match given.get(&p.name) {
                Some(text) => p
                    .kind
                    .parse(&Value::String(text.clone()), &p.choices)
                    .map_err(|message| ScenarioError::Param { name: p.name.clone(), message })?,
                None => p.default.clone(),
            };
            if let (Some(t), false, Value::String(route)) = (topology, given.contains_key(&p.name), &v) {
                if !route.is_empty() && self.route_params().contains(&p.name.as_str()) && !t.has_route(route) {
                    warnings.push(format!(
                        "{}: this server has no route {route:?} (routes: {}), so the experiments that would target \
                         it are left out; set -p {}=ROUTE to include them",
                        p.name,
                        t.route_names().join(", "),
                        p.name
                    ));
                    v = Value::String(String::new());
                }
            }
            values.insert(p.name.clone(), v);
        }
        let speed = values.get("speed").and_then(Value::as_f64).unwrap_or(1.0);
        let cap = values.get("max_percentage").and_then(Value::as_f64).unwrap_or(100.0);
        let mut specs = Vec::new();
        let mut templates = Vec::new();
        for (i, template) in self.experiments.iter().enumerate() {
            let mut v = template.clone();
            substitute(&mut v, &values).map_err(|m| self.invalid(i, m))?;
            if let Value::Object(obj) = &mut v {
                // `when`: kept when it holds (each of them, when the template lists several); `unless`: left
                // out when it holds (any of them). A list written in the template is a list of conditions; a
                // list parameter is one condition, true when not empty.
                let listed = |key: &str| template.get(key).is_some_and(Value::is_array);
                let when = match obj.remove("when") {
                    None => true,
                    Some(Value::Array(a)) if listed("when") => a.iter().all(truthy),
                    Some(w) => truthy(&w),
                };
                let unless = match obj.remove("unless") {
                    None => false,
                    Some(Value::Array(a)) if listed("unless") => a.iter().any(truthy),
                    Some(u) => truthy(&u),
                };
                if !when || unless {
                    continue;
                }
            }
            let mut spec = document::spec_from_value(v, format!("experiments[{i}]."))
                .map_err(|e| self.invalid(i, e.to_string()))?;
            spec.time_scale = Some(spec.time_scale.unwrap_or(1.0) * speed);
            cap_percentages(&mut spec, cap);
            if spec.description.is_empty() {
                spec.description = format!("scenario {}: {}", self.name, self.summary);
            }
            specs.push(spec);
            templates.push(i);
        }
        if specs.is_empty() {
            return Err(ScenarioError::Invalid {
                scenario: self.name.clone(),
                problems: "with these parameters every experiment is left out (their `when` is false)".into(),
            });
        }
        Ok(Expansion { specs, warnings, templates })
    }

    /// The parameters that name routes: those a template's `match.routes` is made of.
    fn route_params(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for t in &self.experiments {
            let routes = t.get("match").and_then(|m| m.get("routes"));
            let items: Vec<&Value> = match routes {
                Some(Value::Array(a)) => a.iter().collect(),
                Some(v) => vec![v],
                None => Vec::new(),
            };
            for item in items {
                if let Some(name) = item.as_str().and_then(|s| s.strip_prefix("${")).and_then(|r| r.strip_suffix('}')) {
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
        out
    }

    /// Checks expanded experiments against a server's routes and limits.
    pub fn check(&self, specs: &[pb::ExperimentSpec], ctx: &spec::Context<'_>) -> Result<(), ScenarioError> {
        let problems = self.problems(specs, None, ctx);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Invalid { scenario: self.name.clone(), problems: problems.join("; ") })
        }
    }

    /// The problems of an expansion on a server; a route the server lacks names the parameter to set.
    pub fn problems_of(&self, e: &Expansion, ctx: &spec::Context<'_>) -> Vec<String> {
        self.problems(&e.specs, Some(&e.templates), ctx)
    }

    /// Checks an expansion against a server; a route the server lacks names the parameter to set.
    pub fn check_expansion(&self, e: &Expansion, ctx: &spec::Context<'_>) -> Result<(), ScenarioError> {
        let problems = self.problems_of(e, ctx);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Invalid { scenario: self.name.clone(), problems: problems.join("; ") })
        }
    }

    /// Every problem of `specs` on a server, each with its place; `templates`: the template each came from.
    fn problems(
        &self,
        specs: &[pb::ExperimentSpec],
        templates: Option<&[usize]>,
        ctx: &spec::Context<'_>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let Err(v) = validate_spec(spec, ctx) else { continue };
            let template = templates.and_then(|t| t.get(i)).and_then(|t| self.experiments.get(*t));
            for v in v.0 {
                let hint = if v.field.starts_with("match.routes") {
                    self.route_param_of(template).map(|p| format!(" (set it with -p {p}=ROUTE)")).unwrap_or_default()
                } else {
                    String::new()
                };
                problems.push(format!("experiments[{i}] ({}).{}: {}{hint}", spec.name, v.field, v.description));
            }
        }
        problems
    }

    /// The parameter a template's routes come from, if one.
    fn route_param_of<'t>(&self, template: Option<&'t Value>) -> Option<&'t str> {
        let routes = template?.get("match")?.get("routes")?;
        let one = match routes {
            Value::Array(a) => a.iter().find_map(|v| v.as_str().filter(|s| s.starts_with("${")))?,
            v => v.as_str()?,
        };
        one.strip_prefix("${")?.strip_suffix('}')
    }

    fn invalid(&self, i: usize, message: String) -> ScenarioError {
        let line = experiment_line(&self.text, i).map(|l| format!("line {l}: ")).unwrap_or_default();
        ScenarioError::Invalid { scenario: self.name.clone(), problems: format!("{line}{message}") }
    }

    pub fn to_proto(&self) -> pb::Scenario {
        pb::Scenario {
            name: self.name.clone(),
            summary: self.summary.clone(),
            description: self.description.clone(),
            source: self.source.clone(),
            params: self.params.iter().map(Param::to_proto).collect(),
            builtin: self.file.is_none(),
            file: self.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default(),
        }
    }
}

/// Replaces every `${name}` in the strings of `v`.
fn substitute(v: &mut Value, values: &BTreeMap<String, Value>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')).filter(|n| !n.contains('}')) {
                *v = values.get(name).cloned().ok_or_else(|| unknown(name, values))?;
                return Ok(());
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(at) = rest.find("${") {
                out.push_str(&rest[..at]);
                let after = &rest[at + 2..];
                let end = after.find('}').ok_or_else(|| format!("{s:?}: \"${{\" without a closing \"}}\""))?;
                let name = &after[..end];
                out.push_str(&param::text(values.get(name).ok_or_else(|| unknown(name, values))?));
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| substitute(i, values)),
        Value::Object(obj) => obj.values_mut().try_for_each(|i| substitute(i, values)),
        _ => Ok(()),
    }
}

fn unknown(name: &str, values: &BTreeMap<String, Value>) -> String {
    format!(
        "${{{name}}} names no parameter (parameters: {})",
        values.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    )
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => {
            !s.is_empty() && s != "false" && humantime::parse_duration(s.trim()).map_or(true, |d| !d.is_zero())
        }
        Value::Array(a) => !a.is_empty(),
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Lowers every percentage of a spec (its own, its phases', its ramps') to at most `cap`.
fn cap_percentages(spec: &mut pb::ExperimentSpec, cap: f64) {
    if cap >= 100.0 {
        return;
    }
    let low = |p: &mut f64| *p = p.min(cap);
    spec.percentage = Some(spec.percentage.unwrap_or(100.0).min(cap));
    if let Some(r) = &mut spec.ramp {
        low(&mut r.from);
        low(&mut r.to);
        spec.percentage = None;
    }
    for p in &mut spec.phases {
        if let Some(pct) = &mut p.percentage {
            low(pct);
        }
        if let Some(r) = &mut p.ramp {
            low(&mut r.from);
            low(&mut r.to);
        }
    }
}

/// The 1-based line of a top-level key.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| l.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':'))).map(|i| i + 1)
}

/// The 1-based line where item `index` of a top-level block list `key` begins.
fn item_line(text: &str, key: &str, index: usize) -> Option<usize> {
    let start = line_of_key(text, key)?;
    let mut indent = None;
    let mut seen = 0;
    for (i, line) in text.lines().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let this = line.len() - trimmed.len();
        if this == 0 && !trimmed.starts_with('-') {
            break;
        }
        if trimmed.starts_with('-') && indent.is_none_or(|n| n == this) {
            indent = Some(this);
            if seen == index {
                return Some(i + 1);
            }
            seen += 1;
        }
    }
    Some(start)
}

fn experiment_line(text: &str, index: usize) -> Option<usize> {
    item_line(text, "experiments", index)
}

fn param_line(text: &str, index: usize) -> Option<usize> {
    item_line(text, "params", index)
}

/// The built-in scenarios and those of the config's `scenarios_dir`.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    scenarios: Vec<Arc<Scenario>>,
}

impl Catalogue {
    /// The built-ins. They are checked by the test suite; one that fails to parse is left out and logged.
    pub fn builtin() -> Catalogue {
        let mut scenarios = Vec::new();
        for (file, text) in BUILTIN {
            match Scenario::parse(text, &format!("built-in {file}"), None) {
                Ok(s) => scenarios.push(Arc::new(s)),
                Err(e) => tracing::error!(error = %e, "built-in scenario left out"),
            }
        }
        Catalogue { scenarios }
    }

    /// The built-ins, then every `*.yaml`/`*.yml` of `dir` in name order. Every problem is reported, with
    /// its file and line.
    pub fn with_dir(dir: &Path) -> Result<Catalogue, Vec<String>> {
        let mut catalogue = Catalogue::builtin();
        let mut problems = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return Err(vec![format!("scenarios_dir: cannot read {}: {e}", dir.display())]),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for path in files {
            let origin = path.display().to_string();
            let text = match crate::document::read_text(&path) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{origin}: cannot read it: {e}"));
                    continue;
                }
            };
            match Scenario::parse(&text, &origin, Some(path.clone())) {
                Ok(s) if catalogue.get(&s.name).is_some() => {
                    problems.push(format!("{origin}: a scenario named {:?} already exists", s.name))
                }
                Ok(s) => catalogue.scenarios.push(Arc::new(s)),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            Ok(catalogue)
        } else {
            Err(problems)
        }
    }

    pub fn list(&self) -> &[Arc<Scenario>] {
        &self.scenarios
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Scenario>> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// The scenario, or an error naming the catalogue's scenarios.
    pub fn find(&self, name: &str) -> Result<&Arc<Scenario>, ScenarioError> {
        self.get(name).ok_or_else(|| ScenarioError::NotFound {
            name: name.to_owned(),
            known: self.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn every_builtin_parses_and_expands_with_its_defaults() {
        let c = Catalogue::builtin();
        assert_eq!(c.list().len(), BUILTIN.len(), "every built-in parses");
        let topology = Topology::new(vec![("web".into(), vec!["api".into(), "dashboard".into(), "default".into()])]);
        let limits = crate::experiment::Limits::default();
        for s in c.list() {
            let specs = s.expand(&BTreeMap::new()).expect("expands");
            s.check(&specs, &spec::Context { topology: Some(&topology), limits: &limits })
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
    }

    #[test]
    fn parameters_are_typed_and_checked() {
        let c = Catalogue::builtin();
        let s = c.find("edge-5xx-storm").expect("built-in");
        let with = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let e = s.expand(&with("percentage", "150")).expect_err("over 100");
        assert_eq!(e.to_string(), "params.percentage: must be between 0 and 100, got 150");
        let e = s.expand(&with("duration", "soon")).expect_err("not a duration");
        assert!(e.to_string().starts_with("params.duration: "), "{e}");
        let e = s.expand(&with("sped", "2")).expect_err("unknown");
        assert!(e.to_string().starts_with("params.sped: scenario edge-5xx-storm has no such parameter"), "{e}");
        let e = s.expand(&with("speed", "0")).expect_err("speed 0");
        assert!(e.to_string().starts_with("params.speed: "), "{e}");
        let specs = s.expand(&with("routes", "api, dashboard")).expect("list");
        let m = specs[0].r#match.clone().unwrap_or_default();
        assert_eq!(m.routes, ["api", "dashboard"]);
        let specs = s.expand(&with("max_percentage", "10")).expect("cap");
        assert_eq!(specs[0].percentage, Some(10.0));
        let specs = s.expand(&with("speed", "60")).expect("speed");
        assert_eq!(specs[0].time_scale, Some(60.0));

        // The cap reaches phases and ramps; a replay's own speed multiplies.
        let replay = c.find("nov-18-2025-edge-outage").expect("built-in");
        let specs = replay.expand(&with("max_percentage", "5")).expect("cap");
        for spec in &specs {
            assert!(spec.percentage.is_some_and(|p| p <= 5.0), "{}", spec.name);
            for p in &spec.phases {
                assert!(p.percentage.is_none_or(|v| v <= 5.0), "{}/{}", spec.name, p.name);
                assert!(p.ramp.as_ref().is_none_or(|r| r.from <= 5.0 && r.to <= 5.0), "{}/{}", spec.name, p.name);
            }
        }
        assert_eq!(replay.expand(&BTreeMap::new()).expect("defaults")[0].time_scale, Some(10.0));
    }

    #[test]
    fn user_scenarios_report_file_and_line() {
        let text = "name: mine\nsummary: x\nparams:\n  - { name: pct, type: percentage, default: 10 }\n  - { name: n, type: nonsense, default: 1 }\nexperiments:\n  - name: a\n    faults: [{ abort: {} }]\n";
        let e = Scenario::parse(text, "mine.yaml", None).expect_err("bad type");
        assert!(e.to_string().starts_with("mine.yaml:5: params[1] (n): "), "{e}");
        let text = "name: mine\nsummary: x\nexperiments:\n  - name: a\n    faults: [{ abort: {} }]\n  - name: b\n    percentage: 120\n    faults: [{ abort: {} }]\n";
        let e = Scenario::parse(text, "mine.yaml", None).expect_err("bad percentage");
        assert!(e.to_string().contains("experiments[1] (b).percentage: must be between 0 and 100"), "{e}");
        let text = "name: mine\nsummary: x\nexperiments:\n  - name: a\n    percentage: \"${pct}\"\n    faults: [{ abort: {} }]\n";
        let e = Scenario::parse(text, "mine.yaml", None).expect_err("unknown placeholder");
        assert!(e.to_string().contains("line 4: ${pct} names no parameter"), "{e}");
        let e = Scenario::parse("name: mine\nsumary: x\n", "mine.yaml", None).expect_err("unknown key");
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
