//! The admin port: `/healthz` (the process serves), `/readyz` (every listener is bound and the control
//! service is up), `/metrics` (Prometheus text), and `POST /abort-all`, the kill switch.

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
    control::{audit::AuditLog, killswitch},
    experiment::Registry,
    telemetry::metrics::Metrics,
};

pub struct Admin {
    pub ready: AtomicBool,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    /// `POST /abort-all` is written to the audit log.
    pub audit: Arc<AuditLog>,
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
            let peer = peer.to_string();
            let ids = killswitch::abort_all(
                &self.registry,
                &self.audit,
                "admin-endpoint",
                &peer,
                "kill switch: POST /abort-all",
            );
            return text(StatusCode::OK, format!("aborted {} experiment(s)\n", ids.len()));
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only (POST for /abort-all)\n".into());
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n".into()),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into()),
            "/metrics" => {
                let mut r = text(StatusCode::OK, self.metrics.render(self.registry.running()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                r
            }
            _ => text(StatusCode::NOT_FOUND, "not found: try /healthz, /readyz, /metrics, POST /abort-all\n".into()),
        }
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
                let service = hyper::service::service_fn(move |req| {
                    let resp = admin.handle(&req, peer);
                    async move { Ok::<_, Infallible>(resp) }
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
