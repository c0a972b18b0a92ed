//! The request path of a reverse-proxy listener: route → decide → act → forward.

use std::{convert::Infallible, future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use arc_swap::ArcSwap;
use http::{header, Request, Response};
use hyper::body::Incoming;

use super::{body::ProxyBody, headers, respond, upstream::Upstream};
use crate::{
    config::{ListenerConfig, RouteId},
    experiment::RuleSet,
    fault::RequestView,
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
    routes: Vec<Route>,
    rules: Arc<ArcSwap<RuleSet>>,
}

impl ReverseProxy {
    pub fn new(listener: &ListenerConfig, rules: Arc<ArcSwap<RuleSet>>, metrics: &Metrics) -> Self {
        let routes = listener
            .routes
            .iter()
            .map(|r| Route {
                id: r.id,
                counters: metrics.route_counters(&listener.name, &r.name),
                upstream: Upstream::new(r.clone()),
            })
            .collect();
        ReverseProxy { name: listener.name.as_str().into(), routes, rules }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Handles one request. Never fails: every problem becomes a response.
    pub async fn handle(&self, req: Request<Incoming>, client: SocketAddr) -> Response<ProxyBody> {
        let (route, decision) = {
            let host = req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()))
                .map(headers::strip_port);
            let path = req.uri().path();
            let Some(route) = self.routes.iter().find(|r| r.takes(host, path)) else {
                tracing::debug!(listener = %self.name, ?host, path, "no route");
                return respond::no_route(&self.name);
            };
            let rules = self.rules.load();
            let decision = if rules.targets(route.id) {
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
            (route, decision)
        };

        let injected = decision.is_some();
        if let Some(d) = decision {
            if !d.delay.is_zero() {
                tokio::time::sleep(d.delay).await;
            }
            if let (Some(abort), Some(rule)) = (d.abort(), d.abort_rule()) {
                route.counters.count(Outcome::Injected);
                tracing::debug!(listener = %self.name, experiment = %rule.id, status = abort.http_status.as_u16(), "abort injected");
                return respond::abort(abort, &req);
            }
        }

        match route.upstream.forward(req, client).await {
            Ok(resp) => {
                route.counters.count(if injected { Outcome::Injected } else { Outcome::Passed });
                resp
            }
            Err(e) => {
                route.counters.count(Outcome::UpstreamError);
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
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let proxy = Arc::clone(&self.proxy);
        let client = self.client;
        Box::pin(async move { Ok(proxy.handle(req, client).await) })
    }
}
