//! Configuration: the YAML file and the command-line flags, checked into a [`Config`] before any port is
//! bound. Every problem is reported with where it is (`listeners[0].routes[1].upstream`).

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use http::uri::Scheme;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    control::{
        auth::{Role, Token, Tokens},
        tls::ControlTls,
    },
    document::{self, DocumentError},
    experiment::{
        spec::{self, validate_spec},
        Limits,
    },
    fault::{page::PageTemplates, HostPattern},
    pb::v1::ExperimentSpec,
    proxy::settings::{ListenerConfig, Mode, Protocol, RouteConfig, RouteHost, TcpListenerConfig, Upstream},
    proxy::{
        tls::{Roots, TlsOrigin},
        tls_listen::ListenerTls,
    },
    scenario::Catalogue,
    tls::TlsSetupError,
    topology::{RouteId, Topology},
};

mod pages;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_CONTROL: &str = "127.0.0.1:7070";

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    /// TCP listeners; their routes come after every HTTP listener's in [`RouteId`] order.
    pub tcp_listeners: Vec<TcpListenerConfig>,
    pub control: SocketAddr,
    /// Tokens the control service accepts; empty only when `control` is a loopback address or mTLS is on.
    pub tokens: Tokens,
    /// TLS (and mTLS) on the control port.
    pub control_tls: Option<ControlTls>,
    /// Where the audit log goes (`-` for stderr); `None`: no audit log.
    pub audit: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    pub limits: Limits,
    /// Tokio worker threads; `None`: one per core.
    pub workers: Option<usize>,
    /// How long a shutdown waits for in-flight requests.
    pub drain_grace: Duration,
    /// Started at boot, in order.
    pub experiments: Vec<ExperimentSpec>,
    /// Page templates experiments may name in `abort.page`.
    pub pages: PageTemplates,
    /// The scenario catalogue: the built-ins and those of `scenarios_dir`, checked.
    pub scenarios: Arc<Catalogue>,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Bind address of the first listener.
    pub listen: Option<String>,
    /// Upstream of the first listener's default route (added, named "default", when it has none).
    pub upstream: Option<String>,
    pub control: Option<String>,
    pub admin: Option<String>,
    pub workers: Option<usize>,
    pub default_duration: Option<Duration>,
    pub max_duration: Option<Duration>,
    pub drain_grace: Option<Duration>,
    /// A tokens file, added to `control.tokens_file`.
    pub tokens_file: Option<PathBuf>,
    /// One admin token named `env` (from the `EDGEFAULT_ADMIN_TOKEN` environment variable).
    pub admin_token: Option<String>,
    /// `audit.path`.
    pub audit: Option<PathBuf>,
    pub max_percentage: Option<f64>,
    pub allowed_routes: Option<Vec<String>>,
    pub max_active_faults: Option<usize>,
}

/// A configuration that was refused: where it came from and every problem in it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({}):", self.origin)?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

// === the file, as written ===

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listeners: Vec<FileListener>,
    control: Option<FileControl>,
    admin: Option<FileBind>,
    audit: Option<FileAudit>,
    #[serde(default)]
    limits: FileLimits,
    workers: Option<usize>,
    drain_grace: Option<String>,
    #[serde(default)]
    experiments: Vec<Value>,
    #[serde(default)]
    pages: std::collections::BTreeMap<String, pages::FilePage>,
    /// A directory of scenario files (`*.yaml`) added to the built-in catalogue.
    scenarios_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListener {
    name: String,
    bind: String,
    #[serde(default)]
    mode: Mode,
    tls: Option<FileListenerTls>,
    #[serde(default)]
    routes: Vec<FileRoute>,
    /// `mode: tcp` only: `host:port`.
    upstream: Option<String>,
    /// `mode: tcp` only.
    connect_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListenerTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    /// The CA that signs the certificates of TLS faults (expired, wrong name…).
    fault_issuer: Option<FileFaultIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFaultIssuer {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    name: String,
    #[serde(default)]
    hosts: Vec<String>,
    path_prefix: Option<String>,
    upstream: Option<String>,
    #[serde(default)]
    protocol: Protocol,
    connect_timeout: Option<String>,
    timeout: Option<String>,
    tls: Option<FileUpstreamTls>,
    preserve_host: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstreamTls {
    #[serde(default)]
    roots: Roots,
    ca_file: Option<PathBuf>,
    server_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBind {
    bind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileControl {
    bind: Option<String>,
    /// YAML list of `{ name, role, token }`; see `control::auth`.
    tokens_file: Option<PathBuf>,
    tls: Option<FileControlTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileControlTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    /// Set: clients must present a certificate this CA signed (mTLS).
    client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    /// A file (appended to), or `-` for stderr.
    path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    default_duration: Option<String>,
    max_duration: Option<String>,
    max_start_delay: Option<String>,
    history: Option<usize>,
    max_active: Option<usize>,
    max_percentage: Option<f64>,
    allowed_routes: Option<Vec<String>>,
    max_active_faults: Option<usize>,
    max_connections: Option<usize>,
    max_header_bytes: Option<usize>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
}

/// Whether a YAML value looks like a config file rather than an experiment.
pub fn looks_like_config(v: &Value) -> bool {
    ["listeners", "control", "admin", "audit", "limits", "experiments", "workers", "pages", "scenarios_dir"]
        .iter()
        .any(|k| v.get(k).is_some())
}

impl Config {
    /// Reads a config file, then applies the overrides.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = document::read_text(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        Self::from_yaml(&text, &origin, overrides)
    }

    /// Parses config YAML; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError { origin: origin.to_owned(), problems };
        let mut docs = document::parse_yaml_documents(text).map_err(|e| fail(vec![e.to_string()]))?;
        if docs.len() > 1 {
            return Err(fail(vec!["holds several YAML documents; a config file is one".into()]));
        }
        let value = docs.pop().unwrap_or(Value::Object(Default::default()));
        let file: FileConfig =
            serde_path_to_error::deserialize(&value).map_err(|e| fail(vec![format!("{}: {}", e.path(), e.inner())]))?;
        Self::build(file, overrides).map_err(fail)
    }

    /// A config from flags alone.
    pub fn from_overrides(overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::build(FileConfig::default(), overrides)
            .map_err(|problems| ConfigError { origin: "command line".into(), problems })
    }

    fn build(mut file: FileConfig, o: &Overrides) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();

        // Flags first: they shape the listeners that the rest checks.
        let implicit_listener = file.listeners.is_empty();
        if implicit_listener {
            file.listeners.push(FileListener {
                name: "web".into(),
                bind: DEFAULT_LISTEN.into(),
                mode: Mode::Reverse,
                tls: None,
                routes: Vec::new(),
                upstream: None,
                connect_timeout: None,
            });
        }
        if let Some(first) = file.listeners.first_mut() {
            if let Some(listen) = &o.listen {
                first.bind = listen.clone();
            }
            if let Some(upstream) = &o.upstream {
                match first.routes.iter_mut().find(|r| r.hosts.is_empty() && r.path_prefix.is_none()) {
                    Some(default) => default.upstream = Some(upstream.clone()),
                    None => first.routes.push(FileRoute {
                        name: "default".into(),
                        hosts: Vec::new(),
                        path_prefix: None,
                        upstream: Some(upstream.clone()),
                        protocol: Protocol::Auto,
                        connect_timeout: None,
                        timeout: None,
                        tls: None,
                        preserve_host: None,
                    }),
                }
            }
        }

        let mut listeners = Vec::new();
        let mut tcp_files = Vec::new();
        let mut next_route = 0u32;
        // Every destination of a forward listener has a route: those the file names, then one for the rest.
        for l in file.listeners.iter_mut().filter(|l| l.mode == Mode::Forward) {
            let catch_all = l.routes.iter().any(|r| r.hosts.is_empty() && r.path_prefix.is_none());
            if !catch_all && !l.routes.iter().any(|r| r.name == "default") {
                l.routes.push(FileRoute {
                    name: "default".into(),
                    hosts: Vec::new(),
                    path_prefix: None,
                    upstream: None,
                    protocol: Protocol::Auto,
                    connect_timeout: None,
                    timeout: None,
                    tls: None,
                    preserve_host: None,
                });
            }
        }
        for (li, l) in file.listeners.iter().enumerate() {
            let at = format!("listeners[{li}]");
            check_name(&l.name, &format!("{at}.name"), &mut problems);
            if file.listeners.iter().take(li).any(|o| o.name == l.name) {
                problems.push(format!("{at}.name: another listener is already named {:?}", l.name));
            }
            if l.mode == Mode::Tcp {
                tcp_files.push((li, l));
                continue;
            }
            for (key, set) in [("upstream", l.upstream.is_some()), ("connect_timeout", l.connect_timeout.is_some())] {
                if set {
                    problems.push(format!(
                        "{at}.{key}: only a tcp listener (mode: tcp) has one; an HTTP listener's routes have upstreams"
                    ));
                }
            }
            let bind = socket_addr(&l.bind, &format!("{at}.bind"), &mut problems);
            let forward = l.mode == Mode::Forward;
            let tls = match &l.tls {
                None => None,
                Some(_) if forward => {
                    problems.push(format!("{at}.tls: a forward listener does not terminate TLS (clients use CONNECT)"));
                    None
                }
                Some(t) => {
                    let tls = ListenerTls::new(&t.cert_file, &t.key_file)
                        .map_err(|e| (format!("{at}.tls"), &t.key_file, e))
                        .and_then(|tls| match &t.fault_issuer {
                            None => Ok(tls),
                            Some(i) => tls
                                .with_fault_issuer(&i.cert_file, &i.key_file)
                                .map_err(|e| (format!("{at}.tls.fault_issuer"), &i.key_file, e)),
                        });
                    match tls {
                        Ok(tls) => Some(Arc::new(tls)),
                        Err((section, key_file, e)) => {
                            let field = match &e {
                                TlsSetupError::BadKey { .. } => "key_file",
                                TlsSetupError::Read { path, .. } if path == key_file => "key_file",
                                _ => "cert_file",
                            };
                            problems.push(format!("{section}.{field}: {e}"));
                            None
                        }
                    }
                }
            };
            let forwarded_proto = if l.tls.is_some() { "https" } else { "http" };
            if forward {
                // The routes were completed above.
            } else if l.routes.is_empty() && implicit_listener {
                problems.push("no listener and no upstream: pass --upstream http://host:port, or list listeners in a config file (--config)".into());
            } else if l.routes.is_empty() {
                problems.push(format!(
                    "{at}.routes: the listener has no route; add one (or pass --upstream URL for a default route)"
                ));
            }
            let mut routes = Vec::new();
            for (ri, r) in l.routes.iter().enumerate() {
                let at = format!("{at}.routes[{ri}]");
                check_name(&r.name, &format!("{at}.name"), &mut problems);
                if l.routes.iter().take(ri).any(|o| o.name == r.name) {
                    problems.push(format!("{at}.name: another route of this listener is already named {:?}", r.name));
                }
                if let Some(p) = &r.path_prefix {
                    if !p.starts_with('/') {
                        problems.push(format!("{at}.path_prefix: must start with '/', got {p:?}"));
                    }
                }
                let upstream = match (&r.upstream, forward) {
                    (Some(u), false) => parse_upstream(u, &format!("{at}.upstream"), &mut problems)
                        .and_then(|u| with_tls(u, r.tls.as_ref(), &at, &mut problems))
                        .map(Some),
                    (None, false) => {
                        problems
                            .push(format!("{at}.upstream: missing; a route needs an upstream URL (http://host:port)"));
                        None
                    }
                    (None, true) => Some(None),
                    (Some(_), true) => {
                        problems.push(format!(
                            "{at}.upstream: a forward listener's requests go to their own destination; name the \
                             destinations in hosts (\"api.example.com\", \"*.example.com:443\") and leave upstream out"
                        ));
                        None
                    }
                };
                if forward && r.tls.is_some() {
                    problems.push(format!("{at}.tls: only for a reverse route with an https:// upstream"));
                }
                let hosts = route_hosts(&r.hosts, forward, &at, &mut problems);
                let preserve_host = r
                    .preserve_host
                    .unwrap_or_else(|| upstream.as_ref().and_then(Option::as_ref).is_none_or(|u| u.tls.is_none()));
                let connect_timeout = opt_duration(&r.connect_timeout, &format!("{at}.connect_timeout"), &mut problems)
                    .unwrap_or(Duration::from_secs(5));
                let timeout = opt_duration(&r.timeout, &format!("{at}.timeout"), &mut problems)
                    .unwrap_or(Duration::from_secs(30));
                if let (Some(_), Some(upstream)) = (bind, upstream) {
                    routes.push(RouteConfig {
                        id: RouteId::new(next_route),
                        name: r.name.clone(),
                        hosts,
                        path_prefix: r.path_prefix.clone(),
                        upstream,
                        preserve_host,
                        forwarded_proto,
                        protocol: r.protocol,
                        connect_timeout,
                        timeout,
                    });
                    next_route += 1;
                }
            }
            if let Some(bind) = bind {
                listeners.push(ListenerConfig { name: l.name.clone(), bind, mode: l.mode, tls, routes });
            }
        }

        let tcp_listeners = tcp_listeners(&tcp_files, &listeners, &mut next_route, &mut problems);

        let control_key = if o.control.is_some() { "--control" } else { "control.bind" };
        let control = socket_addr(
            o.control.as_deref().or(file.control.as_ref().and_then(|c| c.bind.as_deref())).unwrap_or(DEFAULT_CONTROL),
            control_key,
            &mut problems,
        );
        let tokens = control_tokens(file.control.as_ref(), o, &mut problems);
        let control_tls = file
            .control
            .as_ref()
            .and_then(|c| c.tls.as_ref())
            .and_then(|t| ControlTls::load(&t.cert_file, &t.key_file, t.client_ca_file.as_deref(), &mut problems));
        let mtls = file.control.as_ref().and_then(|c| c.tls.as_ref()).is_some_and(|t| t.client_ca_file.is_some());
        if let Some(addr) = control.filter(|a| !a.ip().is_loopback()) {
            if tokens.is_empty() && !mtls {
                problems.push(format!(
                    "{control_key}: {addr} is not a loopback address and the control service has no token and no \
                     mTLS: anyone who reaches it could start faults. Give tokens (control.tokens_file, \
                     --tokens-file or EDGEFAULT_ADMIN_TOKEN), or client certificates (control.tls.client_ca_file), \
                     or bind it to 127.0.0.1"
                ));
            }
        }
        let audit = o.audit.clone().or(file.audit.map(|a| a.path));
        let admin = match o.admin.as_deref().or(file.admin.as_ref().map(|a| a.bind.as_str())) {
            Some(a) => socket_addr(a, if o.admin.is_some() { "--admin" } else { "admin.bind" }, &mut problems),
            None => None,
        };

        let mut limits = Limits::default();
        let fl = &file.limits;
        if let Some(d) =
            o.default_duration.or_else(|| opt_duration(&fl.default_duration, "limits.default_duration", &mut problems))
        {
            limits.default_duration = d;
        }
        if let Some(d) = o.max_duration.or_else(|| opt_duration(&fl.max_duration, "limits.max_duration", &mut problems))
        {
            limits.max_duration = d;
        }
        if let Some(d) = opt_duration(&fl.max_start_delay, "limits.max_start_delay", &mut problems) {
            limits.max_start_delay = d;
        }
        if let Some(h) = fl.history {
            limits.history = h;
        }
        if let Some(m) = fl.max_active {
            limits.max_active = m;
        }
        if let Some(p) = o.max_percentage.or(fl.max_percentage) {
            let at = if o.max_percentage.is_some() { "--max-percentage" } else { "limits.max_percentage" };
            if (0.0..=100.0).contains(&p) {
                limits.max_percentage = p;
            } else {
                problems.push(format!("{at}: must be between 0 and 100, got {p}"));
            }
        }
        if let Some(m) = o.max_active_faults.or(fl.max_active_faults) {
            limits.max_active_faults = m;
        }
        if let Some(m) = fl.max_connections {
            if m == 0 {
                problems.push("limits.max_connections: must be at least 1".into());
            }
            limits.max_connections = m;
        }
        if let Some(m) = fl.max_header_bytes {
            if !(8192..=16 * 1024 * 1024).contains(&m) {
                problems.push(format!("limits.max_header_bytes: from 8192 to 16777216 bytes, got {m}"));
            }
            limits.max_header_bytes = m;
        }
        for (key, value, slot, range) in [
            (
                "limits.header_read_timeout",
                &fl.header_read_timeout,
                &mut limits.header_read_timeout,
                (Duration::from_secs(1), Duration::from_secs(300)),
            ),
            (
                "limits.idle_timeout",
                &fl.idle_timeout,
                &mut limits.idle_timeout,
                (Duration::from_secs(1), Duration::from_secs(24 * 3600)),
            ),
        ] {
            if let Some(d) = opt_duration(value, key, &mut problems) {
                if !(range.0..=range.1).contains(&d) {
                    problems.push(format!(
                        "{key}: from {} to {}, got {}",
                        humantime::format_duration(range.0),
                        humantime::format_duration(range.1),
                        humantime::format_duration(d)
                    ));
                }
                *slot = d;
            }
        }
        if let Some(routes) = o.allowed_routes.as_ref().or(fl.allowed_routes.as_ref()) {
            let at = if o.allowed_routes.is_some() { "--allowed-routes" } else { "limits.allowed_routes" };
            let known = topology_of(&listeners, &tcp_listeners);
            for (i, r) in routes.iter().enumerate() {
                if !known.has_route(r) {
                    problems.push(format!(
                        "{at}[{i}]: no route is named {r:?}; routes: {}",
                        known.route_names().join(", ")
                    ));
                }
            }
            if routes.is_empty() {
                problems.push(format!("{at}: empty; name at least one route, or leave it out to allow every route"));
            }
            limits.allowed_routes = routes.clone();
        }
        if limits.default_duration.is_zero() || limits.max_duration.is_zero() {
            problems.push("limits: default_duration and max_duration must be longer than zero".into());
        }
        if limits.default_duration > limits.max_duration {
            problems.push(format!(
                "limits.default_duration ({}) is longer than limits.max_duration ({})",
                spec::human(limits.default_duration),
                spec::human(limits.max_duration)
            ));
        }
        let workers = o.workers.or(file.workers);
        if workers == Some(0) {
            problems.push("workers: must be at least 1".into());
        }
        let drain_grace = o
            .drain_grace
            .or_else(|| opt_duration(&file.drain_grace, "drain_grace", &mut problems))
            .unwrap_or(Duration::from_secs(10));

        let pages = pages::templates(&file.pages, &mut problems);
        let topology = topology_of(&listeners, &tcp_listeners).with_pages(pages.clone());
        let mut experiments = Vec::new();
        for (i, v) in file.experiments.into_iter().enumerate() {
            match document::spec_from_value(v, format!("experiments[{i}].")) {
                Ok(spec) => {
                    let ctx = spec::Context { topology: Some(&topology), limits: &limits };
                    match validate_spec(&spec, &ctx) {
                        Ok(_) => experiments.push(spec),
                        Err(v) => problems.extend(
                            v.0.into_iter().map(|v| format!("experiments[{i}].{}: {}", v.field, v.description)),
                        ),
                    }
                }
                Err(DocumentError::Field { path, message }) => problems.push(format!("{path}: {message}")),
                Err(e) => problems.push(format!("experiments[{i}]: {e}")),
            }
        }

        let scenarios = match &file.scenarios_dir {
            None => Catalogue::builtin(),
            Some(dir) => Catalogue::with_dir(dir).unwrap_or_else(|p| {
                problems.extend(p.into_iter().map(|p| format!("scenarios_dir: {p}")));
                Catalogue::default()
            }),
        };

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listeners,
            tcp_listeners,
            control: control.ok_or_else(Vec::new)?,
            tokens,
            control_tls,
            audit,
            admin,
            limits,
            workers,
            drain_grace,
            experiments,
            pages,
            scenarios: Arc::new(scenarios),
        })
    }

    pub fn topology(&self) -> Topology {
        topology_of(&self.listeners, &self.tcp_listeners).with_pages(self.pages.clone())
    }
}

/// The tokens of `control.tokens_file`, `--tokens-file` and `EDGEFAULT_ADMIN_TOKEN`, together.
fn control_tokens(file: Option<&FileControl>, o: &Overrides, problems: &mut Vec<String>) -> Tokens {
    let mut tokens = Tokens::default();
    if let Some(path) = file.and_then(|c| c.tokens_file.as_deref()) {
        tokens.load_file(path, "control.tokens_file", problems);
    }
    if let Some(path) = &o.tokens_file {
        tokens.load_file(path, "--tokens-file", problems);
    }
    if let Some(secret) = &o.admin_token {
        tokens.add(Token::new("env", Role::Admin, secret.trim()), "EDGEFAULT_ADMIN_TOKEN", problems);
    }
    tokens
}

/// HTTP listeners first, then TCP listeners: the [`RouteId`] order.
fn topology_of(listeners: &[ListenerConfig], tcp: &[TcpListenerConfig]) -> Topology {
    Topology::new(
        listeners
            .iter()
            .map(|l| (l.name.clone(), l.routes.iter().map(|r| r.name.clone()).collect()))
            .chain(tcp.iter().map(|t| (t.name.clone(), vec![t.name.clone()])))
            .collect(),
    )
    .with_tcp_listeners(tcp.iter().map(|t| t.name.clone()).collect())
    .with_tls_listeners(listeners.iter().filter(|l| l.tls.is_some()).map(|l| l.name.clone()).collect())
}

/// The TCP listeners, checked; their routes are numbered after every HTTP route. A TCP listener's implicit
/// route is named after it, so its name must not be an HTTP route's too (`match.routes` would be ambiguous).
fn tcp_listeners(
    files: &[(usize, &FileListener)],
    http: &[ListenerConfig],
    next_route: &mut u32,
    problems: &mut Vec<String>,
) -> Vec<TcpListenerConfig> {
    let mut out = Vec::new();
    for &(li, l) in files {
        let at = format!("listeners[{li}]");
        if let Some(route) =
            http.iter().flat_map(|h| h.routes.iter().map(move |r| (h, r))).find(|(_, r)| r.name == l.name)
        {
            problems.push(format!(
                "{at}.name: {:?} is also a route of listener {:?}; a tcp listener's name is its route's name in match.routes, so it must be unique among routes",
                l.name, route.0.name
            ));
        }
        if !l.routes.is_empty() {
            problems.push(format!("{at}.routes: a tcp listener has no routes; give it an upstream: \"host:port\""));
        }
        let bind = socket_addr(&l.bind, &format!("{at}.bind"), problems);
        let upstream = match &l.upstream {
            None => {
                problems.push(format!(
                    "{at}.upstream: required for a tcp listener (\"host:port\", e.g. \"127.0.0.1:6379\")"
                ));
                None
            }
            Some(u) => tcp_upstream(u, &format!("{at}.upstream"), problems),
        };
        let connect_timeout = opt_duration(&l.connect_timeout, &format!("{at}.connect_timeout"), problems)
            .unwrap_or(Duration::from_secs(5));
        if let (Some(bind), Some(upstream)) = (bind, upstream) {
            out.push(TcpListenerConfig {
                name: l.name.clone(),
                bind,
                upstream,
                connect_timeout,
                route: RouteId::new(*next_route),
            });
            *next_route += 1;
        }
    }
    out
}

/// A TCP upstream: `host:port` (a name, an IPv4 address, or `[IPv6]`), no scheme.
fn tcp_upstream(s: &str, at: &str, problems: &mut Vec<String>) -> Option<String> {
    if s.contains("://") {
        problems.push(format!("{at}: {s:?} has a scheme; a tcp upstream is host:port (\"127.0.0.1:6379\")"));
        return None;
    }
    let ok = match s.rsplit_once(':') {
        Some((host, port)) => {
            let host_ok = !host.is_empty()
                && !host.contains(['/', ' '])
                && (host.starts_with('[') == host.ends_with(']'))
                && (host.starts_with('[') || !host.contains(':'));
            host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    };
    if ok {
        Some(s.to_owned())
    } else {
        problems.push(format!("{at}: {s:?} is not host:port (\"127.0.0.1:6379\", \"redis:6379\", \"[::1]:5432\")"));
        None
    }
}

fn check_name(name: &str, at: &str, problems: &mut Vec<String>) {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        problems.push(format!("{at}: {name:?} is not a valid name (1–63 of letters, digits, '-', '_', '.')"));
    }
}

fn socket_addr(s: &str, at: &str, problems: &mut Vec<String>) -> Option<SocketAddr> {
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(format!("{at}: {s:?} is not an address with a port (\"127.0.0.1:8080\", \"[::]:8080\")"));
            None
        }
    }
}

fn opt_duration(s: &Option<String>, at: &str, problems: &mut Vec<String>) -> Option<Duration> {
    let s = s.as_deref()?;
    match humantime::parse_duration(s) {
        Ok(d) => Some(d),
        Err(_) => {
            problems.push(format!("{at}: {s:?} is not a duration (\"30s\", \"250ms\", \"1h\")"));
            None
        }
    }
}

/// A route's `hosts`: names, `*.suffix` wildcards, and on a forward listener an optional port.
fn route_hosts(hosts: &[String], forward: bool, at: &str, problems: &mut Vec<String>) -> Vec<RouteHost> {
    let mut out = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let (name, port) = match h.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') || name.ends_with(']') => match port.parse::<u16>() {
                Ok(p) if forward && p > 0 => (name, Some(p)),
                Ok(_) if forward => {
                    problems.push(format!("{at}.hosts[{i}]: {h:?}: the port must be 1–65535"));
                    continue;
                }
                Ok(_) => {
                    problems.push(format!(
                        "{at}.hosts[{i}]: {h:?}: a port is only for forward listeners' destinations; a reverse \
                         route matches the host name alone"
                    ));
                    continue;
                }
                Err(_) => {
                    problems.push(format!("{at}.hosts[{i}]: {h:?}: {port:?} is not a port"));
                    continue;
                }
            },
            _ => (h.as_str(), None),
        };
        let name = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        if name.is_empty() {
            problems.push(format!("{at}.hosts[{i}]: empty host"));
            continue;
        }
        out.push(RouteHost { host: HostPattern::parse(name), port });
    }
    out
}

/// Adds the route's `tls` settings to an `https://` upstream; refuses them on an `http://` one.
fn with_tls(
    mut upstream: Upstream,
    tls: Option<&FileUpstreamTls>,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Upstream> {
    if upstream.scheme != Scheme::HTTPS {
        if tls.is_some() {
            problems.push(format!("{at}.tls: the upstream is http://; TLS settings need an https:// upstream"));
            return None;
        }
        return Some(upstream);
    }
    let default = FileUpstreamTls::default();
    let t = tls.unwrap_or(&default);
    match TlsOrigin::new(upstream.authority.host(), t.server_name.as_deref(), t.roots, t.ca_file.as_deref()) {
        Ok(origin) => {
            upstream.tls = Some(Arc::new(origin));
            Some(upstream)
        }
        Err(e) => {
            let field = match &e {
                TlsSetupError::ServerName(_) if t.server_name.is_some() => "tls.server_name",
                TlsSetupError::ServerName(_) => "upstream",
                TlsSetupError::System(_) | TlsSetupError::NoRoots => "tls.roots",
                _ => "tls.ca_file",
            };
            problems.push(format!("{at}.{field}: {e}"));
            None
        }
    }
}

/// An upstream URL: `http://host:port` or `https://host:port`, no path.
pub fn parse_upstream(s: &str, at: &str, problems: &mut Vec<String>) -> Option<Upstream> {
    let uri: http::Uri = match s.parse() {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("{at}: {s:?} is not a URL ({e}); expected http://host:port"));
            return None;
        }
    };
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => {
            problems.push(format!("{at}: {s:?} needs the http:// or https:// scheme (http://host:port)"));
            return None;
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        problems.push(format!("{at}: {s:?} has no host"));
        return None;
    };
    if let Err(why) = check_authority(&authority) {
        problems.push(format!("{at}: {s:?} {why}; expected http://host:port (port 1–65535, or none for the scheme's)"));
        return None;
    }
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        problems.push(format!(
            "{at}: {s:?} has a path; an upstream is scheme://host:port only (request paths pass through unchanged)"
        ));
        return None;
    }
    Some(Upstream { scheme, authority, tls: None })
}

/// An upstream's `host[:port]`, strictly: a host, and a port that is a number from 1 to 65535 when there
/// is a colon at all (the `http` crate reads an unparsable port as none, which would mean port 80).
fn check_authority(a: &http::uri::Authority) -> Result<(), &'static str> {
    let raw = a.as_str();
    if raw.contains('@') {
        return Err("has user info (user@host), which an upstream URL cannot carry");
    }
    let host = a.host();
    if host.is_empty() || host == "[]" {
        return Err("has no host");
    }
    match raw.strip_prefix(host) {
        Some("") => Ok(()),
        Some(port) => match port.strip_prefix(':').map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => Ok(()),
            _ => Err("has a port that is not a number from 1 to 65535"),
        },
        None => Err("is not host:port"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_parsed_strictly() {
        for bad in [
            "http://a:notaport",
            "http://a:99999",
            "http://a:",
            "http://a:0",
            "http://:80",
            "http://u@a:1",
            "http://[::1]:x",
        ] {
            let mut problems = Vec::new();
            assert!(parse_upstream(bad, "up", &mut problems).is_none(), "{bad} accepted");
            assert!(problems.iter().any(|p| p.starts_with("up: ")), "{bad}: {problems:?}");
        }
        for good in ["http://a", "http://a:1", "https://a.example:65535", "http://[::1]:8080", "http://127.0.0.1:3000/"]
        {
            let mut problems = Vec::new();
            assert!(parse_upstream(good, "up", &mut problems).is_some(), "{good}: {problems:?}");
        }
    }

    #[test]
    fn design_shape_loads() {
        let c = Config::from_yaml(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - { name: dashboard, hosts: [dash.example.com], upstream: \"http://127.0.0.1:3001\" }\n      - { name: api, path_prefix: /api/, upstream: \"http://127.0.0.1:3000\", protocol: http2 }\n      - { name: default, upstream: \"http://127.0.0.1:3000\" }\ncontrol: { bind: \"127.0.0.1:7070\" }\nlimits: { max_duration: 1h }\nexperiments:\n  - { name: boot, match: { routes: [api] }, faults: [{ abort: { http_status: 503 } }] }\n",
            "test",
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(c.listeners[0].routes.len(), 3);
        assert_eq!(c.listeners[0].routes[2].id.index(), 2);
        assert_eq!(c.experiments.len(), 1);
        assert!(c.topology().has_route("dashboard"));
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let e = Config::from_yaml(
            "listeners:\n  - name: web\n    bind: nowhere\n    routes:\n      - { name: a, upstream: \"ftp://x\" }\n      - { name: a, upstream: \"http://x:1/base\" }\nlimits: { max_duration: forever }\nexperiments:\n  - { name: x, match: { routes: [nope] }, faults: [] }\n",
            "test.yaml",
            &Overrides::default(),
        )
        .expect_err("invalid");
        let text = e.to_string();
        for needle in [
            "listeners[0].bind",
            "listeners[0].routes[0].upstream",
            "listeners[0].routes[1].name",
            "listeners[0].routes[1].upstream",
            "limits.max_duration",
            "experiments[0].faults",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e =
            Config::from_yaml("listeners:\n  - name: web\n    bnid: x\n", "t", &Overrides::default()).expect_err("bad");
        assert!(e.to_string().contains("listeners[0]") && e.to_string().contains("bnid"), "{e}");
    }

    #[test]
    fn tcp_listeners_own_one_route_after_every_http_route() {
        let c = Config::from_yaml(
            "listeners:\n  - { name: cache, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"127.0.0.1:6379\", connect_timeout: 1s }\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{ name: api, upstream: \"http://127.0.0.1:3000\" }, { name: default, upstream: \"http://127.0.0.1:3000\" }]\n",
            "test",
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(c.tcp_listeners.len(), 1);
        let t = &c.tcp_listeners[0];
        assert_eq!(
            (t.upstream.as_str(), t.connect_timeout, t.route.index()),
            ("127.0.0.1:6379", Duration::from_secs(1), 2)
        );
        let topology = c.topology();
        assert!(topology.is_tcp_listener("cache") && topology.is_tcp_route("cache") && topology.has_route("cache"));
        assert!(!topology.is_tcp_listener("web"));
        let order: Vec<(&str, &str)> = topology.routes().collect();
        assert_eq!(order, [("web", "api"), ("web", "default"), ("cache", "cache")]);
    }

    #[test]
    fn tcp_listener_problems_are_placed() {
        let e = Config::from_yaml(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    upstream: \"127.0.0.1:1\"\n    routes: [{ name: db, upstream: \"http://127.0.0.1:3000\" }]\n  - { name: db, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"127.0.0.1:5432\" }\n  - { name: a, bind: \"127.0.0.1:0\", mode: tcp }\n  - { name: b, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"http://127.0.0.1:1\" }\n  - { name: c, bind: \"127.0.0.1:0\", mode: tcp, upstream: \"127.0.0.1\", connect_timeout: soon, routes: [{ name: x, upstream: \"http://127.0.0.1:1\" }] }\n",
            "t",
            &Overrides::default(),
        )
        .expect_err("invalid");
        let text = e.to_string();
        for needle in [
            "listeners[0].upstream: only a tcp listener",
            "listeners[1].name: \"db\" is also a route of listener \"web\"",
            "listeners[2].upstream: required",
            "listeners[3].upstream: \"http://127.0.0.1:1\" has a scheme",
            "listeners[4].upstream: \"127.0.0.1\" is not host:port",
            "listeners[4].connect_timeout",
            "listeners[4].routes: a tcp listener has no routes",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }
    }

    #[test]
    fn flags_make_a_default_route() {
        let o = Overrides { upstream: Some("http://127.0.0.1:9".into()), ..Overrides::default() };
        let c = Config::from_overrides(&o).expect("valid");
        assert_eq!(c.listeners[0].name, "web");
        assert_eq!(c.listeners[0].routes[0].name, "default");
        assert!(Config::from_overrides(&Overrides::default()).is_err());
    }
}
