//! `edgefault controller`: the same `edgefault.v1.FaultControl` API as a sidecar's, over the fleet, plus
//! `edgefault.v1.Fleet/Subscribe`, the stream every sidecar keeps open to it.

use std::{collections::BTreeMap, pin::Pin, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
};
use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{
    history::FleetHistory,
    selector::{self, Selector},
    state::{FleetError, FleetState, Plan},
};
use crate::{
    control::{
        audit::{AuditEntry, AuditLog},
        auth::{AuthLayer, Tokens},
        events::{self as watch_events, EventStream},
        scenarios,
        tls::ControlTls,
        Call,
    },
    experiment::spec::{validate_spec, Context, Violations},
    fault::check::Collector,
    pb::v1::{self, fault_control_server::FaultControl, fleet_server::Fleet},
    scenario::Catalogue,
};

/// How long a new stream may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 ping period and timeout on the sidecars' streams.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Messages buffered towards one sidecar.
const OUTGOING: usize = 8;

impl From<FleetError> for Status {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::NoSidecars { .. } => Status::failed_precondition(e.to_string()),
            FleetError::NotFound { .. } => Status::not_found(e.to_string()),
            FleetError::AlreadyEnded { .. } | FleetError::NoLease(_) => Status::failed_precondition(e.to_string()),
            FleetError::TooMany(_) => Status::resource_exhausted(e.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct ControllerService {
    fleet: Arc<FleetState>,
    audit: Arc<AuditLog>,
    scenarios: Arc<Catalogue>,
    /// What the sidecars' clients saw, summed from their reports.
    history: Arc<FleetHistory>,
    /// Turns true when the server stops, to end the long-lived streams.
    closing: watch::Receiver<bool>,
}

impl ControllerService {
    pub fn new(
        fleet: Arc<FleetState>,
        audit: Arc<AuditLog>,
        scenarios: Arc<Catalogue>,
        history: Arc<FleetHistory>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        ControllerService { fleet, audit, scenarios, history, closing }
    }

    /// StartScenario over the fleet, for the console: `sidecars` selects the sidecars as the request's
    /// field does.
    pub fn start_scenario_for(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
        sidecars: Option<v1::SidecarSelector>,
    ) -> Result<v1::StartScenarioResponse, Status> {
        self.start_scenario_inner(v1::StartScenarioRequest {
            name: name.to_owned(),
            params: params.clone().into_iter().collect(),
            sidecars,
        })
    }

    /// Checks a spec as the controller can: everything but the sidecars' own routes and limits (each
    /// sidecar checks those and reports a rejection), and the selector.
    fn plan(&self, spec: &v1::ExperimentSpec) -> Result<Plan, Violations> {
        let ctx = Context { topology: None, limits: self.fleet.limits() };
        let def = validate_spec(spec, &ctx);
        let mut c = Collector::new(None, Duration::MAX);
        let selector = spec.sidecars.as_ref().map(|s| Selector::convert(s, "sidecars", &mut c)).unwrap_or_default();
        let selector_problems = c.finish(|| ()).err().map(|v| v.0).unwrap_or_default();
        match def {
            Ok(def) if selector_problems.is_empty() => {
                Ok(Plan { selector, duration: def.duration, start_delay: def.start_delay, lease: def.lease })
            }
            Ok(_) => Err(Violations(selector_problems)),
            Err(mut v) => {
                v.0.extend(selector_problems);
                Err(v)
            }
        }
    }

    fn audit<T>(
        &self,
        call: &Call,
        action: &str,
        ids: Vec<String>,
        spec: Option<&v1::ExperimentSpec>,
        reason: &str,
        result: &Result<T, Status>,
    ) {
        self.audit.record(&AuditEntry {
            caller: &call.caller,
            peer: &call.peer,
            action,
            experiments: ids,
            spec,
            reason,
            outcome: result.as_ref().map(|_| ()).map_err(|s| format!("{:?}: {}", s.code(), s.message())),
        });
    }

    fn start_scenario_inner(&self, r: v1::StartScenarioRequest) -> Result<v1::StartScenarioResponse, Status> {
        let params: BTreeMap<String, String> = r.params.into_iter().collect();
        let scenario = self.scenarios.find(&r.name)?;
        let expansion = scenario.expand_for(&params, None)?;
        let ctx = Context { topology: None, limits: self.fleet.limits() };
        scenario.check_expansion(&expansion, &ctx)?;
        let mut plans = Vec::with_capacity(expansion.specs.len());
        let mut specs = expansion.specs;
        for spec in &mut specs {
            spec.sidecars.clone_from(&r.sidecars);
            plans.push(self.plan(spec).map_err(Status::from)?);
        }
        let started = scenarios::start_all(
            specs.into_iter().zip(plans),
            |(spec, plan)| self.fleet.start(spec, plan).map_err(Status::from),
            |id, why| {
                let _ = self.fleet.stop(id, why);
            },
        )?;
        Ok(v1::StartScenarioResponse { experiments: started, warnings: expansion.warnings })
    }
}

#[tonic::async_trait]
impl FaultControl for ControllerService {
    async fn start_experiment(
        &self,
        req: Request<v1::StartExperimentRequest>,
    ) -> Result<Response<v1::Experiment>, Status> {
        let call = Call::of(&req);
        let spec = req.into_inner().spec;
        let result = match &spec {
            None => Err(Status::invalid_argument("spec: required")),
            Some(spec) => self
                .plan(spec)
                .map_err(Status::from)
                .and_then(|plan| self.fleet.start(spec.clone(), plan).map_err(Status::from)),
        };
        let ids = result.as_ref().map(|e| vec![e.id.clone()]).unwrap_or_default();
        self.audit(&call, "StartExperiment", ids, spec.as_ref(), "", &result);
        let e = result?;
        tracing::info!(peer = %call.peer, caller = %call.caller, experiment = %e.id, sidecars = e.sidecars.len(), "StartExperiment");
        Ok(Response::new(e))
    }

    async fn stop_experiment(
        &self,
        req: Request<v1::StopExperimentRequest>,
    ) -> Result<Response<v1::Experiment>, Status> {
        let call = Call::of(&req);
        let r = req.into_inner();
        let result = self.fleet.stop(&r.id, &r.reason).map_err(Status::from);
        self.audit(&call, "StopExperiment", vec![r.id.clone()], None, &r.reason, &result);
        Ok(Response::new(result?))
    }

    async fn get_experiment(&self, req: Request<v1::GetExperimentRequest>) -> Result<Response<v1::Experiment>, Status> {
        Ok(Response::new(self.fleet.get(&req.into_inner().id)?))
    }

    async fn list_experiments(
        &self,
        req: Request<v1::ListExperimentsRequest>,
    ) -> Result<Response<v1::ListExperimentsResponse>, Status> {
        let states = req.into_inner().states;
        let experiments =
            self.fleet.list().into_iter().filter(|e| states.is_empty() || states.contains(&e.state)).collect();
        Ok(Response::new(v1::ListExperimentsResponse { experiments }))
    }

    async fn abort_all(&self, req: Request<v1::AbortAllRequest>) -> Result<Response<v1::AbortAllResponse>, Status> {
        let call = Call::of(&req);
        let reason = req.into_inner().reason;
        let (ids, told) = self.fleet.abort_all(&reason);
        self.audit(&call, "AbortAll", ids.clone(), None, &reason, &Ok::<(), Status>(()));
        tracing::warn!(peer = %call.peer, caller = %call.caller, count = ids.len(), sidecars = told, "AbortAll over the fleet");
        Ok(Response::new(v1::AbortAllResponse { count: u32::try_from(ids.len()).unwrap_or(u32::MAX), ids }))
    }

    async fn validate_experiment(
        &self,
        req: Request<v1::ValidateExperimentRequest>,
    ) -> Result<Response<v1::ValidateExperimentResponse>, Status> {
        let violations = match req.into_inner().spec {
            None => vec![v1::FieldViolation { field: "spec".into(), description: "required".into() }],
            Some(spec) => self.plan(&spec).err().map(crate::control::proto::violations).unwrap_or_default(),
        };
        Ok(Response::new(v1::ValidateExperimentResponse { valid: violations.is_empty(), violations }))
    }

    async fn renew_lease(
        &self,
        req: Request<v1::RenewLeaseRequest>,
    ) -> Result<Response<v1::RenewLeaseResponse>, Status> {
        let e = self.fleet.renew_lease(&req.into_inner().id)?;
        Ok(Response::new(v1::RenewLeaseResponse { experiment: Some(e) }))
    }

    async fn list_scenarios(
        &self,
        _req: Request<v1::ListScenariosRequest>,
    ) -> Result<Response<v1::ListScenariosResponse>, Status> {
        Ok(Response::new(scenarios::list(&self.scenarios)))
    }

    async fn get_scenario(
        &self,
        req: Request<v1::GetScenarioRequest>,
    ) -> Result<Response<v1::GetScenarioResponse>, Status> {
        let ctx = Context { topology: None, limits: self.fleet.limits() };
        Ok(Response::new(scenarios::get(&self.scenarios, req.into_inner(), &ctx)?))
    }

    async fn start_scenario(
        &self,
        req: Request<v1::StartScenarioRequest>,
    ) -> Result<Response<v1::StartScenarioResponse>, Status> {
        let call = Call::of(&req);
        let r = req.into_inner();
        let name = r.name.clone();
        let result = self.start_scenario_inner(r);
        let ids = result.as_ref().map(|r| r.experiments.iter().map(|e| e.id.clone()).collect()).unwrap_or_default();
        self.audit(&call, "StartScenario", ids, None, &format!("scenario {name}"), &result);
        Ok(Response::new(result?))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let r = req.get_ref();
        let only = (!r.experiment_id.is_empty()).then(|| r.experiment_id.clone());
        if let Some(id) = &only {
            self.fleet.get(id).map_err(|e| Status::not_found(format!("experiment_id: {e}")))?;
        }
        let interval = watch_events::stats_interval(r)?;
        let fleet = Arc::clone(&self.fleet);
        let bus = self.fleet.subscribe();
        Ok(Response::new(watch_events::stream(
            bus,
            only,
            interval,
            Some(self.closing.clone()),
            |e| e,
            move |only| fleet.stats(only),
        )))
    }

    async fn get_stats(&self, req: Request<v1::GetStatsRequest>) -> Result<Response<v1::GetStatsResponse>, Status> {
        let id = req.into_inner().experiment_id;
        let only = (!id.is_empty()).then_some(id);
        if let Some(id) = &only {
            self.fleet.get(id)?;
        }
        Ok(Response::new(self.fleet.stats(only.as_deref())))
    }

    async fn get_history(
        &self,
        req: Request<v1::GetHistoryRequest>,
    ) -> Result<Response<v1::GetHistoryResponse>, Status> {
        let query = crate::control::proto::history_query(req.get_ref())?;
        Ok(Response::new(crate::control::proto::history_to_proto(self.history.snapshot(&query))))
    }

    async fn list_sidecars(
        &self,
        _req: Request<v1::ListSidecarsRequest>,
    ) -> Result<Response<v1::ListSidecarsResponse>, Status> {
        Ok(Response::new(v1::ListSidecarsResponse { sidecars: self.fleet.sidecars() }))
    }
}

type Outgoing = Pin<Box<dyn Stream<Item = Result<v1::ControllerMessage, Status>> + Send>>;

/// Checks what a sidecar says about itself.
fn check_hello(hello: &v1::SidecarHello) -> Result<(), Status> {
    let id = hello.id.as_str();
    if id.is_empty() || id.len() > 253 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
        return Err(Status::invalid_argument(format!(
            "hello.id: {:?} is not a sidecar id (1 to 253 letters, digits, '-', '_', '.', ':')",
            crate::text::excerpt(id, 64)
        )));
    }
    for (k, v) in &hello.labels {
        selector::parse_label(&format!("{k}={v}"))
            .map_err(|e| Status::invalid_argument(format!("hello.labels: {e}")))?;
    }
    Ok(())
}

#[tonic::async_trait]
impl Fleet for ControllerService {
    type SubscribeStream = Outgoing;

    async fn subscribe(
        &self,
        req: Request<Streaming<v1::SidecarMessage>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let address = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut incoming = req.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, incoming.next()).await {
            Ok(Some(Ok(v1::SidecarMessage { kind: Some(v1::sidecar_message::Kind::Hello(h)) }))) => h,
            Ok(Some(Err(s))) => return Err(s),
            Ok(_) => return Err(Status::invalid_argument("the first message of a subscription is a hello")),
            Err(_) => return Err(Status::deadline_exceeded("no hello within 10s")),
        };
        check_hello(&hello)?;
        let id = hello.id.clone();
        let sub = self.fleet.connect(hello, address);
        let serial = sub.serial;
        let (tx, rx) = mpsc::channel(OUTGOING);
        tokio::spawn(forward(sub, tx, self.closing.clone()));
        let fleet = Arc::clone(&self.fleet);
        let history = Arc::clone(&self.history);
        tokio::spawn(async move {
            while let Some(Ok(msg)) = incoming.next().await {
                match msg.kind {
                    Some(v1::sidecar_message::Kind::History(h)) => history.report(&h),
                    Some(v1::sidecar_message::Kind::Ack(a)) => fleet.ack(&id, serial, a),
                    Some(v1::sidecar_message::Kind::Status(s)) => fleet.status(&id, serial, s),
                    Some(v1::sidecar_message::Kind::Event(e)) => fleet.event(&id, serial, e),
                    Some(v1::sidecar_message::Kind::Hello(_)) | None => {}
                }
            }
            fleet.disconnect(&id, serial);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends a sidecar its assignments (the latest only) and commands, until either side goes away.
async fn forward(
    mut sub: super::state::Subscription,
    tx: mpsc::Sender<Result<v1::ControllerMessage, Status>>,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            changed = sub.assignments.changed() => {
                if changed.is_err() {
                    return;
                }
                let Some(a) = sub.assignments.borrow_and_update().clone() else { continue };
                v1::ControllerMessage { kind: Some(v1::controller_message::Kind::Assignment(a)) }
            }
            command = sub.commands.recv() => match command {
                Some(c) => c,
                None => return,
            },
            () = tx.closed() => return,
            _ = closing.wait_for(|c| *c) => return,
        };
        if tx.send(Ok(msg)).await.is_err() {
            return;
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves (the service's `closing` turning true ends
/// the sidecars' streams).
pub async fn serve(
    listener: TcpListener,
    service: ControllerService,
    tokens: Arc<arc_swap::ArcSwap<Tokens>>,
    tls: Option<ControlTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, instance = service.fleet.instance(), "controller listening"),
        Err(e) => tracing::info!(error = %e, "controller listening (address unknown)"),
    }
    let router = tonic::transport::Server::builder()
        // A sidecar behind a silent partition is noticed (and shown lost) within two periods.
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .layer(crate::control::contain::ContainLayer)
        .layer(AuthLayer::shared(tokens))
        .add_service(
            v1::fault_control_server::FaultControlServer::new(service.clone())
                .max_decoding_message_size(4 * 1024 * 1024),
        )
        .add_service(v1::fleet_server::FleetServer::new(service).max_decoding_message_size(16 * 1024 * 1024));
    let router = crate::control::with_health_and_reflection::<
        _,
        v1::fault_control_server::FaultControlServer<ControllerService>,
    >(router)
    .await;
    match tls {
        Some(tls) => {
            router.serve_with_incoming_shutdown(crate::control::tls::incoming(listener, tls.server), shutdown).await
        }
        None => {
            router
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
                .await
        }
    }
}

/// The controller's console: the fleet's experiments, scenarios started over the fleet (or the sidecars
/// a selector names), the kill switch reaching every sidecar, and the fleet's summed history.
impl crate::console::Backend for ControllerService {
    fn experiments(&self) -> Vec<v1::Experiment> {
        self.fleet.list()
    }

    fn start_scenario(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
        sidecars: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>), crate::console::ApiError> {
        let sidecars = sidecars
            .map(selector::parse)
            .transpose()
            .map_err(|e| crate::console::ApiError::BadRequest(format!("sidecars: {e}")))?;
        let r = self.start_scenario_for(name, params, sidecars)?;
        Ok((r.experiments.into_iter().map(|e| e.id).collect(), r.warnings))
    }

    fn stop(&self, id: &str, reason: &str) -> Result<v1::Experiment, crate::console::ApiError> {
        Ok(self.fleet.stop(id, reason).map_err(Status::from)?)
    }

    fn abort_all(&self, audit: &AuditLog, who: &str, peer: &str, reason: &str) -> Vec<String> {
        let (ids, told) = self.fleet.abort_all(reason);
        tracing::warn!(%peer, caller = %who, count = ids.len(), sidecars = told, reason, "kill switch over the fleet");
        crate::control::killswitch::audit_abort_all(audit, who, peer, &ids, reason);
        ids
    }

    fn history(&self, q: &crate::telemetry::history::Query) -> crate::telemetry::history::Snapshot {
        self.history.snapshot(q)
    }

    fn sidecars(&self) -> Option<Vec<v1::Sidecar>> {
        Some(self.fleet.sidecars())
    }
}
