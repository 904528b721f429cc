//! The lifecycle timer: one task that sleeps until the earliest deadline — a scheduled
//! task's time, a lease's end, an agent's silence limit — applies what is due, and sleeps
//! again. Mutations that create an earlier deadline wake it. Nothing scans at intervals.
//!
//! Deadlines are stored with the tasks and agents, so after a restart whatever came due
//! while the daemon was down fires at once.

use std::sync::Arc;
use std::time::Duration;

use super::shutdown::Phase;
use super::state::AppState;

/// After a failed pass (storage failing), wait at least this long before the next one.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Runs the timer until the daemon stops.
pub async fn run(state: Arc<AppState>) {
    loop {
        let wait = state
            .arm_timer()
            .map(|at| Duration::from_millis(at.saturating_sub(state.clock.now())));
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = state.timer.notified() => continue,
            () = state.shutdown.reached(Phase::Stopping) => return,
        }
        if let Err(e) = state.fire_due().await {
            tracing::warn!(error = %e.message, "lifecycle pass failed");
            tokio::time::sleep(RETRY_AFTER_ERROR).await;
        }
    }
}
