//! `edgefault ctl watch` (events, live, one line each) and `edgefault ctl top` (a refreshing view of the
//! running experiments with per-second rates from successive GetStats snapshots).

use std::{
    collections::HashMap,
    fmt::Write as _,
    future::Future,
    io::Write,
    time::{Duration, SystemTime},
};

use super::{render::truncate, state_name, Ctl, CtlError, Output};
use crate::pb::v1;

/// How `watch` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// Ctrl-C (or the interrupt future).
    Interrupted,
    /// The server ended the stream (it is shutting down).
    ServerClosed,
    /// The connection broke (the server went away); the detail says how.
    Lost(String),
}

impl WatchEnd {
    /// The line `ctl watch` prints on stderr when it stops.
    pub fn message(&self) -> String {
        match self {
            WatchEnd::Interrupted => "edgefault ctl watch: interrupted".into(),
            WatchEnd::ServerClosed => {
                "edgefault ctl watch: the server ended the event stream (it is shutting down)".into()
            }
            WatchEnd::Lost(detail) => format!("edgefault ctl watch: lost the control service: {detail}"),
        }
    }
}

impl Ctl {
    /// Opens a WatchEvents stream.
    pub async fn watch_events(&mut self, req: v1::WatchEventsRequest) -> Result<tonic::Streaming<v1::Event>, CtlError> {
        Ok(self.client.watch_events(req).await.map_err(super::rpc("WatchEvents"))?.into_inner())
    }

    pub async fn stats(&mut self, experiment_id: &str) -> Result<v1::GetStatsResponse, CtlError> {
        Ok(self
            .client
            .get_stats(v1::GetStatsRequest { experiment_id: experiment_id.into() })
            .await
            .map_err(super::rpc("GetStats"))?
            .into_inner())
    }

    /// `ctl watch`: prints every event on `out`, one line each (text or JSON lines), until `interrupt`
    /// resolves or the stream ends.
    pub async fn watch(
        &mut self,
        req: v1::WatchEventsRequest,
        output: Output,
        interrupt: impl Future<Output = ()>,
        out: &mut impl Write,
    ) -> Result<WatchEnd, CtlError> {
        let mut stream = self.watch_events(req).await?;
        tokio::pin!(interrupt);
        loop {
            let next = tokio::select! {
                () = &mut interrupt => return Ok(WatchEnd::Interrupted),
                next = stream.message() => next,
            };
            match next {
                Ok(Some(e)) => {
                    let line = render_event(&e, output);
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        // stdout closed (a pipe into `head`): nothing more to do.
                        return Ok(WatchEnd::Interrupted);
                    }
                }
                Ok(None) => return Ok(WatchEnd::ServerClosed),
                Err(s) => {
                    let detail = match s.code() {
                        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => {
                            s.message().to_owned()
                        }
                        code => return Err(CtlError::Rpc { call: "WatchEvents", code, message: s.message().into() }),
                    };
                    return Ok(WatchEnd::Lost(detail));
                }
            }
        }
    }

    /// `ctl top`: a frame every `interval` with per-second rates, `iterations` times (forever when `None`),
    /// or until `interrupt` resolves. On a terminal each frame replaces the last; otherwise frames are
    /// printed one after another, separated by a blank line.
    pub async fn top(
        &mut self,
        interval: Duration,
        iterations: Option<u64>,
        tty: bool,
        interrupt: impl Future<Output = ()>,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let mut prev = (tokio::time::Instant::now(), self.stats("").await?);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(interrupt);
        let mut shown = 0u64;
        while iterations.is_none_or(|n| shown < n) {
            tokio::select! {
                () = &mut interrupt => break,
                _ = tick.tick() => {}
            }
            let now = (tokio::time::Instant::now(), self.stats("").await?);
            let frame = render_top(&prev.1, &now.1, interval, now.0.saturating_duration_since(prev.0));
            let written = if tty {
                // Home and clear, then the frame: the view refreshes in place.
                write!(out, "\x1b[H\x1b[2J{frame}")
            } else {
                if shown > 0 {
                    let _ = writeln!(out);
                }
                write!(out, "{frame}")
            };
            if written.and_then(|()| out.flush()).is_err() {
                break;
            }
            prev = now;
            shown += 1;
        }
        Ok(())
    }
}

fn time_of(t: Option<pbjson_types::Timestamp>) -> String {
    match t {
        Some(t) => {
            let at = SystemTime::UNIX_EPOCH + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32);
            humantime::format_rfc3339_millis(at).to_string()
        }
        None => "-".into(),
    }
}

fn stats_line(s: Option<&v1::ExperimentStats>) -> String {
    let s = s.copied().unwrap_or_default();
    format!("matched {} injected {} aborted {} delayed {}", s.matched, s.injected, s.aborted, s.delayed)
}

/// One event as `ctl watch` prints it: text, or one JSON object (the protobuf JSON mapping).
pub fn render_event(e: &v1::Event, output: Output) -> String {
    if output == Output::Json {
        return serde_json::to_string(e).unwrap_or_default();
    }
    use v1::event::Kind;
    let who = if e.experiment_id.is_empty() {
        String::new()
    } else {
        format!("{} {} ", e.experiment_id, crate::text::printable(&e.experiment_name))
    };
    let what = match &e.kind {
        Some(Kind::Started(s)) => format!("started ({})", state_name(s.state)),
        Some(Kind::Running(_)) => "running (start delay over)".into(),
        Some(Kind::Stopped(x)) => {
            format!("stopped: {} ({})", crate::text::printable(&x.reason), stats_line(x.stats.as_ref()))
        }
        Some(Kind::Expired(x)) => format!("expired: duration over ({})", stats_line(x.stats.as_ref())),
        Some(Kind::Aborted(x)) => {
            format!("aborted: {} ({})", crate::text::printable(&x.reason), stats_line(x.stats.as_ref()))
        }
        Some(Kind::GuardTripped(g)) => format!("guard tripped: {}", g.reason.trim_start_matches("guard tripped: ")),
        Some(Kind::Timeline(t)) => format!("timeline: {} ({})", t.phase, t.state),
        Some(Kind::LeaseExpired(_)) => "lease expired".into(),
        Some(Kind::Lagged(l)) => format!("lagged: this watcher missed {} event(s)", l.skipped),
        Some(Kind::Stats(s)) => {
            let p = s.proxy.clone().unwrap_or_default();
            let mut line = format!(
                "stats: {} running; requests passed {} injected {} upstream_error {}",
                p.experiments_running, p.passed, p.injected, p.upstream_error
            );
            for x in s.experiments.iter().filter(|x| active(x.state)) {
                let _ = write!(line, "; {} {}", x.id, stats_line(x.stats.as_ref()));
            }
            line
        }
        None => "unknown event (a newer server?)".into(),
    };
    format!("{} {who}{what}", time_of(e.time))
}

fn active(state: i32) -> bool {
    matches!(v1::ExperimentState::try_from(state), Ok(v1::ExperimentState::Pending | v1::ExperimentState::Running))
}

fn rate(now: u64, before: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{:.1}", now.saturating_sub(before) as f64 / secs)
}

/// One frame of `ctl top`: proxy rates and the active experiments, rates over `elapsed` since `prev`; the
/// header names the `interval` asked for (the timer's and the calls' jitter is not news).
pub fn render_top(
    prev: &v1::GetStatsResponse,
    now: &v1::GetStatsResponse,
    interval: Duration,
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs_f64();
    let (p0, p1) = (prev.proxy.clone().unwrap_or_default(), now.proxy.clone().unwrap_or_default());
    let mut out = format!(
        "edgefault top  {}  every {}\nrequests/s: passed {}  injected {}  upstream_error {}   running {}   faults active {}  overflow/s {}\n\n",
        time_of(now.time),
        humantime::format_duration(interval),
        rate(p1.passed, p0.passed, secs),
        rate(p1.injected, p0.injected, secs),
        rate(p1.upstream_error, p0.upstream_error, secs),
        p1.experiments_running,
        p1.faults_active,
        rate(p1.faults_overflow, p0.faults_overflow, secs),
    );
    let _ = writeln!(
        out,
        "{:<18} {:<20} {:<8} {:>10} {:>10} {:>9} {:>9}  BY KIND / TIMELINE",
        "ID", "NAME", "STATE", "MATCHED/s", "INJECTED/s", "MATCHED", "INJECTED"
    );
    let before: HashMap<&str, v1::ExperimentStats> =
        prev.experiments.iter().map(|x| (x.id.as_str(), x.stats.unwrap_or_default())).collect();
    let mut any = false;
    for x in now.experiments.iter().filter(|x| active(x.state)) {
        any = true;
        let s = x.stats.unwrap_or_default();
        let b = before.get(x.id.as_str()).copied().unwrap_or_default();
        let mut kinds: Vec<_> = x.injected_by_kind.iter().collect();
        kinds.sort();
        let mut extra: Vec<String> = kinds.into_iter().map(|(k, n)| format!("{k} {n}")).collect();
        if !x.timeline_state.is_empty() {
            extra.push(x.timeline_state.clone());
        }
        let _ = writeln!(
            out,
            "{:<18} {:<20} {:<8} {:>10} {:>10} {:>9} {:>9}  {}",
            x.id,
            truncate(&x.name, 20),
            state_name(x.state),
            rate(s.matched, b.matched, secs),
            rate(s.injected, b.injected, secs),
            s.matched,
            s.injected,
            extra.join(", ")
        );
    }
    if !any {
        out.push_str("(no experiment running)\n");
    }
    render_fleet(prev, now, secs, &mut out);
    out
}

/// On the controller: one line per connected sidecar, with its request rates.
fn render_fleet(prev: &v1::GetStatsResponse, now: &v1::GetStatsResponse, secs: f64, out: &mut String) {
    if now.sidecars.is_empty() {
        return;
    }
    let before: HashMap<&str, v1::ProxyTotals> =
        prev.sidecars.iter().map(|s| (s.sidecar_id.as_str(), s.proxy.clone().unwrap_or_default())).collect();
    let _ = writeln!(
        out,
        "\n{:<28} {:>10} {:>10} {:>10} {:>8}  (fleet: {} sidecars)",
        "SIDECAR",
        "PASSED/s",
        "INJECTED/s",
        "UPERR/s",
        "RUNNING",
        now.sidecars.len()
    );
    for s in &now.sidecars {
        let p = s.proxy.clone().unwrap_or_default();
        let b = before.get(s.sidecar_id.as_str()).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<28} {:>10} {:>10} {:>10} {:>8}",
            truncate(&s.sidecar_id, 28),
            rate(p.passed, b.passed, secs),
            rate(p.injected, b.injected, secs),
            rate(p.upstream_error, b.upstream_error, secs),
            p.experiments_running,
        );
    }
}
