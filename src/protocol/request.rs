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

/// The task a `Claim` marks done before claiming: one round trip where a worker would
/// otherwise make two (the daemon checks it exactly as a `Complete` from the claiming
/// agent, and a refused one claims nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneFirst {
    pub id: TaskId,
    pub result: Option<String>,
    /// As `Complete`'s: from a worker that ran the task's command.
    pub run: Option<RunEnd>,
}

/// How an attempt ended, reported by a worker that ran it with its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    /// The attempt the outcome is of: refused if the task has moved on to another (its
    /// lease ran out and it was claimed again), so a late report never ends a newer run.
    pub attempt: u32,
    /// As [`crate::protocol::Task::exit_code`].
    pub exit_code: Option<i32>,
}

/// Which leases a heartbeat renews. A lease is renewed only by a sign of life about its
/// task: a heartbeat that names the tasks its sender runs lets the daemon tell a task being
/// run from one whose claim answer was lost (held, but run by nobody).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Renew {
    /// Every task the agent holds: for a sender that does not say what it runs.
    AllHeld,
    /// Only the named tasks. Other tasks the agent holds keep their leases, which run out
    /// unless someone renews them: right for several processes sharing one agent name,
    /// each naming its own tasks.
    Named,
    /// Only the named tasks, and every other task the agent holds goes back to the queue
    /// at once (attempt counted, as for an expired lease): for the one process that owns the
    /// agent name, so a task whose claim answer was lost comes back within one heartbeat.
    /// It must have no claim in flight: a task being handed to it would be taken back.
    NamedOnly,
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
    /// `run`, from a worker that ran the task's command: which attempt ended and how.
    Complete {
        id: TaskId,
        result: Option<String>,
        agent: Option<String>,
        run: Option<RunEnd>,
    },
    Fail {
        id: TaskId,
        reason: Option<String>,
        retry: bool,
        agent: Option<String>,
        run: Option<RunEnd>,
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
    /// The agent is alive; `renew` says which of its tasks' leases that renews.
    Heartbeat {
        name: String,
        /// The tasks the sender runs (empty with [`Renew::AllHeld`]).
        tasks: Vec<TaskId>,
        renew: Renew,
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
    /// Gives back a task the agent runs but stopped before it ended (a worker stopping):
    /// queued again at once, its attempt refunded.
    GiveBack {
        id: TaskId,
        agent: String,
    },
    /// The next chunk of the output of attempt `attempt` of task `id`, which `agent` runs:
    /// its stdout and stderr together, in the order written. Refused unless `agent` runs
    /// the task in that attempt. Not journaled: kept in the task's log file only.
    AppendOutput {
        id: TaskId,
        attempt: u32,
        agent: String,
        data: Vec<u8>,
    },
    /// Output of task `id` from offset `from` of attempt `attempt` (the latest if `None`),
    /// at most [`crate::protocol::limits::MAX_OUTPUT_CHUNK`] bytes. With `follow`, waits
    /// until there is some, or the attempt is over (answered `ended`).
    ReadOutput {
        id: TaskId,
        attempt: Option<u32>,
        from: u64,
        follow: bool,
    },
    /// This connection owns agent `name` for as long as it stays open: refused while a
    /// connection of another worker (another `instance`) owns it; a connection of the same
    /// instance takes it over (a worker connecting again). `vapora work` takes its name
    /// this way, so two workers given the same name (two on one host, both named after it)
    /// are told at once instead of taking each other's tasks back with every heartbeat.
    OwnAgent {
        name: String,
        /// Chosen at random by the worker when it starts, the same on every connection.
        instance: u64,
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
    GiveBack,
    AppendOutput,
    ReadOutput,
    OwnAgent,
}

impl RequestKind {
    pub const ALL: [RequestKind; 24] = [
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
        RequestKind::GiveBack,
        RequestKind::AppendOutput,
        RequestKind::ReadOutput,
        RequestKind::OwnAgent,
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
            RequestKind::GiveBack => "give_back",
            RequestKind::AppendOutput => "append_output",
            RequestKind::ReadOutput => "read_output",
            RequestKind::OwnAgent => "own_agent",
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
            Request::GiveBack { .. } => RequestKind::GiveBack,
            Request::AppendOutput { .. } => RequestKind::AppendOutput,
            Request::ReadOutput { .. } => RequestKind::ReadOutput,
            Request::OwnAgent { .. } => RequestKind::OwnAgent,
        }
    }
}
