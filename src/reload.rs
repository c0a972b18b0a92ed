//! Config reload on SIGHUP: the config file is read and checked again; a config with any problem is
//! rejected (logged, counted) and the running one stays. A good one is applied without dropping a
//! connection: limits, tokens and routes' upstreams and matchers are swapped atomically. Listener and port
//! addresses, the audit log, workers, the drain grace and the limits sized at start (`max_active_faults`,
//! `max_connections`, `max_header_bytes`, the connection timeouts) are not reloadable: a change to them is logged and ignored.
//! Boot experiments are not started again.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use arc_swap::ArcSwap;

use crate::{
    config::{Config, Overrides},
    control::{
        audit::{AuditEntry, AuditLog},
        auth::Tokens,
    },
    experiment::Registry,
    proxy::ReverseProxy,
    telemetry::metrics::Metrics,
};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the listeners and their routes must keep their names and order on reload (experiments and guards \
         refer to them): was {was}, now {now}; restart edgefault to apply this change"
    )]
    Topology { was: String, now: String },
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Changes that are not reloadable, and stay as they were.
    pub ignored: Vec<String>,
    /// Changes worth an audit line: tokens added, removed, given another role or secret.
    pub changed: Vec<String>,
}

/// What a reload can change, and the config running now.
pub struct Reloader {
    pub(crate) running: Mutex<Config>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) tokens: Arc<ArcSwap<Tokens>>,
    /// One per listener, in config order.
    pub(crate) proxies: Vec<Arc<ReverseProxy>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Every reload, applied or rejected, is audited: it changes the server's state (tokens, limits,
    /// upstreams).
    pub(crate) audit: Arc<AuditLog>,
}

fn shape(c: &Config) -> String {
    c.listeners
        .iter()
        .map(|l| format!("{}[{}]", l.name, l.routes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Reloader {
    /// Applies `new` as far as it is reloadable. Returns what was not applied, and what changed that the
    /// audit log should say (the tokens, by name).
    pub fn apply(&self, new: Config) -> Result<Applied, ReloadError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let (was, now) = (shape(&running), shape(&new));
        if was != now {
            return Err(ReloadError::Topology { was, now });
        }
        let mut notes = Vec::new();
        for (i, (old, l)) in running.listeners.iter().zip(&new.listeners).enumerate() {
            if old.bind != l.bind {
                notes.push(format!(
                    "listeners[{i}].bind: {} → {} is not reloadable; still on {}",
                    old.bind, l.bind, old.bind
                ));
            }
        }
        if running.control != new.control {
            notes.push(format!("control.bind: not reloadable; still on {}", running.control));
        }
        if running.admin != new.admin {
            notes.push("admin.bind: not reloadable; unchanged".into());
        }
        if running.audit != new.audit {
            notes.push("audit.path: not reloadable; unchanged".into());
        }
        if running.workers != new.workers || running.drain_grace != new.drain_grace {
            notes.push("workers, drain_grace: not reloadable; unchanged".into());
        }
        let mut limits = new.limits.clone();
        let o = &running.limits;
        for (key, changed) in [
            ("limits.max_active_faults", o.max_active_faults != limits.max_active_faults),
            ("limits.max_connections", o.max_connections != limits.max_connections),
            ("limits.max_header_bytes", o.max_header_bytes != limits.max_header_bytes),
            ("limits.header_read_timeout", o.header_read_timeout != limits.header_read_timeout),
            ("limits.idle_timeout", o.idle_timeout != limits.idle_timeout),
        ] {
            if changed {
                notes.push(format!("{key}: sized at start, not reloadable; unchanged"));
            }
        }
        limits.max_active_faults = o.max_active_faults;
        limits.max_connections = o.max_connections;
        limits.max_header_bytes = o.max_header_bytes;
        limits.header_read_timeout = o.header_read_timeout;
        limits.idle_timeout = o.idle_timeout;
        if running.experiments.iter().map(|e| &e.spec).ne(new.experiments.iter().map(|e| &e.spec)) {
            notes.push("experiments: boot experiments start at boot only; none started by the reload".into());
        }

        let changed = new.tokens.changes_from(&running.tokens);
        self.registry.set_limits(limits.clone());
        self.tokens.store(Arc::new(new.tokens.clone()));
        for (proxy, l) in self.proxies.iter().zip(&new.listeners) {
            proxy.reload(l, &self.metrics);
        }
        running.limits = limits;
        running.tokens = new.tokens;
        for (old, l) in running.listeners.iter_mut().zip(new.listeners) {
            old.routes = l.routes;
        }
        Ok(Applied { ignored: notes, changed })
    }

    /// Reads `path` again and applies it; logs and counts the outcome.
    pub fn reload_file(&self, path: &std::path::Path, overrides: &Overrides) -> Result<(), String> {
        let result = Config::load(path, overrides)
            .map_err(|e| e.to_string())
            .and_then(|c| self.apply(c).map_err(|e| e.to_string()));
        self.metrics.config_reload(result.is_ok());
        let changed: String = result.as_ref().map(|a| a.changed.join("; ")).unwrap_or_default();
        self.audit.record(&AuditEntry {
            caller: "signal",
            peer: "local",
            action: "ReloadConfig",
            experiments: Vec::new(),
            spec: None,
            reason: &changed,
            outcome: result.as_ref().map(|_| ()).map_err(Clone::clone),
        });
        match result {
            Ok(applied) => {
                for n in &applied.ignored {
                    tracing::warn!(config = %path.display(), note = %n, "config reload: not applied");
                }
                for c in &applied.changed {
                    tracing::info!(config = %path.display(), change = %c, "config reload");
                }
                tracing::info!(config = %path.display(), "config reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(config = %path.display(), error = %e, "config reload rejected; the running config stays");
                Err(e)
            }
        }
    }
}

/// Reloads the config file of `source` on every SIGHUP of `hup` until `shutdown` resolves; without a config
/// file (`None`) a SIGHUP is logged and ignored. `hup` is taken before the server starts serving
/// (`app::sighup`), so a SIGHUP that comes while it starts is held for this loop instead of ending the
/// process (the signal's default action).
#[cfg(unix)]
pub async fn on_sighup(
    reloader: Arc<Reloader>,
    source: Option<(PathBuf, Overrides)>,
    mut hup: tokio::signal::unix::Signal,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            r = hup.recv() => if r.is_none() { return },
            () = &mut shutdown => return,
        }
        let Some((path, overrides)) = &source else {
            tracing::info!("SIGHUP: ignored, there is no config file to reload (started without --config)");
            continue;
        };
        tracing::info!(config = %path.display(), "SIGHUP: reloading the config");
        // Reading and checking a config is work for a blocking thread, not for a data-plane worker.
        let (r, p, o) = (Arc::clone(&reloader), path.clone(), overrides.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || r.reload_file(&p, &o)).await {
            // A panic while reloading: the running config stays, and the next SIGHUP is handled again.
            tracing::error!(config = %path.display(), error = %e, "config reload failed; the running config stays");
            reloader.metrics.config_reload(false);
        }
    }
}
