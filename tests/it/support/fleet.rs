//! A controller and sidecars subscribed to it, all in this process, over real streams on 127.0.0.1.

use std::{net::SocketAddr, time::Duration};

use edgefault::{
    app::Controller,
    config::{ControllerConfig, Overrides},
    fleet::sidecar::SidecarOptions,
    pb::v1::{self, fault_control_client::FaultControlClient},
};
use tonic::transport::Channel;

use super::Proxy;

/// Starts a controller on `addr` (port 0: any).
pub async fn controller_on(addr: SocketAddr) -> Controller {
    let o = Overrides { control: Some(addr.to_string()), ..Overrides::default() };
    let config = ControllerConfig::load(None, &o).expect("controller config");
    Controller::start(config).await.expect("controller starts")
}

pub async fn controller() -> Controller {
    controller_on("127.0.0.1:0".parse().expect("addr")).await
}

pub fn url(c: &Controller) -> String {
    format!("http://{}", c.control_addr())
}

pub async fn client(c: &Controller) -> FaultControlClient<Channel> {
    FaultControlClient::connect(url(c)).await.expect("controller client")
}

pub fn options(controller: &str, id: &str, labels: &[(&str, &str)], grace: Duration) -> SidecarOptions {
    SidecarOptions {
        controller: controller.to_owned(),
        id: id.to_owned(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        grace,
        token: None,
        tls: None,
        report_interval: Duration::from_millis(100),
        keepalive: Duration::from_secs(10),
    }
}

/// A standard proxy (routes api, dashboard, default) in front of `upstream`, subscribed to `controller`.
pub async fn sidecar(
    upstream: SocketAddr,
    controller: &str,
    id: &str,
    labels: &[(&str, &str)],
    grace: Duration,
) -> Proxy {
    let mut p = super::proxy(upstream).await;
    p.server.join_fleet(options(controller, id, labels, grace));
    p
}

/// Waits until the controller lists `n` connected sidecars.
pub async fn wait_connected(c: &mut FaultControlClient<Channel>, n: usize) -> Vec<v1::Sidecar> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = c.list_sidecars(v1::ListSidecarsRequest {}).await.expect("ListSidecars").into_inner().sidecars;
        if list.iter().filter(|s| s.connected).count() == n {
            return list;
        }
        assert!(std::time::Instant::now() < deadline, "{n} sidecars never connected: {list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every target of fleet experiment `id` is past SENT (applied, rejected, …), and returns it.
pub async fn wait_settled(c: &mut FaultControlClient<Channel>, id: &str) -> v1::Experiment {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = c.get_experiment(v1::GetExperimentRequest { id: id.into() }).await.expect("get").into_inner();
        if e.sidecars.iter().all(|t| t.state != v1::SidecarTargetState::Sent as i32) {
            return e;
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {e:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ids of an experiment's targets in `state`, sorted.
pub fn targets(e: &v1::Experiment, state: v1::SidecarTargetState) -> Vec<String> {
    let mut ids: Vec<String> =
        e.sidecars.iter().filter(|t| t.state == state as i32).map(|t| t.sidecar_id.clone()).collect();
    ids.sort();
    ids
}

/// Starts a controller on any port with an admin port (the console), the tokens file `tokens` and the
/// audit log `audit`.
pub async fn controller_with_console(tokens: &std::path::Path, audit: &std::path::Path) -> Controller {
    let o = Overrides {
        control: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        tokens_file: Some(tokens.to_path_buf()),
        audit: Some(audit.to_path_buf()),
        ..Overrides::default()
    };
    let config = ControllerConfig::load(None, &o).expect("controller config");
    Controller::start(config).await.expect("controller starts")
}
