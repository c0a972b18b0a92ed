//! Leases: an experiment with a lease ends when its client stops renewing it; `ctl start --follow` renews
//! while it runs and stops the experiments on Ctrl-C.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::*;
use edgefault::pb::v1;
use tonic::Code;

const LEASED: &str = "name: leased\nlease: 300ms\nfaults: [{ abort: { http_status: 503 } }]\n";

fn state(proxy: &Proxy, id: &str) -> (String, String) {
    let e = proxy.server.registry().get(id).expect("kept");
    (e.state.as_str().to_owned(), e.end_reason)
}

#[tokio::test]
async fn a_lease_not_renewed_ends_the_experiment() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start(LEASED).await;
    assert!(e.lease_expires_at.is_some(), "the lease deadline is reported");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);
    assert_eventually!(state(&proxy, &e.id).0 == "aborted", "the lease runs out");
    assert_eq!(state(&proxy, &e.id).1, "lease expired");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
    let mut c = proxy.control().await;
    let late = c.renew_lease(v1::RenewLeaseRequest { id: e.id.clone() }).await.expect_err("ended");
    assert_eq!(late.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn renewals_keep_it_running_and_bad_leases_are_refused() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start(LEASED).await;
    let mut c = proxy.control().await;
    // Eight renewals 100 ms apart: well past the 300 ms lease.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = c.renew_lease(v1::RenewLeaseRequest { id: e.id.clone() }).await.expect("renewed").into_inner();
        let renewed = r.experiment.expect("experiment");
        assert_eq!(renewed.state, v1::ExperimentState::Running as i32);
        assert!(renewed.lease_expires_at.is_some());
    }
    assert_eq!(state(&proxy, &e.id).0, "running");

    let plain = proxy.start("name: plain\nfaults: [{ delay: { fixed: 1ms } }]\n").await;
    let no_lease = c.renew_lease(v1::RenewLeaseRequest { id: plain.id }).await.expect_err("no lease");
    assert_eq!(no_lease.code(), Code::FailedPrecondition);
    assert!(no_lease.message().contains("no lease"), "{}", no_lease.message());

    let short = c
        .start_experiment(v1::StartExperimentRequest {
            spec: Some(spec("name: s\nlease: 50ms\nfaults: [{ abort: {} }]\n")),
        })
        .await
        .expect_err("too short");
    assert!(short.message().contains("lease: 50ms is shorter than the minimum of 100ms"), "{}", short.message());
}

/// Runs `ctl start -f FILE --follow` and returns the child and the id it printed.
async fn follow(proxy: &Proxy) -> (std::process::Child, String) {
    let file = std::env::temp_dir().join(format!("edgefault-lease-{}-{}.yaml", std::process::id(), rand_tag()));
    std::fs::write(&file, LEASED).expect("write");
    let control = proxy.control_url.clone();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
            .args(["ctl", "--control", &control, "start", "-f", &file.display().to_string(), "--follow"])
            .env_remove("EDGEFAULT_TOKEN")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawns");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("reads the id");
        let _ = std::fs::remove_file(&file);
        (child, line.trim().to_owned())
    })
    .await
    .expect("join")
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0)
}

/// Waits until the follower has renewed the lease at least once (so it is in its loop).
async fn renewed_once(proxy: &Proxy, id: &str) {
    let first = proxy.server.registry().get(id).expect("exists").lease_expires_at;
    assert_eventually!(proxy.server.registry().get(id).expect("exists").lease_expires_at > first, "renewed");
}

#[tokio::test]
async fn ctl_follow_renews_and_stops_the_experiment_on_ctrl_c() {
    let proxy = proxy(upstream().await).await;
    let (mut child, id) = follow(&proxy).await;
    assert!(id.starts_with("exp-"), "{id:?}");
    renewed_once(&proxy, &id).await;
    // Past three leases, still running: the follower renews.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(state(&proxy, &id).0, "running");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);

    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().expect("waits")).await.expect("join");
    assert!(status.success(), "ctl exits cleanly on Ctrl-C: {status:?}");
    assert_eq!(state(&proxy, &id), ("stopped".to_owned(), "ctl --follow interrupted".to_owned()));
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
}

#[tokio::test]
async fn when_the_follower_dies_the_lease_ends_the_experiment() {
    let proxy = proxy(upstream().await).await;
    let (mut child, id) = follow(&proxy).await;
    renewed_once(&proxy, &id).await;
    child.kill().expect("SIGKILL");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert_eventually!(state(&proxy, &id).0 == "aborted", "the lease runs out");
    assert_eq!(state(&proxy, &id).1, "lease expired");
}
