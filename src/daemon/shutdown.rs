//! Graceful shutdown as a small shared signal, in the manner of mini-redis.
//!
//! Phases: `Running` → `Stopping` (stop accepting, let in-flight requests finish, wake
//! parked clients) → `Closed` (the listening socket is gone). The `shutdown` request waits
//! for `Closed` before closing its connection, so `vapora shutdown && vapora daemon` never
//! finds the old socket still in place.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Stopping,
    Closed,
}

#[derive(Debug)]
pub struct Shutdown {
    phase: watch::Sender<Phase>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            phase: watch::Sender::new(Phase::Running),
        }
    }
}

impl Shutdown {
    /// Moves to `phase` if that is later than the current one.
    pub fn advance(&self, phase: Phase) {
        self.phase.send_if_modified(|current| {
            let later = phase > *current;
            if later {
                *current = phase;
            }
            later
        });
    }

    pub fn is_stopping(&self) -> bool {
        *self.phase.borrow() >= Phase::Stopping
    }

    /// Resolves once the daemon has reached `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut rx = self.phase.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = rx.wait_for(|current| *current >= phase).await;
    }
}
