//! The cap on concurrently faulted requests (Envoy's `max_active_faults`): a held or aborted request takes
//! a slot; when every slot is taken, a request that could be faulted passes untouched and the overflow
//! counter rises. This bounds what a long delay can hold (connections, memory) whatever the experiments ask.

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};

/// Slots for faulted requests, shared by every listener.
pub struct FaultCap {
    max: usize,
    active: AtomicUsize,
    /// `edgefault_faults_active`.
    active_gauge: Gauge,
    /// `edgefault_faults_overflow_total`.
    overflow: Counter,
}

impl FaultCap {
    pub fn new(max: usize, active_gauge: Gauge, overflow: Counter) -> Self {
        FaultCap { max, active: AtomicUsize::new(0), active_gauge, overflow }
    }

    /// Takes a slot, or counts an overflow and returns `None` when all are taken.
    pub fn try_acquire(&self) -> Option<ActiveFault<'_>> {
        let prev = self.active.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max {
            self.active.fetch_sub(1, Ordering::AcqRel);
            self.overflow.inc();
            return None;
        }
        self.active_gauge.inc();
        Some(ActiveFault(self))
    }

    /// Requests holding a slot now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// A taken slot; dropping it frees the slot, also when the request's future is dropped mid-delay.
pub struct ActiveFault<'a>(&'a FaultCap);

impl Drop for ActiveFault<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.active_gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let cap = FaultCap::new(2, Gauge::default(), Counter::default());
        let a = cap.try_acquire().expect("first");
        let b = cap.try_acquire().expect("second");
        assert!(cap.try_acquire().is_none());
        assert_eq!(cap.overflow.get(), 1);
        drop(a);
        let c = cap.try_acquire().expect("freed");
        assert_eq!(cap.active(), 2);
        drop((b, c));
        assert_eq!(cap.active(), 0);
        assert_eq!(cap.active_gauge.get(), 0);
    }
}
