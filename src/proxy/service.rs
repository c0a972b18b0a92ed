//! The request path of a reverse-proxy listener: route → decide → act → forward.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;

use super::{
    act::{self, ActBody, Dropped, ResetSwitch},
    body::ProxyBody,
    cap::FaultCap,
    headers, respond,
    upstream::Upstream,
};
use crate::{
    config::{ListenerConfig, RouteId},
    experiment::{guard::Health, RuleSet},
    fault::{BodyPlan, Fault, RequestView},
    telemetry::metrics::{Metrics, Outcome, RouteCounters},
};

struct Route {
    id: RouteId,
    upstream: Upstream,
    counters: RouteCounters,
}

impl Route {
    fn takes(&self, host: Option<&str>, path: &str) -> bool {
        let r = self.upstream.route();
        (r.hosts.is_empty() || host.is_some_and(|h| r.hosts.iter().any(|p| p.matches(h))))
            && r.path_prefix.as_ref().is_none_or(|p| path.starts_with(p.as_str()))
    }
}

/// One reverse-proxy listener's routes and its view of the active rules.
pub struct ReverseProxy {
    name: Arc<str>,
    /// Swapped by a config reload (same routes, new upstreams or matchers); a request keeps the routes it
    /// started with.
    routes: ArcSwap<Vec<Route>>,
    rules: Arc<ArcSwap<RuleSet>>,
    /// Bounds how many requests are faulted at once, across listeners.
    cap: Arc<FaultCap>,
    /// Real upstream outcomes per route, for guards.
    health: Arc<Health>,
}

impl ReverseProxy {
    pub fn new(
        listener: &ListenerConfig,
        rules: Arc<ArcSwap<RuleSet>>,
        metrics: &Metrics,
        cap: Arc<FaultCap>,
        health: Arc<Health>,
    ) -> Self {
        let routes = ArcSwap::from_pointee(Self::routes_of(listener, metrics));
        ReverseProxy { name: listener.name.as_str().into(), routes, rules, cap, health }
    }

    fn routes_of(listener: &ListenerConfig, metrics: &Metrics) -> Vec<Route> {
        listener
            .routes
            .iter()
            .map(|r| Route {
                id: r.id,
                counters: metrics.route_counters(&listener.name, &r.name),
                upstream: Upstream::new(r.clone()),
            })
            .collect()
    }

    /// Takes the routes of a reloaded config for this listener (the same route names in the same order:
    /// the caller checks). Requests already in flight finish with the old routes; connections stay open.
    pub fn reload(&self, listener: &ListenerConfig, metrics: &Metrics) {
        self.routes.store(Arc::new(Self::routes_of(listener, metrics)));
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Handles one request. Every problem becomes a response; only a fault that drops the connection on
    /// purpose (hang, reset) returns [`Dropped`].
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        switch: &ResetSwitch,
    ) -> Result<Response<ProxyBody>, Dropped> {
        // A request a rule could fault takes a slot of the cap first; with none free it passes untouched
        // (not even counted as matched), and the slot goes back unless the request is faulted. A request
        // that a fault ends (abort, hang, reset, rate limit) keeps it until it is answered.
        let mut slot = None;
        let routes = self.routes.load_full();
        let (route, decision) = {
            let host = headers::request_host(&req);

            let path = req.uri().path();
            let Some(route) = routes.iter().find(|r| r.takes(host, path)) else {
                tracing::debug!(listener = %self.name, ?host, path, "no route");
                return Ok(respond::no_route(&self.name));
            };
            let rules = self.rules.load();
            let decision = if let Some(taken) = rules.targets(route.id).then(|| self.cap.try_acquire()).flatten() {
                slot = Some(taken);
                let view = RequestView {
                    method: req.method(),
                    host,
                    path,
                    query: req.uri().query(),
                    headers: req.headers(),
                    client_ip: client.ip(),
                };
                rules.decide(route.id, &view)
            } else {
                None
            };
            if decision.is_none() {
                slot = None;
            }
            (route, decision)
        };

        let injected = decision.is_some();
        let mut body_plan = BodyPlan::default();
        if let Some(d) = decision {
            if !d.delay.is_zero() {
                route.counters.injected_delay(d.delay);
                tokio::time::sleep(d.delay).await;
            }
            if let (Some(fault), Some(rule)) = (d.ending(), d.abort_rule()) {
                route.counters.count(Outcome::Injected);
                tracing::debug!(listener = %self.name, experiment = %rule.id, fault = fault.kind(), "request ended by a fault");
                return match fault {
                    Fault::Abort(abort) => Ok(respond::abort(abort, &req)),
                    Fault::Hang(hang) => act::hang(hang, &req, switch).await,
                    Fault::Reset(_) => Err(act::reset(switch)),
                    Fault::RateLimit(_) => Ok(respond::rate_limited(d.retry_after, &req)),
                    // Never chosen to end a request (see `Fault::ends_request` and `RuleSet::decide`): forward as
                    // usual.
                    Fault::Delay(_) | Fault::Truncate(_) | Fault::Throttle(_) => {
                        Ok(self.forward(route, req, client, true, d.body, switch).await)
                    }
                };
            }
            body_plan = d.body;
        }
        // The fault is over once the request goes on: the slot covers the hold, not the upstream's time.
        drop(slot);
        Ok(self.forward(route, req, client, injected, body_plan, switch).await)
    }

    async fn forward(
        &self,
        route: &Route,
        req: Request<Incoming>,
        client: SocketAddr,
        injected: bool,
        body_plan: BodyPlan,
        switch: &ResetSwitch,
    ) -> Response<ProxyBody> {
        let sent = tokio::time::Instant::now();
        match route.upstream.forward(req, client).await {
            Ok(resp) => {
                let took = sent.elapsed();
                route.counters.upstream_duration(took);
                if !injected {
                    self.health.record(route.id, resp.status().is_server_error());
                    self.health.record_latency(route.id, took);
                }
                route.counters.count(if injected { Outcome::Injected } else { Outcome::Passed });
                if body_plan.is_empty() {
                    resp
                } else {
                    resp.map(|b| ProxyBody::Acted(Box::new(ActBody::new(b, body_plan, switch.clone()))))
                }
            }
            Err(e) => {
                route.counters.count(Outcome::UpstreamError);
                if !injected {
                    self.health.record(route.id, true);
                }
                tracing::warn!(listener = %self.name, route = %route.upstream.route().name, upstream = %route.upstream.route().upstream, error = %e, "upstream_error");
                respond::upstream_error(&e)
            }
        }
    }
}

/// The hyper service of one connection.
#[derive(Clone)]
pub struct ConnService {
    pub proxy: Arc<ReverseProxy>,
    pub client: SocketAddr,
    /// Turned on by a reset fault: the connection then closes with RST.
    pub reset: ResetSwitch,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ProxyBody>;
    type Error = Dropped;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Dropped>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let proxy = Arc::clone(&self.proxy);
        let client = self.client;
        let switch = self.reset.clone();
        Box::pin(async move { proxy.handle(req, client, &switch).await })
    }
}
