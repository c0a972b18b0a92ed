//! Invalid specs are refused with every bad field named; nothing changes.

use crate::support::*;
use edgefault::pb::v1;

const BAD: &str = "\
name: \"\"
match:
  routes: [api, nope]
  path_regex: \"([a-z\"
  path_prefix: checkout
  methods: [\"GE T\"]
  headers: [{ name: \"bad header\", exact: x }, { name: x-ok }]
  client_cidrs: [10.0.0.0/33]
percentage: 120
duration: 3h
faults:
  - abort: { http_status: 99, grpc_status: 17 }
  - delay: { fixed: 1s }
  - {}
  - delay: { normal: { mean: 10ms, stddev: 5ms } }
";

const EXPECTED: &[&str] = &[
    "name",
    "match.routes[1]",
    "match.path_prefix",
    "match.path_regex",
    "match.methods[0]",
    "match.headers[0].name",
    "match.headers[1]",
    "match.client_cidrs[0]",
    "percentage",
    "duration",
    "faults[0].abort.http_status",
    "faults[0].abort.grpc_status",
    "faults[1]",
    "faults[2]",
    "faults[3].delay.max",
];

#[tokio::test]
async fn start_refuses_with_every_field_path() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let err = ctl.start_experiment(v1::StartExperimentRequest { spec: Some(spec(BAD)) }).await.expect_err("invalid");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    for field in EXPECTED {
        assert!(err.message().contains(&format!("{field}: ")), "{field} missing from: {}", err.message());
    }
    assert!(err.message().contains("percentage: must be between 0 and 100, got 120"));
    assert!(err.message().contains("no route named \"nope\""));
    // Nothing was started.
    let list = ctl.list_experiments(v1::ListExperimentsRequest::default()).await.expect("list").into_inner();
    assert!(list.experiments.is_empty());
    assert_eq!(get(&client(), &proxy.url("/api/x")).await.status, 200);
}

#[tokio::test]
async fn validate_lists_the_violations_as_fields() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let r = ctl
        .validate_experiment(v1::ValidateExperimentRequest { spec: Some(spec(BAD)) })
        .await
        .expect("validate")
        .into_inner();
    assert!(!r.valid);
    let fields: Vec<&str> = r.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, EXPECTED);
    assert!(r.violations.iter().all(|v| !v.description.is_empty()));

    let ok = ctl
        .validate_experiment(v1::ValidateExperimentRequest {
            spec: Some(spec("name: fine\nfaults: [{ abort: { http_status: 503 } }]\n")),
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(ok.valid && ok.violations.is_empty());
}

#[tokio::test]
async fn empty_faults_and_missing_spec_are_refused() {
    let proxy = proxy(upstream().await).await;
    let mut ctl = proxy.control().await;
    let err = ctl
        .start_experiment(v1::StartExperimentRequest { spec: Some(spec("name: nothing\n")) })
        .await
        .expect_err("no faults");
    assert!(err.message().contains("faults: at least one fault is required"), "{}", err.message());
    let err = ctl.start_experiment(v1::StartExperimentRequest { spec: None }).await.expect_err("no spec");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

/// Bounds on what one call may carry: each refused with its field, or by size before it is decoded.
#[tokio::test]
async fn oversized_input_is_refused_with_its_place() {
    let proxy = proxy(upstream().await).await;
    let mut c = proxy.control().await;
    let many = vec!["{ delay: { fixed: 1ms } }"; 257].join(", ");
    let huge_regex = format!("name: x\nmatch: {{ path_regex: \"(a|b|c|d|e|f|g|h){{5000}}\" }}\nfaults: [{many}]\n");
    let r = c
        .validate_experiment(edgefault::pb::v1::ValidateExperimentRequest { spec: Some(spec(&huge_regex)) })
        .await
        .expect("validates")
        .into_inner();
    let text: Vec<String> = r.violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
    assert!(text.iter().any(|t| t.starts_with("faults: at most 256 faults")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("match.path_regex: ") && t.contains("size limit")), "{text:?}");
    let headers = (0..300).map(|i| format!("{{ name: h{i}, present: true }}")).collect::<Vec<_>>().join(", ");
    let r = c
        .validate_experiment(edgefault::pb::v1::ValidateExperimentRequest {
            spec: Some(spec(&format!("name: x\nmatch: {{ headers: [{headers}] }}\nfaults: [{{ abort: {{}} }}]\n"))),
        })
        .await
        .expect("validates")
        .into_inner();
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert_eq!(r.violations[0].field, "match.headers");

    // Over the 4 MiB message limit: refused before decoding, and nothing started.
    let mut big = spec("name: big\nfaults: [{ abort: {} }]\n");
    big.description = "x".repeat(5 * 1024 * 1024);
    let e =
        c.start_experiment(edgefault::pb::v1::StartExperimentRequest { spec: Some(big) }).await.expect_err("too large");
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{}", e.message());
    assert!(e.message().contains("too large"), "{}", e.message());
    assert!(proxy.server.registry().list().is_empty());
}
