//! Wires everything: binds every port (all or nothing), starts the boot experiments, serves, and drains
//! on shutdown.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::{
    admin::{self, Admin},
    config::Config,
    control::{
        self,
        audit::{AuditEntry, AuditLog},
        killswitch,
    },
    experiment::{events, guard, Registry},
    proxy::{
        cap::FaultCap,
        listener,
        tcp::{self, TcpProxy},
        ReverseProxy,
    },
    reload::Reloader,
    telemetry::metrics::Metrics,
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind { what: String, addr: SocketAddr, source: io::Error },
    #[error("cannot open the audit log {path} (audit.path): {source}")]
    Audit { path: std::path::PathBuf, source: io::Error },
    #[error("boot experiment {index} ({name}): {message}")]
    BootExperiment { index: usize, name: String, message: String },
}

/// A running edgefault: every listener, the control service and the admin port.
pub struct Server {
    listeners: Vec<(String, SocketAddr)>,
    control: SocketAddr,
    admin: Option<SocketAddr>,
    toxiproxy: Option<SocketAddr>,
    registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    drain_grace: Duration,
    /// Applies a reloaded config (SIGHUP).
    reloader: Arc<Reloader>,
    /// The shutdown's abort of every experiment is audited like any other.
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
}

async fn bind(what: String, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { what, addr, source })
}

/// Every port of the config, bound before anything is served.
struct Ports {
    listeners: Vec<TcpListener>,
    tcp_listeners: Vec<TcpListener>,
    control: TcpListener,
    admin: Option<TcpListener>,
    toxiproxy: Option<TcpListener>,
}

impl Ports {
    async fn bind(config: &Config) -> Result<Ports, AppError> {
        let mut listeners = Vec::new();
        for l in &config.listeners {
            listeners.push(bind(format!("listener {:?}", l.name), l.bind).await?);
        }
        let mut tcp_listeners = Vec::new();
        for t in &config.tcp_listeners {
            tcp_listeners.push(bind(format!("tcp listener {:?}", t.name), t.bind).await?);
        }
        let control = bind("the control service".into(), config.control).await?;
        let admin = match config.admin {
            Some(a) => Some(bind("the admin endpoint".into(), a).await?),
            None => None,
        };
        let toxiproxy = match &config.toxiproxy {
            Some(t) => Some(bind("the Toxiproxy API (toxiproxy.bind)".into(), t.bind).await?),
            None => None,
        };
        Ok(Ports { listeners, tcp_listeners, control, admin, toxiproxy })
    }
}

/// The tasks of a server and the signal that stops them.
struct Tasks {
    stop: watch::Sender<bool>,
    set: JoinSet<()>,
}

impl Tasks {
    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.set.spawn(task);
    }

    /// Resolves when the server stops.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        stopped(self.stop.subscribe())
    }
}

/// What the data plane, the control plane and the admin port share.
struct Shared {
    registry: Arc<Registry>,
    health: Arc<guard::Health>,
    metrics: Arc<Metrics>,
    audit: Arc<AuditLog>,
    /// The control tokens, swapped on reload; read by the control service and the admin port.
    tokens: Arc<arc_swap::ArcSwap<control::auth::Tokens>>,
}

impl Server {
    /// Binds every port, then starts serving. Nothing is served unless everything could be bound.
    pub async fn start(config: Config) -> Result<Server, AppError> {
        let ports = Ports::bind(&config).await?;
        let audit = Arc::new(match &config.audit {
            Some(path) => AuditLog::open(path).map_err(|source| AppError::Audit { path: path.clone(), source })?,
            None => AuditLog::disabled(),
        });
        if config.tokens.is_empty() {
            tracing::warn!(control = %config.control, "the control service has no token: any local process may start faults");
        } else {
            tracing::info!(tokens = config.tokens.len(), "the control service requires a bearer token");
        }
        let registry = Registry::new(Arc::new(config.topology()), config.limits.clone());
        let health = Arc::new(guard::Health::new(&registry.topology()));
        registry.watch_health(Arc::clone(&health));
        start_boot_experiments(&config, &registry, &audit)?;
        let metrics = Arc::new(Metrics::default());
        metrics.register_experiments(Arc::downgrade(&registry));
        let tokens = Arc::new(arc_swap::ArcSwap::from_pointee(config.tokens.clone()));
        let shared = Shared { registry, health, metrics, audit, tokens };

        let mut tasks = Tasks { stop: watch::channel(false).0, set: JoinSet::new() };
        let (listeners, proxies) = serve_listeners(&config, ports.listeners, ports.tcp_listeners, &shared, &mut tasks)?;
        let control = serve_control(&config, ports.control, &shared, &mut tasks)?;
        let reloader = Arc::new(Reloader {
            running: std::sync::Mutex::new(config.clone()),
            registry: Arc::clone(&shared.registry),
            tokens: Arc::clone(&shared.tokens),
            proxies,
            metrics: Arc::clone(&shared.metrics),
            audit: Arc::clone(&shared.audit),
        });
        let admin = serve_admin(&config, ports.admin, &listeners, &shared, &mut tasks);
        let toxiproxy = serve_toxiproxy(&config, ports.toxiproxy, &shared, &mut tasks);
        let Shared { registry, audit, metrics, .. } = shared;
        Ok(Server {
            metrics,
            listeners,
            control,
            admin,
            toxiproxy,
            registry,
            stop: tasks.stop,
            tasks: tasks.set,
            drain_grace: config.drain_grace,
            reloader,
            audit,
        })
    }

    /// Applies a reloaded config as far as it is reloadable (see [`crate::reload`]).
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// Handles SIGHUP from now on: reloads the config file `path` (with `overrides` applied again) on
    /// every SIGHUP, or, for a server started without a config file (`source` is `None`), logs that there
    /// is nothing to reload. Either way the signal never ends the process. `hup` is the signal's stream,
    /// made before the server started ([`sighup`]), so a SIGHUP that comes while it starts is not the
    /// default action (the end of the process) but the first reload.
    #[cfg(unix)]
    pub fn handle_sighup(
        &mut self,
        source: Option<(std::path::PathBuf, crate::config::Overrides)>,
        hup: io::Result<tokio::signal::unix::Signal>,
    ) {
        match hup {
            Ok(hup) => {
                let shutdown = stopped(self.stop.subscribe());
                self.tasks.spawn(crate::reload::on_sighup(Arc::clone(&self.reloader), source, hup, shutdown));
            }
            Err(e) => tracing::warn!(error = %e, "no config reload on SIGHUP: cannot listen for the signal"),
        }
    }

    /// Bound address of a listener by name.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Bound address of every listener: the HTTP listeners in config order, then the TCP listeners.
    pub fn listener_addrs(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Where the Toxiproxy API listens, when it is on.
    pub fn toxiproxy_addr(&self) -> Option<SocketAddr> {
        self.toxiproxy
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Subscribes to a controller (`serve --controller`): fleet experiments come from it, and end when
    /// it has been unreachable for the grace. The local control port keeps working.
    pub fn join_fleet(&mut self, options: crate::fleet::sidecar::SidecarOptions) {
        tracing::info!(controller = %options.controller, sidecar = %options.id, "joining the fleet");
        let member =
            crate::fleet::sidecar::Member::new(options, Arc::clone(&self.registry), Some(Arc::clone(&self.metrics)));
        self.tasks.spawn(member.run(self.stop.subscribe()));
    }

    /// Stops accepting, ends every experiment, and lets in-flight requests finish within the drain grace.
    pub async fn shutdown(mut self) {
        killswitch::abort_all(&self.registry, &self.audit, "shutdown", "local", "edgefault is shutting down");
        let _ = self.stop.send(true);
        let grace = self.drain_grace + listener::TUNNEL_CLOSE + Duration::from_secs(1);
        if tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await.is_err() {
            self.tasks.abort_all();
        }
    }

    /// Serves until `signal` resolves, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Starts the config's experiments (validated when it loaded, against the same topology and limits), each
/// audited as a start.
fn start_boot_experiments(config: &Config, registry: &Registry, audit: &AuditLog) -> Result<(), AppError> {
    for (index, boot) in config.experiments.iter().enumerate() {
        let spec = &boot.spec;
        let started = registry.start(spec.clone(), boot.def.clone()).map_err(|e| AppError::BootExperiment {
            index,
            name: spec.name.clone(),
            message: e.to_string(),
        })?;
        audit.record(&AuditEntry {
            caller: "config",
            peer: "local",
            action: "StartExperiment",
            experiments: vec![started.id],
            spec: Some(spec),
            reason: "boot experiment (experiments: in the config)",
            outcome: Ok(()),
        });
    }
    Ok(())
}

/// The listeners a server serves, by name and bound address, and its HTTP proxies (for reloads).
type Served = (Vec<(String, SocketAddr)>, Vec<Arc<ReverseProxy>>);

/// Serves every HTTP and TCP listener on its bound socket.
fn serve_listeners(
    config: &Config,
    bound: Vec<TcpListener>,
    tcp_bound: Vec<TcpListener>,
    shared: &Shared,
    tasks: &mut Tasks,
) -> Result<Served, AppError> {
    let Shared { registry, health, metrics, .. } = shared;
    let cap = Arc::new(FaultCap::new(
        config.limits.max_active_faults,
        metrics.faults_active.clone(),
        metrics.faults_overflow.clone(),
    ));
    let bounds = listener::Bounds {
        max_connections: config.limits.max_connections,
        max_header_bytes: config.limits.max_header_bytes,
        timeouts: crate::proxy::conn::Timeouts {
            header_read: config.limits.header_read_timeout,
            idle: config.limits.idle_timeout,
        },
    };
    let mut listeners = Vec::new();
    let mut proxies = Vec::new();
    for (l, tcp) in config.listeners.iter().zip(bound) {
        let addr = tcp.local_addr().map_err(|source| AppError::Bind { what: l.name.clone(), addr: l.bind, source })?;
        tracing::info!(listener = %l.name, %addr, routes = l.routes.len(), "listening");
        listeners.push((l.name.clone(), addr));
        let proxy = Arc::new(ReverseProxy::new(l, registry.rules(), metrics, Arc::clone(&cap), Arc::clone(health)));
        proxies.push(Arc::clone(&proxy));
        if let Some(tls) = &l.tls {
            tasks.spawn(Arc::clone(tls).watch(l.name.clone(), tasks.stopped()));
        }
        tasks.spawn(listener::serve(tcp, proxy, l.tls.clone(), tasks.stopped(), config.drain_grace, bounds));
    }
    for (t, tcp) in config.tcp_listeners.iter().zip(tcp_bound) {
        let addr = tcp.local_addr().map_err(|source| AppError::Bind { what: t.name.clone(), addr: t.bind, source })?;
        tracing::info!(listener = %t.name, %addr, upstream = %t.upstream, "listening (tcp)");
        listeners.push((t.name.clone(), addr));
        let proxy = Arc::new(TcpProxy::new(t, registry.rules(), metrics, Arc::clone(health)));
        let max = config.limits.max_connections;
        tasks.spawn(tcp::serve(tcp, proxy, tasks.stopped(), config.drain_grace, max));
    }
    Ok((listeners, proxies))
}

/// Serves the control service, and the supervisors that end experiments on their own: guards, timelines
/// and the SIGUSR1 kill switch. Returns the control port's address.
fn serve_control(
    config: &Config,
    listener: TcpListener,
    shared: &Shared,
    tasks: &mut Tasks,
) -> Result<SocketAddr, AppError> {
    let addr = listener.local_addr().map_err(|source| AppError::Bind {
        what: "control".into(),
        addr: config.control,
        source,
    })?;
    let control_tls = config.control_tls.clone();
    if let Some(tls) = &control_tls {
        tasks.spawn(Arc::clone(&tls.files).watch("control".to_owned(), tasks.stopped()));
    }
    // The kill switch is taken before the control port is served (and logs that it listens), so a SIGUSR1
    // from a client that saw the port is never the signal's default action (the end of the process).
    #[cfg(unix)]
    match control::killswitch::on_sigusr1(Arc::clone(&shared.registry), Arc::clone(&shared.audit), tasks.stopped()) {
        Ok(kill_switch) => tasks.spawn(kill_switch),
        Err(e) => tracing::warn!(error = %e, "no SIGUSR1 kill switch: cannot listen for the signal"),
    }
    let options = control::ServeOptions {
        metrics: Some(Arc::clone(&shared.metrics)),
        scenarios: Arc::clone(&config.scenarios),
        tls: control_tls,
    };
    let serving = control::serve(
        listener,
        Arc::clone(&shared.registry),
        Arc::clone(&shared.tokens),
        Arc::clone(&shared.audit),
        tasks.stopped(),
        options,
    );
    tasks.spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "control service failed");
        }
    });
    let registry = Arc::downgrade(&shared.registry);
    tasks.spawn(crate::telemetry::history::sample(
        Arc::clone(&shared.metrics.history),
        registry.clone(),
        tasks.stopped(),
    ));
    tasks.spawn(guard::supervise(registry.clone(), Arc::clone(&shared.health), tasks.stopped()));
    tasks.spawn(events::watch_timelines(registry, tasks.stopped()));
    Ok(addr)
}

/// Serves the admin port, when there is one, and marks the server ready. Returns its address.
fn serve_admin(
    config: &Config,
    listener: Option<TcpListener>,
    listeners: &[(String, SocketAddr)],
    shared: &Shared,
    tasks: &mut Tasks,
) -> Option<SocketAddr> {
    let console = Arc::new(crate::console::Console {
        backend: Arc::new(crate::console::Local {
            registry: Arc::clone(&shared.registry),
            history: Arc::clone(&shared.metrics.history),
            scenarios: Arc::clone(&config.scenarios),
        }),
        audit: Arc::clone(&shared.audit),
        tokens: Arc::clone(&shared.tokens),
        scenarios: Arc::clone(&config.scenarios),
        events: Arc::default(),
        server: crate::console::ServerInfo {
            kind: "sidecar",
            name: host_name(),
            listeners: listeners.iter().map(|(n, a)| (n.clone(), a.to_string())).collect(),
        },
    });
    let admin_state = Arc::new(Admin {
        ready: false.into(),
        metrics: Some((Arc::clone(&shared.metrics), Arc::clone(&shared.registry))),
        audit: Arc::clone(&shared.audit),
        tokens: Arc::clone(&shared.tokens),
        console: Arc::clone(&console),
    });
    let addr = listener.and_then(|l| {
        let addr = l.local_addr().ok();
        if let Some(addr) = addr {
            tracing::info!(%addr, "admin endpoint listening");
            if !addr.ip().is_loopback() {
                if config.tokens.is_empty() {
                    tracing::warn!(%addr, "the admin endpoint is off loopback: /healthz, /readyz and /metrics are open to whoever reaches it; POST /abort-all is taken from loopback only until the control service has tokens");
                } else {
                    tracing::info!(%addr, "the admin endpoint is off loopback: /healthz, /readyz and /metrics are open; POST /abort-all needs an admin token");
                }
            }
        }
        tasks.spawn(console.events.collect(
            shared.registry.subscribe(),
            crate::control::proto::event_to_proto,
            tasks.stopped(),
        ));
        tasks.spawn(admin::serve(l, Arc::clone(&admin_state), tasks.stopped()));
        addr
    });
    admin_state.ready.store(true, Ordering::Release);
    addr
}

/// The name the console shows for this server: the host's (a pod's name in Kubernetes).
fn host_name() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "edgefault".to_owned())
}

/// Serves the Toxiproxy API, when it is on. Returns its address.
fn serve_toxiproxy(
    config: &Config,
    listener: Option<TcpListener>,
    shared: &Shared,
    tasks: &mut Tasks,
) -> Option<SocketAddr> {
    let (settings, listener) = (config.toxiproxy.as_ref()?, listener?);
    let addr = listener.local_addr().ok();
    let proxies = crate::toxiproxy::Toxiproxy::new(
        Arc::clone(&shared.registry),
        Arc::clone(&shared.metrics),
        Arc::clone(&shared.health),
        crate::toxiproxy::Settings {
            max_proxies: settings.max_proxies,
            connect_timeout: settings.connect_timeout,
            max_connections: config.limits.max_connections,
        },
    );
    if let Some(addr) = addr {
        tracing::info!(%addr, max_proxies = settings.max_proxies, "Toxiproxy API listening");
    }
    tasks.spawn(crate::toxiproxy::serve(
        listener,
        proxies,
        Arc::clone(&shared.registry),
        Arc::clone(&shared.tokens),
        Arc::clone(&shared.audit),
        tasks.stopped(),
    ));
    addr
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Takes SIGHUP from now on (its default action would end the process), for [`Server::handle_sighup`].
/// Call it within the runtime, before [`Server::start`].
#[cfg(unix)]
pub fn sighup() -> io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A running `edgefault controller`.
pub struct Controller {
    control: SocketAddr,
    admin: Option<SocketAddr>,
    fleet: Arc<crate::fleet::state::FleetState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Controller {
    /// Binds the control port (and the admin port, when set) and serves the fleet on it.
    pub async fn start(config: crate::config::ControllerConfig) -> Result<Controller, AppError> {
        let listener = bind("the controller".into(), config.control).await?;
        let control = listener.local_addr().map_err(|source| AppError::Bind {
            what: "the controller".into(),
            addr: config.control,
            source,
        })?;
        let admin_listener = match config.admin {
            None => None,
            Some(addr) => Some(bind("the controller's admin endpoint".into(), addr).await?),
        };
        let admin = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        let audit = Arc::new(match &config.audit {
            None => AuditLog::disabled(),
            Some(path) => AuditLog::open(path).map_err(|source| AppError::Audit { path: path.clone(), source })?,
        });
        let fleet = crate::fleet::state::FleetState::new(config.limits.clone());
        let history = Arc::new(crate::fleet::history::FleetHistory::default());
        let tokens = Arc::new(arc_swap::ArcSwap::from_pointee(config.tokens.clone()));
        let (stop, stopping) = watch::channel(false);
        let service = crate::fleet::controller::ControllerService::new(
            Arc::clone(&fleet),
            Arc::clone(&audit),
            Arc::clone(&config.scenarios),
            Arc::clone(&history),
            stopping.clone(),
        );
        let served = crate::fleet::controller::serve(
            listener,
            service.clone(),
            Arc::clone(&tokens),
            config.control_tls.clone(),
            stopped(stopping.clone()),
        );
        tokio::spawn(crate::fleet::history::sample(history, stopped(stopping.clone())));
        if let Some(l) = admin_listener {
            let console = Arc::new(crate::console::Console {
                backend: Arc::new(service),
                audit: Arc::clone(&audit),
                tokens: Arc::clone(&tokens),
                scenarios: Arc::clone(&config.scenarios),
                events: Arc::default(),
                server: crate::console::ServerInfo { kind: "controller", name: host_name(), listeners: Vec::new() },
            });
            tokio::spawn(console.events.collect(fleet.subscribe(), |e| e, stopped(stopping.clone())));
            let admin_state = Arc::new(Admin { ready: true.into(), metrics: None, audit, tokens, console });
            if let Some(addr) = admin {
                tracing::info!(%addr, "the controller's admin endpoint listening (/healthz, /readyz, /console)");
            }
            tokio::spawn(admin::serve(l, admin_state, stopped(stopping)));
        }
        let task = tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the controller stopped");
            }
        });
        Ok(Controller { control, admin, fleet, stop, task })
    }

    /// The admin port's address, when it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    pub fn fleet(&self) -> &Arc<crate::fleet::state::FleetState> {
        &self.fleet
    }

    /// Stops serving: the sidecars' streams end, and each keeps its fleet experiments for its grace.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }

    /// Serves until `signal` resolves, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}
