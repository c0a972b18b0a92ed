//! What a held request or connection watches so that it lets go the moment its experiment ends.
//!
//! Every running experiment has one [`Lifeline`], ended by the registry whenever the experiment ends
//! (stop, abort-all, expiry, lease loss, guard trip, SIGUSR1, shutdown). A fault that holds something
//! (a delay, a hang, a stalled handshake, a throttled body, an armed disconnect…) keeps the lifeline of the
//! experiment that put it there, in a [`Held`] beside the value, and waits on the lifeline as well as on
//! its clock: once the experiment is over, the request or connection goes on as if the experiment had
//! never matched it.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use tokio::sync::Notify;

/// Ends with its experiment; cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Lifeline(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    ended: AtomicBool,
    notify: Notify,
}

impl Lifeline {
    /// Whether the experiment has ended.
    pub fn is_ended(&self) -> bool {
        self.0.ended.load(Ordering::Acquire)
    }

    /// Ends the experiment's hold on everything: every waiter wakes now.
    pub(super) fn end(&self) {
        self.0.ended.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Resolves once the experiment has ended (at once if it already has).
    pub async fn ended(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read: an end between the two still wakes this waiter.
            notified.as_mut().enable();
            if self.is_ended() {
                return;
            }
            notified.await;
        }
    }
}

/// Values that several experiments put on one request or connection, each kept only while its own
/// experiment runs. Empty (no allocation) when no experiment put anything.
#[derive(Debug, Clone)]
pub struct Held<T>(Vec<(Lifeline, T)>);

impl<T> Default for Held<T> {
    fn default() -> Self {
        Held(Vec::new())
    }
}

impl<T> Held<T> {
    pub fn new() -> Self {
        Held::default()
    }

    /// One experiment's value, kept while `lifeline` lasts.
    pub fn push(&mut self, lifeline: &Lifeline, value: T) {
        self.0.push((lifeline.clone(), value));
    }

    /// Whether no experiment put anything (ended or not).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values whose experiments still run, in the order they were put.
    pub fn live(&self) -> impl Iterator<Item = &T> {
        self.0.iter().filter(|(l, _)| !l.is_ended()).map(|(_, v)| v)
    }

    /// Forgets the values of experiments that have ended; true if any was.
    pub fn prune(&mut self) -> bool {
        let before = self.0.len();
        self.0.retain(|(l, _)| !l.is_ended());
        self.0.len() != before
    }

    /// Resolves when one of the experiments still running ends; never when none runs.
    pub fn any_ended(&self) -> AnyEnded {
        let mut live: Vec<Lifeline> = self.0.iter().filter(|(l, _)| !l.is_ended()).map(|(l, _)| l.clone()).collect();
        live.dedup_by(|a, b| Arc::ptr_eq(&a.0, &b.0));
        AnyEnded::of(live)
    }
}

impl<T: Copy> Held<T> {
    /// Folds the live values with `f`, starting from `init`.
    pub fn fold<A>(&self, init: A, f: impl FnMut(A, T) -> A) -> A {
        self.live().copied().fold(init, f)
    }
}

/// A future that resolves when any of some lifelines ends; owns what it waits on, so a body or a task can
/// keep it across polls.
pub struct AnyEnded(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl AnyEnded {
    fn of(live: Vec<Lifeline>) -> Self {
        AnyEnded(match live.len() {
            0 => None,
            1 => live.into_iter().next().map(|l| Box::pin(async move { l.ended().await }) as Pin<Box<_>>),
            _ => {
                let waits = live.into_iter().map(|l| Box::pin(async move { l.ended().await }));
                Some(Box::pin(async move {
                    futures_util::future::select_all(waits).await;
                }))
            }
        })
    }

    /// Waits for nothing: pending forever.
    pub fn never() -> Self {
        AnyEnded(None)
    }
}

impl Future for AnyEnded {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match &mut self.get_mut().0 {
            Some(f) => f.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        }
    }
}

impl std::fmt::Debug for AnyEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "AnyEnded(waiting)" } else { "AnyEnded(never)" })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_end_wakes_every_waiter_and_later_waits_return_at_once() {
        let l = Lifeline::default();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.ended().await })
            })
            .collect();
        tokio::task::yield_now().await;
        l.end();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(1), w).await.expect("woken").expect("joined");
        }
        l.ended().await;
        assert!(l.is_ended());
    }

    #[tokio::test]
    async fn held_values_go_with_their_experiment() {
        let (a, b) = (Lifeline::default(), Lifeline::default());
        let mut held = Held::new();
        held.push(&a, 1);
        held.push(&b, 2);
        assert_eq!(held.fold(0, |s, v| s + v), 3);
        let wait = held.any_ended();
        b.end();
        tokio::time::timeout(Duration::from_secs(1), wait).await.expect("woken by b");
        assert_eq!(held.live().copied().collect::<Vec<_>>(), [1]);
        assert!(held.prune());
        assert!(!held.prune());
        a.end();
        assert_eq!(held.live().count(), 0);
        let never = held.any_ended();
        assert!(tokio::time::timeout(Duration::from_millis(20), never).await.is_err(), "nothing left to end");
    }
}
