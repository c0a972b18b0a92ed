//! `edgefault ctl`: a client of a running sidecar's control service (here), its rendering (`render.rs`), `watch`
//! and `top` (`watch.rs`), and `edgefault validate` (`validate.rs`).

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
};

use crate::{
    document,
    pb::v1::{self as v1, fault_control_client::FaultControlClient},
};

mod render;
pub mod report;
mod signature;
mod validate;
mod watch;

pub use render::{parse_state, render, render_list, render_scenario, render_scenarios, render_sidecars, state_name};
pub use signature::{fault_summary, signature};
pub use validate::validate_file;
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
#[derive(Clone)]
pub struct ClientTls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads `--tls-ca`, `--tls-cert` and `--tls-key`; `None` without `--tls-ca`.
    pub fn read(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Option<ClientTls>, CtlError> {
        Self::read_flags(ca, cert, key, "--tls")
    }

    /// The same, with the flags named `{prefix}-ca`, `{prefix}-cert` and `{prefix}-key` in messages.
    pub fn read_flags(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        prefix: &str,
    ) -> Result<Option<ClientTls>, CtlError> {
        let read = |flag: &str, path: &Path| {
            std::fs::read(path).map_err(|e| CtlError::Usage(format!("{flag} {}: cannot read it: {e}", path.display())))
        };
        let Some(ca) = ca else {
            return match cert {
                Some(_) => Err(CtlError::Usage(format!(
                    "{prefix}-cert needs {prefix}-ca (the CA of the server's certificate)"
                ))),
                None => Ok(None),
            };
        };
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read(&format!("{prefix}-cert"), c)?, read(&format!("{prefix}-key"), k)?)),
            _ => None,
        };
        Ok(Some(ClientTls { ca_pem: read(&format!("{prefix}-ca"), ca)?, identity }))
    }
}

/// The endpoint of a control service URL (`host:port` alone gets a scheme), over TLS when `tls` is given
/// (the URL's scheme becomes https). Returns the URL as completed, for messages.
pub fn endpoint(url: &str, tls: Option<&ClientTls>) -> Result<(String, tonic::transport::Endpoint), CtlError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = if url.contains("://") { url.to_owned() } else { format!("{scheme}://{url}") };
    let url = match (&tls, url.strip_prefix("http://")) {
        (Some(_), Some(rest)) => format!("https://{rest}"),
        _ => url,
    };
    let mut endpoint = Channel::from_shared(url.clone())
        .map_err(|e| CtlError::Usage(format!("{url:?} is not a URL ({e}); expected http://host:port")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    if let Some(tls) = tls {
        let mut config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem));
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(config).map_err(|e| CtlError::Usage(format!("TLS settings: {e}")))?;
    }
    Ok((url, endpoint))
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
        let (url, endpoint) = endpoint(url, tls.as_ref()).map_err(|e| match e {
            CtlError::Usage(m) => CtlError::Usage(format!("--control {m}")),
            e => e,
        })?;
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
        self.start_scenario_on(name, params, None).await
    }

    /// Starts a scenario on the sidecars `selector` chooses (a controller only; `kubectl -l` syntax).
    pub async fn start_scenario_on(
        &mut self,
        name: &str,
        params: &[String],
        selector: Option<&str>,
    ) -> Result<v1::StartScenarioResponse, CtlError> {
        let params = parse_params(params)?;
        let sidecars = selector.map(crate::fleet::selector::parse).transpose().map_err(CtlError::Usage)?;
        Ok(self
            .client
            .start_scenario(v1::StartScenarioRequest { name: name.into(), params, sidecars })
            .await
            .map_err(rpc("StartScenario"))?
            .into_inner())
    }

    /// The controller's sidecars.
    pub async fn sidecars(&mut self) -> Result<Vec<v1::Sidecar>, CtlError> {
        Ok(self
            .client
            .list_sidecars(v1::ListSidecarsRequest {})
            .await
            .map_err(rpc("ListSidecars"))?
            .into_inner()
            .sidecars)
    }

    pub async fn abort_all(&mut self, reason: &str) -> Result<v1::AbortAllResponse, CtlError> {
        Ok(self
            .client
            .abort_all(v1::AbortAllRequest { reason: reason.into() })
            .await
            .map_err(rpc("AbortAll"))?
            .into_inner())
    }

    /// The server's history from `since` on, one point a second (`minutes`: a minute).
    pub async fn history(&mut self, since: SystemTime, minutes: bool) -> Result<v1::GetHistoryResponse, CtlError> {
        let seconds = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let resolution = if minutes { v1::HistoryResolution::Minute } else { v1::HistoryResolution::Second };
        Ok(self
            .client
            .get_history(v1::GetHistoryRequest {
                since: Some(pbjson_types::Timestamp { seconds: i64::try_from(seconds).unwrap_or(i64::MAX), nanos: 0 }),
                resolution: resolution as i32,
            })
            .await
            .map_err(rpc("GetHistory"))?
            .into_inner())
    }

    /// What a report of the last `since` (or of the experiments `ids`, from a little before the first
    /// started to a little after the last ended) is made of; `audit`: the server's audit log, for who
    /// started and stopped them.
    pub async fn report_input(
        &mut self,
        server: &str,
        since: Duration,
        ids: &[String],
        audit: Option<&Path>,
    ) -> Result<report::ReportInput, CtlError> {
        let now = SystemTime::now();
        let mut experiments = self.list(Vec::new()).await?;
        let (from, to) = if ids.is_empty() {
            (now.checked_sub(since).unwrap_or(UNIX_EPOCH), now)
        } else {
            for id in ids {
                if !experiments.iter().any(|e| e.id == *id) {
                    experiments.push(self.get(id).await?);
                }
            }
            experiments.retain(|e| ids.contains(&e.id));
            let at = |t: &Option<pbjson_types::Timestamp>| {
                t.as_ref().and_then(|t| u64::try_from(t.seconds).ok()).map(|s| UNIX_EPOCH + Duration::from_secs(s))
            };
            let first = experiments.iter().filter_map(|e| at(&e.started_at).or(at(&e.created_at))).min().unwrap_or(now);
            let last = experiments.iter().map(|e| at(&e.ended_at).unwrap_or(now)).max().unwrap_or(now);
            let margin = Duration::from_secs(10);
            (first.checked_sub(margin).unwrap_or(UNIX_EPOCH), (last + margin).min(now))
        };
        // Points of a second exist for the last ten minutes; further back, points of a minute.
        let minutes = now.duration_since(from).unwrap_or_default()
            > Duration::from_secs(crate::telemetry::history::SECONDS as u64);
        let history = self.history(from, minutes).await?;
        let audit = match audit {
            None => Vec::new(),
            Some(path) => {
                let text = crate::document::read_text(path)
                    .map_err(|e| CtlError::Usage(format!("--audit: cannot read {}: {e}", path.display())))?;
                let (lines, skipped) = report::parse_audit(&text);
                if skipped > 0 {
                    tracing::warn!(file = %path.display(), skipped, "lines of the audit log that are not JSON were skipped");
                }
                lines
            }
        };
        Ok(report::ReportInput { server: server.to_owned(), generated: now, from, to, experiments, history, audit })
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
