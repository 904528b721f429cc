//! Task output: a worker appends it, `task logs` reads it (and follows it).

use std::sync::Arc;

use crate::daemon::logs::MAX_CHUNK;
use crate::daemon::shutdown::Phase;
use crate::daemon::state::AppState;
use crate::protocol::{ErrorBody, Response, TaskId, TaskStatus};

/// Appends a chunk of a running attempt's output; only the agent running it may.
pub async fn append(
    state: &Arc<AppState>,
    id: TaskId,
    attempt: u32,
    agent: String,
    data: Vec<u8>,
) -> Result<Response, ErrorBody> {
    if data.len() > MAX_CHUNK {
        return Err(ErrorBody::invalid(format!(
            "an output chunk holds at most {MAX_CHUNK} bytes, not {}",
            data.len()
        )));
    }
    state.check_runs(id, &agent, attempt)?;
    let logs = state.logs()?;
    if data.is_empty() {
        return Ok(Response::OutputKept);
    }
    tokio::task::spawn_blocking(move || logs.append(id, attempt, &data))
        .await
        .map_err(|e| ErrorBody::unavailable(format!("cannot keep the output of task {id}: {e}")))?
        .map_err(|e| {
            tracing::warn!(id, error = %e, "cannot write task output");
            ErrorBody::unavailable(format!("cannot keep the output of task {id}: {e}"))
        })?;
    Ok(Response::OutputKept)
}

/// Reads output from `from`; with `follow`, waits until there is some or the attempt is
/// over. Woken by appends and by the task's end, never by polling.
pub async fn read(
    state: &Arc<AppState>,
    id: TaskId,
    attempt: Option<u32>,
    from: u64,
    follow: bool,
) -> Result<Response, ErrorBody> {
    if attempt == Some(0) {
        return Err(ErrorBody::invalid("attempts count from 1"));
    }
    let logs = state.logs()?;
    loop {
        // Both before looking: whatever happens after the look wakes us.
        let mut changed = logs.subscribe(id);
        let (task, ended) = match state.task_and_end_watch(id) {
            Ok(found) => found,
            Err(missing) => {
                logs.forget(id);
                return Err(missing);
            }
        };
        let latest = task.attempts;
        if let Some(asked) = attempt
            && asked > latest
            && task.status.is_finished()
        {
            return Err(ErrorBody::not_found(format!(
                "task {id} has no attempt {asked}: it ran {latest}"
            )));
        }
        let attempt = attempt.unwrap_or(latest.max(1));
        let running_now = task.status == TaskStatus::Running && attempt == latest;
        let may_come = !task.status.is_finished() && attempt > latest;
        let over = !running_now && !may_come;
        let reader = Arc::clone(&logs);
        let chunk = tokio::task::spawn_blocking(move || reader.read(id, attempt, from))
            .await
            .map_err(|e| {
                ErrorBody::unavailable(format!("cannot read the output of task {id}: {e}"))
            })?
            .map_err(|e| {
                ErrorBody::unavailable(format!("cannot read the output of task {id}: {e}"))
            })?;
        if !chunk.data.is_empty() || over || !follow {
            return Ok(Response::Output {
                attempt,
                from: chunk.from,
                next: chunk.next,
                ended: over && chunk.at_end,
                data: chunk.data,
            });
        }
        let task_ended = async {
            match ended {
                Some(ended) => {
                    let _ = ended.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = changed.changed() => {}
            () = task_ended => {}
            () = state.shutdown.reached(Phase::Stopping) => {
                return Err(ErrorBody::unavailable("the daemon is shutting down"));
            }
        }
    }
}
