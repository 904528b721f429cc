//! Latency samples and their percentiles.

use std::time::Duration;

/// Every sample of one scenario, in nanoseconds. Kept whole (8 bytes a sample) rather than
/// bucketed so that p99 is exact: a million samples is 8 MB.
#[derive(Debug, Default)]
pub struct Latencies {
    nanos: Vec<u64>,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Latencies {
        Latencies {
            nanos: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, elapsed: Duration) {
        self.nanos.push(elapsed.as_nanos() as u64);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
    }

    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }

    /// The `q`-quantile (0.5 for the median) in microseconds, by the nearest-rank method;
    /// `None` without samples.
    pub fn quantile_us(&mut self, q: f64) -> Option<f64> {
        if self.nanos.is_empty() {
            return None;
        }
        self.nanos.sort_unstable();
        let rank = ((q * self.nanos.len() as f64).ceil() as usize).clamp(1, self.nanos.len());
        Some(self.nanos[rank - 1] as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile_us(0.5), None);
        for us in (1..=100).rev() {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.quantile_us(0.5), Some(50.0));
        assert_eq!(l.quantile_us(0.99), Some(99.0));
        assert_eq!(l.quantile_us(1.0), Some(100.0));
        assert_eq!(l.quantile_us(0.0), Some(1.0));
    }
}
