//! Fleet control: one controller, sidecars with labels subscribed to it over real streams on loopback.

mod clients;
mod failsafe;
mod reach;
mod view;

use std::time::Duration;

use edgefault::pb::v1;
use tonic::transport::Channel;

use crate::support::{self, fleet, FakeUpstream, Proxy};

type Client = v1::fault_control_client::FaultControlClient<Channel>;

/// Sidecars with these (id, labels), in front of one upstream, subscribed to `controller`.
async fn sidecars(controller: &str, specs: &[(&str, &[(&str, &str)])], grace: Duration) -> Vec<(String, Proxy)> {
    let upstream = FakeUpstream::app().start().await;
    let mut out = Vec::new();
    for (id, labels) in specs {
        out.push((id.to_string(), fleet::sidecar(upstream, controller, id, labels, grace).await));
    }
    out
}

/// The ids of the sidecars that answer 503 (the fleet experiments below abort with it) and of those that
/// answer 200; panics on anything else.
async fn faulted(sidecars: &[(String, Proxy)]) -> Vec<String> {
    let http = support::client();
    let mut hit = Vec::new();
    for (id, p) in sidecars {
        let r = support::get(&http, &p.url("/")).await;
        match r.status.as_u16() {
            503 => hit.push(id.clone()),
            200 => {}
            s => panic!("{id} answered {s}"),
        }
    }
    hit.sort();
    hit
}

async fn start(c: &mut Client, yaml: &str) -> v1::Experiment {
    let e = c
        .start_experiment(v1::StartExperimentRequest { spec: Some(support::spec(yaml)) })
        .await
        .expect("StartExperiment on the controller")
        .into_inner();
    fleet::wait_settled(c, &e.id).await
}

/// A fleet experiment aborting every request with 503, on the sidecars `selector` (YAML) chooses.
fn abort_503(selector: &str) -> String {
    format!("name: fleet\nduration: 60s\nsidecars: {selector}\nfaults: [ {{ abort: {{ http_status: 503 }} }} ]\n")
}

/// Local experiments of a sidecar with this id, any state.
async fn local_ids(p: &Proxy, id: &str) -> Vec<v1::Experiment> {
    let mut c = p.control().await;
    let all = c.list_experiments(v1::ListExperimentsRequest::default()).await.expect("list").into_inner().experiments;
    all.into_iter().filter(|e| e.id == id).collect()
}
