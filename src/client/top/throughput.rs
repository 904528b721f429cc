//! Throughput from the daemon's counters: tasks added, done and failed per second. The
//! daemon keeps totals only (`vapora metrics`), so the rates are the differences between
//! the refreshes `vapora top` makes about once a second: nothing is counted twice, and a
//! busy daemon costs `top` no more than an idle one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::response::TaskCounters;

/// The window of the rates shown as numbers.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How far back the sparklines go.
pub const HISTORY: Duration = Duration::from_secs(60);
/// A refresh late by this much still counts as the start of the window.
const SLACK: Duration = Duration::from_millis(500);

/// One of the counters shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Added,
    Done,
    Failed,
}

impl Counter {
    pub const ALL: [Counter; 3] = [Counter::Added, Counter::Done, Counter::Failed];

    pub fn label(self) -> &'static str {
        match self {
            Counter::Added => "added",
            Counter::Done => "done",
            Counter::Failed => "failed",
        }
    }

    fn of(self, sample: &Sample) -> u64 {
        match self {
            Counter::Added => sample.added,
            Counter::Done => sample.done,
            Counter::Failed => sample.failed,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    added: u64,
    done: u64,
    failed: u64,
}

/// The counters as read at each refresh over the last minute.
#[derive(Debug, Default)]
pub struct Throughput {
    samples: VecDeque<Sample>,
}

impl Throughput {
    /// The counters as read at `at`. Counters that went down belong to another daemon (a
    /// new data dir behind the same socket): what was read before is forgotten.
    pub fn record(&mut self, at: Instant, counters: &TaskCounters) {
        let sample = Sample {
            at,
            added: counters.enqueued,
            done: counters.done,
            failed: counters.failed,
        };
        if let Some(last) = self.samples.back()
            && (sample.added < last.added || sample.done < last.done || sample.failed < last.failed)
        {
            self.samples.clear();
        }
        self.samples.push_back(sample);
        while self.samples.len() > 1 && at.duration_since(self.samples[0].at) > HISTORY + SLACK {
            self.samples.pop_front();
        }
    }

    /// Per second over the last [`RATE_WINDOW`] (as far as the samples reach); `None`
    /// before two refreshes.
    pub fn rate(&self, counter: Counter) -> Option<f64> {
        let last = self.samples.back()?;
        let first = self
            .samples
            .iter()
            .find(|s| last.at.duration_since(s.at) <= RATE_WINDOW + SLACK)?;
        let seconds = last.at.duration_since(first.at).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        Some((counter.of(last) - counter.of(first)) as f64 / seconds)
    }

    /// The rate between each two refreshes in the last [`HISTORY`], oldest first, rounded up
    /// so that any activity shows as a bar: one bar per refresh, about a second each.
    pub fn series(&self, counter: Counter) -> Vec<u64> {
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(before, after)| {
                let seconds = after.at.duration_since(before.at).as_secs_f64().max(0.001);
                ((counter.of(after) - counter.of(before)) as f64 / seconds).ceil() as u64
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(added: u64, done: u64, failed: u64) -> TaskCounters {
        TaskCounters {
            enqueued: added,
            done,
            failed,
            ..TaskCounters::default()
        }
    }

    #[test]
    fn rates_cover_the_last_ten_seconds() {
        let start = Instant::now();
        let mut throughput = Throughput::default();
        assert_eq!(throughput.rate(Counter::Added), None);
        // 100 added per second for 20 s, then 10 per second for 10 s.
        let mut added = 0;
        for second in 0..=30 {
            throughput.record(start + Duration::from_secs(second), &counters(added, 0, 0));
            added += if second < 20 { 100 } else { 10 };
        }
        assert_eq!(throughput.rate(Counter::Added), Some(10.0));
        assert_eq!(throughput.rate(Counter::Done), Some(0.0));
        let series = throughput.series(Counter::Added);
        assert_eq!(series.len(), 30);
        assert_eq!(series[0], 100);
        assert_eq!(series[29], 10);
    }

    #[test]
    fn the_history_keeps_a_minute_and_a_new_daemon_starts_it_again() {
        let start = Instant::now();
        let mut throughput = Throughput::default();
        for second in 0..200 {
            throughput.record(
                start + Duration::from_secs(second),
                &counters(second, second, 0),
            );
        }
        assert_eq!(throughput.series(Counter::Done).len(), 60);
        // Counters lower than before: another daemon.
        throughput.record(start + Duration::from_secs(200), &counters(5, 5, 0));
        assert!(throughput.series(Counter::Done).is_empty());
        assert_eq!(throughput.rate(Counter::Done), None);
    }
}
