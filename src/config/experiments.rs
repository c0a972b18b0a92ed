//! `experiments:`: experiments started at boot, each read as an experiment file's document is and
//! validated once, here, against the config's own listeners, pages and limits.

use serde_json::Value;

use crate::{
    document::{self, DocumentError},
    experiment::{
        spec::{self, validate_spec},
        ExperimentDef, Limits,
    },
    pb::v1::ExperimentSpec,
    topology::Topology,
};

/// An experiment of the config, validated: what the control plane would start for it.
#[derive(Debug, Clone)]
pub struct BootExperiment {
    pub spec: ExperimentSpec,
    pub def: ExperimentDef,
}

pub(super) fn validate(
    values: Vec<Value>,
    topology: &Topology,
    limits: &Limits,
    problems: &mut Vec<String>,
) -> Vec<BootExperiment> {
    let ctx = spec::Context { topology: Some(topology), limits };
    let mut experiments = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        match document::spec_from_value(v, format!("experiments[{i}].")) {
            Ok(spec) => match validate_spec(&spec, &ctx) {
                Ok(def) => experiments.push(BootExperiment { spec, def }),
                Err(v) => {
                    problems.extend(v.0.into_iter().map(|v| format!("experiments[{i}].{}: {}", v.field, v.description)))
                }
            },
            Err(DocumentError::Field { path, message }) => problems.push(format!("{path}: {message}")),
            Err(e) => problems.push(format!("experiments[{i}]: {e}")),
        }
    }
    experiments
}
