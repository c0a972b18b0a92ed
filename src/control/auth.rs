//! Bearer-token authentication of the control service.
//!
//! Every `edgefault.v1.FaultControl` call must carry `authorization: Bearer <token>` when the server has
//! tokens. A token has a name (for logs and the audit log; the secret itself is never logged) and a role:
//! `admin` may call everything, `read-only` only the calls that change nothing. Health and reflection stay
//! open so probes and grpcurl work. With no token configured every caller is `anonymous` with the admin
//! role; the config refuses that unless the control port is on loopback.
//!
//! The check is a tower layer in front of every service of the control server, so an RPC added later is
//! admin-only until it is listed in [`READ_ONLY_METHODS`].

use std::{
    fmt,
    future::Future,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{header, HeaderMap};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The gRPC path prefix of the service the tokens protect.
const SERVICE_PREFIX: &str = "/edgefault.v1.FaultControl/";
/// The controller's subscription service: a sidecar or admin token.
const FLEET_PREFIX: &str = "/edgefault.v1.Fleet/";

/// Calls a read-only token may make: they change no state.
pub const READ_ONLY_METHODS: &[&str] = &[
    "GetExperiment",
    "ListExperiments",
    "ValidateExperiment",
    "WatchEvents",
    "GetStats",
    "ListScenarios",
    "GetScenario",
    "ListSidecars",
    "GetHistory",
];

/// Shortest token accepted: a guessable token is no protection.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Every call.
    Admin,
    /// Only the calls in [`READ_ONLY_METHODS`].
    ReadOnly,
    /// Only a sidecar's subscription to the controller (`edgefault.v1.Fleet/Subscribe`): a pod's token
    /// that cannot start faults anywhere.
    Sidecar,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
            Role::Sidecar => "sidecar",
        }
    }
}

/// One accepted token. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    secret: Vec<u8>,
}

impl Token {
    pub fn new(name: impl Into<String>, role: Role, secret: impl Into<Vec<u8>>) -> Self {
        Token { name: name.into(), role, secret: secret.into() }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("name", &self.name).field("role", &self.role).finish_non_exhaustive()
    }
}

/// Who made a control call: put in the request's extensions by the auth layer, read by the service for
/// the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous` when the server has no tokens.
    pub name: Arc<str>,
    pub role: Role,
}

impl Caller {
    pub fn anonymous() -> Self {
        Caller { name: "anonymous".into(), role: Role::Admin }
    }
}

/// The tokens a server accepts. Empty: no authentication.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<Token>);

/// One entry of a tokens file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToken {
    name: String,
    role: Role,
    token: String,
}

impl Tokens {
    pub fn new(tokens: Vec<Token>) -> Self {
        Tokens(tokens)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds a token; a problem (short secret, repeated name or secret) is pushed to `problems` with `at`.
    pub fn add(&mut self, token: Token, at: &str, problems: &mut Vec<String>) {
        if token.name.is_empty() {
            problems.push(format!("{at}: the token needs a name (it identifies the caller in the audit log)"));
        } else if self.0.iter().any(|t| t.name == token.name) {
            problems.push(format!("{at}: another token is already named {:?}", token.name));
        }
        if token.secret.len() < MIN_TOKEN_LEN {
            problems.push(format!(
                "{at}: token {:?} is shorter than {MIN_TOKEN_LEN} characters; use a random one (openssl rand -hex 32)",
                token.name
            ));
        } else if self.0.iter().any(|t| t.secret == token.secret) {
            problems.push(format!("{at}: token {:?} has the same secret as another token", token.name));
        }
        self.0.push(token);
    }

    /// Reads a tokens file: a YAML list of `{ name, role: admin | read-only | sidecar, token }`. Problems are pushed
    /// with `at` (the config key or flag that named the file) and the entry's index; secrets never appear.
    pub fn load_file(&mut self, path: &Path, at: &str, problems: &mut Vec<String>) {
        let text = match crate::document::read_text(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{at}: cannot read the tokens file {}: {e}", path.display()));
                return;
            }
        };
        if let Err(e) = crate::document::check_yaml_bounds(&text) {
            problems.push(format!("{at}: {}: {e}", path.display()));
            return;
        }
        let entries: Vec<FileToken> = match serde_norway::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                // serde's message may quote the offending value, which could be a secret: keep only where.
                let place = e.location().map(|l| format!(" at line {}", l.line())).unwrap_or_default();
                problems.push(format!(
                    "{at}: {}{place}: not a list of {{ name, role: admin | read-only | sidecar, token }}",
                    path.display()
                ));
                return;
            }
        };
        for (i, t) in entries.into_iter().enumerate() {
            self.add(Token::new(t.name, t.role, t.token), &format!("{}[{i}]", path.display()), problems);
        }
    }

    /// Decides whether a request to `path` with `headers` may go on, and who made it.
    pub fn authorize(&self, path: &str, headers: &HeaderMap) -> Result<Caller, tonic::Status> {
        if path.starts_with(FLEET_PREFIX) {
            let caller = self.caller(headers)?;
            if caller.role == Role::ReadOnly {
                return Err(tonic::Status::permission_denied(format!(
                    "token {:?} is read-only; a sidecar subscribes with a token of role sidecar or admin",
                    &*caller.name
                )));
            }
            return Ok(caller);
        }
        let Some(method) = path.strip_prefix(SERVICE_PREFIX) else {
            // Health and reflection: open, so probes and grpcurl work.
            return Ok(Caller::anonymous());
        };
        let caller = self.caller(headers)?;
        if caller.role == Role::Sidecar {
            return Err(tonic::Status::permission_denied(format!(
                "token {:?} is a sidecar's: it may only subscribe to the controller (edgefault.v1.Fleet)",
                &*caller.name
            )));
        }
        if caller.role == Role::ReadOnly && !READ_ONLY_METHODS.contains(&method) {
            return Err(tonic::Status::permission_denied(format!(
                "token {:?} is read-only; {method} changes state and needs an admin token",
                &*caller.name
            )));
        }
        Ok(caller)
    }

    /// Who presents `headers`: the token's name and role, or `anonymous` (admin) when the server has no
    /// tokens. `UNAUTHENTICATED` when it has some and none of them is presented.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, tonic::Status> {
        if self.0.is_empty() {
            return Ok(Caller::anonymous());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(tonic::Status::unauthenticated(
                "no bearer token: this server requires `authorization: Bearer <token>` \
                 (edgefault ctl: --token-file FILE or EDGEFAULT_TOKEN)",
            ));
        };
        let presented = value.as_bytes();
        let secret = match presented.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => {
                presented.get(7..).unwrap_or_default().trim_ascii()
            }
            _ => return Err(tonic::Status::unauthenticated("the authorization header must be `Bearer <token>`")),
        };
        self.holder(secret)
            .ok_or_else(|| tonic::Status::unauthenticated("the bearer token is not one this server accepts"))
    }

    /// Who holds the token `secret`, if any token has it.
    pub fn holder(&self, secret: &[u8]) -> Option<Caller> {
        // Compare with every token, in constant time per token, so timing tells nothing about which
        // token nearly matched.
        let mut found: Option<&Token> = None;
        for t in &self.0 {
            if bool::from(t.secret.as_slice().ct_eq(secret)) {
                found = Some(t);
            }
        }
        found.map(|token| Caller { name: token.name.as_str().into(), role: token.role })
    }

    /// What changed from `old` to `self`, by token name (never a secret): tokens added, removed, given
    /// another role or another secret. Empty when nothing did.
    pub fn changes_from(&self, old: &Tokens) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.0 {
            match old.0.iter().find(|o| o.name == t.name) {
                None => out.push(format!("token {:?} ({}) added", t.name, t.role.as_str())),
                Some(o) if o.role != t.role => {
                    out.push(format!("token {:?} now {} (was {})", t.name, t.role.as_str(), o.role.as_str()))
                }
                Some(o) if !bool::from(o.secret.as_slice().ct_eq(&t.secret)) => {
                    out.push(format!("token {:?} has a new secret", t.name))
                }
                Some(_) => {}
            }
        }
        for o in old.0.iter().filter(|o| !self.0.iter().any(|t| t.name == o.name)) {
            out.push(format!("token {:?} ({}) removed", o.name, o.role.as_str()));
        }
        out
    }
}

// === impl AuthLayer ===

/// The tower layer that checks tokens in front of the control server's services.
#[derive(Clone)]
pub struct AuthLayer {
    /// Swapped by a config reload: each call is checked against the tokens of that moment.
    tokens: Arc<arc_swap::ArcSwap<Tokens>>,
}

impl AuthLayer {
    pub fn new(tokens: Arc<Tokens>) -> Self {
        AuthLayer { tokens: Arc::new(arc_swap::ArcSwap::new(tokens)) }
    }

    /// Checks calls against `tokens` as it is when each call comes in.
    pub fn shared(tokens: Arc<arc_swap::ArcSwap<Tokens>>) -> Self {
        AuthLayer { tokens }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, tokens: Arc::clone(&self.tokens) }
    }
}

/// The service [`AuthLayer`] wraps around each control service.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Arc<arc_swap::ArcSwap<Tokens>>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for Auth<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.tokens.load().authorize(req.uri().path(), req.headers()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Box::pin(self.inner.call(req))
            }
            Err(status) => {
                tracing::warn!(path = req.uri().path(), code = ?status.code(), reason = status.message(), "control call refused");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let mut t = Tokens::default();
        let mut problems = Vec::new();
        t.add(Token::new("ops", Role::Admin, "admin-secret-0123456789"), "t", &mut problems);
        t.add(Token::new("viewer", Role::ReadOnly, "viewer-secret-0123456789"), "t", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        t
    }

    fn bearer(s: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, format!("Bearer {s}").parse().expect("value"));
        h
    }

    #[test]
    fn roles_and_refusals() {
        let t = tokens();
        let start = "/edgefault.v1.FaultControl/StartExperiment";
        let list = "/edgefault.v1.FaultControl/ListExperiments";
        assert_eq!(t.authorize(start, &bearer("admin-secret-0123456789")).expect("admin").name.as_ref(), "ops");
        assert_eq!(t.authorize(list, &bearer("viewer-secret-0123456789")).expect("read").role, Role::ReadOnly);
        let denied = t.authorize(start, &bearer("viewer-secret-0123456789")).expect_err("read-only");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("viewer") && denied.message().contains("StartExperiment"));
        assert_eq!(t.authorize(list, &HeaderMap::new()).expect_err("none").code(), tonic::Code::Unauthenticated);
        assert_eq!(
            t.authorize(list, &bearer("admin-secret-012345678")).expect_err("prefix").code(),
            tonic::Code::Unauthenticated
        );
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, "Basic eDp5".parse().expect("value"));
        assert_eq!(t.authorize(list, &basic).expect_err("scheme").code(), tonic::Code::Unauthenticated);
        assert!(t.authorize("/grpc.health.v1.Health/Check", &HeaderMap::new()).is_ok(), "health stays open");
    }

    #[test]
    fn short_and_repeated_tokens_are_refused_without_showing_them() {
        let mut t = Tokens::default();
        let mut problems = Vec::new();
        t.add(Token::new("a", Role::Admin, "short"), "control.tokens_file[0]", &mut problems);
        t.add(Token::new("b", Role::Admin, "long-enough-secret-1"), "x[1]", &mut problems);
        t.add(Token::new("b", Role::Admin, "long-enough-secret-1"), "x[2]", &mut problems);
        let text = problems.join("\n");
        assert_eq!(problems.len(), 3, "{text}");
        assert!(text.contains("control.tokens_file[0]") && text.contains("shorter than 16"), "{text}");
        assert!(!text.contains("long-enough-secret-1") && !text.contains("short\""), "{text}");
        assert!(!format!("{t:?}").contains("long-enough"), "Debug hides secrets");
    }
}
