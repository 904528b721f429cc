//! Request dispatch: one function per request, grouped by family, each turning a decoded
//! `Request` into a call on `AppState` and its answer into a `Response`.

mod agents;
mod daemon;
mod output;
mod tasks;

use std::sync::Arc;

use super::state::AppState;
use crate::protocol::{ErrorBody, ErrorKind, Request, Response};

pub async fn dispatch(state: &Arc<AppState>, request: Request) -> Result<Response, ErrorBody> {
    match request {
        Request::Ping => daemon::ping(state),
        Request::Shutdown => daemon::shutdown(state),
        Request::Metrics => daemon::metrics(state),
        // The connection handles subscriptions itself (it becomes a stream).
        Request::Subscribe { .. } => Err(ErrorBody::invalid("subscribe cannot be pipelined")),
        Request::Prune { older_than_ms } => tasks::prune(state, older_than_ms).await,
        Request::AddTasks { tasks } => tasks::add(state, tasks).await,
        Request::ListTasks(filter) => tasks::list(state, filter),
        Request::GetTask { id } => tasks::get(state, id),
        Request::Claim {
            agent,
            queues,
            wait_ms,
            done,
        } => tasks::claim(state, agent, queues, wait_ms, done).await,
        Request::Complete {
            id,
            result,
            agent,
            run,
        } => tasks::complete(state, id, result, agent, run).await,
        Request::Fail {
            id,
            reason,
            retry,
            agent,
            run,
        } => tasks::fail(state, id, reason, retry, agent, run).await,
        Request::Cancel { id } => tasks::cancel(state, id).await,
        Request::Retry { id } => tasks::retry(state, id).await,
        Request::Wait { ids, timeout_ms } => tasks::wait(state, ids, timeout_ms).await,
        Request::RegisterAgent {
            name,
            capabilities,
            max_tasks,
        } => agents::register(state, name, capabilities, max_tasks).await,
        Request::ListAgents { statuses } => agents::list(state, statuses),
        Request::GetAgent { name } => agents::get(state, name),
        Request::SetAgentStatus { name, status } => agents::set_status(state, name, status).await,
        Request::Heartbeat { name, tasks, renew } => {
            agents::heartbeat(state, name, tasks, renew).await
        }
        Request::RemoveAgent { name } => agents::remove(state, name).await,
        Request::GiveBack { id, agent } => tasks::give_back(state, id, agent).await,
        Request::AppendOutput {
            id,
            attempt,
            agent,
            data,
        } => output::append(state, id, attempt, agent, data).await,
        Request::ReadOutput {
            id,
            attempt,
            from,
            follow,
        } => output::read(state, id, attempt, from, follow).await,
        // Served by the connection, which holds the ownership (`connection.rs`).
        Request::OwnAgent { .. } => Err(ErrorBody::new(
            ErrorKind::Internal,
            "an agent is owned by a connection, not dispatched",
        )),
    }
}
