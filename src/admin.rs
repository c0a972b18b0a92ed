//! The admin port: `/healthz` (the process serves), `/readyz` (every listener is bound and the control
//! service is up), `/metrics` (Prometheus text).

use std::{
    convert::Infallible,
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

use crate::{experiment::Registry, telemetry::metrics::Metrics};

pub struct Admin {
    pub ready: AtomicBool,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
}

impl Admin {
    fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let text = |status: StatusCode, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
            r
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
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
            _ => text(StatusCode::NOT_FOUND, "not found: try /healthz, /readyz, /metrics\n".into()),
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
                let Ok((stream, _)) = accepted else { continue };
                let admin = Arc::clone(&admin);
                let service = hyper::service::service_fn(move |req| {
                    let resp = admin.handle(&req);
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
