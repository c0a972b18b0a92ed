//! The HTTP side of the Toxiproxy API: Toxiproxy's routes, status codes and JSON bodies, the control
//! service's tokens, and the audit log.
//!
//! Tokens: when the control service has tokens, every call needs one, as `authorization: Bearer <token>`
//! or as HTTP basic credentials with the token as password or user name (`http://edgefault:<token>@host:8474`,
//! which clients built on an HTTP library pass on); read-only tokens may read. Like Toxiproxy, a browser's user
//! agent (`Mozilla/…`) is refused, so that a web page cannot drive the API from a visitor's browser.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::{net::TcpListener, sync::Semaphore};

use super::{proxies::Changed, ApiError, Toxiproxy};
use crate::{
    control::{
        audit::{AuditEntry, AuditLog},
        auth::{Caller, Role, Tokens},
    },
    experiment::{events::EventKind, Registry},
};

/// Largest request body.
const MAX_BODY: usize = 1024 * 1024;
/// API connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// Longest wait for a request's head.
const HEADER_READ: Duration = Duration::from_secs(10);

/// What a call may do.
struct Access<'a> {
    tokens: &'a Tokens,
    headers: &'a HeaderMap,
}

impl Access<'_> {
    /// Who makes the call, or why it is refused.
    fn caller(&self, method: &Method) -> Result<Caller, ApiError> {
        if self.headers.get(header::USER_AGENT).is_some_and(|ua| ua.as_bytes().starts_with(b"Mozilla/")) {
            return Err(ApiError { status: StatusCode::FORBIDDEN, message: "User agent not allowed".into() });
        }
        if self.tokens.is_empty() {
            return Ok(Caller::anonymous());
        }
        let unauthorized = |message: &str| ApiError { status: StatusCode::UNAUTHORIZED, message: message.into() };
        let Some(value) = self.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "this server requires a token: `authorization: Bearer <token>`, or the token as the password \
                 in the API's URL (http://edgefault:<token>@host:port)",
            ));
        };
        // A bearer token as on the control port; basic credentials carry it as password or user name.
        let caller = match self.basic(value.as_bytes()) {
            None => self.tokens.caller(self.headers).map_err(|s| unauthorized(s.message()))?,
            Some(parts) => parts
                .into_iter()
                .find_map(|secret| self.tokens.holder(&secret))
                .ok_or_else(|| unauthorized("the token is not one this server accepts"))?,
        };
        let reads = *method == Method::GET || *method == Method::HEAD;
        match caller.role {
            Role::Admin => Ok(caller),
            Role::ReadOnly if reads => Ok(caller),
            Role::ReadOnly => Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "token {:?} is read-only; {method} changes state and needs an admin token",
                    &*caller.name
                ),
            }),
            Role::Sidecar => Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!("token {:?} is a sidecar's: it may only subscribe to the controller", &*caller.name),
            }),
        }
    }

    /// The user name and password of basic credentials (`None`: another scheme).
    fn basic(&self, value: &[u8]) -> Option<Vec<Vec<u8>>> {
        value.get(..6).filter(|s| s.eq_ignore_ascii_case(b"basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.get(6..).unwrap_or_default().trim_ascii())
            .unwrap_or_default();
        Some(match decoded.iter().position(|b| *b == b':') {
            Some(i) => {
                let (user, password) = decoded.split_at(i);
                vec![user.to_vec(), password.get(1..).unwrap_or_default().to_vec()]
            }
            None => vec![decoded],
        })
    }
}

/// What serving the API needs.
struct Api {
    proxies: Arc<Toxiproxy>,
    tokens: Arc<arc_swap::ArcSwap<Tokens>>,
    audit: Arc<AuditLog>,
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut text = body.to_string();
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let mut resp = json_response(e.status, &e.to_json());
    if e.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"edgefault toxiproxy\""));
    }
    resp
}

fn no_content() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// A request's route: Toxiproxy's paths, by segment.
enum Route<'a> {
    Reset,
    Version,
    Populate,
    Proxies,
    Proxy(&'a str),
    Toxics(&'a str),
    Toxic(&'a str, &'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    Some(match segments.as_slice() {
        ["reset"] => Route::Reset,
        ["version"] => Route::Version,
        ["populate"] => Route::Populate,
        ["proxies"] => Route::Proxies,
        ["proxies", p] => Route::Proxy(p),
        ["proxies", p, "toxics"] => Route::Toxics(p),
        ["proxies", p, "toxics", t] => Route::Toxic(p, t),
        _ => return None,
    })
}

fn method_not_allowed(method: &Method, allowed: &str) -> ApiError {
    ApiError { status: StatusCode::METHOD_NOT_ALLOWED, message: format!("{method} is not allowed here; {allowed}") }
}

/// The JSON of a request body; an empty body is `{}`.
async fn read_json(body: Incoming) -> Result<Value, ApiError> {
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e} (at most {MAX_BODY} bytes)")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

/// The answer to a change: `status` with its body, or 204 without one.
fn changed(
    result: Result<Changed, ApiError>,
    status: StatusCode,
) -> (Result<Response<Full<Bytes>>, ApiError>, Vec<String>) {
    match result {
        Ok(Changed { body: Some(body), experiments }) => (Ok(json_response(status, &body)), experiments),
        Ok(Changed { body: None, experiments }) => (Ok(no_content()), experiments),
        Err(e) => (Err(e), Vec::new()),
    }
}

impl Api {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let tokens = self.tokens.load();
        let caller = match (Access { tokens: &tokens, headers: &parts.headers }).caller(&parts.method) {
            Ok(c) => c,
            Err(e) => return error_response(&e),
        };
        let Some(route) = route(parts.uri.path()) else {
            return error_response(&ApiError::not_found(format!(
                "no such endpoint: {}; see docs/compat.md",
                crate::text::printable(parts.uri.path())
            )));
        };
        let method = parts.method.clone();
        if method == Method::GET {
            return match self.read(&route).await {
                Ok(resp) => resp,
                Err(e) => error_response(&e),
            };
        }
        let body = match read_json(body).await {
            Ok(b) => b,
            Err(e) => return error_response(&e),
        };
        let (result, experiments) = self.write(&route, &method, &body).await;
        let action = format!("toxiproxy {method} {}", crate::text::printable(parts.uri.path()));
        self.audit.record(&AuditEntry {
            caller: &caller.name,
            peer: &peer.to_string(),
            action: &action,
            experiments,
            spec: None,
            reason: "",
            outcome: result.as_ref().map(|_| ()).map_err(|e| e.message.clone()),
        });
        match result {
            Ok(resp) => {
                tracing::info!(%peer, caller = %caller.name, %action, "toxiproxy API");
                resp
            }
            Err(e) => error_response(&e),
        }
    }

    async fn read(&self, route: &Route<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
        let p = &self.proxies;
        let body = match *route {
            Route::Version => {
                let mut resp = json_response(StatusCode::OK, &serde_json::json!({ "version": version() }));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json;charset=utf-8"));
                return Ok(resp);
            }
            Route::Proxies => p.list().await,
            Route::Proxy(name) => p.get(name).await?,
            Route::Toxics(name) => p.toxics(name).await?,
            Route::Toxic(name, toxic) => p.toxic(name, toxic).await?,
            Route::Reset | Route::Populate => return Err(method_not_allowed(&Method::GET, "use POST")),
        };
        Ok(json_response(StatusCode::OK, &body))
    }

    async fn write(
        &self,
        route: &Route<'_>,
        method: &Method,
        body: &Value,
    ) -> (Result<Response<Full<Bytes>>, ApiError>, Vec<String>) {
        let p = &self.proxies;
        let post = *method == Method::POST;
        let update = post || *method == Method::PATCH;
        let delete = *method == Method::DELETE;
        match *route {
            Route::Reset if post => changed(p.reset().await, StatusCode::NO_CONTENT),
            Route::Populate if post => changed(p.populate(body).await, StatusCode::CREATED),
            Route::Proxies if post => changed(p.create(body).await, StatusCode::CREATED),
            Route::Proxy(name) if update => changed(p.update(name, body).await, StatusCode::OK),
            Route::Proxy(name) if delete => changed(p.delete(name).await, StatusCode::NO_CONTENT),
            Route::Toxics(name) if post => changed(p.add_toxic(name, body).await, StatusCode::OK),
            Route::Toxic(name, toxic) if update => changed(p.update_toxic(name, toxic, body).await, StatusCode::OK),
            Route::Toxic(name, toxic) if delete => changed(p.remove_toxic(name, toxic).await, StatusCode::NO_CONTENT),
            Route::Reset | Route::Populate | Route::Proxies | Route::Toxics(_) => {
                (Err(method_not_allowed(method, "use GET or POST")), Vec::new())
            }
            Route::Proxy(_) | Route::Toxic(..) => {
                (Err(method_not_allowed(method, "use GET, POST, PATCH or DELETE")), Vec::new())
            }
            Route::Version => (Err(method_not_allowed(method, "use GET")), Vec::new()),
        }
    }
}

/// What `GET /version` says.
fn version() -> String {
    format!("edgefault-{}", env!("CARGO_PKG_VERSION"))
}

/// Serves the Toxiproxy API on `listener` until `shutdown` resolves, then closes every proxy. Experiments
/// that end elsewhere (AbortAll, their duration) are caught up with as they end: a disabled proxy listens
/// again at once.
pub async fn serve(
    listener: TcpListener,
    proxies: Arc<Toxiproxy>,
    registry: Arc<Registry>,
    tokens: Arc<arc_swap::ArcSwap<Tokens>>,
    audit: Arc<AuditLog>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let api = Arc::new(Api { proxies: Arc::clone(&proxies), tokens, audit });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut events = registry.subscribe();
    drop(registry);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(%peer, "toxiproxy API: {MAX_CONNECTIONS} connections open; refusing another");
                    continue;
                };
                let api = Arc::clone(&api);
                let service = hyper::service::service_fn(move |req| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, Infallible>(api.handle(req, peer).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(slot);
                });
            }
            event = events.recv() => match event {
                Ok(e) if matches!(e.kind, EventKind::Ended { .. }) => proxies.catch_up().await,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => proxies.catch_up().await,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
            },
            () = &mut shutdown => break,
        }
    }
    proxies.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::auth::Token;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = header::HeaderValue::from_str(v) {
                h.insert(k.clone(), v);
            }
        }
        h
    }

    #[test]
    fn tokens_come_as_bearer_or_basic_and_roles_hold() {
        let mut tokens = Tokens::default();
        let mut problems = Vec::new();
        tokens.add(Token::new("ops", Role::Admin, "admin-secret-0123456789"), "t", &mut problems);
        tokens.add(Token::new("viewer", Role::ReadOnly, "viewer-secret-0123456789"), "t", &mut problems);
        assert!(problems.is_empty());
        let who =
            |h: HeaderMap, m: Method| Access { tokens: &tokens, headers: &h }.caller(&m).map(|c| c.name.to_string());
        let basic = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert_eq!(
            who(headers(&[(header::AUTHORIZATION, "Bearer admin-secret-0123456789")]), Method::POST).ok().as_deref(),
            Some("ops")
        );
        assert_eq!(
            who(headers(&[(header::AUTHORIZATION, &basic("admin-secret-0123456789:"))]), Method::POST).ok().as_deref(),
            Some("ops")
        );
        assert_eq!(
            who(headers(&[(header::AUTHORIZATION, &basic("x:admin-secret-0123456789"))]), Method::DELETE)
                .ok()
                .as_deref(),
            Some("ops")
        );
        assert_eq!(
            who(headers(&[(header::AUTHORIZATION, &basic("viewer-secret-0123456789"))]), Method::GET).ok().as_deref(),
            Some("viewer")
        );
        let status = |r: Result<String, ApiError>| r.err().map(|e| e.status);
        assert_eq!(
            status(who(headers(&[(header::AUTHORIZATION, "Bearer viewer-secret-0123456789")]), Method::POST)),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(status(who(HeaderMap::new(), Method::GET)), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status(who(headers(&[(header::AUTHORIZATION, "Bearer wrong-secret-0123456789")]), Method::GET)),
            Some(StatusCode::UNAUTHORIZED)
        );
        let browser =
            headers(&[(header::AUTHORIZATION, "Bearer admin-secret-0123456789"), (header::USER_AGENT, "Mozilla/5.0")]);
        assert_eq!(status(who(browser, Method::GET)), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn routes_are_toxiproxy_s() {
        assert!(matches!(route("/proxies"), Some(Route::Proxies)));
        assert!(matches!(route("/proxies/"), Some(Route::Proxies)));
        assert!(matches!(route("/proxies/redis"), Some(Route::Proxy("redis"))));
        assert!(matches!(route("/proxies/redis/toxics"), Some(Route::Toxics("redis"))));
        assert!(matches!(route("/proxies/redis/toxics/slow"), Some(Route::Toxic("redis", "slow"))));
        assert!(matches!(route("/reset"), Some(Route::Reset)));
        assert!(route("/proxies/redis/toxics/slow/more").is_none());
        assert!(route("/metrics").is_none());
    }
}
