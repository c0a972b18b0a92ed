//! `edgefault.v1.FaultControl`: validation at the boundary, then the registry.

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::convert::{validate_spec, Context, Violations};
use crate::{
    experiment::{ExperimentInfo, Registry, RegistryError, State},
    pb::{
        self,
        v1::{self as v1, fault_control_server::FaultControl},
    },
};

pub struct FaultControlService {
    registry: Arc<Registry>,
}

impl FaultControlService {
    pub fn new(registry: Arc<Registry>) -> Self {
        FaultControlService { registry }
    }

    fn validate(&self, spec: &v1::ExperimentSpec) -> Result<crate::experiment::ExperimentDef, Violations> {
        let ctx = Context { topology: Some(self.registry.topology()), limits: self.registry.limits() };
        validate_spec(spec, &ctx)
    }
}

fn peer(req: &Request<impl Sized>) -> String {
    req.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "unknown".into())
}

impl From<RegistryError> for Status {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(..) => Status::not_found(e.to_string()),
            RegistryError::AlreadyEnded { .. } => Status::failed_precondition(e.to_string()),
            RegistryError::TooMany(_) => Status::resource_exhausted(e.to_string()),
        }
    }
}

impl From<Violations> for Status {
    fn from(v: Violations) -> Self {
        Status::invalid_argument(v.to_string())
    }
}

#[tonic::async_trait]
impl FaultControl for FaultControlService {
    async fn start_experiment(
        &self,
        req: Request<v1::StartExperimentRequest>,
    ) -> Result<Response<v1::Experiment>, Status> {
        let peer = peer(&req);
        let spec = req.into_inner().spec.ok_or_else(|| Status::invalid_argument("spec: required"))?;
        let def = self.validate(&spec)?;
        let info = self.registry.start(spec, def)?;
        tracing::info!(%peer, experiment = %info.id, "StartExperiment");
        Ok(Response::new(to_proto(info)))
    }

    async fn stop_experiment(
        &self,
        req: Request<v1::StopExperimentRequest>,
    ) -> Result<Response<v1::Experiment>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let info = self.registry.stop(&r.id, &r.reason)?;
        tracing::info!(%peer, experiment = %info.id, "StopExperiment");
        Ok(Response::new(to_proto(info)))
    }

    async fn get_experiment(&self, req: Request<v1::GetExperimentRequest>) -> Result<Response<v1::Experiment>, Status> {
        Ok(Response::new(to_proto(self.registry.get(&req.into_inner().id)?)))
    }

    async fn list_experiments(
        &self,
        req: Request<v1::ListExperimentsRequest>,
    ) -> Result<Response<v1::ListExperimentsResponse>, Status> {
        let states: Vec<i32> = req.into_inner().states;
        let experiments = self
            .registry
            .list()
            .into_iter()
            .map(to_proto)
            .filter(|e| states.is_empty() || states.contains(&e.state))
            .collect();
        Ok(Response::new(v1::ListExperimentsResponse { experiments }))
    }

    async fn abort_all(&self, req: Request<v1::AbortAllRequest>) -> Result<Response<v1::AbortAllResponse>, Status> {
        let peer = peer(&req);
        let ids = self.registry.abort_all(&req.into_inner().reason);
        tracing::warn!(%peer, count = ids.len(), "AbortAll");
        Ok(Response::new(v1::AbortAllResponse { count: ids.len() as u32, ids }))
    }

    async fn validate_experiment(
        &self,
        req: Request<v1::ValidateExperimentRequest>,
    ) -> Result<Response<v1::ValidateExperimentResponse>, Status> {
        let Some(spec) = req.into_inner().spec else {
            return Ok(Response::new(v1::ValidateExperimentResponse {
                valid: false,
                violations: vec![v1::FieldViolation { field: "spec".into(), description: "required".into() }],
            }));
        };
        let violations = match self.validate(&spec) {
            Ok(_) => Vec::new(),
            Err(v) => {
                v.0.into_iter().map(|v| v1::FieldViolation { field: v.field, description: v.description }).collect()
            }
        };
        Ok(Response::new(v1::ValidateExperimentResponse { valid: violations.is_empty(), violations }))
    }
}

fn timestamp(t: SystemTime) -> pbjson_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub fn state_to_proto(s: State) -> v1::ExperimentState {
    match s {
        State::Pending => v1::ExperimentState::Pending,
        State::Running => v1::ExperimentState::Running,
        State::Completed => v1::ExperimentState::Completed,
        State::Stopped => v1::ExperimentState::Stopped,
        State::Aborted => v1::ExperimentState::Aborted,
    }
}

pub fn to_proto(e: ExperimentInfo) -> v1::Experiment {
    v1::Experiment {
        id: e.id,
        spec: Some(e.spec),
        state: state_to_proto(e.state) as i32,
        created_at: Some(timestamp(e.created_at)),
        started_at: e.started_at.map(timestamp),
        ends_at: e.ends_at.map(timestamp),
        ended_at: e.ended_at.map(timestamp),
        end_reason: e.end_reason,
        stats: Some(v1::ExperimentStats {
            matched: e.matched,
            injected: e.injected,
            aborted: e.aborted,
            delayed: e.delayed,
        }),
        effective_duration: Some(pbjson_types::Duration {
            seconds: e.effective_duration.as_secs() as i64,
            nanos: e.effective_duration.subsec_nanos() as i32,
        }),
        timeline_state: e.timeline_state.unwrap_or_default(),
    }
}

/// Serves the control service, health and reflection on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<v1::fault_control_server::FaultControlServer<FaultControlService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            // The descriptor set is compiled in; this cannot fail at run time.
            tracing::error!(error = %e, "reflection unavailable");
            e
        });
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "control service listening");
    let mut router = tonic::transport::Server::builder().add_service(health_service).add_service(
        v1::fault_control_server::FaultControlServer::new(FaultControlService::new(registry))
            .max_decoding_message_size(4 * 1024 * 1024),
    );
    if let Ok(reflection) = reflection {
        router = router.add_service(reflection);
    }
    router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown).await
}
