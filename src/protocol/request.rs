//! Requests a client may send after the handshake.
//!
//! Every request travels in a [`RequestFrame`] carrying an id the response echoes, so a
//! client may pipeline many requests on one connection and match the answers.

use super::types::{AgentStatus, NewTask, TaskId, TaskStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    pub request: Request,
}

/// The task a `Claim` marks done before claiming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneFirst {
    pub id: TaskId,
    pub result: Option<String>,
}

/// Which tasks `ListTasks` returns. Empty `statuses` means every status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    pub statuses: Vec<TaskStatus>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub limit: Option<u32>,
    /// Only tasks with a larger id: with `limit`, pages through a list of any length.
    pub after: Option<TaskId>,
}

/// The request variants. New variants go at the end: bincode encodes the variant index, and
/// the protocol version in the handshake changes whenever an existing one changes shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Ping,
    Shutdown,
    /// Adds every task or none (the batch is validated first).
    AddTasks {
        tasks: Vec<NewTask>,
    },
    ListTasks(TaskFilter),
    GetTask {
        id: TaskId,
    },
    /// Claims the best task the agent may take; `wait_ms` > 0 parks until one arrives.
    /// Empty `queues` means any queue. With `done`, first marks that task (which the agent
    /// must be running) done, in the same commit: a worker's "finish, take the next" is one
    /// round trip and one commit instead of two.
    Claim {
        agent: String,
        queues: Vec<String>,
        wait_ms: u64,
        done: Option<DoneFirst>,
    },
    /// `agent`, when given, must be the agent running the task: a worker that lost its
    /// task (its agent was set offline) cannot finish it under another agent's feet.
    Complete {
        id: TaskId,
        result: Option<String>,
        agent: Option<String>,
    },
    Fail {
        id: TaskId,
        reason: Option<String>,
        retry: bool,
        agent: Option<String>,
    },
    Cancel {
        id: TaskId,
    },
    Retry {
        id: TaskId,
    },
    /// Answers when every task has ended, or when `timeout_ms` runs out.
    Wait {
        ids: Vec<TaskId>,
        timeout_ms: Option<u64>,
    },
    RegisterAgent {
        name: String,
        capabilities: Vec<String>,
        max_tasks: u32,
    },
    ListAgents {
        statuses: Vec<AgentStatus>,
    },
    GetAgent {
        name: String,
    },
    SetAgentStatus {
        name: String,
        status: AgentStatus,
    },
    Heartbeat {
        name: String,
    },
    RemoveAgent {
        name: String,
    },
    Metrics,
    /// Deletes finished tasks older than `older_than_ms` (the daemon's retention if `None`).
    Prune {
        older_than_ms: Option<u64>,
    },
    /// Turns the connection into an event stream: `Subscribed`, then one `Event` answer
    /// (all with this request's id) per event, until either side closes.
    Subscribe {
        queue: Option<String>,
        agent: Option<String>,
    },
}

/// A request's kind without its data: the label of its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    Ping,
    Shutdown,
    AddTasks,
    ListTasks,
    GetTask,
    Claim,
    Complete,
    Fail,
    Cancel,
    Retry,
    Wait,
    RegisterAgent,
    ListAgents,
    GetAgent,
    SetAgentStatus,
    Heartbeat,
    RemoveAgent,
    Metrics,
    Prune,
    Subscribe,
}

impl RequestKind {
    pub const ALL: [RequestKind; 20] = [
        RequestKind::Ping,
        RequestKind::Shutdown,
        RequestKind::AddTasks,
        RequestKind::ListTasks,
        RequestKind::GetTask,
        RequestKind::Claim,
        RequestKind::Complete,
        RequestKind::Fail,
        RequestKind::Cancel,
        RequestKind::Retry,
        RequestKind::Wait,
        RequestKind::RegisterAgent,
        RequestKind::ListAgents,
        RequestKind::GetAgent,
        RequestKind::SetAgentStatus,
        RequestKind::Heartbeat,
        RequestKind::RemoveAgent,
        RequestKind::Metrics,
        RequestKind::Prune,
        RequestKind::Subscribe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Ping => "ping",
            RequestKind::Shutdown => "shutdown",
            RequestKind::AddTasks => "add_tasks",
            RequestKind::ListTasks => "list_tasks",
            RequestKind::GetTask => "get_task",
            RequestKind::Claim => "claim",
            RequestKind::Complete => "complete",
            RequestKind::Fail => "fail",
            RequestKind::Cancel => "cancel",
            RequestKind::Retry => "retry",
            RequestKind::Wait => "wait",
            RequestKind::RegisterAgent => "register_agent",
            RequestKind::ListAgents => "list_agents",
            RequestKind::GetAgent => "get_agent",
            RequestKind::SetAgentStatus => "set_agent_status",
            RequestKind::Heartbeat => "heartbeat",
            RequestKind::RemoveAgent => "remove_agent",
            RequestKind::Metrics => "metrics",
            RequestKind::Prune => "prune",
            RequestKind::Subscribe => "subscribe",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Ping => RequestKind::Ping,
            Request::Shutdown => RequestKind::Shutdown,
            Request::AddTasks { .. } => RequestKind::AddTasks,
            Request::ListTasks(_) => RequestKind::ListTasks,
            Request::GetTask { .. } => RequestKind::GetTask,
            Request::Claim { .. } => RequestKind::Claim,
            Request::Complete { .. } => RequestKind::Complete,
            Request::Fail { .. } => RequestKind::Fail,
            Request::Cancel { .. } => RequestKind::Cancel,
            Request::Retry { .. } => RequestKind::Retry,
            Request::Wait { .. } => RequestKind::Wait,
            Request::RegisterAgent { .. } => RequestKind::RegisterAgent,
            Request::ListAgents { .. } => RequestKind::ListAgents,
            Request::GetAgent { .. } => RequestKind::GetAgent,
            Request::SetAgentStatus { .. } => RequestKind::SetAgentStatus,
            Request::Heartbeat { .. } => RequestKind::Heartbeat,
            Request::RemoveAgent { .. } => RequestKind::RemoveAgent,
            Request::Metrics => RequestKind::Metrics,
            Request::Prune { .. } => RequestKind::Prune,
            Request::Subscribe { .. } => RequestKind::Subscribe,
        }
    }
}
