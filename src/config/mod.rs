//! Configuration: the YAML file and the command-line flags, checked into a [`Config`] before any port is
//! bound. Every problem is reported with where it is (`listeners[0].routes[1].upstream`).

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde_json::Value;

use crate::{
    control::{auth::Tokens, tls::ControlTls},
    document,
    experiment::Limits,
    fault::page::PageTemplates,
    proxy::settings::{ListenerConfig, TcpListenerConfig},
    scenario::Catalogue,
    topology::Topology,
};

mod control;
mod controller;
mod experiments;
mod file;
mod limits;
mod listeners;
mod pages;
mod toxiproxy;

pub use controller::ControllerConfig;
pub use experiments::BootExperiment;
pub use listeners::parse_upstream;
pub use toxiproxy::{ToxiproxyConfig, DEFAULT_MAX_PROXIES};

use file::FileConfig;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_CONTROL: &str = "127.0.0.1:7070";

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    /// TCP listeners; their routes come after every HTTP listener's in [`RouteId`](crate::topology::RouteId) order.
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
    /// Started at boot, in order; validated when the config loads.
    pub experiments: Vec<BootExperiment>,
    /// Page templates experiments may name in `abort.page`.
    pub pages: PageTemplates,
    /// The scenario catalogue: the built-ins and those of `scenarios_dir`, checked.
    pub scenarios: Arc<Catalogue>,
    /// The Toxiproxy-compatible REST API (`toxiproxy:`, `--toxiproxy`); `None`: off.
    pub toxiproxy: Option<ToxiproxyConfig>,
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
    /// `toxiproxy.bind`: serves the Toxiproxy-compatible REST API there.
    pub toxiproxy: Option<String>,
    /// `--fault-headers`: the first listener's default route takes Envoy's fault headers
    /// (`fault_headers: true`) unless the file sets them otherwise.
    pub fault_headers: bool,
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

/// Whether a YAML value looks like a config file rather than an experiment.
pub fn looks_like_config(v: &Value) -> bool {
    [
        "listeners",
        "control",
        "admin",
        "audit",
        "limits",
        "experiments",
        "workers",
        "pages",
        "scenarios_dir",
        "toxiproxy",
    ]
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
        let file = parse_file(text, origin)?;
        Self::build(file, overrides).map_err(|problems| ConfigError { origin: origin.to_owned(), problems })
    }

    /// A config from flags alone.
    pub fn from_overrides(overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::build(FileConfig::default(), overrides)
            .map_err(|problems| ConfigError { origin: "command line".into(), problems })
    }

    fn build(mut file: FileConfig, o: &Overrides) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        // Flags first: they shape the listeners that the rest checks.
        let implicit_listener = listeners::apply_overrides(&mut file.listeners, o, &mut problems);
        let caps = limits::header_caps(&file.limits, o);
        let (listeners, tcp_listeners) = listeners::build(&file.listeners, implicit_listener, caps, &mut problems);
        let topology = topology_of(&listeners, &tcp_listeners);
        let control = control::build(file.control.as_ref(), file.admin.as_ref(), file.audit.as_ref(), o, &mut problems);
        let limits = limits::build(&file.limits, o, &topology, &mut problems);
        let toxiproxy = toxiproxy::build(file.toxiproxy.as_ref(), o, &control.tokens, &mut problems);
        let workers = o.workers.or(file.workers);
        if workers == Some(0) {
            problems.push("workers: must be at least 1".into());
        }
        let drain_grace = o
            .drain_grace
            .or_else(|| opt_duration(&file.drain_grace, "drain_grace", &mut problems))
            .unwrap_or(Duration::from_secs(10));
        let pages = pages::templates(&file.pages, &mut problems);
        let topology = topology.with_pages(pages.clone());
        let experiments = experiments::validate(file.experiments, &topology, &limits, &mut problems);
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
            control: control.bind.ok_or_else(Vec::new)?,
            tokens: control.tokens,
            control_tls: control.tls,
            audit: control.audit,
            admin: control.admin,
            limits,
            workers,
            drain_grace,
            experiments,
            pages,
            scenarios: Arc::new(scenarios),
            toxiproxy,
        })
    }

    /// The listeners and routes experiments may target, with a free slot for each proxy the Toxiproxy API
    /// may create.
    pub fn topology(&self) -> Topology {
        let slots = self.toxiproxy.as_ref().map_or(0, |t| t.max_proxies);
        topology_of(&self.listeners, &self.tcp_listeners).with_pages(self.pages.clone()).with_free_tcp_slots(slots)
    }
}

/// Parses config YAML into the file's sections; `origin` names it in errors.
fn parse_file(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
    let fail = |problems| ConfigError { origin: origin.to_owned(), problems };
    let mut docs = document::parse_yaml_documents(text).map_err(|e| fail(vec![e.to_string()]))?;
    if docs.len() > 1 {
        return Err(fail(vec!["holds several YAML documents; a config file is one".into()]));
    }
    let value = docs.pop().unwrap_or(Value::Object(Default::default()));
    serde_path_to_error::deserialize(&value).map_err(|e| fail(vec![format!("{}: {}", e.path(), e.inner())]))
}

/// HTTP listeners first, then TCP listeners: the [`RouteId`](crate::topology::RouteId) order.
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

    fn with_route(route: &str, limits: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(
            &format!("listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: a, upstream: \"http://127.0.0.1:1\", {route} }}\nlimits: {{ {limits} }}\n"),
            "t",
            &Overrides::default(),
        )
    }

    #[test]
    fn fault_headers_take_true_false_or_a_mapping() {
        use crate::fault::HeaderNames;
        let fh = |route: &str, limits: &str| {
            with_route(route, limits).expect("valid").listeners[0].routes[0].fault_headers.clone()
        };
        assert!(fh("hosts: []", "").is_none(), "off by default");
        assert!(fh("fault_headers: false", "").is_none());
        let on = fh("fault_headers: true", "max_duration: 10m, max_percentage: 40").expect("on");
        assert_eq!(on.names, HeaderNames::envoy());
        assert_eq!((on.max_delay, on.max_percentage.percent()), (Duration::from_secs(600), 40.0));
        let set = fh(
            "fault_headers: { names: { abort: X-My-Abort, throughput_percentage: x-rate-share }, max_delay: 5s }",
            "",
        )
        .expect("on");
        assert_eq!(
            (set.names.abort.as_str(), set.names.throughput_percentage.as_str()),
            ("x-my-abort", "x-rate-share")
        );
        assert_eq!(set.names.delay, HeaderNames::envoy().delay, "the names not given stay Envoy's");
        assert_eq!((set.max_delay, set.max_percentage.percent()), (Duration::from_secs(5), 100.0));
        assert!(fh("fault_headers: {}", "").is_some(), "an empty mapping enables them too");
    }

    #[test]
    fn every_bad_fault_headers_field_is_placed() {
        let at = "listeners[0].routes[0].fault_headers";
        for (route, needle) in [
            ("fault_headers: yes", format!("{at}: invalid type: string \"yes\", expected true, false, or a mapping")),
            (
                "fault_headers: { nmes: {} }",
                format!("{at}.nmes: unknown field `nmes`, expected `names` or `max_delay`"),
            ),
            ("fault_headers: { names: { abrt: x-a } }", format!("{at}.names.abrt: unknown field `abrt`")),
            ("fault_headers: { names: { delay: 7 } }", format!("{at}.names.delay: invalid type: integer `7`")),
            ("fault_headers: { names: x-a }", format!("{at}.names: invalid type: string \"x-a\"")),
        ] {
            let text = with_route(route, "").expect_err(route).to_string();
            assert!(text.contains(&needle), "{needle} missing in:\n{text}");
        }
        let text = with_route(
            "fault_headers: { names: { abort: \"x my abort\", abort_grpc: content-length, delay: x-envoy-fault-abort-request, throughput: x-t, throughput_percentage: X-T }, max_delay: soon }",
            "",
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            format!("{at}.names.abort: \"x my abort\" is not a valid header name"),
            format!("{at}.names.abort_grpc: content-length frames the message"),
            format!("{at}.names.delay: x-envoy-fault-abort-request is already the header for abort"),
            format!("{at}.names.throughput_percentage: x-t is already the header for throughput"),
            format!("{at}.max_delay: \"soon\" is not a duration"),
        ] {
            assert!(text.contains(&needle), "{needle} missing in:\n{text}");
        }
        let text =
            with_route("fault_headers: { max_delay: 2h }", "max_duration: 1h").expect_err("too long").to_string();
        assert!(
            text.contains(&format!("{at}.max_delay: 2h exceeds the server's maximum of 1h (limits.max_duration)")),
            "{text}"
        );
        let text = with_route("fault_headers: { max_delay: 0s }", "").expect_err("zero").to_string();
        assert!(text.contains(&format!("{at}.max_delay: must be longer than 0")), "{text}");
    }

    #[test]
    fn the_fault_headers_flag_enables_the_default_route() {
        let o = Overrides { upstream: Some("http://127.0.0.1:9".into()), fault_headers: true, ..Overrides::default() };
        let c = Config::from_overrides(&o).expect("valid");
        assert!(c.listeners[0].routes[0].fault_headers.is_some());
        let o = Overrides { fault_headers: true, ..Overrides::default() };
        let c = Config::from_yaml(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - { name: api, path_prefix: /api/, upstream: \"http://127.0.0.1:1\" }\n      - { name: default, upstream: \"http://127.0.0.1:1\", fault_headers: false }\n",
            "t",
            &o,
        )
        .expect("valid");
        assert!(
            c.listeners[0].routes.iter().all(|r| r.fault_headers.is_none()),
            "the file's false stands; api is not the default"
        );
        let e = Config::from_yaml(
            "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes: [{ name: api, path_prefix: /api/, upstream: \"http://127.0.0.1:1\" }]\n",
            "t",
            &o,
        )
        .expect_err("no default route");
        assert!(e.to_string().contains("--fault-headers: the first listener has no default route"), "{e}");
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
