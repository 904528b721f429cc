//! Answers from the daemon: a [`Response`] or a typed [`ErrorBody`].

use super::types::{Agent, AgentStatus, DaemonInfo, Event, Task, TaskId, TaskOutcome, TaskStatus};
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
    /// Where the awaited tasks stand now (each named once, in the order first named);
    /// `timed_out` if some had not ended.
    Waited {
        tasks: Vec<TaskOutcome>,
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
    /// Nothing claimed because the agent already holds `max_tasks` tasks (`running`): not
    /// an empty queue. A worker that holds none of them lost a claim's answer.
    AtLimit {
        max_tasks: u32,
        running: Vec<TaskId>,
    },
    Heartbeat(HeartbeatReport),
    /// Nothing claimed because the agent may not claim: it is paused, or offline (set by
    /// hand). `status` says which.
    AgentUnavailable {
        status: AgentStatus,
    },
    /// A task was cancelled, and with it `dependents`: the tasks waiting on it (and on
    /// them, in turn).
    Cancelled {
        task: Task,
        dependents: Vec<TaskId>,
    },
    /// Output was appended.
    OutputKept,
    /// A chunk of an attempt's output. `data` holds the output from offset `from` (and,
    /// when older output was asked for but dropped to stay within the daemon's
    /// `--max-log`, a marker line before it saying how much); `next` is where to read on.
    /// `ended`: the attempt is over and `next` is the end of its output.
    Output {
        attempt: u32,
        from: u64,
        next: u64,
        data: Vec<u8>,
        ended: bool,
    },
    /// The connection owns the agent name until it closes.
    AgentOwned,
}

/// What a heartbeat did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReport {
    /// The agent after the heartbeat.
    pub agent: Agent,
    /// Tasks whose leases were renewed.
    pub renewed: Vec<TaskId>,
    /// Named tasks the agent does not hold (any more): the sender should stop running them.
    pub not_held: Vec<NotHeld>,
    /// Tasks the agent held but the heartbeat did not name ([`crate::protocol::Renew::NamedOnly`]),
    /// now back in the queue (or failed, when out of attempts).
    pub released: Vec<TaskId>,
}

/// A task a heartbeat named that its agent does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotHeld {
    pub id: TaskId,
    /// Its status now; `None` when there is no such task (never was, or pruned).
    pub status: Option<TaskStatus>,
    /// The agent running it now, if another one does.
    pub agent: Option<String>,
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
    /// The longest one request of this kind held the queue lock, in microseconds.
    pub lock_hold_max_us: u64,
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
    /// The longest the queue lock was held outside any request (lease and delay timers,
    /// claims released after their answer was lost), in microseconds.
    pub background_lock_hold_max_us: u64,
    /// `task wait` requests being served, most of them parked until their tasks end.
    pub waits_in_progress: u64,
    /// Upper bounds of the run-time buckets in milliseconds (the +Inf bucket is implied).
    pub run_buckets_ms: Vec<u64>,
    /// Attempts whose worker reported how they ended (`vapora work`), by how long they ran
    /// from claim to outcome: cumulative counts per bucket, the last (+Inf) the total.
    pub run_cumulative: Vec<u64>,
    /// The sum of those run times in milliseconds.
    pub run_sum_ms: u64,
}
