//! How long the queue lock is held, so that the longest hold of each request kind is a
//! figure an operator can read (`vapora metrics`) instead of a guess.
//!
//! Every request passes through the queue lock, so one request that holds it long stalls
//! all the others. [`TimedGuard`] times each hold and keeps the longest per request kind;
//! [`serving`] tells it which kind is being served (a request may take the lock several
//! times: a parked claim takes it again when woken). Holds taken outside any request (the
//! lease and delay timers, a claim released after its answer was lost) have a slot of their
//! own. The cost is two clock reads and one atomic maximum per hold.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;
use std::time::Instant;

use super::metrics::Metrics;
use crate::protocol::RequestKind;

tokio::task_local! {
    /// The kind of request being served, whose slot a hold is recorded in.
    static SERVING: RequestKind;
}

/// Runs a request's handler so that its holds of the queue lock are recorded under its
/// kind, including holds made after the client left (a woken parked wait looking again).
pub async fn serving<F: Future>(kind: RequestKind, handler: F) -> F::Output {
    SERVING.scope(kind, handler).await
}

/// A held queue lock that records how long it was held when released.
pub struct TimedGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    taken: Instant,
    metrics: &'a Metrics,
}

impl<'a, T> TimedGuard<'a, T> {
    pub fn new(guard: MutexGuard<'a, T>, metrics: &'a Metrics) -> Self {
        TimedGuard {
            guard,
            taken: Instant::now(),
            metrics,
        }
    }
}

impl<T> Deref for TimedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for TimedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for TimedGuard<'_, T> {
    fn drop(&mut self) {
        let held = self.taken.elapsed();
        match SERVING.try_with(|kind| *kind) {
            Ok(kind) => self.metrics.observe_lock_hold(kind, held),
            Err(_) => self.metrics.observe_background_hold(held),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn longest(metrics: &Metrics, kind: RequestKind) -> u64 {
        let stats = metrics.request_stats();
        stats[kind.index()].lock_hold_max_us
    }

    #[tokio::test]
    async fn holds_are_recorded_under_the_kind_served_and_the_rest_as_background() {
        let metrics = Metrics::default();
        let lock = Mutex::new(0u32);
        serving(RequestKind::Wait, async {
            *TimedGuard::new(lock.lock().unwrap(), &metrics) += 1;
            let guard = TimedGuard::new(lock.lock().unwrap(), &metrics);
            std::thread::sleep(Duration::from_millis(20));
            drop(guard);
        })
        .await;
        assert!(longest(&metrics, RequestKind::Wait) >= 20_000);
        assert_eq!(longest(&metrics, RequestKind::Claim), 0);
        assert_eq!(metrics.background_hold_max_us(), 0);
        {
            let _outside = TimedGuard::new(lock.lock().unwrap(), &metrics);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(metrics.background_hold_max_us() >= 5_000);
        assert!(longest(&metrics, RequestKind::Wait) < 1_000_000);
        assert_eq!(*lock.lock().unwrap(), 1);
    }
}
