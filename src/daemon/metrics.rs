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

#[derive(Default)]
struct RequestMetric {
    count: AtomicU64,
    errors: AtomicU64,
    sum_us: AtomicU64,
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
}

impl Metrics {
    pub fn observe_request(&self, kind: RequestKind, elapsed: Duration, ok: bool) {
        let metric = &self.requests[kind.index()];
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        metric.count.fetch_add(1, Relaxed);
        if !ok {
            metric.errors.fetch_add(1, Relaxed);
        }
        metric.sum_us.fetch_add(us, Relaxed);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        metric.buckets[bucket].fetch_add(1, Relaxed);
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
                let mut running = 0;
                let latency_cumulative = metric
                    .buckets
                    .iter()
                    .map(|bucket| {
                        running += bucket.load(Relaxed);
                        running
                    })
                    .collect();
                RequestStats {
                    kind: kind.as_str().to_string(),
                    count: metric.count.load(Relaxed),
                    errors: metric.errors.load(Relaxed),
                    latency_sum_us: metric.sum_us.load(Relaxed),
                    latency_cumulative,
                }
            })
            .collect()
    }
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
