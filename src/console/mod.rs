//! The console at `/console` on the admin port: a page (HTML, script and styles compiled into the binary,
//! nothing loaded from elsewhere) that shows the running and recent experiments with their timeline and
//! phase, charts per route, the event log and the scenario catalogue, and that starts scenarios, stops
//! experiments and pulls the kill switch — through a small JSON API under `/console/api/`, which the page
//! polls every second.
//!
//! Authentication is the control service's: when it has tokens, every API call needs
//! `authorization: Bearer <token>`; read-only tokens may read (GET) and change nothing (POST → 403);
//! sidecar tokens get nothing. Without tokens, reads are open and changes are taken from loopback peers
//! only, the rule of the admin port's `POST /abort-all`. A change must be sent as `application/json`, which
//! a cross-site HTML form cannot send. The page itself loads without a token and asks for one; it keeps it
//! in the tab's `sessionStorage`, never in a URL.
//!
//! | path | method | answers |
//! | --- | --- | --- |
//! | `/console` | GET | the page (with a strict `content-security-policy`) |
//! | `/console/api/state` | GET | the server, the caller's role, every active and recent experiment |
//! | `/console/api/events?after=SEQ` | GET | event log lines after `SEQ` (the last [`events::KEPT`] are kept) |
//! | `/console/api/scenarios` | GET | the catalogue with each scenario's parameters and defaults |
//! | `/console/api/history?minutes=N` | GET | per-route and per-experiment series of the last N minutes |
//! | `/console/api/scenarios/start` | POST | `{ "scenario": NAME, "params": { NAME: VALUE } }` starts it |
//! | `/console/api/experiments/stop` | POST | `{ "id": ID }` stops one experiment |
//! | `/console/api/abort-all` | POST | the kill switch, audited with the caller's token name |

pub mod events;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    control::{
        audit::{AuditEntry, AuditLog},
        auth::{Caller, Role, Tokens},
        killswitch,
        proto::{is_active, state_name, target_state_name, to_proto},
        scenarios,
    },
    experiment::{Registry, RegistryError},
    pb::v1,
    scenario::{Catalogue, ParamKind},
    telemetry::history::{History, Query, Resolution, Snapshot},
};

/// Where the console lives on the admin port.
pub const PREFIX: &str = "/console";

/// Largest request body the API reads: a scenario's parameters fit many times over.
const MAX_BODY: usize = 64 * 1024;

/// Ended experiments the state shows, newest first, after the active ones.
const RECENT: usize = 20;

/// Longest window the charts ask for at one-second resolution (the history keeps ten minutes of seconds).
const MAX_MINUTES: u64 = 10;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The page may load its own script and styles and call its own API, and nothing else: no CDN, no font,
/// no frame, no form posted anywhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Is `path` the console's?
pub fn is_console(path: &str) -> bool {
    path == PREFIX || path.strip_prefix(PREFIX).is_some_and(|rest| rest.starts_with('/'))
}

/// What the header of the page says about the server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerInfo {
    /// `sidecar` or `controller`.
    pub kind: &'static str,
    /// The host (a pod's name in Kubernetes) the server runs on.
    pub name: String,
    /// Each listener's name and bound address (a sidecar's).
    pub listeners: Vec<(String, String)>,
}

/// What the console reads and acts on: a sidecar's own experiments ([`Local`]), or the controller's fleet.
pub trait Backend: Send + Sync {
    /// Every experiment kept: active ones in start order, then ended ones, newest first.
    fn experiments(&self) -> Vec<v1::Experiment>;
    /// Starts a scenario; `sidecars` is a selector as `ctl scenario start --selector` takes it (the
    /// controller's only). Returns the experiments' ids and the expansion's warnings.
    fn start_scenario(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
        sidecars: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>), ApiError>;
    fn stop(&self, id: &str, reason: &str) -> Result<v1::Experiment, ApiError>;
    /// The kill switch, audited; returns the ids ended.
    fn abort_all(&self, audit: &AuditLog, who: &str, peer: &str, reason: &str) -> Vec<String>;
    fn history(&self, q: &Query) -> Snapshot;
    /// The fleet's sidecars (the controller's only).
    fn sidecars(&self) -> Option<Vec<v1::Sidecar>> {
        None
    }
}

/// A sidecar's console: its registry and its history.
pub struct Local {
    pub registry: Arc<Registry>,
    pub history: Arc<History>,
    pub scenarios: Arc<Catalogue>,
}

impl Backend for Local {
    fn experiments(&self) -> Vec<v1::Experiment> {
        self.registry.list().into_iter().map(to_proto).collect()
    }

    fn start_scenario(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
        sidecars: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>), ApiError> {
        if sidecars.is_some() {
            return Err(ApiError::BadRequest(
                "sidecars: this is a sidecar's console; selecting sidecars is the controller's (open its console)"
                    .into(),
            ));
        }
        let (started, warnings) = scenarios::start(&self.scenarios, &self.registry, name, params)?;
        Ok((started.into_iter().map(|e| e.id).collect(), warnings))
    }

    fn stop(&self, id: &str, reason: &str) -> Result<v1::Experiment, ApiError> {
        Ok(to_proto(self.registry.stop(id, reason)?))
    }

    fn abort_all(&self, audit: &AuditLog, who: &str, peer: &str, reason: &str) -> Vec<String> {
        killswitch::abort_all(&self.registry, audit, who, peer, reason)
    }

    fn history(&self, q: &Query) -> Snapshot {
        self.history.snapshot(q)
    }
}

/// The console's state: what it reads and what it acts on, shared with the admin port.
pub struct Console {
    pub backend: Arc<dyn Backend>,
    /// Starts, stops and the kill switch are written to the audit log with the caller's token name.
    pub audit: Arc<AuditLog>,
    /// The control service's tokens (swapped by a reload).
    pub tokens: Arc<arc_swap::ArcSwap<Tokens>>,
    /// The catalogue the scenario form shows.
    pub scenarios: Arc<Catalogue>,
    /// The event log, fed by [`events::Ring::collect`].
    pub events: Arc<events::Ring>,
    pub server: ServerInfo,
}

/// Why an API call was not done; each is answered with its status and `{ "error": message }`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is over {MAX_BODY} bytes")]
    TooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        let m = s.message().to_owned();
        match s.code() {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ApiError::BadRequest(m),
            tonic::Code::NotFound => ApiError::NotFound(m),
            tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition | tonic::Code::ResourceExhausted => {
                ApiError::Conflict(m)
            }
            tonic::Code::PermissionDenied => ApiError::Forbidden(m),
            _ => ApiError::Internal(m),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(..) => ApiError::NotFound(e.to_string()),
            RegistryError::AlreadyEnded { .. } | RegistryError::Exists(_) | RegistryError::TooMany(_) => {
                ApiError::Conflict(e.to_string())
            }
            RegistryError::NoLease(_) => ApiError::BadRequest(e.to_string()),
        }
    }
}

/// Who may call the console's API with `method`: with tokens, a token's holder (admin or read-only;
/// read-only for GET only); without, anyone for GET and loopback peers for POST.
pub fn authorize(tokens: &Tokens, method: &Method, headers: &HeaderMap, peer: SocketAddr) -> Result<Caller, ApiError> {
    let change = method == Method::POST;
    let caller = tokens.caller(headers).map_err(|s| ApiError::Unauthenticated(s.message().to_owned()))?;
    match caller.role {
        Role::Sidecar => Err(ApiError::Forbidden(format!(
            "token {:?} is a sidecar's: it may only subscribe to the controller; the console takes an admin or \
             read-only token",
            &*caller.name
        ))),
        Role::ReadOnly if change => Err(ApiError::Forbidden(format!(
            "token {:?} is read-only: it sees everything and changes nothing; starting, stopping and aborting \
             need an admin token",
            &*caller.name
        ))),
        _ if change && tokens.is_empty() && !peer.ip().is_loopback() => Err(ApiError::Forbidden(
            "changes are taken from loopback only while the control service has no tokens; configure \
             control.tokens_file (then use an admin token), or open the console through a port-forward"
                .into(),
        )),
        _ if change && tokens.is_empty() && !local_host(headers) => Err(ApiError::Forbidden(
            "without tokens, changes are taken only from a console opened as http://127.0.0.1:PORT or \
             http://localhost:PORT (under another name, the page could be another site's, through DNS \
             rebinding); configure control.tokens_file to use the console under any name"
                .into(),
        )),
        _ => Ok(caller),
    }
}

/// Whether the request names this server by an IP address or `localhost`. Without tokens, the loopback
/// rule alone would let a page of another site drive a local console: its name resolved again to
/// 127.0.0.1 (DNS rebinding) makes its requests same-origin, from a loopback peer. Such a page can only
/// name the server by its own domain.
fn local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        // HTTP/1.0 without a host, or HTTP/2 with `:authority` only (hyper keeps it in the URI): no name given.
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// May the caller change anything (what the page shows its buttons for)?
fn may_change(tokens: &Tokens, caller: &Caller, peer: SocketAddr) -> bool {
    caller.role == Role::Admin && (!tokens.is_empty() || peer.ip().is_loopback())
}

/// Changes must come as JSON: an HTML form elsewhere cannot send `content-type: application/json`
/// without the browser asking this server first (and it answers no CORS preflight).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "changes are sent as JSON: content-type: application/json (a cross-site form cannot)".into(),
        ))
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", serde_json::to_vec(v).unwrap_or_default())
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let mut r = json_response(e.status(), &json!({ "error": e.to_string() }));
    if matches!(e, ApiError::Unauthenticated(_)) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// The body of a POST as `T`, bounded.
async fn read_json<T: for<'de> Deserialize<'de>>(body: Incoming) -> Result<T, ApiError> {
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(ApiError::TooLarge),
        Err(e) => return Err(ApiError::BadRequest(format!("could not read the request body: {e}"))),
    };
    let bytes = if bytes.is_empty() { Bytes::from_static(b"{}") } else { bytes };
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("the body is not the JSON expected: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    scenario: String,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    /// On the controller: which sidecars, as `kubectl -l` writes it; empty or absent: the whole fleet.
    #[serde(default)]
    sidecars: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AbortBody {}

impl Console {
    /// Answers a request under [`PREFIX`] from `peer`.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let Some(api) = path.strip_prefix("/console/api/") else { return self.asset(&req, &path) };
        let (parts, body) = req.into_parts();
        let tokens = self.tokens.load();
        let caller = match authorize(&tokens, &parts.method, &parts.headers, peer) {
            Ok(c) => c,
            Err(e) => return error_response(&e),
        };
        let result = match (&parts.method, api) {
            (&Method::GET | &Method::HEAD, "state") => Ok(self.state(&tokens, &caller, peer)),
            (&Method::GET | &Method::HEAD, "events") => Ok(self.events(parts.uri.query())),
            (&Method::GET | &Method::HEAD, "scenarios") => Ok(self.catalogue()),
            (&Method::GET | &Method::HEAD, "history") => Ok(history_json(&*self.backend, parts.uri.query())),
            (&Method::POST, "scenarios/start" | "experiments/stop" | "abort-all") => {
                match require_json(&parts.headers) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        let who = self.who(&tokens, &caller);
                        let peer = peer.to_string();
                        match api {
                            "scenarios/start" => match read_json(body).await {
                                Ok(b) => self.start(b, &who, &peer),
                                Err(e) => Err(e),
                            },
                            "experiments/stop" => match read_json(body).await {
                                Ok(b) => self.stop(b, &who, &peer),
                                Err(e) => Err(e),
                            },
                            _ => match read_json::<AbortBody>(body).await {
                                Ok(_) => Ok(self.abort_all(&who, &peer)),
                                Err(e) => Err(e),
                            },
                        }
                    }
                }
            }
            (_, "state" | "events" | "scenarios" | "history") => {
                Err(ApiError::MethodNotAllowed(format!("{path} is read with GET")))
            }
            (_, "scenarios/start" | "experiments/stop" | "abort-all") => {
                Err(ApiError::MethodNotAllowed(format!("{path} changes state: POST with a JSON body")))
            }
            _ => Err(ApiError::NotFound(format!(
                "no {path}: the API has state, events, scenarios, history (GET) and scenarios/start, \
                 experiments/stop, abort-all (POST)"
            ))),
        };
        match result {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => error_response(&e),
        }
    }

    /// The page, its script and its styles: open, like the page of a login form; they hold no data.
    fn asset(&self, req: &Request<Incoming>, path: &str) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return error_response(&ApiError::MethodNotAllowed(format!("{path} is read with GET")));
        }
        match path {
            "/console" | "/console/" => {
                let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", PAGE);
                let h = r.headers_mut();
                h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
                h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                r
            }
            "/console/console.js" => respond(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT),
            "/console/console.css" => respond(StatusCode::OK, "text/css; charset=utf-8", STYLE),
            _ => error_response(&ApiError::NotFound(format!("no {path}: the console is at /console"))),
        }
    }

    /// The caller as the audit log names it.
    fn who(&self, tokens: &Tokens, caller: &Caller) -> String {
        if tokens.is_empty() {
            "console".to_owned()
        } else {
            format!("console ({})", caller.name)
        }
    }

    fn state(&self, tokens: &Tokens, caller: &Caller, peer: SocketAddr) -> Value {
        let all = self.backend.experiments();
        let active = all.iter().filter(|e| is_active(e.state)).count();
        let running = all.iter().filter(|e| e.state() == v1::ExperimentState::Running).count();
        let experiments: Vec<Value> = all
            .iter()
            .filter(|e| is_active(e.state))
            .chain(all.iter().filter(|e| !is_active(e.state)).take(RECENT))
            .map(experiment_json)
            .collect();
        let sidecars = self.backend.sidecars().map(|list| {
            list.iter()
                .map(|s| {
                    json!({
                        "id": s.id,
                        "labels": s.labels,
                        "connected": s.connected,
                        "experiments_running": s.experiments_running,
                        "last_rejection": s.last_rejection,
                        "routes": s.routes,
                    })
                })
                .collect::<Vec<_>>()
        });
        json!({
            "sidecars": sidecars,
            "server": self.server,
            "version": env!("CARGO_PKG_VERSION"),
            "caller": {
                "name": &*caller.name,
                "role": caller.role.as_str(),
                "may_change": may_change(tokens, caller, peer),
                "tokens": !tokens.is_empty(),
            },
            "now": unix_ms(SystemTime::now()),
            "running": running,
            "active": active,
            "experiments": experiments,
        })
    }

    fn events(&self, query: Option<&str>) -> Value {
        let after = param(query, "after").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let (lines, last) = self.events.after(after);
        json!({ "events": lines, "last": last })
    }

    fn catalogue(&self) -> Value {
        let scenarios: Vec<Value> = self
            .scenarios
            .list()
            .iter()
            .map(|s| {
                let params: Vec<Value> = s
                    .params
                    .iter()
                    .map(|p| {
                        let (min, max) = match p.kind {
                            ParamKind::Number { min, max } | ParamKind::Integer { min, max } => (min, max),
                            ParamKind::Percentage => (Some(0.0), Some(100.0)),
                            _ => (None, None),
                        };
                        json!({
                            "name": p.name,
                            "type": p.kind.name(),
                            "default": p.to_proto().default_value,
                            "description": p.description,
                            "choices": p.choices,
                            "min": min,
                            "max": max,
                        })
                    })
                    .collect();
                json!({
                    "name": s.name,
                    "summary": s.summary,
                    "description": s.description,
                    "source": s.source,
                    "builtin": s.file.is_none(),
                    "params": params,
                })
            })
            .collect();
        json!({ "scenarios": scenarios })
    }

    fn start(&self, b: StartBody, who: &str, peer: &str) -> Result<Value, ApiError> {
        let params: BTreeMap<String, String> = b
            .params
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
        let sidecars = b.sidecars.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let result = self.backend.start_scenario(&b.scenario, &params, sidecars);
        let reason = match sidecars {
            None => format!("scenario {} from the console", b.scenario),
            Some(sel) => format!("scenario {} from the console, sidecars {sel}", b.scenario),
        };
        self.audit.record(&AuditEntry {
            caller: who,
            peer,
            action: "StartScenario",
            experiments: result.as_ref().map(|(ids, _)| ids.clone()).unwrap_or_default(),
            spec: None,
            reason: &reason,
            outcome: result.as_ref().map(|_| ()).map_err(ToString::to_string),
        });
        let (ids, warnings) = result?;
        tracing::info!(%peer, caller = %who, scenario = %b.scenario, experiments = ids.len(), "console: scenario started");
        Ok(json!({ "experiments": ids, "warnings": warnings }))
    }

    fn stop(&self, b: StopBody, who: &str, peer: &str) -> Result<Value, ApiError> {
        let result = self.backend.stop(&b.id, "stopped from the console");
        self.audit.record(&AuditEntry {
            caller: who,
            peer,
            action: "StopExperiment",
            experiments: vec![crate::text::excerpt(&b.id, 64).to_string()],
            spec: None,
            reason: "stopped from the console",
            outcome: result.as_ref().map(|_| ()).map_err(ToString::to_string),
        });
        let info = result?;
        tracing::info!(%peer, caller = %who, experiment = %info.id, "console: experiment stopped");
        Ok(json!({ "experiment": experiment_json(&info) }))
    }

    fn abort_all(&self, who: &str, peer: &str) -> Value {
        let ids = self.backend.abort_all(&self.audit, who, peer, "kill switch: the console's Abort all");
        json!({ "aborted": ids })
    }
}

/// The value of `name` in a query string.
fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

/// The charts' series: the last `minutes` (default 5, at most [`MAX_MINUTES`]) second by second, or with
/// `resolution=minute` the last `minutes` (at most six hours) minute by minute.
fn history_json(backend: &dyn Backend, query: Option<&str>) -> Value {
    let minutes = param(query, "minutes").and_then(|v| v.parse::<u64>().ok()).unwrap_or(5);
    let (resolution, minutes) = match param(query, "resolution") {
        Some("minute") => (Resolution::Minute, minutes.clamp(1, 6 * 60)),
        _ => (Resolution::Second, minutes.clamp(1, MAX_MINUTES)),
    };
    let since = SystemTime::now().checked_sub(Duration::from_secs(minutes * 60));
    let snapshot = backend.history(&Query { since, resolution });
    serde_json::to_value(snapshot).unwrap_or(Value::Null)
}

/// Seconds of a protobuf duration.
fn seconds(d: Option<&pbjson_types::Duration>) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "an offset in seconds, shown")]
    d.map_or(0.0, |d| d.seconds as f64 + f64::from(d.nanos) / 1e9)
}

/// Unix milliseconds of a protobuf timestamp (none before 1970).
pub(crate) fn ms(t: Option<&pbjson_types::Timestamp>) -> Option<u64> {
    let t = t?;
    let s = u64::try_from(t.seconds).ok()?;
    Some(s.saturating_mul(1000).saturating_add(u64::try_from(t.nanos / 1_000_000).unwrap_or(0)))
}

/// One experiment as the page shows it.
pub fn experiment_json(e: &v1::Experiment) -> Value {
    let no_spec = v1::ExperimentSpec::default();
    let spec = e.spec.as_ref().unwrap_or(&no_spec);
    let no_match = v1::Match::default();
    let m = spec.r#match.as_ref().unwrap_or(&no_match);
    let scale = spec.time_scale.filter(|s| *s > 0.0).unwrap_or(1.0);
    let phases: Vec<Value> = spec
        .phases
        .iter()
        .map(|p| json!({ "name": p.name, "start": seconds(p.start.as_ref()) / scale, "percentage": p.percentage }))
        .collect();
    let faults: Vec<String> = serde_json::to_value(&spec.faults)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|f| f.as_object().and_then(|o| o.keys().next().cloned()))
        .collect();
    let stats = e.stats.unwrap_or_default();
    let sidecars: Vec<Value> = e
        .sidecars
        .iter()
        .map(|t| json!({ "id": t.sidecar_id, "state": target_state_name(t.state), "reason": t.reason }))
        .collect();
    json!({
        "id": e.id,
        "name": spec.name,
        "state": state_name(e.state),
        "percentage": spec.percentage.unwrap_or(100.0),
        "dry_run": spec.dry_run,
        "targets": {
            "listeners": m.listeners,
            "routes": m.routes,
            "hosts": m.hosts,
            "path_prefix": m.path_prefix,
            "path_exact": m.path_exact,
            "methods": m.methods,
        },
        "faults": faults,
        "created": ms(e.created_at.as_ref()).unwrap_or(0),
        "started": ms(e.started_at.as_ref()),
        "ends": ms(e.ends_at.as_ref()),
        "ended": ms(e.ended_at.as_ref()),
        "end_reason": e.end_reason,
        "duration": seconds(e.effective_duration.as_ref()),
        "phases": phases,
        "phase": e.phase.as_ref().map(|p| json!({
            "index": p.index,
            "name": p.name,
            "next_at": ms(p.next_change_at.as_ref()),
            "next_name": (!p.next_name.is_empty()).then(|| p.next_name.clone()),
        })),
        "timeline_state": e.timeline_state,
        "counters": {
            "matched": stats.matched,
            "injected": stats.injected,
            "aborted": stats.aborted,
            "delayed": stats.delayed,
            "would_inject": stats.would_inject,
        },
        "sidecars": sidecars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::auth::Token;

    fn bearer(s: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {s}")) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn read_only_reads_admin_changes_sidecar_nothing() {
        let local = SocketAddr::from(([127, 0, 0, 1], 5000));
        let remote = SocketAddr::from(([10, 0, 0, 7], 5000));
        let mut tokens = Tokens::default();
        let mut problems = Vec::new();
        tokens.add(Token::new("ops", Role::Admin, "admin-secret-0123456789"), "t", &mut problems);
        tokens.add(Token::new("viewer", Role::ReadOnly, "viewer-secret-0123456789"), "t", &mut problems);
        tokens.add(Token::new("pod", Role::Sidecar, "sidecar-secret-0123456789"), "t", &mut problems);
        let (get, post) = (Method::GET, Method::POST);
        let status = |m: &Method, h: &HeaderMap, p| authorize(&tokens, m, h, p).map(|c| c.role).map_err(|e| e.status());
        assert_eq!(status(&get, &HeaderMap::new(), local), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(status(&get, &bearer("nope-nope-nope-nope"), local), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(status(&get, &bearer("viewer-secret-0123456789"), remote), Ok(Role::ReadOnly));
        assert_eq!(status(&post, &bearer("viewer-secret-0123456789"), local), Err(StatusCode::FORBIDDEN));
        assert_eq!(status(&get, &bearer("sidecar-secret-0123456789"), local), Err(StatusCode::FORBIDDEN));
        assert_eq!(status(&post, &bearer("admin-secret-0123456789"), remote), Ok(Role::Admin));

        let none = Tokens::default();
        assert!(authorize(&none, &get, &HeaderMap::new(), remote).is_ok(), "reads are open without tokens");
        assert!(authorize(&none, &post, &HeaderMap::new(), local).is_ok());
        let off = authorize(&none, &post, &HeaderMap::new(), remote).map_err(|e| e.status());
        assert_eq!(off.err(), Some(StatusCode::FORBIDDEN), "changes from loopback only without tokens");
    }

    #[test]
    fn without_tokens_changes_need_the_server_named_by_address() {
        let local = SocketAddr::from(([127, 0, 0, 1], 5000));
        let none = Tokens::default();
        let host = |h: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_static(h));
            m
        };
        for ok in ["127.0.0.1:9095", "localhost:9095", "LOCALHOST", "[::1]:9095", "10.1.2.3:9095"] {
            assert!(authorize(&none, &Method::POST, &host(ok), local).is_ok(), "{ok}");
        }
        for rebound in ["evil.example:9095", "evil.example", "127.0.0.1.nip.io:9095", "localhost.evil.example"] {
            let r = authorize(&none, &Method::POST, &host(rebound), local).map_err(|e| e.status());
            assert_eq!(r.err(), Some(StatusCode::FORBIDDEN), "{rebound}");
            assert!(authorize(&none, &Method::GET, &host(rebound), local).is_ok(), "reads stay open: {rebound}");
        }
    }

    #[test]
    fn changes_must_be_json() {
        let mut h = HeaderMap::new();
        assert!(require_json(&h).is_err());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        assert!(require_json(&h).is_err());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(require_json(&h).is_err());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/JSON; charset=utf-8"));
        assert!(require_json(&h).is_ok());
    }

    #[test]
    fn console_paths() {
        assert!(is_console("/console") && is_console("/console/") && is_console("/console/api/state"));
        assert!(!is_console("/consoles") && !is_console("/metrics"));
    }
}
