//! `edgefault.v1.FaultControl`: validation at the boundary, then the registry.

use std::sync::Arc;

use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::{
    audit::{AuditEntry, AuditLog},
    auth::{AuthLayer, Caller, Tokens},
    events::{self as watch_events, EventStream, StatsSource},
    proto::{history_query, history_to_proto, to_proto},
};
use crate::{
    control::tls::ControlTls,
    experiment::{
        spec::{validate_spec, Context, Violations},
        Registry, RegistryError,
    },
    pb::{
        self,
        v1::{self as v1, fault_control_server::FaultControl},
    },
    scenario::Catalogue,
    telemetry::metrics::Metrics,
};

pub struct FaultControlService {
    pub(super) registry: Arc<Registry>,
    audit: Arc<AuditLog>,
    /// The scenario catalogue (built-ins, and the config's scenarios_dir).
    pub(super) scenarios: Arc<Catalogue>,
    /// The proxy's counters, for GetStats and the snapshots of WatchEvents.
    metrics: Option<Arc<Metrics>>,
    /// Turns true when the server stops, to end WatchEvents streams.
    closing: Option<watch::Receiver<bool>>,
}

impl FaultControlService {
    /// A service with the built-in scenarios.
    pub fn new(registry: Arc<Registry>, audit: Arc<AuditLog>) -> Self {
        FaultControlService { registry, audit, scenarios: Arc::new(Catalogue::builtin()), metrics: None, closing: None }
    }

    /// The same service with this scenario catalogue.
    pub fn with_scenarios(self, scenarios: Arc<Catalogue>) -> Self {
        FaultControlService { scenarios, ..self }
    }

    /// With the proxy's counters for GetStats, and `closing` ending WatchEvents streams.
    pub fn with_events(mut self, metrics: Option<Arc<Metrics>>, closing: watch::Receiver<bool>) -> Self {
        self.metrics = metrics;
        self.closing = Some(closing);
        self
    }

    fn stats_source(&self) -> StatsSource {
        StatsSource { registry: Arc::clone(&self.registry), metrics: self.metrics.clone() }
    }

    /// Writes the audit line of a state-changing call.
    pub(super) fn audit<T>(&self, call: &Call, action: &str, entry: Audited<'_>, result: &Result<T, Status>) {
        self.audit.record(&AuditEntry {
            caller: &call.caller,
            peer: &call.peer,
            action,
            experiments: entry.experiments,
            spec: entry.spec,
            reason: entry.reason,
            outcome: result.as_ref().map(|_| ()).map_err(|s| format!("{:?}: {}", s.code(), s.message())),
        });
    }

    fn validate(&self, spec: &v1::ExperimentSpec) -> Result<crate::experiment::ExperimentDef, Violations> {
        let limits = self.registry.limits();
        let topology = self.registry.topology();
        let ctx = Context { topology: Some(&topology), limits: &limits };
        let result = validate_spec(spec, &ctx);
        if spec.sidecars.is_none() {
            return result;
        }
        let mut violations = result.err().unwrap_or(Violations(Vec::new()));
        violations.0.insert(0, no_selector_here("sidecars"));
        Err(violations)
    }
}

/// What a sidecar says to a spec with a sidecar selector: only the controller reaches sidecars.
pub(super) fn no_selector_here(field: &str) -> crate::fault::check::Violation {
    crate::fault::check::Violation {
        field: field.into(),
        description: "selects sidecars, which only `edgefault controller` does: this is a sidecar's own \
                      control port; start it on the controller (docs/fleet.md), or remove the selector"
            .into(),
    }
}

fn peer(req: &Request<impl Sized>) -> String {
    req.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "unknown".into())
}

/// Who made a call and from where, taken before the request is consumed.
pub struct Call {
    pub caller: Arc<str>,
    pub peer: String,
}

/// The subject of a DER certificate, as `CN=ops-bot, O=Example`.
fn certificate_subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject().to_string();
    (!subject.is_empty()).then_some(subject)
}

impl Call {
    pub fn of(req: &Request<impl Sized>) -> Self {
        let caller = req.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::anonymous);
        // With mTLS the client certificate's subject names the caller too (beside a token's name, if any).
        let subject = req.peer_certs().and_then(|certs| certs.first().and_then(|c| certificate_subject(c)));
        let caller = match subject {
            None => caller.name,
            Some(subject) if caller.name.as_ref() == "anonymous" => format!("cert:{subject}").into(),
            Some(subject) => format!("{} (cert:{subject})", caller.name).into(),
        };
        Call { caller, peer: peer(req) }
    }
}

/// What an audit line says about the call's subject.
#[derive(Default)]
pub(super) struct Audited<'a> {
    pub(super) experiments: Vec<String>,
    pub(super) spec: Option<&'a v1::ExperimentSpec>,
    pub(super) reason: &'a str,
}

impl From<RegistryError> for Status {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(..) => Status::not_found(e.to_string()),
            RegistryError::AlreadyEnded { .. } => Status::failed_precondition(e.to_string()),
            RegistryError::Exists(_) => Status::already_exists(e.to_string()),
            RegistryError::TooMany(_) => Status::resource_exhausted(e.to_string()),
            RegistryError::NoLease(_) => Status::failed_precondition(e.to_string()),
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
        let call = Call::of(&req);
        let spec = req.into_inner().spec;
        let result = match &spec {
            None => Err(Status::invalid_argument("spec: required")),
            Some(spec) => self
                .validate(spec)
                .map_err(Status::from)
                .and_then(|def| self.registry.start(spec.clone(), def).map_err(Status::from)),
        };
        let experiments = result.as_ref().map(|i| vec![i.id.clone()]).unwrap_or_default();
        self.audit(
            &call,
            "StartExperiment",
            Audited { experiments, spec: spec.as_ref(), ..Audited::default() },
            &result,
        );
        let info = result?;
        tracing::info!(peer = %call.peer, caller = %call.caller, experiment = %info.id, "StartExperiment");
        Ok(Response::new(to_proto(info)))
    }

    async fn stop_experiment(
        &self,
        req: Request<v1::StopExperimentRequest>,
    ) -> Result<Response<v1::Experiment>, Status> {
        let call = Call::of(&req);
        let r = req.into_inner();
        let result = self.registry.stop(&r.id, &r.reason).map_err(Status::from);
        let audited = Audited { experiments: vec![r.id.clone()], reason: &r.reason, ..Audited::default() };
        self.audit(&call, "StopExperiment", audited, &result);
        let info = result?;
        tracing::info!(peer = %call.peer, caller = %call.caller, experiment = %info.id, "StopExperiment");
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
        let mut size = 0;
        let experiments = self
            .registry
            .list()
            .into_iter()
            .map(to_proto)
            .filter(|e| states.is_empty() || states.contains(&e.state))
            .map(|mut e| {
                // Active experiments come first, then the newest ended: the oldest lose their specs first.
                size += prost::Message::encoded_len(&e) + 8;
                if size > LIST_BUDGET {
                    size -= e.spec.take().map_or(0, |s| prost::Message::encoded_len(&s));
                    e.spec_omitted = true;
                }
                e
            })
            .collect();
        Ok(Response::new(v1::ListExperimentsResponse { experiments }))
    }

    async fn abort_all(&self, req: Request<v1::AbortAllRequest>) -> Result<Response<v1::AbortAllResponse>, Status> {
        let call = Call::of(&req);
        let reason = req.into_inner().reason;
        let ids = self.registry.abort_all(&reason);
        let result: Result<(), Status> = Ok(());
        self.audit(
            &call,
            "AbortAll",
            Audited { experiments: ids.clone(), reason: &reason, ..Audited::default() },
            &result,
        );
        tracing::warn!(peer = %call.peer, caller = %call.caller, count = ids.len(), "AbortAll");
        Ok(Response::new(v1::AbortAllResponse { count: u32::try_from(ids.len()).unwrap_or(u32::MAX), ids }))
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
            Err(v) => super::proto::violations(v),
        };
        Ok(Response::new(v1::ValidateExperimentResponse { valid: violations.is_empty(), violations }))
    }

    async fn renew_lease(
        &self,
        req: Request<v1::RenewLeaseRequest>,
    ) -> Result<Response<v1::RenewLeaseResponse>, Status> {
        self.renew(req).await
    }

    async fn list_scenarios(
        &self,
        req: Request<v1::ListScenariosRequest>,
    ) -> Result<Response<v1::ListScenariosResponse>, Status> {
        self.list_scenarios_rpc(req)
    }

    async fn get_scenario(
        &self,
        req: Request<v1::GetScenarioRequest>,
    ) -> Result<Response<v1::GetScenarioResponse>, Status> {
        self.get_scenario_rpc(req)
    }

    async fn start_scenario(
        &self,
        req: Request<v1::StartScenarioRequest>,
    ) -> Result<Response<v1::StartScenarioResponse>, Status> {
        self.start_scenario_rpc(req)
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let (only, interval) = watch_events::watch_params(req.get_ref(), &self.registry)?;
        let call = Call::of(&req);
        tracing::info!(peer = %call.peer, caller = %call.caller, experiment = only.as_deref().unwrap_or("all"), "WatchEvents");
        Ok(Response::new(watch_events::watch(self.stats_source(), only, interval, self.closing.clone())))
    }

    async fn get_stats(&self, req: Request<v1::GetStatsRequest>) -> Result<Response<v1::GetStatsResponse>, Status> {
        let id = req.into_inner().experiment_id;
        let only = (!id.is_empty()).then_some(id);
        if let Some(id) = &only {
            self.registry.get(id)?;
        }
        Ok(Response::new(self.stats_source().snapshot(only.as_deref())))
    }

    async fn get_history(
        &self,
        req: Request<v1::GetHistoryRequest>,
    ) -> Result<Response<v1::GetHistoryResponse>, Status> {
        let Some(metrics) = &self.metrics else {
            return Err(Status::failed_precondition("this control service serves no proxy: it has no history"));
        };
        let query = history_query(&req.into_inner())?;
        Ok(Response::new(history_to_proto(metrics.history.snapshot(&query))))
    }

    async fn list_sidecars(
        &self,
        _req: Request<v1::ListSidecarsRequest>,
    ) -> Result<Response<v1::ListSidecarsResponse>, Status> {
        Err(Status::failed_precondition(
            "this is a sidecar, not a controller: ListSidecars is served by `edgefault controller` (docs/fleet.md)",
        ))
    }
}

// === safety RPCs ===

impl FaultControlService {
    /// RenewLease. Not audited: a follower renews every lease/3, and the start it keeps alive is.
    async fn renew(&self, req: Request<v1::RenewLeaseRequest>) -> Result<Response<v1::RenewLeaseResponse>, Status> {
        let info = self.registry.renew_lease(&req.into_inner().id)?;
        Ok(Response::new(v1::RenewLeaseResponse { experiment: Some(to_proto(info)) }))
    }
}

/// Largest ListExperiments response before specs are left out (see `Experiment.spec_omitted`).
const LIST_BUDGET: usize = 3 * 1024 * 1024;

/// Adds what every control port serves beside its own services: health (`S` serving) and both reflection
/// versions.
pub async fn with_health_and_reflection<L, S: tonic::server::NamedService>(
    router: tonic::transport::server::Router<L>,
) -> tonic::transport::server::Router<L> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<S>().await;
    // Both reflection versions: grpcurl and current clients speak v1, the official Python client
    // (grpcio-reflection), older grpcurl builds and several GUI clients only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut router = router.add_service(health_service);
    // The descriptor sets are compiled in; building from them cannot fail at run time.
    match reflection().build_v1() {
        Ok(r) => router = router.add_service(r),
        Err(e) => tracing::error!(error = %e, "reflection v1 unavailable"),
    }
    match reflection().build_v1alpha() {
        Ok(r) => router = router.add_service(r),
        Err(e) => tracing::error!(error = %e, "reflection v1alpha unavailable"),
    }
    router
}

/// What the control service serves besides the experiments.
pub struct ServeOptions {
    /// The proxy's counters, for GetStats and WatchEvents snapshots.
    pub metrics: Option<Arc<Metrics>>,
    pub scenarios: Arc<Catalogue>,
    /// TLS for the control port; with a client CA, clients must present a certificate it signed (mTLS).
    pub tls: Option<ControlTls>,
}

/// Serves the control service, health and reflection on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    tokens: Arc<arc_swap::ArcSwap<Tokens>>,
    audit: Arc<AuditLog>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(), tonic::transport::Error> {
    let ServeOptions { metrics, scenarios, tls } = options;
    // WatchEvents streams would hold the graceful shutdown open: end them when it starts.
    let (closing_tx, closing) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "control service listening"),
        Err(e) => tracing::info!(error = %e, "control service listening (address unknown)"),
    }
    let router = tonic::transport::Server::builder()
        .layer(super::contain::ContainLayer)
        .layer(AuthLayer::shared(tokens))
        .add_service(
            v1::fault_control_server::FaultControlServer::new(
                FaultControlService::new(registry, audit).with_scenarios(scenarios).with_events(metrics, closing),
            )
            .max_decoding_message_size(4 * 1024 * 1024),
        );
    let router =
        with_health_and_reflection::<_, v1::fault_control_server::FaultControlServer<FaultControlService>>(router)
            .await;
    match tls {
        Some(tls) => router.serve_with_incoming_shutdown(super::tls::incoming(listener, tls.server), shutdown).await,
        None => router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown).await,
    }
}
