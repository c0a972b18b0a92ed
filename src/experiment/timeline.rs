//! Timelines: an experiment's share of selected requests as a function of the time since it started.
//! `ramp` moves the percentage linearly over a window; `flap` switches the experiment on and off with a
//! period and jitter, like the good/bad alternation of the 18 November 2025 edge outage. Pure functions of
//! the elapsed time, so they are exact to the clock the data plane reads (tokio's, paused in tests).

use std::time::Duration;

use crate::fault::{Faults, Percentage};

/// The percentage changes linearly from `from` to `to` during `[after, after + over)`; it is `from` before
/// and `to` after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    pub from: Percentage,
    pub to: Percentage,
    pub after: Duration,
    pub over: Duration,
}

impl Ramp {
    pub fn at(&self, elapsed: Duration) -> Percentage {
        let (from, to) = (self.from.percent(), self.to.percent());
        let t = if elapsed <= self.after {
            0.0
        } else if self.over.is_zero() {
            1.0
        } else {
            ((elapsed - self.after).as_secs_f64() / self.over.as_secs_f64()).min(1.0)
        };
        Percentage::new(from + (to - from) * t).unwrap_or(self.to)
    }
}

/// On for the first `on` (± `jitter`) of every `period`, off for the rest; cycle 0 starts at the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flap {
    pub period: Duration,
    pub on: Duration,
    /// Each cycle's on-time is moved by a deterministic amount in `[-jitter, +jitter]` drawn from the
    /// experiment's seed and the cycle number, then kept within `[0, period]`.
    pub jitter: Duration,
    pub seed: u64,
    /// Random steps: each whole period is on with this chance (0 to 1), drawn from the seed and the cycle;
    /// `on` and `jitter` are then unused.
    pub random_on: Option<f64>,
}

impl Flap {
    /// The cycle `elapsed` falls in, and whether the experiment is on then.
    pub fn at(&self, elapsed: Duration) -> (u64, bool) {
        let period = self.period.as_nanos().max(1);
        let cycle = u64::try_from(elapsed.as_nanos() / period).unwrap_or(u64::MAX);
        if let Some(p) = self.random_on {
            return (cycle, self.draw(cycle) < p);
        }
        let into = elapsed.as_nanos() % period;
        (cycle, into < self.on_time(cycle).as_nanos())
    }

    /// A uniform draw in [0, 1) from (seed, cycle).
    fn draw(&self, cycle: u64) -> f64 {
        let bits = mix(self.seed ^ cycle.wrapping_mul(0xD1B5_4A32_D192_ED03));
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }

    fn on_time(&self, cycle: u64) -> Duration {
        if self.jitter.is_zero() {
            return self.on.min(self.period);
        }
        // A uniform draw in [-1, 1] from (seed, cycle).
        let u = self.draw(cycle) * 2.0 - 1.0;
        let on = self.on.as_secs_f64() + u * self.jitter.as_secs_f64();
        Duration::from_secs_f64(on.clamp(0.0, self.period.as_secs_f64()))
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An experiment's timeline. Without ramp or flap the experiment's fixed percentage applies throughout.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timeline {
    pub ramp: Option<Ramp>,
    pub flap: Option<Flap>,
}

/// Where a timeline stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelineState {
    /// The share selected now.
    pub percentage: Percentage,
    /// The flap cycle and whether it is on, for flapping experiments.
    pub flap: Option<(u64, bool)>,
    /// The current phase, for experiments with phases.
    pub phase: Option<PhaseAt>,
}

/// One phase of an experiment's timeline, validated: from `start` until the next phase's start (the last
/// until the experiment ends), this percentage, timeline and faults apply.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    /// Offset from the experiment's start: zero for the first phase, increasing, within the duration.
    pub start: Duration,
    pub percentage: Percentage,
    /// Ramp and flap within the phase; their times count from the phase's start.
    pub timeline: Timeline,
    /// What selected requests get (the experiment's faults when the phase gives none).
    pub faults: Faults,
}

/// Which phase an instant falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseAt {
    /// Index in the experiment's phases.
    pub index: usize,
    /// Offset from the experiment's start at which the next phase begins; `None` in the last phase.
    pub next: Option<Duration>,
}

impl PhaseAt {
    /// The phase `elapsed` falls in, given every phase's start offset (ascending, the first zero). Exact:
    /// a phase begins at its offset, not a tick later.
    pub fn find(starts: impl ExactSizeIterator<Item = Duration> + Clone, elapsed: Duration) -> PhaseAt {
        let begun = starts.clone().take_while(|s| *s <= elapsed).count();
        let index = begun.saturating_sub(1);
        PhaseAt { index, next: starts.clone().nth(begun) }
    }
}

impl Timeline {
    pub fn is_static(&self) -> bool {
        self.ramp.is_none() && self.flap.is_none()
    }

    /// The phase `elapsed` after the start: "ramp waiting", "ramping" or "ramp done" for a ramp, "flap on"
    /// or "flap off" for a flap, both joined with ", ". A change of phase is a `timeline` event; the
    /// percentage of a ramp moves within "ramping" without one.
    pub fn phase(&self, elapsed: Duration) -> String {
        let ramp = self.ramp.map(|r| {
            if elapsed <= r.after {
                "ramp waiting"
            } else if elapsed < r.after + r.over {
                "ramping"
            } else {
                "ramp done"
            }
        });
        let flap = self.flap.map(|f| if f.at(elapsed).1 { "flap on" } else { "flap off" });
        match (ramp, flap) {
            (Some(r), Some(f)) => format!("{r}, {f}"),
            (Some(p), None) | (None, Some(p)) => p.to_owned(),
            (None, None) => "static".to_owned(),
        }
    }

    /// The state `elapsed` after the start, for an experiment whose fixed percentage is `base`.
    pub fn at(&self, base: Percentage, elapsed: Duration) -> TimelineState {
        let flap = self.flap.map(|f| f.at(elapsed));
        let percentage = match (flap, self.ramp) {
            (Some((_, false)), _) => Percentage::new(0.0).unwrap_or(base),
            (_, Some(r)) => r.at(elapsed),
            (_, None) => base,
        };
        TimelineState { percentage, flap, phase: None }
    }
}

impl std::fmt::Display for TimelineState {
    /// For GetExperiment: "flap on (cycle 3), 42.5 %".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((cycle, on)) = self.flap {
            write!(f, "flap {} (cycle {cycle}), ", if on { "on" } else { "off" })?;
        }
        write!(f, "{} %", (self.percentage.percent() * 100.0).round() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, Ipv4Addr},
        sync::Arc,
    };

    use http::{HeaderMap, Method};
    use tokio::time::Instant;

    use super::*;
    use crate::{
        experiment::{ExperimentDef, Rule, RuleSet},
        fault::{Abort, Fault},
        topology::Topology,
    };

    fn pct(p: f64) -> Percentage {
        Percentage::new(p).unwrap_or(Percentage::ALL)
    }

    #[test]
    fn ramp_is_linear_inside_its_window() {
        let r = Ramp { from: pct(10.0), to: pct(90.0), after: Duration::from_secs(60), over: Duration::from_secs(80) };
        assert_eq!(r.at(Duration::ZERO).percent(), 10.0);
        assert_eq!(r.at(Duration::from_secs(60)).percent(), 10.0);
        assert!((r.at(Duration::from_secs(100)).percent() - 50.0).abs() < 1e-9);
        assert!((r.at(Duration::from_secs(140)).percent() - 90.0).abs() < 1e-9);
        assert!((r.at(Duration::from_secs(1000)).percent() - 90.0).abs() < 1e-9);
        let down = Ramp { from: pct(100.0), to: pct(0.0), after: Duration::ZERO, over: Duration::ZERO };
        assert_eq!(down.at(Duration::from_nanos(1)).percent(), 0.0);
    }

    #[test]
    fn the_phase_begins_at_its_offset() {
        let starts = [Duration::ZERO, Duration::from_secs(60), Duration::from_secs(90)];
        let at = |ms: u64| PhaseAt::find(starts.iter().copied(), Duration::from_millis(ms));
        assert_eq!(at(0), PhaseAt { index: 0, next: Some(Duration::from_secs(60)) });
        assert_eq!(at(59_999), PhaseAt { index: 0, next: Some(Duration::from_secs(60)) });
        assert_eq!(at(60_000), PhaseAt { index: 1, next: Some(Duration::from_secs(90)) });
        assert_eq!(at(90_000), PhaseAt { index: 2, next: None });
        assert_eq!(at(10_000_000), PhaseAt { index: 2, next: None });
    }

    #[test]
    fn flap_switches_at_exact_instants() {
        let f = Flap {
            period: Duration::from_secs(300),
            on: Duration::from_secs(120),
            jitter: Duration::ZERO,
            seed: 1,
            random_on: None,
        };
        assert_eq!(f.at(Duration::ZERO), (0, true));
        assert_eq!(f.at(Duration::from_millis(119_999)), (0, true));
        assert_eq!(f.at(Duration::from_secs(120)), (0, false));
        assert_eq!(f.at(Duration::from_millis(299_999)), (0, false));
        assert_eq!(f.at(Duration::from_secs(300)), (1, true));
        assert_eq!(f.at(Duration::from_secs(420)), (1, false));
    }

    /// Random steps: whole periods on or off, reproducible from the seed, on about as often as asked, in
    /// runs rather than a rhythm.
    #[test]
    fn random_steps_are_whole_periods_drawn_from_the_seed() {
        let f = Flap {
            period: Duration::from_secs(300),
            on: Duration::ZERO,
            jitter: Duration::ZERO,
            seed: 1118,
            random_on: Some(0.5),
        };
        let cycles: Vec<bool> = (0..1000).map(|c| f.at(Duration::from_secs(300 * c + 7)).1).collect();
        for (c, on) in (0..1000u64).zip(&cycles) {
            let whole = [0, 150, 299].iter().all(|s| f.at(Duration::from_secs(300 * c + s)).1 == *on);
            assert!(whole, "cycle {c} is wholly on or wholly off");
        }
        let on = cycles.iter().filter(|x| **x).count();
        assert!((440..=560).contains(&on), "{on} of 1000 on at 50 %");
        let longest_run = cycles.chunk_by(|a, b| a == b).map(<[bool]>::len).max().unwrap_or(0);
        assert!(longest_run >= 4, "runs of good and bad steps, not an alternation");
        let again = Flap { ..f };
        assert_eq!(cycles, (0..1000).map(|c| again.at(Duration::from_secs(300 * c)).1).collect::<Vec<_>>());
        let none = Flap { random_on: Some(0.0), ..f };
        assert!((0..100).all(|c| !none.at(Duration::from_secs(300 * c)).1));
    }

    #[test]
    fn flap_jitter_stays_within_bounds_and_is_reproducible() {
        let f = Flap {
            period: Duration::from_secs(300),
            on: Duration::from_secs(150),
            jitter: Duration::from_secs(60),
            seed: 42,
            random_on: None,
        };
        let mut distinct = std::collections::HashSet::new();
        for cycle in 0..200 {
            let on = f.on_time(cycle);
            assert!(on >= Duration::from_secs(90) && on <= Duration::from_secs(210), "cycle {cycle}: {on:?}");
            assert_eq!(on, f.on_time(cycle));
            distinct.insert(on);
        }
        assert!(distinct.len() > 150, "jitter varies between cycles");
    }

    /// A rule through the real rule set, on tokio's paused clock: the data plane follows the timeline.
    #[tokio::test(start_paused = true)]
    async fn the_rule_set_follows_the_timeline_on_the_paused_clock() {
        let def = ExperimentDef {
            seed: Some(7),
            timeline: Timeline {
                ramp: Some(Ramp {
                    from: pct(0.0),
                    to: pct(100.0),
                    after: Duration::ZERO,
                    over: Duration::from_secs(600),
                }),
                flap: Some(Flap {
                    period: Duration::from_secs(300),
                    on: Duration::from_secs(150),
                    jitter: Duration::ZERO,
                    seed: 7,
                    random_on: None,
                }),
            },
            ..ExperimentDef::new(
                "flapping ramp",
                Duration::from_secs(3600),
                vec![Fault::Abort(Abort::new(None, None, "", None, HeaderMap::new()))],
            )
        };
        let start = Instant::now();
        let rule = Arc::new(Rule::new("e1".into(), 1, &def, 7, start + def.duration, Arc::default()));
        let topology = Topology::new(vec![("web".into(), vec!["default".into()])]);
        let set = RuleSet::build(&topology, vec![Arc::clone(&rule)]);
        let route = crate::topology::RouteId::first();
        let headers = HeaderMap::new();
        let view = crate::fault::RequestView {
            method: &Method::GET,
            host: None,
            path: "/",
            query: None,
            headers: &headers,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let share = |n: usize| (0..n).filter(|_| set.decide(route, &view).is_some()).count();

        // t = 0: on, ramp at 0 %.
        assert_eq!(share(200), 0);
        assert_eq!(
            rule.timeline_state(Instant::now()).map(|s| s.to_string()).as_deref(),
            Some("flap on (cycle 0), 0 %")
        );
        // t = 120 s: on, ramp at 20 %. Binomial(2000, 0.2): mean 400, sd 17.9; ±120 is beyond 6 sd.
        tokio::time::advance(Duration::from_secs(120)).await;
        let n = share(2000);
        assert!((280..=520).contains(&n), "{n}");
        // t = 150 s: off exactly at the boundary.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(share(200), 0);
        assert_eq!(
            rule.timeline_state(Instant::now()).map(|s| s.to_string()).as_deref(),
            Some("flap off (cycle 0), 0 %")
        );
        // t = 600 s: cycle 2 on, ramp at 100 %.
        tokio::time::advance(Duration::from_secs(450)).await;
        assert_eq!(share(200), 200);
        assert_eq!(
            rule.timeline_state(Instant::now()).map(|s| s.to_string()).as_deref(),
            Some("flap on (cycle 2), 100 %")
        );
    }
}
