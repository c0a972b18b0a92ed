//! The admin port: `/healthz` (the process serves), `/readyz` (every listener is bound and the control
//! service is up), `/metrics` (Prometheus text), all read-only and open; and `POST /abort-all`, the kill
//! switch. When the control service has tokens, `/abort-all` needs
//! an admin token (`authorization: Bearer …`, as on the control port); without tokens, it is taken from
//! loopback peers only (a port bound off loopback for probes and scrapes must not let anyone who reaches
//! it end a rehearsal). Paths under `/console` are the console's ([`crate::console`]), whose changes
//! (start, stop, abort all) follow the same rules.
//!
//! The controller's admin port (`controller --admin`) is the same without `/metrics`: its `/abort-all`
//! and console act on the whole fleet.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::{
    console::{self, Console},
    control::{
        audit::AuditLog,
        auth::{Caller, Role, Tokens},
    },
    experiment::Registry,
    telemetry::metrics::Metrics,
};

pub struct Admin {
    pub ready: AtomicBool,
    /// A sidecar's metrics, with its registry (for the running-experiments gauge); the controller
    /// serves none.
    pub metrics: Option<(Arc<Metrics>, Arc<Registry>)>,
    /// `POST /abort-all` is written to the audit log.
    pub audit: Arc<AuditLog>,
    /// The control service's tokens (swapped by a reload): `/abort-all` needs an admin one when any is set.
    pub tokens: Arc<arc_swap::ArcSwap<Tokens>>,
    /// The console under `/console` (docs/console.md).
    pub console: Arc<Console>,
}

impl Admin {
    fn handle(&self, req: &Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let text = |status: StatusCode, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
            r
        };
        if req.uri().path() == "/abort-all" {
            if req.method() != Method::POST {
                return text(StatusCode::METHOD_NOT_ALLOWED, "POST /abort-all ends every experiment\n".into());
            }
            let tokens = self.tokens.load();
            let caller = match may_abort(&tokens, req.headers(), peer) {
                Ok(c) => c,
                Err(refused) => return refused.into_response(text),
            };
            let peer = peer.to_string();
            let who = if tokens.is_empty() {
                "admin-endpoint".to_owned()
            } else {
                format!("admin-endpoint ({})", caller.name)
            };
            let ids = self.console.backend.abort_all(&self.audit, &who, &peer, "kill switch: POST /abort-all");
            return text(StatusCode::OK, format!("aborted {} experiment(s)\n", ids.len()));
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only (POST for /abort-all)\n".into());
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n".into()),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into()),
            "/metrics" if self.metrics.is_none() => text(
                StatusCode::NOT_FOUND,
                "the controller serves no /metrics: each sidecar's admin port has its own\n".into(),
            ),
            "/metrics" => {
                let body = self.metrics.as_ref().map(|(m, r)| m.render(r.running())).unwrap_or_default();
                let mut r = text(StatusCode::OK, body);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                r
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /healthz, /readyz, /metrics, /console, POST /abort-all\n".into(),
            ),
        }
    }
}

/// Why `POST /abort-all` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No token, or not one of the server's: 401.
    Unauthenticated(String),
    /// A read-only token, or no tokens and a caller off loopback: 403.
    Forbidden(String),
}

impl Refused {
    fn into_response(self, text: impl Fn(StatusCode, String) -> Response<Full<Bytes>>) -> Response<Full<Bytes>> {
        match self {
            Refused::Unauthenticated(why) => {
                let mut r = text(StatusCode::UNAUTHORIZED, why);
                r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                r
            }
            Refused::Forbidden(why) => text(StatusCode::FORBIDDEN, why),
        }
    }
}

/// Whether the caller presenting `headers` from `peer` may pull the admin kill switch: with tokens, an
/// admin token; without, any caller on loopback.
pub fn may_abort(tokens: &Tokens, headers: &http::HeaderMap, peer: SocketAddr) -> Result<Caller, Refused> {
    match tokens.caller(headers) {
        Err(status) => Err(Refused::Unauthenticated(format!("{}\n", status.message()))),
        Ok(c) if c.role != Role::Admin => Err(Refused::Forbidden(format!(
            "token {:?} is {}; POST /abort-all needs an admin token\n",
            &*c.name,
            c.role.as_str()
        ))),
        Ok(_) if tokens.is_empty() && !peer.ip().is_loopback() => Err(Refused::Forbidden(
            "POST /abort-all is taken from loopback only while the control service has no tokens; configure \
             control.tokens_file (then send an admin token), or call it from the host or pod itself\n"
                .into(),
        )),
        Ok(c) => Ok(c),
    }
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: impl std::future::Future<Output = ()>) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let admin = Arc::clone(&admin);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let admin = Arc::clone(&admin);
                    async move {
                        if console::is_console(req.uri().path()) {
                            return Ok::<_, Infallible>(admin.console.handle(req, peer).await);
                        }
                        Ok(admin.handle(&req, peer))
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::auth::Token;

    #[test]
    fn the_kill_switch_needs_an_admin_token_or_loopback() {
        let local = SocketAddr::from(([127, 0, 0, 1], 5000));
        let remote = SocketAddr::from(([10, 0, 0, 7], 5000));
        let none = Tokens::default();
        assert!(may_abort(&none, &http::HeaderMap::new(), local).is_ok());
        assert!(matches!(may_abort(&none, &http::HeaderMap::new(), remote), Err(Refused::Forbidden(_))));
        let mut tokens = Tokens::default();
        let mut problems = Vec::new();
        tokens.add(Token::new("ops", Role::Admin, "admin-secret-0123456789"), "t", &mut problems);
        tokens.add(Token::new("viewer", Role::ReadOnly, "viewer-secret-0123456789"), "t", &mut problems);
        let bearer = |s: &str| {
            let mut h = http::HeaderMap::new();
            if let Ok(v) = header::HeaderValue::from_str(&format!("Bearer {s}")) {
                h.insert(header::AUTHORIZATION, v);
            }
            h
        };
        assert!(matches!(may_abort(&tokens, &http::HeaderMap::new(), local), Err(Refused::Unauthenticated(_))));
        assert!(matches!(may_abort(&tokens, &bearer("viewer-secret-0123456789"), local), Err(Refused::Forbidden(_))));
        let ops = may_abort(&tokens, &bearer("admin-secret-0123456789"), remote).map(|c| c.name.to_string());
        assert_eq!(ops, Ok("ops".to_owned()), "an admin token works from anywhere");
    }
}
