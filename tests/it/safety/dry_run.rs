//! Dry-run experiments: matched and sampled as usual, counted, and nothing injected.

use crate::support::*;

#[tokio::test]
async fn a_dry_run_counts_what_it_would_inject_and_touches_nothing() {
    let proxy = proxy(upstream().await).await;
    let dry = proxy
        .start("name: dry\ndry_run: true\nmatch: { routes: [api] }\nfaults: [{ delay: { fixed: 10s } }, { abort: { http_status: 503 } }]\n")
        .await;
    let half = proxy
        .start("name: half\ndry_run: true\nmatch: { routes: [api] }\npercentage: 50\nseed: 7\nfaults: [{ abort: { http_status: 503 } }]\n")
        .await;
    let c = client();
    for _ in 0..200 {
        let r = get(&c, &proxy.url("/api/x")).await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"upstream ok");
    }
    assert_eq!(get(&c, &proxy.url("/other")).await.status, 200);

    let e = proxy.server.registry().get(&dry.id).expect("exists");
    assert_eq!((e.matched, e.would_inject, e.injected, e.aborted, e.delayed), (200, 200, 0, 0, 0));
    let e = proxy.server.registry().get(&half.id).expect("exists");
    assert_eq!((e.matched, e.injected), (200, 0));
    // Binomial(200, 0.5): outside 60..=140 with a chance below 1e-8.
    assert!((60..=140).contains(&e.would_inject), "{}", e.would_inject);

    // The stats travel over gRPC too.
    let mut ctl = proxy.control().await;
    let got = ctl
        .get_experiment(edgefault::pb::v1::GetExperimentRequest { id: dry.id.clone() })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.stats.expect("stats").would_inject, 200);
    assert!(got.spec.expect("spec").dry_run);
}

#[tokio::test]
async fn a_real_experiment_beside_a_dry_run_still_injects() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: dry\ndry_run: true\nfaults: [{ abort: { http_status: 500 } }]\n").await;
    let real = proxy.start("name: real\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);
    assert_eq!(proxy.server.registry().get(&real.id).expect("exists").aborted, 1);
}
