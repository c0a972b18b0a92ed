//! Forwarding to an upstream: pooled clients per route (HTTP/1.1 and cleartext HTTP/2), timeouts, upgrades,
//! and errors that say what failed.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::{header, uri::PathAndQuery, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::{body::ProxyBody, headers, pool::Pool};
use crate::config::{Protocol, RouteConfig};

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream connection failed: {0}")]
    Connect(String),
    #[error("upstream connection timed out")]
    ConnectTimeout,
    #[error("upstream sent no response within {}", humantime::format_duration(*.0))]
    ResponseTimeout(Duration),
    #[error("upstream request failed: {0}")]
    Request(String),
}

impl UpstreamError {
    /// A short label for logs and the `x-edgefault-error` header.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "upstream-connect",
            UpstreamError::ConnectTimeout => "upstream-connect-timeout",
            UpstreamError::ResponseTimeout(_) => "upstream-timeout",
            UpstreamError::Request(_) => "upstream-request",
        }
    }
}

/// A route's upstream: where it is, and the connections kept open to it.
pub struct Upstream {
    route: RouteConfig,
    pool: Arc<Pool>,
}

impl Upstream {
    pub fn new(route: RouteConfig) -> Self {
        let authority = &route.upstream.authority;
        let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        let pool = Pool::new(addr, route.connect_timeout);
        Upstream { route, pool }
    }

    pub fn route(&self) -> &RouteConfig {
        &self.route
    }

    /// Sends the request on and returns the upstream's response, body streaming. An HTTP/1.1 upgrade
    /// (WebSocket) that the upstream accepts is tunnelled in both directions.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let upgrade = (req.version() == Version::HTTP_11).then(|| headers::upgrade_request(req.headers())).flatten();
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let h2 = upgrade.is_none()
            && match self.route.protocol {
                Protocol::Auto => req.version() == Version::HTTP_2,
                Protocol::Http1 => false,
                Protocol::Http2 => true,
            };

        let (mut parts, body) = req.into_parts();
        if !h2 && !parts.headers.contains_key(header::HOST) {
            if let Some(host) = parts.uri.authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.route.upstream.scheme.clone());
        uri.authority = Some(self.route.upstream.authority.clone());
        uri.path_and_query = Some(path);
        parts.uri = Uri::from_parts(uri).map_err(|e| UpstreamError::Request(e.to_string()))?;
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Some(proto) = &upgrade {
            parts.headers.insert(header::CONNECTION, http::HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        if h2 {
            parts.headers.remove(header::HOST);
        }
        headers::append_forwarded(&mut parts.headers, client.ip(), "http");
        parts.version = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };

        let req = Request::from_parts(parts, body);
        let sent = async {
            if h2 {
                self.pool.send_h2(req).await
            } else {
                self.pool.send_h1(req, upgrade.is_none()).await
            }
        };
        let mut resp = match tokio::time::timeout(self.route.timeout, sent).await {
            Err(_) => return Err(UpstreamError::ResponseTimeout(self.route.timeout)),
            Ok(result) => result?,
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((c, u)) => {
                            let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                                tracing::debug!(error = %e, "upgraded connection ended with an error");
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                    }
                });
                let (parts, body) = resp.into_parts();
                return Ok(Response::from_parts(parts, ProxyBody::Upstream(body)));
            }
        }
        let (mut parts, body) = resp.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, ProxyBody::Upstream(body)))
    }
}
