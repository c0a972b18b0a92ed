//! The bodies of the fuzz targets (`fuzz/`), in the library so that a normal test runs them over the seed
//! corpus (`tests/fuzz_corpus.rs`) and the property tests call them too. Each takes any bytes and must
//! never panic; a panic is a bug (an `assert!` here states a rule that must hold for every input).

use crate::{
    config::{Config, Overrides, Topology},
    control::convert::{validate_spec, Context},
    document,
    experiment::Limits,
};

/// An experiment file: YAML parsing, then validation against a small topology and the default limits.
/// A spec that validates must survive a round trip through the protobuf JSON mapping unchanged, and
/// validate again.
pub fn experiment_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(specs) = document::parse_specs(text) else { return };
    let topology = Topology::new(vec![("web".into(), vec!["api".into(), "default".into()])]);
    let limits = Limits::default();
    let ctx = Context { topology: Some(&topology), limits: &limits };
    for spec in specs {
        if validate_spec(&spec, &ctx).is_err() {
            continue;
        }
        // A fuzz target reports a broken invariant by panicking: these are its findings, not error handling.
        #[allow(clippy::expect_used, reason = "the fuzz target's assertions")]
        let json = serde_json::to_value(&spec).expect("a valid spec serializes");
        #[allow(clippy::expect_used, reason = "the fuzz target's assertions")]
        let back = document::spec_from_value(json, String::new()).expect("a valid spec reads back");
        assert_eq!(back, spec, "the round trip through the JSON mapping changed the spec");
        assert!(validate_spec(&back, &ctx).is_ok(), "a spec read back is valid again");
    }
}

/// A config file: parsed and checked as `edgefault serve --config` would (no port is bound).
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::from_yaml(text, "fuzz", &Overrides::default());
}

/// A StartExperiment request body: protobuf bytes, decoded and validated.
pub fn experiment_proto(data: &[u8]) {
    use prost::Message;
    let Ok(spec) = crate::pb::v1::ExperimentSpec::decode(data) else { return };
    let limits = Limits::default();
    let _ = validate_spec(&spec, &Context { topology: None, limits: &limits });
}
