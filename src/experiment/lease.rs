//! Leases: an experiment started with a lease must be renewed within the lease, or it is aborted with the
//! reason "lease expired". One watcher task per leased experiment sleeps until the current deadline and,
//! when it wakes, either finds the lease renewed (and sleeps again) or ends the experiment.

use std::sync::{Arc, Weak};

use tokio::{task::AbortHandle, time::Instant};

use super::Registry;

/// The `end_reason` of an experiment whose lease ran out.
pub const LEASE_EXPIRED: &str = "lease expired";

/// Spawns the watcher of `id`'s lease, first due at `deadline`.
pub(super) fn watch(registry: Weak<Registry>, id: Arc<str>, deadline: Instant) -> AbortHandle {
    tokio::spawn(async move {
        let mut deadline = deadline;
        loop {
            tokio::time::sleep_until(deadline).await;
            let Some(r) = registry.upgrade() else { return };
            match r.lease_deadline(&id) {
                Some(renewed) if renewed > Instant::now() => deadline = renewed,
                Some(_) => {
                    r.expire_lease(&id);
                    return;
                }
                None => return,
            }
        }
    })
    .abort_handle()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderMap;

    use super::*;
    use crate::{
        experiment::{ExperimentDef, Limits, RegistryError, State},
        fault::{Abort, Fault},
        pb::v1 as pb,
        topology::Topology,
    };

    fn leased(lease: Duration) -> ExperimentDef {
        ExperimentDef {
            seed: Some(1),
            lease: Some(lease),
            ..ExperimentDef::new(
                "leased",
                Duration::from_secs(60),
                vec![Fault::Abort(Abort::new(None, None, "", None, HeaderMap::new()))],
            )
        }
    }

    fn registry() -> Arc<Registry> {
        Registry::new(Arc::new(Topology::new(vec![("web".into(), vec!["default".into()])])), Limits::default())
    }

    #[tokio::test(start_paused = true)]
    async fn an_unrenewed_lease_aborts_and_renewals_extend_it() {
        let r = registry();
        let e = r.start(pb::ExperimentSpec::default(), leased(Duration::from_secs(3))).expect("starts");
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(2)).await;
            tokio::task::yield_now().await;
            assert_eq!(r.get(&e.id).expect("kept").state, State::Running, "renewed in time");
            r.renew_lease(&e.id).expect("renews");
        }
        tokio::time::advance(Duration::from_millis(2999)).await;
        tokio::task::yield_now().await;
        assert_eq!(r.get(&e.id).expect("kept").state, State::Running);
        tokio::time::advance(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        let ended = r.get(&e.id).expect("kept");
        assert_eq!((ended.state, ended.end_reason.as_str()), (State::Aborted, LEASE_EXPIRED));
        assert_eq!(r.running(), 0);
        assert!(matches!(r.renew_lease(&e.id), Err(RegistryError::AlreadyEnded { .. })));
    }

    #[tokio::test]
    async fn renewing_without_a_lease_is_refused() {
        let r = registry();
        let def = ExperimentDef { lease: None, ..leased(Duration::from_secs(1)) };
        let e = r.start(pb::ExperimentSpec::default(), def).expect("starts");
        assert!(matches!(r.renew_lease(&e.id), Err(RegistryError::NoLease(_))));
        assert!(matches!(r.renew_lease("exp-nope"), Err(RegistryError::NotFound(..))));
    }
}
