//! Property tests over the input edges: experiment YAML and protobuf, and the config loader. For any
//! input, nothing panics; every valid spec survives a round trip through YAML and the JSON mapping.

use edgefault::{
    control::convert::{validate_spec, Context},
    document,
    experiment::Limits,
    fuzzing,
    pb::v1,
};
use proptest::prelude::*;

/// Text that looks like YAML often enough to reach past the parser.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("name: ".to_owned()),
        Just("faults: ".to_owned()),
        Just("- ".to_owned()),
        Just("abort: ".to_owned()),
        Just("delay: ".to_owned()),
        Just("{ http_status: 503 }".to_owned()),
        Just("match: ".to_owned()),
        Just("path_regex: ".to_owned()),
        Just("percentage: ".to_owned()),
        Just("duration: ".to_owned()),
        Just("listeners: ".to_owned()),
        Just("routes: ".to_owned()),
        Just("upstream: ".to_owned()),
        Just("bind: ".to_owned()),
        Just("limits: ".to_owned()),
        Just("guards: ".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("---\n".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        "[a-z0-9:./*+?()\\[\\]-]{0,12}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// Faults that let the request go on (any number, in any order), then at most one that ends it.
fn faults() -> impl Strategy<Value = Vec<String>> {
    let going_on = prop_oneof![
        (0u64..5000).prop_map(|ms| format!("{{ delay: {{ fixed: {ms}ms }} }}")),
        (1u64..100_000).prop_map(|n| format!("{{ truncate: {{ after_bytes: {n} }} }}")),
    ];
    let ending = (200u32..600).prop_map(|s| format!("{{ abort: {{ http_status: {s} }} }}"));
    (prop::collection::vec(going_on, 0..3), prop::option::of(ending))
        .prop_map(|(mut f, end)| {
            f.extend(end);
            f
        })
        .prop_filter("at least one fault", |f| !f.is_empty())
}

/// Specs that are valid by construction.
fn valid_spec() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9-]{0,30}",
        prop::option::of(0u32..=10_000),
        1u64..3600,
        faults(),
        prop::option::of(any::<u64>()),
        prop::option::of("/[a-z]{0,10}"),
        any::<bool>(),
    )
        .prop_map(|(name, pct, secs, faults, seed, prefix, dry_run)| {
            let mut y = format!("name: {name}\nduration: {secs}s\nfaults: [{}]\n", faults.join(", "));
            if let Some(p) = pct {
                y += &format!("percentage: {}\n", f64::from(p) / 100.0);
            }
            if let Some(s) = seed {
                y += &format!("seed: {s}\n");
            }
            if let Some(p) = prefix {
                y += &format!("match: {{ routes: [api], path_prefix: \"{p}\" }}\n");
            }
            if dry_run {
                y += "dry_run: true\n";
            }
            y
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_safe_as_an_experiment_or_a_config(text in prop_oneof![yamlish(), any::<String>()]) {
        fuzzing::experiment_yaml(text.as_bytes());
        fuzzing::config_yaml(text.as_bytes());
    }

    #[test]
    fn any_bytes_are_safe_as_a_protobuf_spec(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::experiment_proto(&bytes);
    }

    #[test]
    fn valid_specs_validate_and_round_trip(yaml in valid_spec()) {
        let specs = document::parse_specs(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(specs.len(), 1);
        let spec = &specs[0];
        let limits = Limits::default();
        let ctx = Context { topology: None, limits: &limits };
        prop_assert!(validate_spec(spec, &ctx).is_ok(), "{:?}", validate_spec(spec, &ctx).err());
        // Through the JSON mapping, and through YAML written from it: the same message.
        let json = serde_json::to_value(spec).expect("serializes");
        let yaml_again = serde_norway::to_string(&json).expect("YAML");
        let back: Vec<v1::ExperimentSpec> = document::parse_specs(&yaml_again).expect("reads back");
        prop_assert_eq!(&back[0], spec);
        fuzzing::experiment_yaml(yaml.as_bytes());
    }
}
