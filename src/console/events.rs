//! The console's event log: the registry's lifecycle events, kept in a bounded ring with a sequence number
//! so the page asks only for what it has not seen (`?after=SEQ`).

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::unix_ms;
use crate::experiment::{Event, EventKind, Registry};

/// Events kept: the page shows the newest; one that was away longer starts again from the oldest kept.
pub const KEPT: usize = 500;

/// One line of the event log, as the page gets it.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// Increases by one per line, from 1.
    pub seq: u64,
    /// Unix milliseconds.
    pub time: u64,
    /// The experiment's id; empty for a line about the log itself (events missed).
    pub experiment: String,
    pub name: String,
    /// `started`, `running`, `phase`, `guard`, `lease`, `ended`, `missed`.
    pub kind: &'static str,
    /// What happened, in words.
    pub detail: String,
}

/// The ring of the last [`KEPT`] lines.
#[derive(Debug, Default)]
pub struct Ring {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<Line>,
    last: u64,
}

impl Ring {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves a ring that is still consistent.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a line (its `seq` is set here).
    pub fn push(&self, mut line: Line) {
        let mut inner = self.lock();
        inner.last += 1;
        line.seq = inner.last;
        if inner.lines.len() == KEPT {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line);
    }

    /// The lines after `after`, oldest first, and the last sequence number.
    pub fn after(&self, after: u64) -> (Vec<Line>, u64) {
        let inner = self.lock();
        (inner.lines.iter().filter(|l| l.seq > after).cloned().collect(), inner.last)
    }

    /// Subscribes to `registry`'s events now, and returns the task that keeps them until `shutdown`.
    pub fn collect(
        self: &Arc<Self>,
        registry: &Registry,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = registry.subscribe();
        let ring = Arc::clone(self);
        async move {
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Ok(event) => ring.push(line(&event)),
                        Err(RecvError::Lagged(n)) => ring.push(Line {
                            seq: 0,
                            time: unix_ms(std::time::SystemTime::now()),
                            experiment: String::new(),
                            name: String::new(),
                            kind: "missed",
                            detail: format!("{n} event(s) came too fast for the console and are not shown"),
                        }),
                        Err(RecvError::Closed) => return,
                    },
                    () = &mut shutdown => return,
                }
            }
        }
    }
}

/// An event as a line of the log.
fn line(e: &Event) -> Line {
    let (kind, detail) = match &e.kind {
        EventKind::Started { state, .. } => ("started", format!("started ({})", state.as_str())),
        EventKind::Running => ("running", "start delay over: running".to_owned()),
        EventKind::Timeline { phase, .. } => ("phase", phase.clone()),
        EventKind::GuardTripped { reason } => ("guard", format!("guard tripped: {reason}")),
        EventKind::LeaseExpired => ("lease", "lease expired".to_owned()),
        EventKind::Ended { state, reason, counters } => (
            "ended",
            format!("{}: {reason} (matched {}, injected {})", state.as_str(), counters.matched, counters.injected),
        ),
    };
    Line { seq: 0, time: unix_ms(e.time), experiment: e.experiment.to_string(), name: e.name.to_string(), kind, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(detail: &str) -> Line {
        Line { seq: 0, time: 0, experiment: "e".into(), name: "n".into(), kind: "started", detail: detail.into() }
    }

    #[test]
    fn the_ring_keeps_the_last_lines_and_numbers_them() {
        let ring = Ring::default();
        for i in 0..KEPT + 10 {
            ring.push(l(&i.to_string()));
        }
        let (all, last) = ring.after(0);
        assert_eq!(last, (KEPT + 10) as u64);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all.first().map(|l| l.seq), Some(11));
        let (newer, _) = ring.after(last - 2);
        assert_eq!(
            newer.iter().map(|l| l.detail.as_str()).collect::<Vec<_>>(),
            [&*(KEPT + 8).to_string(), &*(KEPT + 9).to_string()]
        );
    }
}
