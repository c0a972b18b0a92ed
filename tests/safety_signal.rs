//! SIGUSR1 is a kill switch: every experiment ends. Alone in its file, since the signal goes to the whole
//! test process.

mod support;

use support::*;

#[cfg(unix)]
#[tokio::test]
async fn sigusr1_aborts_every_experiment() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: a\nfaults: [{ abort: { http_status: 503 } }]\n").await;
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);

    let status = std::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    assert_eventually!(
        proxy.server.registry().get(&e.id).expect("kept").state.as_str() == "aborted",
        "SIGUSR1 aborts the experiment"
    );
    assert_eq!(proxy.server.registry().get(&e.id).expect("kept").end_reason, "kill switch: SIGUSR1");
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
}
