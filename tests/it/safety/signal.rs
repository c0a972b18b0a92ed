//! Signals as an orchestrator or an operator sends them, to the real binary: SIGUSR1 is a kill switch
//! (every experiment ends).

use edgefault::pb::v1;

use crate::support::*;

#[cfg(unix)]
#[tokio::test]
async fn sigusr1_aborts_every_experiment() {
    let up = upstream().await;
    let served = binary::serve(
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--upstream", &format!("http://{up}")],
        false,
    );
    let mut control =
        v1::fault_control_client::FaultControlClient::connect(served.control_url()).await.expect("control");
    let e = control
        .start_experiment(v1::StartExperimentRequest {
            spec: Some(spec("name: a\nfaults: [{ abort: { http_status: 503 } }]\n")),
        })
        .await
        .expect("starts")
        .into_inner();
    assert_eq!(get(&client(), &served.url("/")).await.status, 503);

    served.signal("USR1");

    let ended = served.wait_log("experiment ended");
    assert!(ended.contains("aborted") && ended.contains("kill switch: SIGUSR1"), "{ended}");
    let got = control.get_experiment(v1::GetExperimentRequest { id: e.id.clone() }).await.expect("get").into_inner();
    assert_eq!(got.state(), v1::ExperimentState::Aborted);
    assert_eq!(get(&client(), &served.url("/")).await.status, 200);
}
