//! `Change`: one small, self-contained description of a state change.
//!
//! Every mutation of the daemon's state is described as a list of these, produced under the
//! locks and submitted to the store in the order they were applied. They are the seam for
//! everything that must follow a change without being written into every handler: the
//! durable store journals and writes them, and once committed they become counters and events.

use crate::protocol::response::TaskCounters;
use crate::protocol::{Millis, Task, TaskId, TaskStatus};

use super::availability::Availability;

/// Serializable: the journal stores them as they are (`store/journal.rs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// A new task; `seq` is its place in line within its priority.
    TaskAdded {
        task: Box<Task>,
        seq: u64,
    },
    TaskClaimed {
        id: TaskId,
        queue: String,
        agent: String,
        attempts: u32,
        lease_until: Millis,
        at: Millis,
    },
    /// A running task's lease was renewed.
    LeaseExtended {
        id: TaskId,
        lease_until: Millis,
    },
    /// The task waits until `run_at` (a retry's backoff, or a delay after its dependencies).
    TaskScheduled {
        id: TaskId,
        queue: String,
        /// The agent that held the task before, if any (for the event stream).
        agent: Option<String>,
        attempts: u32,
        run_at: Millis,
        error: Option<String>,
        cause: RequeueCause,
        at: Millis,
    },
    /// The task reached `done`, `failed` or `cancelled`.
    TaskFinished {
        id: TaskId,
        queue: String,
        agent: Option<String>,
        status: TaskStatus,
        result: Option<String>,
        error: Option<String>,
        at: Millis,
    },
    /// The task is queued again; `seq` is its place in line within its priority.
    TaskRequeued {
        id: TaskId,
        queue: String,
        /// The agent that held the task before, if any (for the event stream).
        agent: Option<String>,
        attempts: u32,
        seq: u64,
        error: Option<String>,
        cause: RequeueCause,
        at: Millis,
    },
    AgentRegistered {
        name: String,
        capabilities: Vec<String>,
        max_tasks: u32,
        at: Millis,
    },
    AgentAvailability {
        name: String,
        availability: Availability,
        at: Millis,
    },
    AgentHeartbeat {
        name: String,
        at: Millis,
    },
    AgentRemoved {
        name: String,
    },
    /// Finished tasks deleted by retention or `task prune`.
    TasksPruned {
        ids: Vec<TaskId>,
    },
    /// Ids below `next_id` may have been seen by clients, among them ids of changes rolled
    /// back after a storage failure: they are never handed out again, after a restart too.
    IdsUsed {
        next_id: TaskId,
    },
    /// A worker reported how the command of the task's running attempt ended; the
    /// outcome itself (`TaskFinished`, `TaskScheduled` or `TaskRequeued`) follows. New
    /// variants go at the end: journal records are bincode, which encodes the index.
    AttemptEnded {
        id: TaskId,
        exit_code: Option<i32>,
        /// When the attempt started (its claim): `at - started_at` is its run time.
        started_at: Millis,
        at: Millis,
    },
}

/// Why a task went back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequeueCause {
    /// It failed with attempts left.
    FailedWithRetry,
    /// `task retry` revived a failed or cancelled task.
    ManualRetry,
    /// Its agent was removed or set offline.
    AgentLost,
    /// It was handed to a claimer that disconnected before receiving it.
    Undelivered,
    /// Its lease ran out, or its agent went silent.
    LeaseExpired,
    /// Its scheduled time came.
    Due,
    /// The last of its dependencies is done.
    DependenciesDone,
    /// Its worker stopped before it ended and gave it back (`vapora work` stopping):
    /// queued at once, the attempt refunded.
    GivenBack,
}

impl RequeueCause {
    /// Whether this puts the task back for another attempt (as opposed to a first run
    /// becoming possible).
    pub fn is_retry(self) -> bool {
        !matches!(self, RequeueCause::Due | RequeueCause::DependenciesDone)
    }

    /// Whether a failure caused it.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RequeueCause::FailedWithRetry | RequeueCause::LeaseExpired
        )
    }
}

/// How much each task counter grows by these changes. A failure that is retried counts as
/// a failure and a requeue.
pub fn counter_deltas<'a>(changes: impl IntoIterator<Item = &'a Change>) -> TaskCounters {
    let mut deltas = TaskCounters::default();
    for change in changes {
        match change {
            Change::TaskAdded { .. } => deltas.enqueued += 1,
            Change::TaskClaimed { .. } => deltas.claimed += 1,
            Change::TaskFinished { status, .. } => match status {
                TaskStatus::Done => deltas.done += 1,
                TaskStatus::Failed => deltas.failed += 1,
                TaskStatus::Cancelled => deltas.cancelled += 1,
                _ => {}
            },
            Change::TaskRequeued { cause, .. } | Change::TaskScheduled { cause, .. } => {
                if cause.is_failure() {
                    deltas.failed += 1;
                }
                if cause.is_retry() {
                    deltas.requeued += 1;
                }
            }
            _ => {}
        }
    }
    deltas
}
