//! The kill switches outside gRPC: SIGUSR1 and the admin endpoint's `POST /abort-all` end every pending
//! and running experiment at once, like `AbortAll`, and are written to the audit log. They need no token:
//! they can only take faults away.

use std::{future::Future, sync::Arc};

use super::audit::{AuditEntry, AuditLog};
use crate::experiment::Registry;

/// Aborts everything and audits it; returns the ids ended.
pub fn abort_all(registry: &Registry, audit: &AuditLog, caller: &str, peer: &str, reason: &str) -> Vec<String> {
    let ids = registry.abort_all(reason);
    if ids.is_empty() {
        tracing::info!(%caller, %peer, reason, "kill switch: no experiment was running");
    } else {
        tracing::warn!(%caller, %peer, count = ids.len(), reason, "kill switch: every experiment aborted");
    }
    audit_abort_all(audit, caller, peer, &ids, reason);
    ids
}

/// Writes a kill switch that ended `ids` to the audit log (action `AbortAll`).
pub fn audit_abort_all(audit: &AuditLog, caller: &str, peer: &str, ids: &[String], reason: &str) {
    audit.record(&AuditEntry {
        caller,
        peer,
        action: "AbortAll",
        experiments: ids.to_vec(),
        spec: None,
        reason,
        outcome: Ok(()),
    });
}

/// Listens for SIGUSR1 until `shutdown` resolves. The handler is installed before this returns, so a
/// signal sent once the server has started is never the default action (which would end the process).
#[cfg(unix)]
pub fn on_sigusr1(
    registry: Arc<Registry>,
    audit: Arc<AuditLog>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())?;
    Ok(async move {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                got = usr1.recv() => {
                    if got.is_none() {
                        return;
                    }
                    abort_all(&registry, &audit, "signal", "local", "kill switch: SIGUSR1");
                }
                () = &mut shutdown => return,
            }
        }
    })
}
