//! The config of `edgefault controller`: its control port (bind, tokens, TLS), admin port (the
//! console), audit log, limits and scenarios. The sections only a sidecar has (listeners, boot
//! experiments, pages, the Toxiproxy API) are refused with where they are.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use super::{file::FileConfig, ConfigError, Overrides};
use crate::{
    control::{auth::Tokens, tls::ControlTls},
    experiment::Limits,
    scenario::Catalogue,
    topology::Topology,
};

pub struct ControllerConfig {
    pub control: SocketAddr,
    /// The admin port: `/healthz`, `/readyz`, the console and `POST /abort-all` over the fleet.
    pub admin: Option<SocketAddr>,
    pub tokens: Tokens,
    pub control_tls: Option<ControlTls>,
    pub audit: Option<PathBuf>,
    /// What every fleet experiment is checked against on the controller (each sidecar checks its own too).
    pub limits: Limits,
    pub scenarios: Arc<Catalogue>,
    pub workers: Option<usize>,
}

impl ControllerConfig {
    /// From a config file (`None`: flags only), with the flags applied.
    pub fn load(path: Option<&std::path::Path>, o: &Overrides) -> Result<Self, ConfigError> {
        let (file, origin) = match path {
            None => (FileConfig::default(), "command line".to_owned()),
            Some(path) => {
                let origin = path.display().to_string();
                let text = crate::document::read_text(path).map_err(|e| ConfigError {
                    origin: origin.clone(),
                    problems: vec![format!("cannot read the file: {e}")],
                })?;
                (super::parse_file(&text, &origin)?, origin)
            }
        };
        Self::build(file, o).map_err(|problems| ConfigError { origin, problems })
    }

    fn build(mut file: FileConfig, o: &Overrides) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let sidecar_only = [
            ("listeners", !file.listeners.is_empty()),
            ("experiments", !file.experiments.is_empty()),
            ("pages", !file.pages.is_empty()),
            ("drain_grace", file.drain_grace.is_some()),
            ("limits.allowed_routes", file.limits.allowed_routes.is_some()),
            ("toxiproxy", file.toxiproxy.is_some()),
        ];
        for (key, set) in sidecar_only {
            if set {
                problems.push(format!(
                    "{key}: a sidecar's setting; the controller proxies nothing (each sidecar's own config has it)"
                ));
            }
        }
        if o.listen.is_some() || o.upstream.is_some() || o.allowed_routes.is_some() {
            problems.push("--listen, --upstream and --allowed-routes are `serve` flags".into());
        }
        file.limits.allowed_routes = None;
        let control =
            super::control::build(file.control.as_ref(), file.admin.as_ref(), file.audit.as_ref(), o, &mut problems);
        let limits = super::limits::build(&file.limits, o, &Topology::default(), &mut problems);
        let scenarios = match &file.scenarios_dir {
            None => Catalogue::builtin(),
            Some(dir) => Catalogue::with_dir(dir).unwrap_or_else(|p| {
                problems.extend(p.into_iter().map(|p| format!("scenarios_dir: {p}")));
                Catalogue::default()
            }),
        };
        let workers = o.workers.or(file.workers);
        if workers == Some(0) {
            problems.push("workers: must be at least 1".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ControllerConfig {
            control: control.bind.ok_or_else(Vec::new)?,
            admin: control.admin,
            tokens: control.tokens,
            control_tls: control.tls,
            audit: control.audit,
            limits,
            scenarios: Arc::new(scenarios),
            workers,
        })
    }
}
