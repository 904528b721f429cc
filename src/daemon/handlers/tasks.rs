//! Task requests: add, list, show, claim, done, fail, cancel, retry, wait.

use std::sync::Arc;
use std::time::Duration;

use crate::daemon::state::{AppState, ClaimOutcome};
use crate::protocol::{DoneFirst, ErrorBody, NewTask, Response, RunEnd, TaskFilter, TaskId};

pub async fn add(state: &Arc<AppState>, tasks: Vec<NewTask>) -> Result<Response, ErrorBody> {
    state.add_tasks(tasks).await.map(Response::Added)
}

pub fn list(state: &Arc<AppState>, filter: TaskFilter) -> Result<Response, ErrorBody> {
    state.list_tasks(&filter).map(Response::Tasks)
}

pub fn get(state: &Arc<AppState>, id: TaskId) -> Result<Response, ErrorBody> {
    state.get_task(id).map(Response::Task)
}

/// Claims now, or parks for up to `wait_ms` until a task arrives. A claim that gets
/// nothing says why: an agent paused or offline, or at its limit, is told so (at once
/// without a wait, at the end of its wait with one: a slot can free up, the agent be
/// resumed, meanwhile); anything else is "nothing to claim".
pub async fn claim(
    state: &Arc<AppState>,
    agent: String,
    queues: Vec<String>,
    wait_ms: u64,
    done: Option<DoneFirst>,
) -> Result<Response, ErrorBody> {
    let outcome = match state
        .claim(agent.clone(), queues, wait_ms > 0, done)
        .await?
    {
        ClaimOutcome::Parked(mut ticket) => {
            let wait = Duration::from_millis(wait_ms);
            match tokio::time::timeout(wait, ticket.recv()).await {
                Ok(handed) => return handed.map(|task| Response::Claimed(Some(task))),
                Err(_elapsed) => {
                    // Withdrawn first (a task handed over at this instant goes back), then
                    // asked why nothing came.
                    drop(ticket);
                    state.unclaimed(&agent)
                }
            }
        }
        outcome => outcome,
    };
    Ok(match outcome {
        ClaimOutcome::Claimed(task) => Response::Claimed(Some(task)),
        ClaimOutcome::AtLimit { max_tasks, running } => Response::AtLimit { max_tasks, running },
        ClaimOutcome::Unavailable(status) => Response::AgentUnavailable { status },
        ClaimOutcome::Empty | ClaimOutcome::Parked(_) => Response::Claimed(None),
    })
}

pub async fn complete(
    state: &Arc<AppState>,
    id: TaskId,
    result: Option<String>,
    agent: Option<String>,
    run: Option<RunEnd>,
) -> Result<Response, ErrorBody> {
    state
        .complete(id, result, agent, run)
        .await
        .map(Response::Task)
}

pub async fn fail(
    state: &Arc<AppState>,
    id: TaskId,
    reason: Option<String>,
    retry: bool,
    agent: Option<String>,
    run: Option<RunEnd>,
) -> Result<Response, ErrorBody> {
    let task = state.fail(id, reason, retry, agent, run).await?;
    // A retried task has not ended, but its attempt has: followers of it look again.
    wake_followers(state, id);
    Ok(Response::Task(task))
}

fn wake_followers(state: &Arc<AppState>, id: TaskId) {
    if let Ok(logs) = state.logs() {
        logs.touch(id);
    }
}

pub async fn give_back(
    state: &Arc<AppState>,
    id: TaskId,
    agent: String,
) -> Result<Response, ErrorBody> {
    let task = state.give_back(id, agent).await?;
    wake_followers(state, id);
    Ok(Response::Task(task))
}

pub async fn cancel(state: &Arc<AppState>, id: TaskId) -> Result<Response, ErrorBody> {
    let (task, dependents) = state.cancel(id).await?;
    Ok(Response::Cancelled { task, dependents })
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
