//! Retention: finished tasks are deleted `retain` after they finished.
//!
//! One task sleeps until the oldest finished task expires, deletes everything expired, and
//! sleeps again. With no finished task it sleeps a whole `retain`: a task finishing from now
//! on cannot expire sooner. No periodic scan.

use std::sync::Arc;
use std::time::Duration;

use super::state::AppState;
use crate::protocol::types::now_millis;

/// The shortest sleep between two passes, so a burst of expiries is handled in one pass
/// and a failing store is not retried in a tight loop.
const MIN_PASS_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(state: Arc<AppState>) {
    let retain = state.retain;
    let retain_ms = retain.as_millis() as u64;
    loop {
        let now = now_millis();
        let wait_ms = match state.oldest_finished() {
            Some(at) => at.saturating_add(retain_ms).saturating_sub(now),
            None => retain_ms,
        };
        let wait = Duration::from_millis(wait_ms).max(MIN_PASS_INTERVAL);
        tokio::time::sleep(wait).await;
        match state.prune(retain).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "deleted finished tasks past retention"),
            Err(e) => tracing::warn!(error = %e.message, "retention pass failed"),
        }
    }
}
