//! Per-experiment fault counts for `/metrics`, read from the experiment registry at scrape time: the
//! registry already counts every fault per experiment, so the data plane pays nothing more, and the series
//! of an experiment last as long as the registry keeps it (active ones and the bounded history).

use std::sync::{atomic::Ordering, Weak};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};

use crate::{
    experiment::{HeaderFaultState, Registry},
    fault::Fault,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    experiment: String,
    name: String,
    kind: &'static str,
}

/// `edgefault_faults_injected_total{experiment,name,kind}` and
/// `edgefault_dry_run_would_inject_total{experiment,name}`.
#[derive(Debug)]
pub struct ExperimentFaults(pub Weak<Registry>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExperimentLabels {
    experiment: String,
    name: String,
}

impl Collector for ExperimentFaults {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(registry) = self.0.upgrade() else { return Ok(()) };
        let injected = Family::<FaultLabels, Counter>::default();
        let would = Family::<ExperimentLabels, Counter>::default();
        let running = Family::<ExperimentLabels, Gauge>::default();
        for e in registry.list() {
            let labels = |kind| FaultLabels { experiment: e.id.clone(), name: e.spec.name.clone(), kind };
            injected.get_or_create(&labels("abort")).inc_by(e.aborted);
            injected.get_or_create(&labels("delay")).inc_by(e.delayed);
            let labels = ExperimentLabels { experiment: e.id.clone(), name: e.spec.name.clone() };
            if e.spec.dry_run {
                would.get_or_create(&labels).inc_by(e.would_inject);
            }
            running.get_or_create(&labels).set(i64::from(e.state == crate::experiment::State::Running));
        }
        // Faults requests asked for through their headers, as one more experiment, once there are some.
        let headers = registry.header_fault_counters();
        if headers.injected.load(Ordering::Relaxed) > 0 {
            let id = HeaderFaultState::ID;
            let labels = |kind| FaultLabels { experiment: id.to_owned(), name: id.to_owned(), kind };
            injected.get_or_create(&labels("abort")).inc_by(headers.aborted.load(Ordering::Relaxed));
            injected.get_or_create(&labels("delay")).inc_by(headers.delayed.load(Ordering::Relaxed));
            let throttled = Fault::KINDS.iter().position(|k| *k == "throttle").and_then(|i| headers.by_kind.get(i));
            injected.get_or_create(&labels("throttle")).inc_by(throttled.map_or(0, |c| c.load(Ordering::Relaxed)));
        }
        injected.encode(encoder.encode_descriptor(
            "faults_injected",
            "Faults injected, by experiment (id and name) and fault kind (abort, delay; throttle too for the experiment fault-headers)",
            None,
            injected.metric_type(),
        )?)?;
        would.encode(encoder.encode_descriptor(
            "dry_run_would_inject",
            "Requests a dry-run experiment selected and left untouched",
            None,
            would.metric_type(),
        )?)?;
        running.encode(encoder.encode_descriptor(
            "experiment_running",
            "1 while the experiment injects, 0 once pending or ended (ended ones stay for the registry's history)",
            None,
            running.metric_type(),
        )?)?;
        Ok(())
    }
}
