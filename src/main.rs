//! The `edgefault` command line. Parsing only: the work is done by the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use edgefault::{
    app::{self, Server},
    config::{Config, Overrides},
    ctl::{self, Ctl, CtlError, Output},
    inject,
    telemetry::{self, LogFormat},
};

/// A sidecar proxy that rehearses edge-provider outages: HTTP faults injected into live traffic, started
/// and stopped over gRPC.
#[derive(Parser)]
#[command(name = "edgefault", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and its control service.
    Serve(Box<ServeArgs>),
    /// Run the fleet controller: the same control API over every sidecar that subscribes to it
    /// (docs/fleet.md).
    Controller(ControllerArgs),
    /// Talk to a running edgefault's control service (a sidecar's or the controller's).
    Ctl(CtlArgs),
    /// Check a config file or an experiment file without starting anything.
    Validate {
        /// A config file (it has `listeners:`) or an experiment file (one or more `---` separated specs).
        file: PathBuf,
        /// Check an experiment file against this config's routes, listeners and limits.
        #[arg(long, value_name = "CONFIG")]
        config: Option<PathBuf>,
        /// Treat FILE as a config file even if it does not look like one.
        #[arg(long, conflicts_with = "config")]
        as_config: bool,
    },
    /// Add the edgefault sidecar to Kubernetes manifests: the pod templates annotated
    /// edgefault.io/inject: "true" (or all of them with --all) of Deployments, StatefulSets, DaemonSets,
    /// ReplicaSets, Jobs, CronJobs and Pods. Writes the manifests to stdout and one line per workload to
    /// stderr; writes nothing when the input has a problem (docs/deploy.md).
    Inject(InjectArgs),
    /// Replay the 18 November 2025 edge outage at high speed against a sample upstream, and show once a
    /// second what clients see. Exits when the replay is over.
    Demo {
        /// How long the replay runs (the 5h46m incident compressed into it), 2s to 1h.
        #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Only run the demo's sample upstream (an app that answers 200 to everything), until Ctrl-C: something
        /// to put `edgefault serve --upstream` in front of.
        #[arg(long)]
        upstream_only: bool,
        /// Where the sample upstream listens, with --upstream-only.
        #[arg(long, default_value = "127.0.0.1:3000", value_name = "ADDR", requires = "upstream_only")]
        listen: std::net::SocketAddr,
        /// Also write the run's report (`ctl report`) here: HTML, Markdown for a name ending in .md, JSON
        /// for .json; repeatable. Its points are a second long: give the replay --duration 90s or more to
        /// see the flapping.
        #[arg(long, value_name = "FILE", conflicts_with = "upstream_only")]
        report: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Config file (YAML). Flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the first listener [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Upstream URL of the first listener's default route (http://host:port).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Address of the gRPC control service [default: 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Address of the admin endpoint (/healthz, /readyz, /metrics); off unless given.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Duration of experiments that give none [default: 5m].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    default_duration: Option<Duration>,
    /// Longest duration an experiment may ask for [default: 1h].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    max_duration: Option<Duration>,
    /// How long shutdown waits for in-flight requests [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    drain_grace: Option<Duration>,
    /// Highest percentage an experiment may ask for [default: 100] (limits.max_percentage).
    #[arg(long, value_name = "PERCENT")]
    max_percentage: Option<f64>,
    /// Routes experiments may target, comma-separated [default: all] (limits.allowed_routes).
    #[arg(long, value_name = "ROUTES", value_delimiter = ',')]
    allowed_routes: Option<Vec<String>>,
    /// Requests faulted at once; past it requests pass untouched [default: 10000] (limits.max_active_faults).
    #[arg(long, value_name = "N")]
    max_active_faults: Option<usize>,
    /// Let requests on the first listener's default route ask for their own abort, delay or throughput limit
    /// through Envoy's x-envoy-fault-* headers (routes[].fault_headers: true). It lets any client of the
    /// route fault itself: for test and CI setups only (docs/faults.md).
    #[arg(long)]
    fault_headers: bool,
    /// Tokens file of the control service (YAML list of { name, role: admin | read-only | sidecar, token }); added
    /// to control.tokens_file. The environment variable EDGEFAULT_ADMIN_TOKEN adds one admin token.
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// Audit log of state-changing control calls: a file (appended to) or "-" for stderr (audit.path).
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    /// Serve the Toxiproxy-compatible REST API here (toxiproxy.bind; Toxiproxy's port is 8474): its clients
    /// create TCP proxies and toxics, which run as experiments (docs/compat.md).
    #[arg(long, value_name = "ADDR")]
    toxiproxy: Option<String>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    fleet: FleetArgs,
}

/// How a sidecar joins a controller.
#[derive(Args)]
struct FleetArgs {
    /// Subscribe to this controller (http://host:port, https:// with --controller-tls-ca) and run the fleet
    /// experiments meant for this sidecar, beside local ones.
    #[arg(long, value_name = "URL", env = "EDGEFAULT_CONTROLLER")]
    controller: Option<String>,
    /// A label of this sidecar, KEY=VALUE; repeatable. Selectors match on them.
    #[arg(long = "label", value_name = "KEY=VALUE", requires = "controller", value_parser = edgefault::fleet::selector::parse_label)]
    labels: Vec<(String, String)>,
    /// Labels from a Kubernetes downward-API file (`key="value"` lines), under the --label flags.
    #[arg(long, value_name = "FILE", requires = "controller")]
    labels_file: Option<PathBuf>,
    /// This sidecar's id in the fleet [default: $POD_NAME, then the host name].
    #[arg(long, value_name = "ID", requires = "controller")]
    sidecar_id: Option<String>,
    /// How long fleet experiments outlive a lost controller before they end (0s: at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    controller_grace: Duration,
    /// File whose first line is the token sent to the controller (role sidecar or admin); without it,
    /// EDGEFAULT_CONTROLLER_TOKEN.
    #[arg(long, value_name = "FILE", requires = "controller")]
    controller_token_file: Option<PathBuf>,
    /// CA certificate (PEM) of the controller's certificate: connect over TLS.
    #[arg(long, value_name = "FILE", requires = "controller")]
    controller_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS to the controller; needs --controller-tls-key.
    #[arg(long, value_name = "FILE", requires = "controller_tls_key")]
    controller_tls_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "controller_tls_cert")]
    controller_tls_key: Option<PathBuf>,
    /// How often this sidecar reports its counters to the controller.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION", hide = true)]
    controller_report_interval: Duration,
    /// HTTP/2 ping period on the stream to the controller; unanswered for as long, the stream is lost.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION", hide = true)]
    controller_keepalive: Duration,
}

#[derive(Args)]
struct ControllerArgs {
    /// Config file (YAML): its control, audit, limits and scenarios_dir sections. Flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the controller's gRPC service [default: 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Address of the controller's admin endpoint: /healthz, /readyz, the console at /console and
    /// POST /abort-all, over the fleet [default: none].
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Tokens file (YAML list of { name, role: admin | read-only | sidecar, token }); added to
    /// control.tokens_file. EDGEFAULT_ADMIN_TOKEN adds one admin token.
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// Audit log of state-changing calls: a file (appended to) or "-" for stderr.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    /// Duration of fleet experiments that give none [default: 5m].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    default_duration: Option<Duration>,
    /// Longest duration a fleet experiment may ask for [default: 1h].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    max_duration: Option<Duration>,
    /// Highest percentage a fleet experiment may ask for [default: 100].
    #[arg(long, value_name = "PERCENT")]
    max_percentage: Option<f64>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Args)]
struct InjectArgs {
    /// Manifests (YAML, `---` separated documents, any kinds); `-` reads the standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    file: PathBuf,
    /// Write the manifests to this file instead of the standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Inject every workload, not only the annotated ones; edgefault.io/inject: "false" still opts out.
    #[arg(long)]
    all: bool,
    /// Image of the sidecar container.
    #[arg(long, value_name = "IMAGE", default_value = inject::DEFAULT_IMAGE)]
    image: String,
    /// The application's port, that the sidecar forwards to [default: the annotation edgefault.io/app-port,
    /// else the first containerPort of the first container].
    #[arg(long, value_name = "PORT")]
    app_port: Option<u16>,
    /// The sidecar's proxy port (named ef-http), on all interfaces.
    #[arg(long, value_name = "PORT", default_value_t = inject::DEFAULT_LISTEN_PORT)]
    listen_port: u16,
    /// The sidecar's control port, on the pod's loopback only.
    #[arg(long, value_name = "PORT", default_value_t = inject::DEFAULT_CONTROL_PORT)]
    control_port: u16,
    /// The sidecar's admin port (named ef-admin): probes and metrics.
    #[arg(long, value_name = "PORT", default_value_t = inject::DEFAULT_ADMIN_PORT)]
    admin_port: u16,
    /// The sidecars subscribe to this fleet controller (http://host:port); adds the pod label
    /// edgefault.io/sidecar: "true", POD_NAME and the pod's labels from the downward API.
    #[arg(long, value_name = "URL")]
    controller: Option<String>,
    /// How long fleet experiments outlive a lost controller [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "controller")]
    controller_grace: Option<Duration>,
    /// The Secret (and its key, default sidecar-token) holding the sidecar token for the controller,
    /// mounted read-only in the sidecar.
    #[arg(long, value_name = "NAME[:KEY]", value_parser = inject::SecretKey::parse, requires = "controller")]
    controller_token_secret: Option<inject::SecretKey>,
    /// A Service of the input whose ports that target the app port go through the sidecar instead
    /// (targetPort ef-http); repeatable.
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
}

#[derive(Args)]
struct CtlArgs {
    /// Control service URL.
    #[arg(long, env = "EDGEFAULT_CONTROL", default_value = ctl::DEFAULT_CONTROL_URL, global = true)]
    control: String,
    /// File whose first line is the bearer token to send; without it, the EDGEFAULT_TOKEN environment
    /// variable is used, if set.
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the control service's certificate: connect over TLS (https://).
    #[arg(long, value_name = "FILE", env = "EDGEFAULT_TLS_CA", global = true)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; needs --tls-key.
    #[arg(long, value_name = "FILE", env = "EDGEFAULT_TLS_CERT", global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", env = "EDGEFAULT_TLS_KEY", global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Start the experiments of a file; prints one id per line. All or none: if the server refuses one,
    /// those started before it are stopped again.
    Start {
        /// Experiment file: YAML (or JSON) in the protobuf JSON mapping of ExperimentSpec, one or more
        /// `---` separated documents; `-` reads the standard input.
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
        /// Stay: renew the experiments' leases (every lease/3) until they end, and stop them on Ctrl-C.
        /// If this client dies, leased experiments end within their lease.
        #[arg(long)]
        follow: bool,
    },
    /// Stop an experiment.
    Stop {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Show one experiment.
    Get {
        id: String,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// List experiments: active ones, then recently ended ones.
    List {
        /// Only these states (pending, running, completed, stopped, aborted); repeatable.
        #[arg(long, value_parser = ctl::parse_state)]
        state: Vec<edgefault::pb::v1::ExperimentState>,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The kill switch: end every pending and running experiment now.
    AbortAll {
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Print events as they happen, one line each (started, stopped, expired, aborted, guard tripped,
    /// timeline, lease expired, stats snapshots), until Ctrl-C or the server goes away.
    Watch {
        /// Only this experiment's events.
        #[arg(long, value_name = "ID")]
        experiment: Option<String>,
        /// How often a stats snapshot comes (100ms to 1h).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
        stats_interval: Duration,
        /// No stats snapshots: lifecycle events only.
        #[arg(long)]
        no_stats: bool,
        /// text, or json: one JSON object per line (the protobuf JSON mapping of edgefault.v1.Event).
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// A refreshing view of the running experiments with per-second rates. On a terminal it redraws in
    /// place; otherwise it prints one frame after another.
    Top {
        /// Time between frames (the rates are over it).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
        interval: Duration,
        /// Print one frame and exit (rates over one interval).
        #[arg(long, conflicts_with = "iterations")]
        once: bool,
        /// Print N frames and exit.
        #[arg(long, value_name = "N")]
        iterations: Option<u64>,
    },
    /// The controller's sidecars: id, labels, connected, versions, fleet experiments, last rejection.
    Sidecars {
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The scenario catalogue: list, show, start.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// A report of a rehearsal, for its post-mortem: the experiments with who started and stopped them,
    /// their phases on a time axis, and per route what clients saw (status mix, latency, injected and
    /// real upstream errors), then the totals. One self-contained file (docs/console.md).
    Report {
        /// The window: this far back from now (a second's points reach 10 minutes back, a minute's 6 hours).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
        since: Duration,
        /// Only these experiments, and the window around them (instead of --since); repeatable.
        #[arg(long, value_name = "ID")]
        experiment: Vec<String>,
        /// The server's audit log (audit.path), to say who started and stopped each experiment.
        #[arg(long, value_name = "FILE")]
        audit: Option<PathBuf>,
        /// Write it here [default: the standard output].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// html (SVG plots), md (tables and sparklines) or json (the data, for pipelines).
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
    },
}

/// What `ctl report` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Md,
    Json,
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// List the scenarios of the server's catalogue.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show a scenario: what it models, its parameters, and the experiments (with their phases) it starts.
    Show {
        name: String,
        /// A parameter, NAME=VALUE; repeatable.
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Start a scenario's experiments; prints one id per line.
    Start {
        name: String,
        /// A parameter, NAME=VALUE; repeatable.
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// On the controller: the sidecars to reach, as `kubectl -l` writes it (`app=web,zone in (eu-1)`),
        /// plus `percent=N` and `max=N`.
        #[arg(long, short = 'l', value_name = "SELECTOR")]
        selector: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Controller(args) => controller(args),
        Command::Ctl(args) => current_thread(run_ctl(args)),
        Command::Validate { file, config, as_config } => {
            ctl::validate_file(&file, config.as_deref(), as_config, &env_overrides())
                .map(|summary| println!("{summary}"))
                .map_err(|e| e.to_string())
        }
        Command::Inject(args) => run_inject(args),
        Command::Demo { upstream_only: true, listen, .. } => current_thread(async move {
            let mut out = std::io::stdout();
            edgefault::demo::upstream_only(&mut out, listen, app::termination_signal()).await.map_err(|e| e.to_string())
        }),
        Command::Demo { duration, report, .. } => current_thread(async move {
            let mut out = std::io::stdout();
            edgefault::demo::run(&mut out, duration, &report).await.map_err(|e| e.to_string())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgefault: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inject(args: InjectArgs) -> Result<(), String> {
    let options = inject::Options {
        all: args.all,
        image: args.image,
        app_port: args.app_port,
        listen_port: args.listen_port,
        control_port: args.control_port,
        admin_port: args.admin_port,
        fleet: args.controller.map(|controller| inject::Fleet {
            controller,
            grace: args.controller_grace.unwrap_or(inject::DEFAULT_CONTROLLER_GRACE),
            token_secret: args.controller_token_secret,
        }),
        services: args.services,
    };
    let outcomes = inject::run(&args.file, args.output.as_deref(), &options, &mut std::io::stdout().lock())
        .map_err(|e| format!("inject: {e}"))?;
    for outcome in outcomes {
        eprintln!("{outcome}");
    }
    Ok(())
}

/// What `serve` takes from the environment, so `validate` checks a config as `serve` would run it here.
fn env_overrides() -> Overrides {
    Overrides { admin_token: admin_token_env(), ..Overrides::default() }
}

fn admin_token_env() -> Option<String> {
    std::env::var("EDGEFAULT_ADMIN_TOKEN").ok().filter(|t| !t.is_empty())
}

fn current_thread<F: std::future::Future<Output = Result<(), String>>>(f: F) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(f)
}

/// The runtime of `serve` and `controller`. One worker: a current-thread runtime, with no cross-thread
/// wake-ups on the request path.
fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut runtime = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))
}

fn serve(args: ServeArgs) -> Result<(), String> {
    telemetry::init_logs(args.log_format);
    let overrides = Overrides {
        listen: args.listen,
        upstream: args.upstream,
        control: args.control,
        admin: args.admin,
        workers: args.workers,
        default_duration: args.default_duration,
        max_duration: args.max_duration,
        drain_grace: args.drain_grace,
        tokens_file: args.tokens_file,
        admin_token: admin_token_env(),
        audit: args.audit,
        max_percentage: args.max_percentage,
        allowed_routes: args.allowed_routes,
        max_active_faults: args.max_active_faults,
        toxiproxy: args.toxiproxy,
        fault_headers: args.fault_headers,
    };
    let reload = args.config.clone().map(|path| (path, overrides.clone()));
    let config = match &args.config {
        Some(path) => Config::load(path, &overrides),
        None => Config::from_overrides(&overrides),
    }
    .map_err(|e| e.to_string())?;
    let fleet = fleet_options(args.fleet)?;
    let runtime = runtime(config.workers)?;
    runtime.block_on(async move {
        // Taken before anything is served: a SIGHUP while the server starts is a reload, not the end.
        #[cfg(unix)]
        let hup = app::sighup();
        #[allow(unused_mut)]
        let mut server = Server::start(config).await.map_err(|e| e.to_string())?;
        if let Some(fleet) = fleet {
            server.join_fleet(fleet);
        }
        #[cfg(unix)]
        server.handle_sighup(reload, hup);
        #[cfg(not(unix))]
        let _ = reload;
        server.run_until(app::termination_signal()).await;
        Ok(())
    })
}

/// The sidecar's fleet settings, checked; `None` without --controller.
fn fleet_options(args: FleetArgs) -> Result<Option<edgefault::fleet::sidecar::SidecarOptions>, String> {
    let Some(controller) = args.controller else { return Ok(None) };
    let mut labels = match &args.labels_file {
        None => Default::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--labels-file {}: cannot read it: {e}", path.display()))?;
            edgefault::fleet::selector::parse_labels_file(&text, &path.display().to_string())
                .map_err(|e| format!("--labels-file {e}"))?
        }
    };
    labels.extend(args.labels);
    let id = match args.sidecar_id.or_else(|| std::env::var("POD_NAME").ok().filter(|n| !n.is_empty())) {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .ok_or("--sidecar-id: not given, and neither $POD_NAME nor the host name is known")?,
    };
    let fail = |e: CtlError| e.to_string();
    let token =
        ctl::read_token(args.controller_token_file.as_deref(), std::env::var("EDGEFAULT_CONTROLLER_TOKEN").ok())
            .map_err(|e| fail(e).replace("--token-file", "--controller-token-file"))?;
    let tls = ctl::ClientTls::read_flags(
        args.controller_tls_ca.as_deref(),
        args.controller_tls_cert.as_deref(),
        args.controller_tls_key.as_deref(),
        "--controller-tls",
    )
    .map_err(fail)?;
    if args.controller_report_interval < Duration::from_millis(50) {
        return Err("--controller-report-interval: at least 50ms".into());
    }
    if args.controller_keepalive < Duration::from_millis(100) {
        return Err("--controller-keepalive: at least 100ms".into());
    }
    Ok(Some(edgefault::fleet::sidecar::SidecarOptions {
        controller,
        id,
        labels,
        grace: args.controller_grace,
        token,
        tls,
        report_interval: args.controller_report_interval,
        keepalive: args.controller_keepalive,
    }))
}

fn controller(args: ControllerArgs) -> Result<(), String> {
    telemetry::init_logs(args.log_format);
    let overrides = Overrides {
        control: args.control,
        admin: args.admin,
        workers: args.workers,
        default_duration: args.default_duration,
        max_duration: args.max_duration,
        tokens_file: args.tokens_file,
        admin_token: admin_token_env(),
        audit: args.audit,
        max_percentage: args.max_percentage,
        ..Overrides::default()
    };
    let config =
        edgefault::config::ControllerConfig::load(args.config.as_deref(), &overrides).map_err(|e| e.to_string())?;
    let runtime = runtime(config.workers)?;
    runtime.block_on(async move {
        let controller = app::Controller::start(config).await.map_err(|e| e.to_string())?;
        controller.run_until(app::termination_signal()).await;
        Ok(())
    })
}

async fn run_ctl(args: CtlArgs) -> Result<(), String> {
    let fail = |e: CtlError| e.to_string();
    let token = ctl::read_token(args.token_file.as_deref(), std::env::var("EDGEFAULT_TOKEN").ok()).map_err(fail)?;
    let token = ctl::BearerToken::new(token.as_deref()).map_err(fail)?;
    let tls = ctl::ClientTls::read(args.tls_ca.as_deref(), args.tls_cert.as_deref(), args.tls_key.as_deref())
        .map_err(fail)?;
    let mut ctl = Ctl::connect_tls(&args.control, token, tls).await.map_err(fail)?;
    match args.command {
        CtlCommand::Start { file, follow } => {
            let started = ctl.start_file(&file).await.map_err(fail)?;
            for e in &started {
                println!("{}", e.id);
            }
            if follow {
                let interrupt = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                ctl.follow(&started, interrupt, &mut std::io::stdout()).await.map_err(fail)?;
            }
        }
        CtlCommand::Stop { id, reason } => {
            let e = ctl.stop(&id, &reason).await.map_err(fail)?;
            print!("{}", ctl::render(&[e], Output::Text));
        }
        CtlCommand::Get { id, output } => {
            let e = ctl.get(&id).await.map_err(fail)?;
            println!("{}", ctl::render(&[e], output).trim_end());
        }
        CtlCommand::List { state, output } => {
            let list = ctl.list(state).await.map_err(fail)?;
            match output {
                Output::Json => println!("{}", ctl::render_list(&list).trim_end()),
                Output::Text => println!("{}", ctl::render(&list, output).trim_end()),
            }
        }
        CtlCommand::Scenario { command } => run_scenario(&mut ctl, command).await?,
        CtlCommand::Report { since, experiment, audit, output, format } => {
            let input = ctl.report_input(&args.control, since, &experiment, audit.as_deref()).await.map_err(fail)?;
            let text = match format {
                ReportFormat::Html => ctl::report::html(&input),
                ReportFormat::Md => ctl::report::markdown(&input),
                ReportFormat::Json => ctl::report::json(&input),
            };
            match output {
                None => print!("{text}"),
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| format!("-o {}: cannot write: {e}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
            }
        }
        CtlCommand::Sidecars { output } => {
            let list = ctl.sidecars().await.map_err(fail)?;
            println!("{}", ctl::render_sidecars(&list, output).trim_end());
        }
        CtlCommand::Watch { experiment, stats_interval, no_stats, output } => {
            run_watch(&mut ctl, experiment, stats_interval, no_stats, output).await?
        }
        CtlCommand::Top { interval, once, iterations } => {
            if interval.is_zero() {
                return Err("--interval: must be longer than zero".into());
            }
            let iterations = if once { Some(1) } else { iterations };
            let interrupt = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
            ctl.top(interval, iterations, tty, interrupt, &mut std::io::stdout()).await.map_err(fail)?;
        }
        CtlCommand::AbortAll { reason } => {
            let r = ctl.abort_all(&reason).await.map_err(fail)?;
            println!(
                "aborted {} experiment(s){}",
                r.count,
                if r.ids.is_empty() { String::new() } else { format!(": {}", r.ids.join(" ")) }
            );
        }
    }
    Ok(())
}

/// `ctl scenario list|show|start`.
async fn run_scenario(ctl: &mut Ctl, command: ScenarioCommand) -> Result<(), String> {
    let fail = |e: CtlError| e.to_string();
    match command {
        ScenarioCommand::List { output } => {
            let list = ctl.list_scenarios().await.map_err(fail)?;
            println!("{}", ctl::render_scenarios(&list, output).trim_end());
        }
        ScenarioCommand::Show { name, params, output } => {
            let r = ctl.get_scenario(&name, &params).await.map_err(fail)?;
            println!("{}", ctl::render_scenario(&r, output).trim_end());
        }
        ScenarioCommand::Start { name, params, selector, output } => {
            let r = ctl.start_scenario_on(&name, &params, selector.as_deref()).await.map_err(fail)?;
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            match output {
                Output::Text => r.experiments.iter().for_each(|e| println!("{}", e.id)),
                Output::Json => println!("{}", ctl::render_list(&r.experiments).trim_end()),
            }
        }
    }
    Ok(())
}

/// `ctl watch`: follows the event stream until it ends, the user interrupts, or the server is lost.
async fn run_watch(
    ctl: &mut Ctl,
    experiment: Option<String>,
    stats_interval: std::time::Duration,
    no_stats: bool,
    output: Output,
) -> Result<(), String> {
    let fail = |e: CtlError| e.to_string();
    let req = edgefault::pb::v1::WatchEventsRequest {
        experiment_id: experiment.unwrap_or_default(),
        stats_interval: Some(pbjson_types::Duration {
            seconds: stats_interval.as_secs() as i64,
            nanos: stats_interval.subsec_nanos() as i32,
        }),
        no_stats,
    };
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let end = ctl.watch(req, output, interrupt, &mut std::io::stdout()).await.map_err(fail)?;
    match end {
        ctl::WatchEnd::Lost(detail) => {
            return Err(format!("lost the control service during ctl watch: {detail}; is the server still running?"))
        }
        end => eprintln!("{}", end.message()),
    }
    Ok(())
}
