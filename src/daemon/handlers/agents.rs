//! Agent requests: register, list, show, status, heartbeat, remove.

use std::sync::Arc;

use crate::daemon::state::AppState;
use crate::protocol::{AgentStatus, ErrorBody, Renew, Response, TaskId};

pub async fn register(
    state: &Arc<AppState>,
    name: String,
    capabilities: Vec<String>,
    max_tasks: u32,
) -> Result<Response, ErrorBody> {
    let agent = state.register_agent(name, capabilities, max_tasks).await?;
    tracing::debug!(agent = %agent.name, "agent registered");
    Ok(Response::Agent(agent))
}

pub fn list(state: &Arc<AppState>, statuses: Vec<AgentStatus>) -> Result<Response, ErrorBody> {
    Ok(Response::Agents(state.list_agents(&statuses)))
}

pub fn get(state: &Arc<AppState>, name: String) -> Result<Response, ErrorBody> {
    state.get_agent(&name).map(Response::Agent)
}

pub async fn set_status(
    state: &Arc<AppState>,
    name: String,
    status: AgentStatus,
) -> Result<Response, ErrorBody> {
    state
        .set_agent_status(name, status)
        .await
        .map(Response::Agent)
}

pub async fn heartbeat(
    state: &Arc<AppState>,
    name: String,
    tasks: Vec<TaskId>,
    renew: Renew,
) -> Result<Response, ErrorBody> {
    state
        .heartbeat(name, tasks, renew)
        .await
        .map(Response::Heartbeat)
}

pub async fn remove(state: &Arc<AppState>, name: String) -> Result<Response, ErrorBody> {
    let requeued = state.remove_agent(name).await?;
    Ok(Response::AgentRemoved { requeued })
}
