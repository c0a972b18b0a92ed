//! Property tests over the input edges: experiment YAML and protobuf, and the config loader. For any
//! input, nothing panics; every valid spec survives a round trip through YAML and the JSON mapping.

use edgefault::{
    document,
    experiment::spec::{validate_spec, Context},
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

/// A duration anywhere from 0 to the fixture's `max_duration` (1h), written as the YAML would.
fn bounded_duration() -> impl Strategy<Value = String> {
    prop_oneof![Just("0s".to_owned()), Just("1h".to_owned()), (0u64..=3_600_000).prop_map(|ms| format!("{ms}ms"))]
}

/// A duration from 1 ms to the bound, for the fields that must be longer than zero.
fn positive_duration() -> impl Strategy<Value = String> {
    prop_oneof![Just("1ms".to_owned()), Just("1h".to_owned()), (1u64..=3_600_000).prop_map(|ms| format!("{ms}ms"))]
}

/// Faults of every HTTP kind, their numbers anywhere in the range validation lets through, the edges
/// included: any number of those that let the request go on, then at most one that ends it.
fn bounded_faults() -> impl Strategy<Value = Vec<String>> {
    let d = bounded_duration;
    let rate = prop_oneof![Just(0.001f64), Just(1e9f64), 0.001f64..1e9f64];
    let big = || prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()];
    let going_on = prop_oneof![
        d().prop_map(|v| format!("{{ delay: {{ fixed: {v} }} }}")),
        (d(), d()).prop_map(|(a, b)| format!("{{ delay: {{ uniform: {{ min: 0s, max: {a} }} }}, max: {b} }}")),
        (positive_duration(), prop_oneof![Just(10.0f64), 0.0f64..=10.0], d())
            .prop_map(|(m, s, c)| format!("{{ delay: {{ lognormal: {{ median: {m}, sigma: {s} }}, max: {c} }} }}")),
        (d(), any::<bool>()).prop_map(|(v, h)| format!("{{ first_byte_delay: {{ fixed: {v} }}, head_first: {h} }}")),
        (1u64..=1_048_576, positive_duration())
            .prop_map(|(n, i)| format!("{{ drip: {{ chunk_bytes: {n}, interval: {i} }} }}")),
        (1u64..=u64::from(u32::MAX)).prop_map(|n| format!("{{ throttle: {{ bytes_per_second: {n} }} }}")),
        big().prop_map(|n| format!("{{ truncate: {{ after_bytes: {n} }} }}")),
        big().prop_map(|n| format!("{{ reset: {{ after_bytes: {n} }} }}")),
        positive_duration().prop_map(|v| format!("{{ disconnect: {{ after: {v} }} }}")),
        (1u64..1000).prop_map(|n| format!("{{ grpc_stream: {{ after_messages: {n} }} }}")),
        (1u32..1000).prop_map(|n| format!("{{ body: {{ corrupt: {{ count: {n} }} }} }}")),
    ];
    let ending = prop_oneof![
        rate.prop_map(|r| format!("{{ rate_limit: {{ requests_per_second: {r} }} }}")),
        positive_duration().prop_map(|v| format!("{{ hang: {{ duration: {v} }} }}")),
        (positive_duration(), 500u32..600)
            .prop_map(|(v, s)| format!("{{ hang: {{ duration: {v}, respond: {{ http_status: {s} }} }} }}")),
        (200u32..600).prop_map(|s| format!("{{ abort: {{ http_status: {s} }} }}")),
        Just("{ abort: { http_status: 522, page: edge } }".to_owned()),
    ];
    (prop::collection::vec(going_on, 0..5), prop::option::of(ending))
        .prop_map(|(mut f, end)| {
            f.extend(end);
            f
        })
        .prop_filter("at least one fault", |f| !f.is_empty())
}

/// Specs built at the edges of what validation accepts: any mix of fault kinds, the timelines (ramp,
/// flap, phases) with durations up to the bound, and a running time for the request to arrive at.
fn bounded_spec() -> impl Strategy<Value = String> {
    (
        bounded_faults(),
        prop::option::of(0u32..=10_000),
        prop_oneof![
            Just(String::new()),
            (0u32..=100, 0u32..=100, bounded_duration(), bounded_duration()).prop_map(|(a, b, after, over)| format!(
                "ramp: {{ from: {a}, to: {b}, after: {after}, over: {over} }}\n"
            )),
            (1u64..=3_600_000, bounded_duration())
                .prop_map(|(p, j)| format!("flap: {{ period: {p}ms, on: {}ms, jitter: {j} }}\n", p / 2)),
        ],
        any::<u64>(),
        prop_oneof![Just("+0s"), Just("+59m59s"), Just("+1h"), Just("+30m")],
    )
        .prop_map(|(faults, pct, timeline, seed, elapsed)| {
            let mut y =
                format!("name: bounds\nduration: 1h\nseed: {seed}\nfaults: [{}]\n{timeline}", faults.join(", "));
            // A ramp sets the share itself.
            if let Some(p) = pct.filter(|_| !timeline.starts_with("ramp")) {
                y += &format!("percentage: {}\n", f64::from(p) / 100.0);
            }
            format!("{y}%% 192.0.2.7 web {elapsed}\nGET /any HTTP/1.1\nHost: example.com\n\n")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a valid spec holds, at the edges of its bounds, the data plane's decision and every answer
    /// it writes stay within them: no overflow, no panic (the checks are `fuzzing::request_path`'s: delays
    /// within `max_duration` per fault and summed without overflow, holds bounded, a forwarded head that
    /// keeps `host`).
    #[test]
    fn valid_specs_never_overflow_in_the_data_plane(input in bounded_spec()) {
        let outcome = fuzzing::request_path_outcome(input.as_bytes());
        let outcome = outcome.ok_or_else(|| TestCaseError::fail(format!("not a request_path input:\n{input}")))?;
        let refused: Vec<&String> = outcome.specs.iter().filter_map(|s| s.as_ref().err()).collect();
        // Every spec here is within the bounds, so it must run: the property is about the data plane, not
        // about validation refusing it.
        prop_assert!(refused.is_empty(), "refused: {:?}\n{}", refused, input);
        prop_assert!(outcome.stage != "no route", "{}", input);
    }

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
