//! `/metrics`: the text parses, and the counters match the traffic sent.

use std::collections::HashMap;

use crate::support::*;

/// Parses the OpenMetrics text: every sample line is `name{labels} value`, and the text ends with `# EOF`.
fn parse(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(samples.insert(series.to_owned(), value).is_none(), "duplicate series {series}");
    }
    samples
}

#[tokio::test]
async fn metrics_parse_and_match_the_traffic() {
    let up = upstream().await;
    let dead = closed_port().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{up}\" }}\n      - {{ name: broken, path_prefix: /broken/, upstream: \"http://{dead}\" }}\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nadmin: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await;
    let admin = proxy.server.admin_addr().expect("admin");
    let abort =
        proxy.start("name: api-503\nmatch: { routes: [api] }\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    let delay =
        proxy.start("name: slow-home\nmatch: { path_exact: /home }\nfaults: [{ delay: { fixed: 20ms } }]\n").await;
    proxy.start("name: rehearsal\ndry_run: true\nmatch: { routes: [default] }\nfaults: [{ abort: {} }]\n").await;

    let c = client();
    for _ in 0..7 {
        assert_eq!(get(&c, &proxy.url("/api/x")).await.status, 503);
    }
    for _ in 0..3 {
        assert_eq!(get(&c, &proxy.url("/home")).await.status, 200);
    }
    for _ in 0..5 {
        assert_eq!(get(&c, &proxy.url("/other")).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(&c, &proxy.url("/broken/x")).await.status, 502);
    }

    let text = String::from_utf8(get(&c, &format!("http://{admin}/metrics")).await.body.to_vec()).expect("utf-8");
    let m = parse(&text);
    let v = |series: &str| *m.get(series).unwrap_or_else(|| panic!("{series} missing in:\n{text}"));

    assert_eq!(v(r#"edgefault_requests_total{listener="web",route="api",outcome="injected"}"#), 7.0);
    assert_eq!(v(r#"edgefault_requests_total{listener="web",route="default",outcome="injected"}"#), 3.0);
    assert_eq!(v(r#"edgefault_requests_total{listener="web",route="default",outcome="passed"}"#), 5.0);
    assert_eq!(v(r#"edgefault_requests_total{listener="web",route="broken",outcome="upstream_error"}"#), 2.0);

    let injected = |id: &str, name: &str, kind: &str| {
        v(&format!(r#"edgefault_faults_injected_total{{experiment="{id}",name="{name}",kind="{kind}"}}"#))
    };
    assert_eq!(injected(&abort.id, "api-503", "abort"), 7.0);
    assert_eq!(injected(&abort.id, "api-503", "delay"), 0.0);
    assert_eq!(injected(&delay.id, "slow-home", "delay"), 3.0);
    let would: f64 =
        m.iter().filter(|(k, _)| k.starts_with("edgefault_dry_run_would_inject_total{")).map(|(_, v)| v).sum();
    assert_eq!(would, 8.0, "the dry run selected every request of route default");

    assert_eq!(v(r#"edgefault_injected_delay_seconds_count{listener="web",route="default"}"#), 3.0);
    let delay_sum = v(r#"edgefault_injected_delay_seconds_sum{listener="web",route="default"}"#);
    assert!((delay_sum - 0.06).abs() < 1e-9, "{delay_sum}");
    assert_eq!(v(r#"edgefault_injected_delay_seconds_bucket{le="0.032",listener="web",route="default"}"#), 3.0);
    // Answers from the upstream: 3 delayed-then-forwarded and 5 passed on default; none on api (aborted).
    assert_eq!(v(r#"edgefault_upstream_duration_seconds_count{listener="web",route="default"}"#), 8.0);
    assert_eq!(v(r#"edgefault_upstream_duration_seconds_count{listener="web",route="api"}"#), 0.0);
    assert_eq!(v(r#"edgefault_upstream_duration_seconds_count{listener="web",route="broken"}"#), 0.0);

    assert_eq!(v("edgefault_experiments_running"), 3.0);
    assert_eq!(v(&format!(r#"edgefault_experiment_running{{experiment="{}",name="api-503"}}"#, abort.id)), 1.0);
    assert_eq!(v("edgefault_faults_active"), 0.0);
    assert_eq!(v("edgefault_faults_overflow_total"), 0.0);
}
