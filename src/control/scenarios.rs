//! The scenario RPCs of `FaultControl`: ListScenarios, GetScenario, StartScenario.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::{
    proto::to_proto,
    service::{Audited, Call, FaultControlService},
};
use crate::{
    experiment::{
        spec::{validate_spec, Context},
        Registry,
    },
    pb::v1,
    scenario::{Catalogue, ScenarioError},
};

impl From<ScenarioError> for Status {
    fn from(e: ScenarioError) -> Self {
        match e {
            ScenarioError::NotFound { .. } => Status::not_found(e.to_string()),
            ScenarioError::Param { .. } | ScenarioError::UnknownParam { .. } | ScenarioError::Invalid { .. } => {
                Status::invalid_argument(e.to_string())
            }
            ScenarioError::File(_) => Status::internal(e.to_string()),
        }
    }
}

/// ListScenarios, on a sidecar or the controller.
pub fn list(scenarios: &Catalogue) -> v1::ListScenariosResponse {
    v1::ListScenariosResponse { scenarios: scenarios.list().iter().map(|s| s.to_proto()).collect() }
}

/// GetScenario: the scenario, and its experiments expanded for `ctx` (a sidecar's topology and limits, or
/// the controller's limits alone). Shown whatever the server would say to it: its problems come as
/// warnings.
pub fn get(
    scenarios: &Catalogue,
    r: v1::GetScenarioRequest,
    ctx: &Context<'_>,
) -> Result<v1::GetScenarioResponse, Status> {
    let params: BTreeMap<String, String> = r.params.into_iter().collect();
    let scenario = scenarios.find(&r.name)?;
    let expansion = scenario.expand_for(&params, ctx.topology)?;
    let mut warnings = expansion.warnings.clone();
    warnings
        .extend(scenario.problems_of(&expansion, ctx).into_iter().map(|p| format!("StartScenario would refuse: {p}")));
    Ok(v1::GetScenarioResponse { scenario: Some(scenario.to_proto()), experiments: expansion.specs, warnings })
}

/// Starts checked experiments in order with `start`; if one cannot start, those started are stopped again
/// with `stop` and its error is returned: a scenario starts whole or not at all.
pub fn start_all<T>(
    items: impl IntoIterator<Item = T>,
    mut start: impl FnMut(T) -> Result<v1::Experiment, Status>,
    mut stop: impl FnMut(&str, &str),
) -> Result<Vec<v1::Experiment>, Status> {
    let mut started: Vec<v1::Experiment> = Vec::new();
    for item in items {
        match start(item) {
            Ok(e) => started.push(e),
            Err(e) => {
                for s in &started {
                    stop(&s.id, "its scenario could not start every experiment");
                }
                return Err(e);
            }
        }
    }
    Ok(started)
}

impl FaultControlService {
    pub(super) fn list_scenarios_rpc(
        &self,
        _req: Request<v1::ListScenariosRequest>,
    ) -> Result<Response<v1::ListScenariosResponse>, Status> {
        Ok(Response::new(list(&self.scenarios)))
    }

    pub(super) fn get_scenario_rpc(
        &self,
        req: Request<v1::GetScenarioRequest>,
    ) -> Result<Response<v1::GetScenarioResponse>, Status> {
        let limits = self.registry.limits();
        let topology = self.registry.topology();
        let ctx = Context { topology: Some(&topology), limits: &limits };
        Ok(Response::new(get(&self.scenarios, req.into_inner(), &ctx)?))
    }

    /// Expands and checks every experiment first; then starts them in order. If one cannot start (the
    /// server's limit on active experiments), those already started are stopped again.
    pub(super) fn start_scenario_rpc(
        &self,
        req: Request<v1::StartScenarioRequest>,
    ) -> Result<Response<v1::StartScenarioResponse>, Status> {
        let call = Call::of(&req);
        let r = req.into_inner();
        let result = match r.sidecars {
            Some(_) => {
                let v = super::service::no_selector_here("sidecars");
                Err(Status::invalid_argument(format!("{}: {}", v.field, v.description)))
            }
            None => self.start_scenario_inner(&r.name, r.params.into_iter().collect()),
        };
        let reason = format!("scenario {}", r.name);
        let experiments = result.as_ref().map(|(v, _)| v.iter().map(|e| e.id.clone()).collect()).unwrap_or_default();
        self.audit(&call, "StartScenario", Audited { experiments, reason: &reason, ..Audited::default() }, &result);
        let (experiments, warnings) = result?;
        tracing::info!(peer = %call.peer, caller = %call.caller, scenario = %r.name, experiments = experiments.len(), "StartScenario");
        Ok(Response::new(v1::StartScenarioResponse { experiments, warnings }))
    }

    fn start_scenario_inner(
        &self,
        name: &str,
        params: BTreeMap<String, String>,
    ) -> Result<(Vec<v1::Experiment>, Vec<String>), Status> {
        start(&self.scenarios, &self.registry, name, &params)
    }
}

/// StartScenario on a sidecar (the RPC and the admin port's console): expands and checks every experiment
/// of the scenario `name` with `params` first, then starts them in order; if one cannot start (the
/// server's limit on active experiments), those already started are stopped again. The experiments
/// started, and what the expansion left out.
pub fn start(
    scenarios: &Catalogue,
    registry: &Registry,
    name: &str,
    params: &BTreeMap<String, String>,
) -> Result<(Vec<v1::Experiment>, Vec<String>), Status> {
    let scenario = scenarios.find(name)?;
    let topology = registry.topology();
    let expansion = scenario.expand_for(params, Some(&topology))?;
    let limits = registry.limits();
    let ctx = Context { topology: Some(&topology), limits: &limits };
    scenario.check_expansion(&expansion, &ctx)?;
    let warnings = expansion.warnings;
    let specs = expansion.specs;
    let mut defs = Vec::with_capacity(specs.len());
    for spec in &specs {
        defs.push(validate_spec(spec, &ctx).map_err(Status::from)?);
    }
    let started = start_all(
        specs.into_iter().zip(defs),
        |(spec, def)| registry.start(spec, def).map(to_proto).map_err(Status::from),
        |id, why| {
            let _ = registry.stop(id, why);
        },
    )?;
    Ok((started, warnings))
}
