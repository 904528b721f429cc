//! Task requests: add, list, show, claim, done, fail, cancel, retry, wait.

use std::sync::Arc;
use std::time::Duration;

use crate::daemon::state::{AppState, ClaimOutcome};
use crate::protocol::{DoneFirst, ErrorBody, NewTask, Response, TaskFilter, TaskId};

pub async fn add(state: &Arc<AppState>, tasks: Vec<NewTask>) -> Result<Response, ErrorBody> {
    state.add_tasks(tasks).await.map(Response::Added)
}

pub fn list(state: &Arc<AppState>, filter: TaskFilter) -> Result<Response, ErrorBody> {
    state.list_tasks(&filter).map(Response::Tasks)
}

pub fn get(state: &Arc<AppState>, id: TaskId) -> Result<Response, ErrorBody> {
    state.get_task(id).map(Response::Task)
}

/// Claims now, or parks for up to `wait_ms` until a task arrives.
pub async fn claim(
    state: &Arc<AppState>,
    agent: String,
    queues: Vec<String>,
    wait_ms: u64,
    done: Option<DoneFirst>,
) -> Result<Response, ErrorBody> {
    match state.claim(agent, queues, wait_ms > 0, done).await? {
        ClaimOutcome::Claimed(task) => Ok(Response::Claimed(Some(task))),
        ClaimOutcome::Empty => Ok(Response::Claimed(None)),
        ClaimOutcome::Parked(mut ticket) => {
            let wait = Duration::from_millis(wait_ms);
            match tokio::time::timeout(wait, ticket.recv()).await {
                Ok(handed) => handed.map(|task| Response::Claimed(Some(task))),
                Err(_elapsed) => Ok(Response::Claimed(None)),
            }
        }
    }
}

pub async fn complete(
    state: &Arc<AppState>,
    id: TaskId,
    result: Option<String>,
    agent: Option<String>,
) -> Result<Response, ErrorBody> {
    state.complete(id, result, agent).await.map(Response::Task)
}

pub async fn fail(
    state: &Arc<AppState>,
    id: TaskId,
    reason: Option<String>,
    retry: bool,
    agent: Option<String>,
) -> Result<Response, ErrorBody> {
    state
        .fail(id, reason, retry, agent)
        .await
        .map(Response::Task)
}

pub async fn cancel(state: &Arc<AppState>, id: TaskId) -> Result<Response, ErrorBody> {
    state.cancel(id).await.map(Response::Task)
}

pub async fn retry(state: &Arc<AppState>, id: TaskId) -> Result<Response, ErrorBody> {
    state.retry(id).await.map(Response::Task)
}

pub async fn wait(
    state: &Arc<AppState>,
    ids: Vec<TaskId>,
    timeout_ms: Option<u64>,
) -> Result<Response, ErrorBody> {
    let (tasks, timed_out) = state
        .wait(ids, timeout_ms.map(Duration::from_millis))
        .await?;
    Ok(Response::Waited { tasks, timed_out })
}

pub async fn prune(
    state: &Arc<AppState>,
    older_than_ms: Option<u64>,
) -> Result<Response, ErrorBody> {
    let older_than = older_than_ms.map_or(state.retain, Duration::from_millis);
    let count = state.prune(older_than).await?;
    Ok(Response::Pruned(count as u64))
}
