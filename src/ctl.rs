//! `edgefault ctl`: a client of a running sidecar's control service, and `edgefault validate`.

use std::{fmt::Write as _, path::Path, time::SystemTime};

use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
};

use crate::{
    config::{self, Config, Overrides},
    document,
    experiment::spec::{self, validate_spec},
    pb::v1::{self as v1, fault_control_client::FaultControlClient},
    scenario,
};

mod watch;

pub use watch::{render_event, render_top, WatchEnd};

pub const DEFAULT_CONTROL_URL: &str = "http://127.0.0.1:7070";

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the control service at {url}: {detail}\n  is `edgefault serve` running there? Set --control URL or EDGEFAULT_CONTROL.")]
    Connect { url: String, detail: String },
    #[error("{call} failed: {code:?}: {message}")]
    Rpc { call: &'static str, code: tonic::Code, message: String },
    #[error("{0}")]
    Invalid(String),
    /// A batch stopped part way, with what became of the part already done.
    #[error("{0}")]
    Refused(String),
}

fn rpc(call: &'static str) -> impl Fn(tonic::Status) -> CtlError {
    move |s| CtlError::Rpc { call, code: s.code(), message: s.message().to_owned() }
}

/// Output format of `get` and `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Adds `authorization: Bearer <token>` to every call, when a token was given.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// `None`: calls go without a token. The secret is checked to be a valid header value here, so a
    /// bad token is a usage error rather than a failed call; it never appears in the message.
    pub fn new(token: Option<&str>) -> Result<Self, CtlError> {
        match token.map(str::trim) {
            None => Ok(BearerToken(None)),
            Some("") => Err(CtlError::Usage("the token is empty (--token-file or EDGEFAULT_TOKEN)".into())),
            Some(t) => format!("Bearer {t}").parse().map(|v| BearerToken(Some(v))).map_err(|_| {
                CtlError::Usage(
                    "the token holds characters a header cannot carry (--token-file or EDGEFAULT_TOKEN)".into(),
                )
            }),
        }
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The TLS settings of `ctl`: the CA that signed the server's certificate, and a client certificate for
/// mTLS.
pub struct ClientTls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads `--tls-ca`, `--tls-cert` and `--tls-key`; `None` without `--tls-ca`.
    pub fn read(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Option<ClientTls>, CtlError> {
        let read = |flag: &str, path: &Path| {
            std::fs::read(path).map_err(|e| CtlError::Usage(format!("{flag} {}: cannot read it: {e}", path.display())))
        };
        let Some(ca) = ca else {
            return match cert {
                Some(_) => {
                    Err(CtlError::Usage("--tls-cert needs --tls-ca (the CA of the server's certificate)".into()))
                }
                None => Ok(None),
            };
        };
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read("--tls-cert", c)?, read("--tls-key", k)?)),
            _ => None,
        };
        Ok(Some(ClientTls { ca_pem: read("--tls-ca", ca)?, identity }))
    }
}

/// Reads the token `ctl` sends: the first line of `--token-file`, else `EDGEFAULT_TOKEN` (`env`).
pub fn read_token(file: Option<&Path>, env: Option<String>) -> Result<Option<String>, CtlError> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.lines().next().map(str::to_owned))
            .map_err(|e| CtlError::Usage(format!("--token-file {}: cannot read it: {e}", path.display()))),
        None => Ok(env.filter(|t| !t.trim().is_empty())),
    }
}

pub struct Ctl {
    client: FaultControlClient<InterceptedService<Channel, BearerToken>>,
}

impl Ctl {
    /// Connects without a token.
    pub async fn connect(url: &str) -> Result<Ctl, CtlError> {
        Self::connect_with(url, BearerToken::new(None)?).await
    }

    /// Connects; every call carries `token`.
    pub async fn connect_with(url: &str, token: BearerToken) -> Result<Ctl, CtlError> {
        Self::connect_tls(url, token, None).await
    }

    /// Connects, over TLS when `tls` is given (the URL's scheme becomes https); every call carries `token`.
    pub async fn connect_tls(url: &str, token: BearerToken, tls: Option<ClientTls>) -> Result<Ctl, CtlError> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = if url.contains("://") { url.to_owned() } else { format!("{scheme}://{url}") };
        let url = match (&tls, url.strip_prefix("http://")) {
            (Some(_), Some(rest)) => format!("https://{rest}"),
            _ => url,
        };
        let mut endpoint = Channel::from_shared(url.clone())
            .map_err(|e| CtlError::Usage(format!("--control {url:?} is not a URL ({e}); expected http://host:port")))?
            .connect_timeout(std::time::Duration::from_secs(5));
        if let Some(tls) = tls {
            let mut config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| CtlError::Usage(format!("--tls-ca/--tls-cert/--tls-key: {e}")))?;
        }
        let channel = endpoint.connect().await.map_err(|e| CtlError::Connect {
            url: url.clone(),
            detail: std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string()),
        })?;
        Ok(Ctl { client: FaultControlClient::with_interceptor(channel, token) })
    }

    /// Starts every experiment of a file (`-`: standard input), in order, after checking all of them with
    /// the server. Returns the ids. All or none: if any document is invalid, none is started; if the
    /// server refuses one at start (its limits may have changed meanwhile), those started before it are
    /// stopped again, and the error says which.
    pub async fn start_file(&mut self, path: &Path) -> Result<Vec<v1::Experiment>, CtlError> {
        let specs = read_specs(path)?;
        let mut problems = String::new();
        for (i, spec) in specs.iter().enumerate() {
            let r = self
                .client
                .validate_experiment(v1::ValidateExperimentRequest { spec: Some(spec.clone()) })
                .await
                .map_err(rpc("ValidateExperiment"))?
                .into_inner();
            for v in r.violations {
                list_problem(&mut problems, specs.len(), i, &v.field, &v.description);
            }
        }
        if !problems.is_empty() {
            return Err(CtlError::Invalid(format!(
                "{}: the server refused the experiment:{problems}\nnothing was started",
                path.display()
            )));
        }
        let total = specs.len();
        let mut started: Vec<v1::Experiment> = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            match self.start_spec(spec).await {
                Ok(e) => started.push(e),
                Err(e) => return Err(self.roll_back(path, i, total, &started, e).await),
            }
        }
        Ok(started)
    }

    /// Stops the experiments a file started before document `failed` was refused; the error says what was
    /// refused, and which experiments were stopped again (or are still running, if a stop failed too).
    async fn roll_back(
        &mut self,
        path: &Path,
        failed: usize,
        total: usize,
        started: &[v1::Experiment],
        refused: CtlError,
    ) -> CtlError {
        let doc = if total > 1 {
            format!("document {} of {}", failed + 1, path.display())
        } else {
            path.display().to_string()
        };
        let mut stopped = Vec::new();
        let mut running = Vec::new();
        for e in started {
            match self.stop(&e.id, &format!("rolled back: {doc} was refused")).await {
                Ok(_) => stopped.push(e.id.as_str()),
                Err(_) => running.push(e.id.as_str()),
            }
        }
        let mut msg = format!("{doc}: {refused}");
        if !stopped.is_empty() {
            let _ = write!(
                msg,
                "\nthe {} experiment(s) started before it were stopped again: {}",
                stopped.len(),
                stopped.join(" ")
            );
        }
        if !running.is_empty() {
            let _ = write!(
                msg,
                "\nstill running (stopping them failed; stop them with `edgefault ctl stop ID`): {}",
                running.join(" ")
            );
        }
        if started.is_empty() {
            msg.push_str("\nnothing was started");
        }
        CtlError::Refused(msg)
    }

    /// Starts one experiment.
    pub async fn start_spec(&mut self, spec: v1::ExperimentSpec) -> Result<v1::Experiment, CtlError> {
        Ok(self
            .client
            .start_experiment(v1::StartExperimentRequest { spec: Some(spec) })
            .await
            .map_err(rpc("StartExperiment"))?
            .into_inner())
    }

    pub async fn stop(&mut self, id: &str, reason: &str) -> Result<v1::Experiment, CtlError> {
        Ok(self
            .client
            .stop_experiment(v1::StopExperimentRequest { id: id.into(), reason: reason.into() })
            .await
            .map_err(rpc("StopExperiment"))?
            .into_inner())
    }

    pub async fn get(&mut self, id: &str) -> Result<v1::Experiment, CtlError> {
        Ok(self
            .client
            .get_experiment(v1::GetExperimentRequest { id: id.into() })
            .await
            .map_err(rpc("GetExperiment"))?
            .into_inner())
    }

    pub async fn list(&mut self, states: Vec<v1::ExperimentState>) -> Result<Vec<v1::Experiment>, CtlError> {
        let states = states.into_iter().map(|s| s as i32).collect();
        Ok(self
            .client
            .list_experiments(v1::ListExperimentsRequest { states })
            .await
            .map_err(rpc("ListExperiments"))?
            .into_inner()
            .experiments)
    }

    pub async fn renew_lease(&mut self, id: &str) -> Result<v1::Experiment, CtlError> {
        let r = self
            .client
            .renew_lease(v1::RenewLeaseRequest { id: id.into() })
            .await
            .map_err(rpc("RenewLease"))?
            .into_inner();
        r.experiment.ok_or_else(|| CtlError::Invalid("RenewLease answered without the experiment".into()))
    }

    /// `ctl start --follow`: keeps the experiments alive while they run, renewing every lease at a third
    /// of the shortest lease (every second when none has one), and reports each one's end on `out`.
    /// Returns when all have ended; on Ctrl-C (or `interrupt` resolving) stops those still active first.
    pub async fn follow(
        &mut self,
        started: &[v1::Experiment],
        interrupt: impl std::future::Future<Output = ()>,
        out: &mut impl std::io::Write,
    ) -> Result<(), CtlError> {
        let lease_of = |e: &v1::Experiment| {
            e.spec
                .as_ref()
                .and_then(|s| s.lease)
                .map(|d| std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
        };
        let period = started
            .iter()
            .filter_map(lease_of)
            .min()
            .map(|l| l / 3)
            .unwrap_or(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(10));
        let mut active: Vec<(String, bool)> = started.iter().map(|e| (e.id.clone(), lease_of(e).is_some())).collect();
        let mut tick = tokio::time::interval(period);
        tokio::pin!(interrupt);
        while !active.is_empty() {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut interrupt => {
                    for (id, _) in &active {
                        match self.stop(id, "ctl --follow interrupted").await {
                            Ok(e) => { let _ = writeln!(out, "{id}: stopped"); drop(e) }
                            Err(CtlError::Rpc { code: tonic::Code::FailedPrecondition, .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    return Ok(());
                }
            }
            let mut still = Vec::with_capacity(active.len());
            for (id, leased) in active {
                let e = if leased {
                    match self.renew_lease(&id).await {
                        Ok(e) => e,
                        Err(CtlError::Rpc { code: tonic::Code::FailedPrecondition, .. }) => self.get(&id).await?,
                        Err(e) => return Err(e),
                    }
                } else {
                    self.get(&id).await?
                };
                let state = v1::ExperimentState::try_from(e.state).unwrap_or_default();
                if matches!(state, v1::ExperimentState::Pending | v1::ExperimentState::Running) {
                    still.push((id, leased));
                } else {
                    let why = if e.end_reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", crate::text::printable(&e.end_reason))
                    };
                    let _ = writeln!(out, "{id}: {}{why}", state_name(e.state));
                }
            }
            active = still;
        }
        Ok(())
    }

    pub async fn list_scenarios(&mut self) -> Result<Vec<v1::Scenario>, CtlError> {
        Ok(self
            .client
            .list_scenarios(v1::ListScenariosRequest {})
            .await
            .map_err(rpc("ListScenarios"))?
            .into_inner()
            .scenarios)
    }

    /// A scenario and the experiments it expands into with `params` (`k=v` each).
    pub async fn get_scenario(&mut self, name: &str, params: &[String]) -> Result<v1::GetScenarioResponse, CtlError> {
        let params = parse_params(params)?;
        Ok(self
            .client
            .get_scenario(v1::GetScenarioRequest { name: name.into(), params })
            .await
            .map_err(rpc("GetScenario"))?
            .into_inner())
    }

    /// Starts a scenario with `params` (`k=v` each); returns the experiments started, and what the server
    /// adapted (experiments left out, with the parameter to set).
    pub async fn start_scenario(
        &mut self,
        name: &str,
        params: &[String],
    ) -> Result<v1::StartScenarioResponse, CtlError> {
        let params = parse_params(params)?;
        Ok(self
            .client
            .start_scenario(v1::StartScenarioRequest { name: name.into(), params })
            .await
            .map_err(rpc("StartScenario"))?
            .into_inner())
    }

    pub async fn abort_all(&mut self, reason: &str) -> Result<v1::AbortAllResponse, CtlError> {
        Ok(self
            .client
            .abort_all(v1::AbortAllRequest { reason: reason.into() })
            .await
            .map_err(rpc("AbortAll"))?
            .into_inner())
    }
}

/// Adds one problem of document `i` (of `docs`) to a bulleted list.
fn list_problem(out: &mut String, docs: usize, i: usize, field: &str, description: &str) {
    let doc = if docs > 1 { format!("document {}: ", i + 1) } else { String::new() };
    let _ = write!(out, "\n  - {doc}{field}: {description}");
}

fn read_specs(path: &Path) -> Result<Vec<v1::ExperimentSpec>, CtlError> {
    let text = if path.as_os_str() == "-" {
        read_stdin().map_err(|e| CtlError::Usage(format!("cannot read the standard input: {e}")))?
    } else {
        crate::document::read_text(path).map_err(|e| CtlError::Usage(format!("cannot read {}: {e}", path.display())))?
    };
    document::parse_specs(&text).map_err(|e| CtlError::Invalid(format!("{}: {e}", path.display())))
}

/// The standard input as text, at most [`document::MAX_YAML_BYTES`].
fn read_stdin() -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    let limit = u64::try_from(document::MAX_YAML_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    std::io::stdin().take(limit).read_to_string(&mut text)?;
    if text.len() > document::MAX_YAML_BYTES {
        return Err(std::io::Error::other(format!(
            "more than the {} bytes a YAML file may hold",
            document::MAX_YAML_BYTES
        )));
    }
    Ok(text)
}

/// `edgefault validate FILE [--config CONFIG]`: checks a config file, or an experiment file (against the
/// routes and limits of CONFIG when given), with `overrides` applied as `serve` would (the environment's
/// token). Returns a one-line summary.
pub fn validate_file(
    path: &Path,
    config: Option<&Path>,
    force_config: bool,
    overrides: &Overrides,
) -> Result<String, CtlError> {
    let text = crate::document::read_text(path)
        .map_err(|e| CtlError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let docs =
        document::parse_yaml_documents(&text).map_err(|e| CtlError::Invalid(format!("{}: {e}", path.display())))?;
    let only = match docs.as_slice() {
        [one] => Some(one),
        _ => None,
    };
    if !force_config && only.is_some_and(scenario::looks_like_scenario) {
        return validate_scenario(path, &text, config, overrides);
    }
    let is_config = force_config || only.is_some_and(config::looks_like_config);
    if is_config {
        let c = Config::from_yaml(&text, &path.display().to_string(), overrides)
            .map_err(|e| CtlError::Invalid(e.to_string()))?;
        let routes: usize = c.listeners.iter().map(|l| l.routes.len()).sum();
        return Ok(format!(
            "ok: {}: config with {} listener(s), {routes} route(s), {} boot experiment(s)",
            path.display(),
            c.listeners.len() + c.tcp_listeners.len(),
            c.experiments.len()
        ));
    }
    let server = match config {
        Some(c) => Some(Config::load(c, overrides).map_err(|e| CtlError::Invalid(e.to_string()))?),
        None => None,
    };
    let topology = server.as_ref().map(Config::topology);
    let limits = server.as_ref().map(|c| c.limits.clone()).unwrap_or_default();
    let specs = document::parse_specs(&text).map_err(|e| CtlError::Invalid(format!("{}: {e}", path.display())))?;
    let ctx = spec::Context { topology: topology.as_ref(), limits: &limits };
    let mut problems = String::new();
    for (i, spec) in specs.iter().enumerate() {
        if let Err(v) = validate_spec(spec, &ctx) {
            for v in v.0 {
                list_problem(&mut problems, specs.len(), i, &v.field, &v.description);
            }
        }
    }
    if !problems.is_empty() {
        return Err(CtlError::Invalid(format!("{}: invalid experiment:{problems}", path.display())));
    }
    let note =
        if config.is_none() { " (route and listener names not checked: pass --config to check them)" } else { "" };
    Ok(format!("ok: {}: {} experiment(s){note}", path.display(), specs.len()))
}

/// `edgefault validate SCENARIO.yaml [--config CONFIG]`: the scenario's format and parameters, and its
/// experiments with the default parameters (against CONFIG's routes and limits when given).
fn validate_scenario(
    path: &Path,
    text: &str,
    config: Option<&Path>,
    overrides: &Overrides,
) -> Result<String, CtlError> {
    let origin = path.display().to_string();
    let s = scenario::Scenario::parse(text, &origin, Some(path.to_owned()))
        .map_err(|e| CtlError::Invalid(e.to_string()))?;
    let specs = s.expand(&Default::default()).map_err(|e| CtlError::Invalid(format!("{origin}: {e}")))?;
    if let Some(c) = config {
        let server = Config::load(c, overrides).map_err(|e| CtlError::Invalid(e.to_string()))?;
        let topology = server.topology();
        let ctx = spec::Context { topology: Some(&topology), limits: &server.limits };
        s.check(&specs, &ctx).map_err(|e| CtlError::Invalid(format!("{origin}: with its defaults: {e}")))?;
    }
    Ok(format!(
        "ok: {origin}: scenario {} with {} parameter(s), {} experiment(s) with its defaults",
        s.name,
        s.params.len(),
        specs.len()
    ))
}

/// `--param k=v` values as a map; a value may contain '='.
pub fn parse_params(params: &[String]) -> Result<std::collections::HashMap<String, String>, CtlError> {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(CtlError::Usage(format!("--param {p:?}: expected NAME=VALUE, e.g. --param speed=60"))),
        })
        .collect()
}

/// Renders the scenario list as a table or JSON.
pub fn render_scenarios(scenarios: &[v1::Scenario], output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(scenarios).unwrap_or_default(),
        Output::Text => {
            let mut out = format!("{:<32} {:<8} {}\n", "NAME", "ORIGIN", "SUMMARY");
            for s in scenarios {
                let origin = if s.builtin { "built-in" } else { "file" };
                let _ = writeln!(out, "{:<32} {:<8} {}", s.name, origin, s.summary);
            }
            out
        }
    }
}

/// Renders one scenario, its parameters and the experiments it expands into.
pub fn render_scenario(r: &v1::GetScenarioResponse, output: Output) -> String {
    if output == Output::Json {
        return serde_json::to_string_pretty(r).unwrap_or_default();
    }
    let s = r.scenario.clone().unwrap_or_default();
    let mut out = format!("{} — {}\n", s.name, s.summary);
    if !s.file.is_empty() {
        let _ = writeln!(out, "file: {}", s.file);
    }
    if !s.source.is_empty() {
        let _ = writeln!(out, "source: {}", s.source);
    }
    let _ = writeln!(out, "\n{}", s.description.trim_end());
    let _ = writeln!(out, "\nparameters (--param NAME=VALUE):");
    let _ = writeln!(out, "  {:<18} {:<10} {:<34} DESCRIPTION", "NAME", "TYPE", "DEFAULT");
    for p in &s.params {
        let choices = if p.choices.is_empty() { String::new() } else { format!(" (one of {})", p.choices.join(", ")) };
        let default = if p.default_value.is_empty() { "(empty)".to_owned() } else { p.default_value.clone() };
        let _ = writeln!(out, "  {:<18} {:<10} {:<34} {}{choices}", p.name, p.r#type, default, p.description);
    }
    let _ = writeln!(out, "\nexperiments with these parameters on this server:");
    for e in &r.experiments {
        let scale = e.time_scale.unwrap_or(1.0);
        let routes = e.r#match.as_ref().map(|m| m.routes.join(",")).filter(|r| !r.is_empty());
        let hosts = e.r#match.as_ref().map(|m| m.hosts.join(",")).filter(|h| !h.is_empty());
        let scope = match (routes, hosts) {
            (Some(r), _) => format!("routes {r}"),
            (None, Some(h)) => format!("hosts {h}"),
            (None, None) => "every route".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {}: {scope}, {} of incident time{}, {}",
            e.name,
            e.duration.map(span).unwrap_or_else(|| "the server's default".into()),
            if scale == 1.0 {
                String::new()
            } else {
                format!(" (runs {} at time_scale {scale})", scaled(e.duration, scale))
            },
            e.faults.iter().map(fault_summary).collect::<Vec<_>>().join(" + "),
        );
        if e.phases.is_empty() {
            continue;
        }
        let _ = writeln!(out, "    {:<24} {:>10} {:>10} {:>6}  FAULTS", "PHASE", "START", "REAL", "PCT");
        for p in &e.phases {
            let pct = match (&p.ramp, p.percentage.or(e.percentage)) {
                (Some(r), _) => format!("{}→{}", r.from, r.to),
                (None, Some(v)) => format!("{v}"),
                (None, None) => "100".into(),
            };
            let mut faults = if p.faults.is_empty() {
                "(the experiment's)".to_owned()
            } else {
                p.faults.iter().map(fault_summary).collect::<Vec<_>>().join(" + ")
            };
            if let Some(f) = &p.flap {
                let _ = write!(faults, ", flapping every {}", f.period.map(span).unwrap_or_default());
            }
            let _ = writeln!(
                out,
                "    {:<24} {:>10} {:>10} {:>6}  {faults}",
                p.name,
                p.start.map(span).unwrap_or_else(|| "0s".into()),
                scaled(p.start, scale),
                pct
            );
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

fn span(d: pbjson_types::Duration) -> String {
    let d = std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32);
    humantime::format_duration(d).to_string().replace(' ', "")
}

fn scaled(d: Option<pbjson_types::Duration>, scale: f64) -> String {
    let d = d.map(|d| std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)).unwrap_or_default();
    let real =
        std::time::Duration::try_from_secs_f64((d.as_secs_f64() / scale * 1000.0).round() / 1000.0).unwrap_or_default();
    humantime::format_duration(real).to_string().replace(' ', "")
}

/// One fault in a few words: "abort 500 (edge page)", "delay", "reset".
pub fn fault_summary(f: &v1::Fault) -> String {
    use v1::fault::Kind;
    let abort = |a: &v1::AbortFault| {
        let status = a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "503".into());
        if a.page.is_empty() {
            status
        } else {
            format!("{status} ({} page)", a.page)
        }
    };
    match &f.kind {
        Some(Kind::Abort(a)) => format!("abort {}", abort(a)),
        Some(Kind::Hang(h)) => match &h.then {
            Some(v1::hang_fault::Then::Respond(a)) => {
                format!("hang {} then {}", h.duration.map(span).unwrap_or_default(), abort(a))
            }
            _ => format!("hang {}", h.duration.map(span).unwrap_or_default()),
        },
        Some(Kind::Rewrite(v1::RewriteFault { status: Some(status), .. })) => format!("rewrite to {status}"),
        Some(Kind::Tls(t)) => match &t.kind {
            Some(v1::tls_fault::Kind::HandshakeFailure(h)) if h.reset => "TLS reset".into(),
            Some(v1::tls_fault::Kind::HandshakeFailure(h)) => {
                format!("TLS alert {}", if h.alert.is_empty() { "handshake_failure" } else { h.alert.as_str() })
            }
            Some(v1::tls_fault::Kind::Certificate(c)) => format!("TLS certificate {}", c.problem),
            Some(v1::tls_fault::Kind::Stall(s)) => match s.duration {
                Some(d) => format!("TLS stall {}", span(d)),
                None => "TLS stall".into(),
            },
            None => "tls".into(),
        },
        // The others by their name (`rate limit`, `first byte delay`).
        Some(kind) => crate::fault::kind_name(kind).replace('_', " "),
        None => "?".into(),
    }
}

/// Renders experiments as a table or JSON.
pub fn render(experiments: &[v1::Experiment], output: Output) -> String {
    match output {
        // One experiment (`get`, `stop`): its object.
        Output::Json if experiments.len() == 1 => {
            experiments.first().and_then(|e| serde_json::to_string_pretty(e).ok()).unwrap_or_default()
        }
        Output::Json => render_list(experiments),
        Output::Text => {
            let mut out = format!(
                "{:<18} {:<24} {:<10} {:>7} {:>9} {:>9}  {}\n",
                "ID", "NAME", "STATE", "PCT", "MATCHED", "INJECTED", "ENDS/ENDED"
            );
            for e in experiments {
                let spec = e.spec.clone().unwrap_or_default();
                let stats = e.stats.unwrap_or_default();
                let when = e.ended_at.or(e.ends_at).map(format_time).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:<18} {:<24} {:<10} {:>7} {:>9} {:>9}  {when}{}",
                    e.id,
                    truncate(&spec.name, 24),
                    state_name(e.state),
                    format!("{}%", spec.percentage.unwrap_or(100.0)),
                    stats.matched,
                    stats.injected,
                    if e.end_reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", crate::text::printable(&e.end_reason))
                    },
                );
            }
            out
        }
    }
}

/// `s` made printable (see [`crate::text::printable`]) and cut to `n` characters.
/// A list of experiments as JSON: always an array (`list`, `scenario start`), whatever its length.
pub fn render_list(experiments: &[v1::Experiment]) -> String {
    serde_json::to_string_pretty(experiments).unwrap_or_default()
}

fn truncate(s: &str, n: usize) -> String {
    let s = crate::text::printable(s);
    if s.chars().count() <= n {
        s.into_owned()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

pub fn state_name(state: i32) -> &'static str {
    match v1::ExperimentState::try_from(state) {
        Ok(v1::ExperimentState::Pending) => "pending",
        Ok(v1::ExperimentState::Running) => "running",
        Ok(v1::ExperimentState::Completed) => "completed",
        Ok(v1::ExperimentState::Stopped) => "stopped",
        Ok(v1::ExperimentState::Aborted) => "aborted",
        _ => "unknown",
    }
}

/// Parses a state name for `list --state`.
pub fn parse_state(s: &str) -> Result<v1::ExperimentState, String> {
    match s.to_ascii_lowercase().as_str() {
        "pending" => Ok(v1::ExperimentState::Pending),
        "running" => Ok(v1::ExperimentState::Running),
        "completed" => Ok(v1::ExperimentState::Completed),
        "stopped" => Ok(v1::ExperimentState::Stopped),
        "aborted" => Ok(v1::ExperimentState::Aborted),
        other => Err(format!("{other:?} is not a state (pending, running, completed, stopped, aborted)")),
    }
}

fn format_time(t: pbjson_types::Timestamp) -> String {
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32);
    humantime::format_rfc3339_seconds(t).to_string()
}
