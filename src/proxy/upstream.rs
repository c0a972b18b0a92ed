//! Forwarding to an upstream: pooled clients per route (HTTP/1.1 and cleartext HTTP/2), timeouts, upgrades,
//! and errors that say what failed.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http::{
    header,
    uri::{Authority, PathAndQuery, Scheme},
    Request, Response, StatusCode, Uri, Version,
};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::{
    body::ProxyBody,
    error::UpstreamError,
    forward::{carry, TunnelPlan},
    headers,
    pool::{Pool, PooledBody},
};
use crate::{
    proxy::settings::{Protocol, RouteConfig},
    telemetry::metrics::RetryCounters,
};

/// Destinations a forward route keeps connections to; past this many, the least recently added go.
const MAX_DESTINATIONS: usize = 256;

/// Where a route's requests go.
enum Target {
    /// The route's configured upstream.
    Fixed { pool: Arc<Pool>, scheme: Scheme, authority: Authority },
    /// Each request's own destination (a forward listener), with a pool per destination.
    Destination(Mutex<Destinations>),
}

#[derive(Default)]
struct Destinations {
    pools: HashMap<Authority, Arc<Pool>>,
    order: VecDeque<Authority>,
}

/// A route's upstream: where it is, and the connections kept open to it.
pub struct Upstream {
    route: RouteConfig,
    target: Target,
    /// Second attempts of the route's requests, for the pools of a forward route's destinations.
    retries: RetryCounters,
}

impl Upstream {
    pub fn new(route: RouteConfig, retries: RetryCounters) -> Self {
        let target = match &route.upstream {
            Some(u) => {
                let default_port = if u.scheme == Scheme::HTTPS { 443 } else { 80 };
                let addr = format!("{}:{}", u.authority.host(), u.authority.port_u16().unwrap_or(default_port));
                Target::Fixed {
                    pool: Pool::new(addr, route.connect_timeout, u.tls.clone()).with_retries(retries.clone()),
                    scheme: u.scheme.clone(),
                    authority: u.authority.clone(),
                }
            }
            None => Target::Destination(Mutex::new(Destinations::default())),
        };
        Upstream { route, target, retries }
    }

    /// The pool, scheme and authority a request goes to.
    fn target_of(&self, uri: &Uri) -> Result<(Arc<Pool>, Scheme, Authority), UpstreamError> {
        match &self.target {
            Target::Fixed { pool, scheme, authority } => Ok((Arc::clone(pool), scheme.clone(), authority.clone())),
            Target::Destination(destinations) => {
                let authority = uri
                    .authority()
                    .cloned()
                    .ok_or_else(|| UpstreamError::Destination("a forward proxy needs an absolute URI".into()))?;
                let mut d = destinations.lock().unwrap_or_else(|p| p.into_inner());
                let pool = match d.pools.get(&authority) {
                    Some(p) => Arc::clone(p),
                    None => {
                        if d.order.len() >= MAX_DESTINATIONS {
                            if let Some(old) = d.order.pop_front() {
                                d.pools.remove(&old);
                            }
                        }
                        let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
                        let pool = Pool::new(addr, self.route.connect_timeout, None).with_retries(self.retries.clone());
                        d.pools.insert(authority.clone(), Arc::clone(&pool));
                        d.order.push_back(authority.clone());
                        pool
                    }
                };
                Ok((pool, Scheme::HTTP, authority))
            }
        }
    }

    pub fn route(&self) -> &RouteConfig {
        &self.route
    }

    /// What to say when HTTP/2 failed to an upstream that does not speak it.
    fn h2_hint(&self, why: &str, grpc: bool) -> String {
        let name = &self.route.name;
        if grpc {
            format!(
                "{why}: the upstream does not speak HTTP/2, which gRPC needs; route {name:?} must send gRPC to an \
                 HTTP/2 (h2c or TLS with h2) server"
            )
        } else {
            format!("{why}: the upstream does not speak HTTP/2; set protocol: auto (or http1) on route {name:?}")
        }
    }

    /// The request head as the upstream gets it: its host (or the client's, with `preserve_host`), the
    /// origin form over HTTP/1.1 or scheme and authority over HTTP/2, no hop-by-hop headers but the
    /// upgrade's, and the `x-forwarded-*` headers.
    fn upstream_head(
        &self,
        parts: &mut http::request::Parts,
        h2: bool,
        upgrade: Option<&http::HeaderValue>,
        scheme: http::uri::Scheme,
        authority: http::uri::Authority,
        client: SocketAddr,
    ) -> Result<(), UpstreamError> {
        if !h2 {
            if !self.route.preserve_host {
                if let Ok(host) = http::HeaderValue::from_str(authority.as_str()) {
                    parts.headers.insert(header::HOST, host);
                }
            } else if !parts.headers.contains_key(header::HOST) {
                if let Some(host) = parts.uri.authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()) {
                    parts.headers.insert(header::HOST, host);
                }
            }
        }
        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = if h2 {
            // HTTP/2 carries the scheme and authority as pseudo-headers, taken from the URI.
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(scheme);
            uri.authority = Some(authority);
            uri.path_and_query = Some(path);
            Uri::from_parts(uri).map_err(|e| UpstreamError::Request(e.to_string()))?
        } else {
            // HTTP/1.1 to an origin: the origin form (`GET /path HTTP/1.1`), the host in `host`.
            Uri::from(path)
        };
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Some(proto) = upgrade {
            parts.headers.insert(header::CONNECTION, http::HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        if h2 {
            parts.headers.remove(header::HOST);
        }
        headers::append_forwarded(&mut parts.headers, client.ip(), self.route.forwarded_proto);
        parts.version = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
        Ok(())
    }

    /// Sends the request on and returns the upstream's response, body streaming. An HTTP/1.1 upgrade
    /// (WebSocket) that the upstream accepts is tunnelled in both directions.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
        upgraded: TunnelPlan,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let upgrade = (req.version() == Version::HTTP_11).then(|| headers::upgrade_request(req.headers())).flatten();
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (pool, scheme, authority) = self.target_of(req.uri())?;
        let grpc = headers::is_grpc(req.headers());
        // `auto`: HTTP/2 only where it is needed (gRPC) or known to work (the upstream answered an HTTP/2
        // preface); an HTTP/2 browser or h2c client in front of an HTTP/1.1 app is forwarded over HTTP/1.1.
        let h2 = upgrade.is_none()
            && match self.route.protocol {
                Protocol::Auto => req.version() == Version::HTTP_2 && (grpc || pool.speaks_h2().await),
                Protocol::Http1 => false,
                Protocol::Http2 => true,
            };
        let (mut parts, body) = req.into_parts();
        self.upstream_head(&mut parts, h2, upgrade.as_ref(), scheme, authority, client)?;
        let req = Request::from_parts(parts, body);
        let sent = async {
            if h2 {
                pool.send_h2(req).await
            } else {
                pool.send_h1(req, upgrade.is_none()).await
            }
        };
        let resp = match tokio::time::timeout(self.route.timeout, sent).await {
            Err(_) => return Err(UpstreamError::ResponseTimeout(self.route.timeout)),
            Ok(Err(UpstreamError::Request(why))) if h2 && !pool.speaks_h2().await => {
                return Err(UpstreamError::Request(self.h2_hint(&why, grpc)))
            }
            Ok(result) => result?,
        };

        Ok(answer(resp, client_upgrade, upgrade.as_ref(), upgraded))
    }
}

/// The upstream's response as the client gets it: an accepted upgrade tunnelled in both directions, or the
/// response without its hop-by-hop headers.
fn answer(
    mut resp: Response<PooledBody>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    upgrade: Option<&http::HeaderValue>,
    mut upgraded: TunnelPlan,
) -> Response<ProxyBody> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            if let Some(d) = &mut upgraded.drain {
                d.websocket = upgrade.as_ref().is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
            }
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((c, u)) => carry(TokioIo::new(c), TokioIo::new(u), upgraded).await,
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            let (parts, body) = resp.into_parts();
            return Response::from_parts(parts, ProxyBody::Upstream(body));
        }
    }
    let (mut parts, body) = resp.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, ProxyBody::Upstream(body))
}
