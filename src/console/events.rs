//! The console's event log: the registry's lifecycle events, kept in a bounded ring with a sequence number
//! so the page asks only for what it has not seen (`?after=SEQ`).

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::pb::v1;

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

    /// The task that keeps the events of `rx` (a registry's, turned into their wire form by `wire`, or
    /// the controller's) until `shutdown`.
    pub fn collect<T: Clone + Send + 'static>(
        self: &Arc<Self>,
        mut rx: broadcast::Receiver<T>,
        wire: impl Fn(T) -> v1::Event + Send + 'static,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let ring = Arc::clone(self);
        async move {
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Ok(event) => {
                            if let Some(l) = line(&wire(event)) {
                                ring.push(l);
                            }
                        }
                        Err(RecvError::Lagged(n)) => ring.push(Line {
                            seq: 0,
                            time: super::unix_ms(std::time::SystemTime::now()),
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

/// An event as a line of the log; `None` for what is not a line (the periodic stats).
fn line(e: &v1::Event) -> Option<Line> {
    use v1::event::Kind;
    let ended = |state: &str, x: &v1::ExperimentEnded| {
        let stats = x.stats.unwrap_or_default();
        let reason = if x.reason.is_empty() { "its duration is over" } else { x.reason.as_str() };
        format!("{state}: {reason} (matched {}, injected {})", stats.matched, stats.injected)
    };
    let (kind, detail) = match e.kind.as_ref()? {
        Kind::Started(s) => ("started", format!("started ({})", crate::control::proto::state_name(s.state))),
        Kind::Running(_) => ("running", "start delay over: running".to_owned()),
        Kind::Timeline(t) => ("phase", t.phase.clone()),
        Kind::GuardTripped(g) => ("guard", format!("guard tripped: {}", g.reason)),
        Kind::LeaseExpired(_) => ("lease", "lease expired".to_owned()),
        Kind::Stopped(x) => ("ended", ended("stopped", x)),
        Kind::Expired(x) => ("ended", ended("completed", x)),
        Kind::Aborted(x) => ("ended", ended("aborted", x)),
        Kind::Stats(_) => return None,
        Kind::Lagged(l) => ("missed", format!("{} event(s) came too fast and are not shown", l.skipped)),
    };
    let detail = if e.sidecar_id.is_empty() { detail } else { format!("sidecar {}: {detail}", e.sidecar_id) };
    let time = super::ms(e.time.as_ref()).unwrap_or(0);
    Some(Line { seq: 0, time, experiment: e.experiment_id.clone(), name: e.experiment_name.clone(), kind, detail })
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

    #[test]
    fn a_sidecars_event_is_named_by_it_and_any_time_it_reports_makes_a_line() {
        let ended = v1::ExperimentEnded { reason: String::new(), stats: None };
        for (seconds, nanos, want) in
            [(1_700_000_000, 5_000_000, 1_700_000_000_005), (i64::MAX, 999_999_999, u64::MAX), (-1, -5, 0)]
        {
            let e = v1::Event {
                time: Some(pbjson_types::Timestamp { seconds, nanos }),
                experiment_id: "flt-1".into(),
                experiment_name: "storm".into(),
                sidecar_id: "s1".into(),
                kind: Some(v1::event::Kind::Expired(ended.clone())),
            };
            let got = line(&e).expect("a line");
            assert_eq!(got.time, want);
            assert_eq!(got.detail, "sidecar s1: completed: its duration is over (matched 0, injected 0)");
        }
        let stats = v1::Event { kind: Some(v1::event::Kind::Stats(Default::default())), ..Default::default() };
        assert!(line(&stats).is_none(), "the periodic stats are not lines");
    }
}
