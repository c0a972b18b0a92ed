//! A small Rust client of the control service: starts an experiment, watches its counters, stops it.
//!
//! ```sh
//! edgefault serve --upstream http://127.0.0.1:3000 &
//! cargo run --example client -- http://127.0.0.1:7070
//! ```

use std::time::Duration;

use edgefault::{
    document,
    pb::v1::{
        fault_control_client::FaultControlClient, GetExperimentRequest, StartExperimentRequest, StopExperimentRequest,
    },
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let control = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:7070".into());
    let mut client = FaultControlClient::connect(control).await?;

    // The same YAML an experiment file holds; a spec can also be built field by field.
    let spec = document::parse_specs(
        "name: client-example\npercentage: 25\nduration: 1m\nfaults: [{ abort: { http_status: 503 } }]\n",
    )?
    .remove(0);
    let experiment = client.start_experiment(StartExperimentRequest { spec: Some(spec) }).await?.into_inner();
    println!("started {}", experiment.id);

    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let e = client.get_experiment(GetExperimentRequest { id: experiment.id.clone() }).await?.into_inner();
        let s = e.stats.unwrap_or_default();
        println!("matched {:>6}  injected {:>6}", s.matched, s.injected);
    }

    let e = client
        .stop_experiment(StopExperimentRequest { id: experiment.id, reason: "example done".into() })
        .await?
        .into_inner();
    println!("stopped: state {:?}, injected {}", e.state(), e.stats.unwrap_or_default().injected);
    Ok(())
}
