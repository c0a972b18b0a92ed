//! The request path of a reverse-proxy listener: route → decide → act → forward.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::{
    act,
    body::{
        acted::{self, ActBody},
        grpc::GrpcCutBody,
        ProxyBody,
    },
    cap::{ActiveFault, FaultCap},
    conn::{Activity, Expiry, ResetSwitch, Tracked},
    error::Dropped,
    forward::{self, TunnelDrain, TunnelPlan, Tunnels},
    headers, respond,
    tls_listen::Handshake,
    upstream::Upstream,
};
use crate::{
    experiment::{guard::Health, Decision, EndingFault, HeaderFaultState, Held, RuleSet, TlsDecision},
    fault::{Abort, Asked, BodyPlan, Disconnect, End, FaultHeaders, GrpcStream, RequestView, ResponsePlan},
    proxy::settings::{ListenerConfig, Mode},
    telemetry::metrics::{Metrics, Outcome, RouteCounters, TimeoutCounters, TlsCounters},
    topology::RouteId,
};

struct Route {
    id: RouteId,
    upstream: Upstream,
    counters: RouteCounters,
}

impl Route {
    /// `port`: the destination's, on a forward listener.
    fn takes(&self, host: Option<&str>, port: Option<u16>, path: &str) -> bool {
        let r = self.upstream.route();
        (r.hosts.is_empty() || host.is_some_and(|h| r.hosts.iter().any(|p| p.matches(h, port))))
            && r.path_prefix.as_ref().is_none_or(|p| path.starts_with(p.as_str()))
    }
}

/// What happens to a forwarded request's response; every hold is kept per experiment (see [`Decision`]).
#[derive(Default)]
struct Acts {
    /// Whether an experiment acted on the request (counted `injected`, kept out of guards' health).
    injected: bool,
    body: Held<BodyPlan>,
    /// How long the response's head is held on its way back.
    head_delay: Held<Duration>,
    /// Rewrites, body replace and corrupt.
    response: ResponsePlan,
    grpc_stream: Held<GrpcStream>,
    /// For upgraded connections and tunnels.
    disconnect: Held<Disconnect>,
}

impl Acts {
    fn of(d: Decision) -> Self {
        Acts {
            injected: true,
            body: d.body,
            head_delay: d.head_delay,
            response: d.response,
            grpc_stream: d.grpc_stream,
            disconnect: d.disconnect,
        }
    }
}

/// One reverse-proxy listener's routes and its view of the active rules.
pub struct ReverseProxy {
    name: Arc<str>,
    mode: Mode,
    /// Swapped by a config reload (same routes, new upstreams or matchers); a request keeps the routes it
    /// started with.
    routes: ArcSwap<Vec<Route>>,
    rules: Arc<ArcSwap<RuleSet>>,
    /// Bounds how many requests are faulted at once, across listeners.
    cap: Arc<FaultCap>,
    /// Real upstream outcomes per route, for guards.
    health: Arc<Health>,
    /// Handshake counters, when the listener terminates TLS.
    tls_counters: Option<TlsCounters>,
    /// Connections closed by a timeout, by reason.
    timeouts: TimeoutCounters,
    /// The listener's open tunnels (CONNECT, upgrades), for its drain.
    tunnels: Arc<Tunnels>,
}

/// Where a request goes: its route, what the experiments decided and the cap's slot it holds; or the
/// proxy's own answer when no route takes it.
enum Routed<'r, 'c> {
    To { route: &'r Route, decision: Option<Decision>, slot: Option<ActiveFault<'c>> },
    Answered(Response<ProxyBody>),
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
        let tls_counters = listener.tls.as_ref().map(|_| metrics.tls_counters(&listener.name));
        let timeouts = metrics.timeout_counters(&listener.name);
        ReverseProxy {
            timeouts,
            tunnels: Tunnels::new(),
            name: listener.name.as_str().into(),
            mode: listener.mode,
            routes,
            rules,
            cap,
            health,
            tls_counters,
        }
    }

    /// What the running TLS faults do to a handshake from `client_ip` asking for `sni`; `None`: nothing.
    ///
    /// As for requests, a handshake a rule could fault takes a slot of the fault cap first; with none free
    /// it goes on untouched (not even counted as matched). The slot is kept while a stall holds the
    /// handshake, and given back at once otherwise.
    pub fn decide_tls(&self, sni: Option<&str>, client_ip: IpAddr) -> Option<(TlsDecision, Option<ActiveFault<'_>>)> {
        let rules = self.rules.load();
        if !rules.has_tls(&self.name) {
            return None;
        }
        let slot = self.cap.try_acquire()?;
        let decision = rules.decide_tls(&self.name, sni, client_ip, tokio::time::Instant::now())?;
        tracing::debug!(
            listener = %self.name,
            ?sni,
            %client_ip,
            experiments = ?decision.experiments,
            stall = ?decision.stall.fold(Duration::ZERO, Duration::saturating_add),
            end = ?decision.end.as_ref().map(|(_, f, _)| f),
            "TLS fault on a handshake"
        );
        let held = (!decision.stall.is_empty()).then_some(slot);
        Some((decision, held))
    }

    /// The listener's open tunnels.
    pub fn tunnels(&self) -> &Arc<Tunnels> {
        &self.tunnels
    }

    fn tunnel_drain(&self, websocket: bool) -> TunnelDrain {
        TunnelDrain { tunnels: Arc::clone(&self.tunnels), websocket }
    }

    /// Counts a connection closed by a timeout in `edgefault_connection_timeouts_total`.
    pub fn count_timeout(&self, e: Expiry) {
        self.timeouts.count(e.as_str());
    }

    /// Counts an HTTP/2 client closed for flooding control frames.
    pub fn count_flood(&self) {
        self.timeouts.count_flood();
    }

    /// Counts a finished handshake in `edgefault_tls_handshakes_total`.
    pub fn count_handshake(&self, handshake: &Handshake) {
        if let Some(c) = &self.tls_counters {
            c.count(handshake.outcome());
        }
    }

    fn routes_of(listener: &ListenerConfig, metrics: &Metrics) -> Vec<Route> {
        listener
            .routes
            .iter()
            .map(|r| Route {
                id: r.id,
                counters: metrics.route_counters(&listener.name, &r.name),
                upstream: Upstream::new(r.clone(), metrics.retry_counters(&listener.name, &r.name)),
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
        mut req: Request<Incoming>,
        client: SocketAddr,
        switch: &ResetSwitch,
    ) -> Result<Response<ProxyBody>, Dropped> {
        if let Err(why) = headers::check_host(&mut req) {
            return Ok(respond::bad_request("ambiguous-host", &why.to_string()));
        }
        let connect = req.method() == Method::CONNECT;
        if connect && self.mode != Mode::Forward {
            return Ok(respond::connect_refused(&self.name));
        }
        let started = tokio::time::Instant::now();
        let routes = self.routes.load_full();
        let (route, decision, slot) = match self.route_and_decide(&routes, &req, client) {
            Routed::To { route, decision, slot } => (route, decision, slot),
            Routed::Answered(resp) => return Ok(resp),
        };
        let result = self.handle_on(route, decision, slot, req, client, switch, connect).await;
        route.counters.answered(result.as_ref().ok().map(|r| r.status().as_u16()), started.elapsed());
        result
    }

    /// Handles a routed request: its fault headers, the experiments' decision, then the upstream.
    #[allow(clippy::too_many_arguments, reason = "the parts of one request, taken apart by `handle`")]
    async fn handle_on(
        &self,
        route: &Route,
        mut decision: Option<Decision>,
        mut slot: Option<ActiveFault<'_>>,
        mut req: Request<Incoming>,
        client: SocketAddr,
        switch: &ResetSwitch,
        connect: bool,
    ) -> Result<Response<ProxyBody>, Dropped> {
        // One check for routes without fault headers; the rest only for routes that enable them.
        let mut asked_abort = None;
        if let Some(fh) = route.upstream.route().fault_headers.as_deref() {
            if let Some((asked, state)) = self.fault_headers(route, fh, &mut req, &mut slot) {
                asked_abort = Self::add_asked(&mut decision, asked, state);
            }
        }
        let Some(mut d) = decision else {
            let resp = if connect {
                self.tunnel(route, req, Acts::default(), switch).await
            } else {
                self.forward(route, req, client, Acts::default(), switch).await
            };
            return Ok(resp);
        };
        if !d.delay.is_empty() {
            let planned = d.delay.fold(Duration::ZERO, Duration::saturating_add);
            route.counters.injected_delay(planned);
            act::hold(&mut d.delay, tokio::time::Instant::now()).await;
        }
        // The first ending fault whose experiment still runs ends the request; one whose experiment ended
        // during the delay is dropped, and the request goes on as if it had never matched.
        if let Some(end) = d.ending() {
            if let Some(ended) = self.end(route, end, &d, &mut req, client, switch).await {
                route.counters.count(Outcome::Injected);
                return ended;
            }
        }
        // Then the abort the request asked for, unless a kill switch ended it during the delay.
        if let Some((abort, state)) = asked_abort.filter(|(_, s)| !s.lifeline.is_ended()) {
            tracing::debug!(listener = %self.name, experiment = HeaderFaultState::ID, status = abort.http_status.as_u16(), "request ended by the abort its headers asked for");
            state.count_abort();
            route.counters.count(Outcome::Injected);
            return Ok(respond::abort(&abort, &req, client.ip()));
        }
        let acts = Acts::of(d);
        if acts.response.rewrites_request() {
            for r in &acts.response.rewrites {
                r.request.apply(req.headers_mut());
            }
        }
        // The fault is over once the request goes on: the slot covers the hold, not the upstream's time
        // (unless the response's head is held on its way back: then it covers that hold as well).
        if acts.head_delay.is_empty() {
            slot = None;
        }
        let resp = if connect {
            self.tunnel(route, req, acts, switch).await
        } else {
            self.forward(route, req, client, acts, switch).await
        };
        drop(slot);
        Ok(resp)
    }

    /// The request's route, and what the experiments decide for it. A request a rule could fault takes a
    /// slot of the cap first; with none free it passes untouched (not even counted as matched), and the
    /// slot goes back unless the request is faulted. A request that a fault ends (abort, hang, reset, rate
    /// limit) keeps it until it is answered.
    fn route_and_decide<'r>(&self, routes: &'r [Route], req: &Request<Incoming>, client: SocketAddr) -> Routed<'r, '_> {
        let (host, port, path) = match self.mode {
            // TCP listeners are not served here (`proxy::tcp`).
            Mode::Reverse | Mode::Tcp => (headers::request_host(req), None, req.uri().path()),
            Mode::Forward => match forward::destination(req) {
                Ok(d) => (Some(d.host), Some(d.port), d.path),
                Err(why) => return Routed::Answered(respond::not_a_proxy_request(why.0)),
            },
        };
        let Some(route) = routes.iter().find(|r| r.takes(host, port, path)) else {
            tracing::debug!(listener = %self.name, ?host, path, "no route");
            return Routed::Answered(respond::no_route(&self.name));
        };
        let rules = self.rules.load();
        let Some(slot) = rules.targets(route.id).then(|| self.cap.try_acquire()).flatten() else {
            return Routed::To { route, decision: None, slot: None };
        };
        let view = RequestView {
            method: req.method(),
            host,
            path,
            query: req.uri().query(),
            headers: req.headers(),
            client_ip: client.ip(),
        };
        let decision = rules.decide(route.id, &view);
        let slot = decision.is_some().then_some(slot);
        Routed::To { route, decision, slot }
    }

    /// The faults the request asks for through the route's fault headers, which are removed from it here
    /// (so the upstream never sees them) whatever comes of them. `None`: it asks for none, a value is
    /// invalid (counted, and the request passes as if it had asked for nothing), a kill switch is being
    /// pulled, or no slot of the fault cap is free (counted as an overflow). A request that gets faults
    /// holds a slot: the experiments' when it has one, else its own, taken here.
    fn fault_headers<'c>(
        &'c self,
        route: &Route,
        fh: &FaultHeaders,
        req: &mut Request<Incoming>,
        slot: &mut Option<ActiveFault<'c>>,
    ) -> Option<(Asked, HeaderFaultState)> {
        if !fh.present(req.headers()) {
            return None;
        }
        let read = fh.read(req.headers(), &mut rand::rng());
        fh.strip(req.headers_mut());
        let (asked, capped) = match read {
            Ok(r) => r,
            Err(bad) => {
                route.counters.invalid_fault_headers();
                tracing::debug!(listener = %self.name, route = %route.upstream.route().name, problem = %bad, "fault headers ignored: the request passes without them");
                return None;
            }
        };
        if asked.is_empty() {
            return None;
        }
        let state = self.rules.load().header_faults().clone();
        if state.lifeline.is_ended() {
            return None;
        }
        if slot.is_none() {
            *slot = Some(self.cap.try_acquire()?);
        }
        tracing::debug!(listener = %self.name, route = %route.upstream.route().name, abort = ?asked.abort.as_ref().map(|a| a.http_status.as_u16()), delay = ?asked.delay, throttle = ?asked.throttle.map(|t| t.bytes_per_second), capped_delay = capped.delay, capped_percentage = capped.percentage, "faults asked for by headers");
        Some((asked, state))
    }

    /// Adds what a request asked for to the experiments' decision, held by the header faults' lifeline as
    /// an experiment's share is by its own: delays add to theirs, the slowest rate wins. Returns the abort,
    /// which comes after any ending fault of an experiment.
    fn add_asked(
        decision: &mut Option<Decision>,
        asked: Asked,
        state: HeaderFaultState,
    ) -> Option<(Abort, HeaderFaultState)> {
        let d = decision.get_or_insert_with(Decision::default);
        if let Some(delay) = asked.delay {
            d.delay.push(&state.lifeline, delay);
        }
        if let Some(t) = &asked.throttle {
            let mut plan = BodyPlan::default();
            plan.add_throttle(t);
            d.body.push(&state.lifeline, plan);
        }
        state.count(asked.delay.is_some(), asked.throttle.is_some());
        asked.abort.map(|a| (a, state))
    }

    /// Ends the request as its ending fault says. `None`: the fault's experiment ended during a hold (the
    /// request goes on as if it had never matched).
    async fn end(
        &self,
        route: &Route,
        end: EndingFault<'_>,
        d: &Decision,
        req: &mut Request<Incoming>,
        client: SocketAddr,
        switch: &ResetSwitch,
    ) -> Option<Result<Response<ProxyBody>, Dropped>> {
        let rule = end.rule;
        tracing::debug!(listener = %self.name, experiment = %rule.id, fault = end.fault.kind(), "request ended by a fault");
        match end.end {
            End::Abort(abort) => Some(Ok(respond::abort(abort, req, client.ip()))),
            End::Hang(hang) => act::hang(hang, req, client.ip(), switch, &rule.lifeline).await,
            End::Reset => Some(Err(act::reset(switch))),
            End::RateLimited => Some(Ok(respond::rate_limited(end.retry_after, req))),
            End::Unresolvable(u) => Some(Ok(forward::unresolvable(headers::request_host(req), u.answer))),
            End::Blackhole(b) if req.method() == Method::CONNECT => {
                let until = forward::blackhole_until(b, rule.ends_at());
                let release = forward::Release {
                    authority: req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default(),
                    connect_timeout: route.upstream.route().connect_timeout,
                    plan: TunnelPlan {
                        body: d.body.clone(),
                        disconnect: d.disconnect.clone(),
                        switch: switch.clone(),
                        drain: Some(self.tunnel_drain(false)),
                    },
                };
                let on_upgrade = hyper::upgrade::on(req);
                Some(Ok(forward::blackhole_tunnel(on_upgrade, until, rule.lifeline.clone(), release)))
            }
            End::Blackhole(b) => {
                let until = forward::blackhole_until(b, rule.ends_at());
                forward::blackhole_request(until, &rule.lifeline).await.map(Err)
            }
        }
    }

    /// Opens a CONNECT tunnel to the request's `host:port` and answers 200; the tunnel runs on its own task
    /// once hyper hands over the connection.
    async fn tunnel(
        &self,
        route: &Route,
        mut req: Request<Incoming>,
        acts: Acts,
        switch: &ResetSwitch,
    ) -> Response<ProxyBody> {
        let Acts { injected, body, disconnect, .. } = acts;
        let plan = TunnelPlan { body, disconnect, switch: switch.clone(), drain: Some(self.tunnel_drain(false)) };
        let authority = req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        match forward::connect(&authority, route.upstream.route().connect_timeout).await {
            Ok(upstream) => {
                if !injected {
                    self.health.record(route.id, false);
                }
                route.counters.count(if injected { Outcome::Injected } else { Outcome::Passed });
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(forward::tunnel(on_upgrade, upstream, plan));
                forward::established()
            }
            Err(e) => {
                route.counters.count(Outcome::UpstreamError);
                if !injected {
                    self.health.record(route.id, true);
                }
                tracing::warn!(listener = %self.name, route = %route.upstream.route().name, destination = %authority, error = %e, "upstream_error");
                respond::upstream_error(&e, false)
            }
        }
    }

    async fn forward(
        &self,
        route: &Route,
        req: Request<Incoming>,
        client: SocketAddr,
        acts: Acts,
        switch: &ResetSwitch,
    ) -> Response<ProxyBody> {
        let Acts { injected, body: body_plan, mut head_delay, response, grpc_stream, disconnect } = acts;
        let sent = tokio::time::Instant::now();
        let grpc = headers::is_grpc(req.headers());
        // Whether it is a WebSocket is known once the upstream accepts the upgrade (`Upstream::forward`).
        let upgraded = TunnelPlan {
            body: body_plan.clone(),
            disconnect,
            switch: switch.clone(),
            drain: Some(self.tunnel_drain(false)),
        };
        match route.upstream.forward(req, client, upgraded).await {
            Ok(resp) => {
                let took = sent.elapsed();
                route.counters.upstream_duration(took);
                if !injected {
                    self.health.record(route.id, resp.status().is_server_error());
                    self.health.record_latency(route.id, took);
                }
                route.counters.count(if injected { Outcome::Injected } else { Outcome::Passed });
                act::hold(&mut head_delay, tokio::time::Instant::now()).await;
                let resp = if !response.is_empty() {
                    acted::shape(resp, body_plan, &response, switch)
                } else if body_plan.is_empty() {
                    resp
                } else {
                    resp.map(|b| ProxyBody::Acted(Box::new(ActBody::new(b, body_plan, switch.clone()))))
                };
                if !grpc_stream.is_empty() && headers::is_grpc(resp.headers()) {
                    resp.map(|b| ProxyBody::Grpc(Box::new(GrpcCutBody::new(b, grpc_stream))))
                } else {
                    resp
                }
            }
            Err(e) if e.is_client() => {
                route.counters.count(Outcome::ClientError);
                tracing::debug!(listener = %self.name, route = %route.upstream.route().name, %client, error = %e, "client_error");
                respond::upstream_error(&e, grpc)
            }
            Err(e) => {
                route.counters.count(Outcome::UpstreamError);
                if !injected {
                    self.health.record(route.id, true);
                }
                tracing::warn!(listener = %self.name, route = %route.upstream.route().name, upstream = %route.upstream.route().upstream.as_ref().map_or_else(|| "destination".to_owned(), ToString::to_string), error = %e, "upstream_error");
                respond::upstream_error(&e, grpc)
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
    /// What the connection is doing, for its timeouts: each request is in progress until its response
    /// body is done.
    pub activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Tracked<ProxyBody>>;
    type Error = Dropped;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Dropped>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let proxy = Arc::clone(&self.proxy);
        let client = self.client;
        let switch = self.reset.clone();
        let in_flight = self.activity.request();
        Box::pin(async move {
            let resp = proxy.handle(req, client, &switch).await?;
            Ok(resp.map(|b| Tracked::new(b, in_flight)))
        })
    }
}
