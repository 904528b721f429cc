//! Requests about the daemon itself: ping, shutdown, metrics.

use std::sync::Arc;

use crate::daemon::state::AppState;
use crate::protocol::{ErrorBody, Response};

pub fn ping(state: &Arc<AppState>) -> Result<Response, ErrorBody> {
    Ok(Response::Pong(state.info()))
}

/// Starts a graceful stop; the connection closes once the socket is gone.
pub fn shutdown(state: &Arc<AppState>) -> Result<Response, ErrorBody> {
    tracing::info!("shutdown requested by a client");
    state.begin_shutdown();
    Ok(Response::ShuttingDown)
}

pub fn metrics(state: &Arc<AppState>) -> Result<Response, ErrorBody> {
    Ok(Response::Metrics(state.metrics_snapshot()))
}
