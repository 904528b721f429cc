//! The daemon's clock, in milliseconds since the Unix epoch.
//!
//! Normally the wall clock. Tests can instead follow tokio's clock (from a wall-clock
//! starting point), so that with tokio's paused time `tokio::time::advance` moves every
//! lease, schedule and heartbeat deadline without anyone sleeping.

use crate::protocol::Millis;
use crate::protocol::types::now_millis;

#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    #[default]
    System,
    /// `start` plus the tokio time elapsed since `since`.
    Tokio {
        start: Millis,
        since: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that follows tokio's (call inside a runtime, e.g. a paused-time test).
    pub fn following_tokio() -> Clock {
        Clock::Tokio {
            start: now_millis(),
            since: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::System => now_millis(),
            Clock::Tokio { start, since } => start + since.elapsed().as_millis() as Millis,
        }
    }
}
