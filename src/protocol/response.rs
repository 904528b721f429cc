//! Answers from the daemon: a [`Response`] or a typed [`ErrorBody`].

use super::types::{Agent, AgentStatus, DaemonInfo, Event, Task, TaskId, TaskStatus};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// The id of the request this answers; 0 when the request could not be decoded far
    /// enough to read its id.
    pub id: u64,
    pub result: Result<Response, ErrorBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Pong(DaemonInfo),
    /// The daemon stops accepting connections and exits once in-flight requests finish.
    ShuttingDown,
    /// Ids of added tasks, in request order.
    Added(Vec<TaskId>),
    Task(Task),
    Tasks(Vec<Task>),
    /// `None`: nothing to claim (after the wait, if any).
    Claimed(Option<Task>),
    /// The awaited tasks as they are now; `timed_out` if some had not ended.
    Waited {
        tasks: Vec<Task>,
        timed_out: bool,
    },
    Agent(Agent),
    Agents(Vec<Agent>),
    /// An agent was removed; these of its tasks went back to the queue.
    AgentRemoved {
        requeued: Vec<TaskId>,
    },
    Metrics(MetricsSnapshot),
    /// How many finished tasks were deleted.
    Pruned(u64),
    /// The event stream starts.
    Subscribed,
    Event(Event),
    /// Part of a long task list: more frames with the same id follow, and the last of them
    /// is `Tasks` (or an error). A client can show each page as it arrives.
    TaskPage(Vec<Task>),
}

/// What kind of failure, so that scripts (and exit codes) can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    /// The request is valid but the object is in the wrong state (e.g. `done` on a queued task).
    Conflict,
    PermissionDenied,
    /// The daemon cannot serve this now (shutting down, storage unavailable, limits).
    Unavailable,
    Internal,
    /// Client and daemon speak different protocol versions.
    IncompatibleProtocol,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
            ErrorKind::IncompatibleProtocol => "incompatible_protocol",
        }
    }
}

/// A typed error with a message meant for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
}

impl ErrorBody {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> ErrorBody {
        ErrorBody::new(ErrorKind::NotFound, message)
    }
    pub fn invalid(message: impl Into<String>) -> ErrorBody {
        ErrorBody::new(ErrorKind::InvalidArgument, message)
    }
    pub fn conflict(message: impl Into<String>) -> ErrorBody {
        ErrorBody::new(ErrorKind::Conflict, message)
    }
    pub fn unavailable(message: impl Into<String>) -> ErrorBody {
        ErrorBody::new(ErrorKind::Unavailable, message)
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

impl std::error::Error for ErrorBody {}

/// Counters of task transitions since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounters {
    pub enqueued: u64,
    pub claimed: u64,
    pub done: u64,
    pub failed: u64,
    pub requeued: u64,
    pub cancelled: u64,
}

/// Per request kind: how many, how many errors, and a latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    pub kind: String,
    pub count: u64,
    pub errors: u64,
    /// Sum of latencies in microseconds.
    pub latency_sum_us: u64,
    /// Cumulative counts per bucket of [`MetricsSnapshot::latency_buckets_us`]; the last
    /// entry (+Inf) equals `count`.
    pub latency_cumulative: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    pub uptime_ms: u64,
    /// (queue, status, count) for every non-zero pair.
    pub tasks: Vec<(String, TaskStatus, u64)>,
    pub agents: Vec<(AgentStatus, u64)>,
    pub counters: TaskCounters,
    /// Upper bounds of the latency buckets in microseconds (the +Inf bucket is implied).
    pub latency_buckets_us: Vec<u64>,
    pub requests: Vec<RequestStats>,
    pub connections_open: u64,
    pub connections_total: u64,
    /// Claims parked waiting for a task.
    pub parked_claims: u64,
    /// Journaled bytes SQLite has yet to commit (`--sync normal`); 0 when it has caught up.
    pub store_backlog_bytes: u64,
}
