//! Counters and latency histograms, updated by every connection.
//!
//! The seed put metrics behind an `RwLock`. Every request writes them, so a lock would make
//! each request take a write lock; atomics in fixed arrays (one slot per request kind) give
//! the same consistency for counters with no lock at all. Gauges that describe the state
//! (tasks per status, agents per status) are not stored here: the snapshot reads them from
//! the queue and registry, which keep them exact.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::protocol::RequestKind;
use crate::protocol::response::{RequestStats, TaskCounters};

/// Upper bounds of the latency histogram buckets, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    10_000_000,
];

/// Upper bounds of the run-time histogram buckets, in milliseconds: from a `true` to a
/// night's batch job.
pub const RUN_BUCKETS_MS: [u64; 14] = [
    10, 50, 100, 250, 500, 1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
    14_400_000,
];

/// How long attempts ran, from claim to the outcome their worker reported.
#[derive(Default)]
struct RunTimes {
    sum_ms: AtomicU64,
    /// Per-bucket (not cumulative) counts; the extra last slot is +Inf.
    buckets: [AtomicU64; RUN_BUCKETS_MS.len() + 1],
}

#[derive(Default)]
struct RequestMetric {
    count: AtomicU64,
    errors: AtomicU64,
    sum_us: AtomicU64,
    /// The longest the queue lock was held by one request of this kind.
    lock_hold_max_us: AtomicU64,
    /// Per-bucket (not cumulative) counts; the extra last slot is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

#[derive(Default)]
pub struct Metrics {
    enqueued: AtomicU64,
    claimed: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    requeued: AtomicU64,
    cancelled: AtomicU64,
    requests: [RequestMetric; RequestKind::ALL.len()],
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    /// The longest the queue lock was held outside any request (timers, releases).
    background_hold_max_us: AtomicU64,
    /// `task wait` requests being served (most of them parked until their tasks end).
    waits_in_progress: AtomicU64,
    run_times: RunTimes,
}

/// Counts one `task wait` as in progress until dropped.
pub struct WaitInProgress<'a>(&'a AtomicU64);

impl Drop for WaitInProgress<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    pub fn observe_request(&self, kind: RequestKind, elapsed: Duration, ok: bool) {
        let metric = &self.requests[kind.index()];
        let us = micros(elapsed);
        metric.count.fetch_add(1, Relaxed);
        if !ok {
            metric.errors.fetch_add(1, Relaxed);
        }
        metric.sum_us.fetch_add(us, Relaxed);
        metric.buckets[bucket(&LATENCY_BUCKETS_US, us)].fetch_add(1, Relaxed);
    }

    /// An attempt ran `ms` milliseconds before its worker reported the outcome.
    pub fn observe_run(&self, ms: u64) {
        let runs = &self.run_times;
        runs.sum_ms.fetch_add(ms, Relaxed);
        runs.buckets[bucket(&RUN_BUCKETS_MS, ms)].fetch_add(1, Relaxed);
    }

    /// The run-time histogram: cumulative counts per bucket of [`RUN_BUCKETS_MS`] (the last
    /// is +Inf, the count), and the sum in milliseconds.
    pub fn run_times(&self) -> (Vec<u64>, u64) {
        let runs = &self.run_times;
        (cumulative(&runs.buckets), runs.sum_ms.load(Relaxed))
    }

    /// Counts a `task wait` as in progress for as long as the returned guard lives.
    pub fn wait_started(&self) -> WaitInProgress<'_> {
        self.waits_in_progress.fetch_add(1, Relaxed);
        WaitInProgress(&self.waits_in_progress)
    }

    pub fn waits_in_progress(&self) -> u64 {
        self.waits_in_progress.load(Relaxed)
    }

    /// Records a hold of the queue lock made while serving a request of this kind.
    pub fn observe_lock_hold(&self, kind: RequestKind, held: Duration) {
        raise(&self.requests[kind.index()].lock_hold_max_us, micros(held));
    }

    /// Records a hold of the queue lock made outside any request.
    pub fn observe_background_hold(&self, held: Duration) {
        raise(&self.background_hold_max_us, micros(held));
    }

    pub fn background_hold_max_us(&self) -> u64 {
        self.background_hold_max_us.load(Relaxed)
    }

    /// Adds committed task transitions to the counters.
    pub fn add_counters(&self, deltas: &TaskCounters) {
        self.enqueued.fetch_add(deltas.enqueued, Relaxed);
        self.claimed.fetch_add(deltas.claimed, Relaxed);
        self.done.fetch_add(deltas.done, Relaxed);
        self.failed.fetch_add(deltas.failed, Relaxed);
        self.requeued.fetch_add(deltas.requeued, Relaxed);
        self.cancelled.fetch_add(deltas.cancelled, Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    pub fn connections(&self) -> (u64, u64) {
        (
            self.connections_open.load(Relaxed),
            self.connections_total.load(Relaxed),
        )
    }

    pub fn counters(&self) -> TaskCounters {
        TaskCounters {
            enqueued: self.enqueued.load(Relaxed),
            claimed: self.claimed.load(Relaxed),
            done: self.done.load(Relaxed),
            failed: self.failed.load(Relaxed),
            requeued: self.requeued.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
        }
    }

    pub fn request_stats(&self) -> Vec<RequestStats> {
        RequestKind::ALL
            .iter()
            .map(|kind| {
                let metric = &self.requests[kind.index()];
                let latency_cumulative = cumulative(&metric.buckets);
                RequestStats {
                    kind: kind.as_str().to_string(),
                    count: metric.count.load(Relaxed),
                    errors: metric.errors.load(Relaxed),
                    latency_sum_us: metric.sum_us.load(Relaxed),
                    latency_cumulative,
                    lock_hold_max_us: metric.lock_hold_max_us.load(Relaxed),
                }
            })
            .collect()
    }
}

/// The histogram bucket of `value`: the first whose upper bound holds it, else +Inf (the
/// slot after the bounds).
fn bucket(bounds: &[u64], value: u64) -> usize {
    bounds
        .iter()
        .position(|&bound| value <= bound)
        .unwrap_or(bounds.len())
}

/// Per-bucket counts as cumulative ones (the last is the total).
fn cumulative(buckets: &[AtomicU64]) -> Vec<u64> {
    let mut running = 0;
    buckets
        .iter()
        .map(|bucket| {
            running += bucket.load(Relaxed);
            running
        })
        .collect()
}

/// Raises a maximum. Nearly every hold is shorter than the longest so far: a plain load
/// sees that without the locked write (and the cache-line transfer between cores) that
/// `fetch_max` always makes.
fn raise(max: &AtomicU64, value: u64) {
    if value > max.load(Relaxed) {
        max.fetch_max(value, Relaxed);
    }
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_ends_at_count() {
        let metrics = Metrics::default();
        metrics.observe_request(RequestKind::Ping, Duration::from_micros(10), true);
        metrics.observe_request(RequestKind::Ping, Duration::from_millis(2), false);
        metrics.observe_request(RequestKind::Ping, Duration::from_secs(60), true);
        let ping = &metrics.request_stats()[RequestKind::Ping.index()];
        assert_eq!(ping.count, 3);
        assert_eq!(ping.errors, 1);
        assert_eq!(ping.latency_cumulative[0], 1);
        assert_eq!(*ping.latency_cumulative.last().unwrap(), 3);
        assert!(ping.latency_cumulative.windows(2).all(|w| w[0] <= w[1]));
    }
}
