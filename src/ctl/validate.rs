//! `edgefault validate`: a config or an experiment file checked the way `serve` and the control service
//! would check it.

use std::path::Path;

use super::{list_problem, CtlError};
use crate::{
    config::{self, Config, Overrides},
    document,
    experiment::spec::{self, validate_spec},
    scenario,
};

/// `edgefault validate FILE [--config CONFIG]`: checks a config file, or an experiment file (against the
/// routes and limits of CONFIG when given), with `overrides` applied as `serve` would (the environment's
/// token). Returns a one-line summary.
pub fn validate_file(
    path: &Path,
    config: Option<&Path>,
    force_config: bool,
    overrides: &Overrides,
) -> Result<String, CtlError> {
    let text = crate::document::read_text(path)
        .map_err(|e| CtlError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let docs =
        document::parse_yaml_documents(&text).map_err(|e| CtlError::Invalid(format!("{}: {e}", path.display())))?;
    let only = match docs.as_slice() {
        [one] => Some(one),
        _ => None,
    };
    if !force_config && only.is_some_and(scenario::looks_like_scenario) {
        return validate_scenario(path, &text, config, overrides);
    }
    let is_config = force_config || only.is_some_and(config::looks_like_config);
    if is_config {
        let c = Config::from_yaml(&text, &path.display().to_string(), overrides)
            .map_err(|e| CtlError::Invalid(e.to_string()))?;
        let routes: usize = c.listeners.iter().map(|l| l.routes.len()).sum();
        return Ok(format!(
            "ok: {}: config with {} listener(s), {routes} route(s), {} boot experiment(s)",
            path.display(),
            c.listeners.len() + c.tcp_listeners.len(),
            c.experiments.len()
        ));
    }
    let server = match config {
        Some(c) => Some(Config::load(c, overrides).map_err(|e| CtlError::Invalid(e.to_string()))?),
        None => None,
    };
    let topology = server.as_ref().map(Config::topology);
    let limits = server.as_ref().map(|c| c.limits.clone()).unwrap_or_default();
    let specs = document::parse_specs(&text).map_err(|e| CtlError::Invalid(format!("{}: {e}", path.display())))?;
    let ctx = spec::Context { topology: topology.as_ref(), limits: &limits };
    let mut problems = String::new();
    for (i, spec) in specs.iter().enumerate() {
        if let Err(v) = validate_spec(spec, &ctx) {
            for v in v.0 {
                list_problem(&mut problems, specs.len(), i, &v.field, &v.description);
            }
        }
    }
    if !problems.is_empty() {
        return Err(CtlError::Invalid(format!("{}: invalid experiment:{problems}", path.display())));
    }
    let note =
        if config.is_none() { " (route and listener names not checked: pass --config to check them)" } else { "" };
    Ok(format!("ok: {}: {} experiment(s){note}", path.display(), specs.len()))
}

/// `edgefault validate SCENARIO.yaml [--config CONFIG]`: the scenario's format and parameters, and its
/// experiments with the default parameters (against CONFIG's routes and limits when given).
fn validate_scenario(
    path: &Path,
    text: &str,
    config: Option<&Path>,
    overrides: &Overrides,
) -> Result<String, CtlError> {
    let origin = path.display().to_string();
    let s = scenario::Scenario::parse(text, &origin, Some(path.to_owned()))
        .map_err(|e| CtlError::Invalid(e.to_string()))?;
    let specs = s.expand(&Default::default()).map_err(|e| CtlError::Invalid(format!("{origin}: {e}")))?;
    if let Some(c) = config {
        let server = Config::load(c, overrides).map_err(|e| CtlError::Invalid(e.to_string()))?;
        let topology = server.topology();
        let ctx = spec::Context { topology: Some(&topology), limits: &server.limits };
        s.check(&specs, &ctx).map_err(|e| CtlError::Invalid(format!("{origin}: with its defaults: {e}")))?;
    }
    Ok(format!(
        "ok: {origin}: scenario {} with {} parameter(s), {} experiment(s) with its defaults",
        s.name,
        s.params.len(),
        specs.len()
    ))
}
