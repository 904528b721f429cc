//! The nouns of vapora: tasks, agents and their statuses, as both sides see them.
//!
//! Times travel as milliseconds since the Unix epoch; the client formats them. Statuses are
//! plain enums so that an unknown word on the command line is refused by the parser.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A task's identity: assigned by the daemon, increasing, never reused.
pub type TaskId = u64;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The current wall-clock time in [`Millis`].
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Where a task is in its life. `Done`, `Failed` and `Cancelled` are final until a
/// `retry` brings a failed or cancelled task back. `Scheduled` waits for a time (a delay or
/// a retry backoff), `Blocked` for its dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
    Scheduled,
    Blocked,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Scheduled,
        TaskStatus::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::Blocked => "blocked",
        }
    }

    /// Whether the task has ended (what `task wait` waits for).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// Position in [`TaskStatus::ALL`], for per-status counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task status '{s}' (expected queued, running, done, failed, \
                     cancelled, scheduled or blocked)"
                )
            })
    }
}

/// Where a task stands, as `task wait` reports it: its status, not its texts (a wait may
/// name 10,000 tasks; copying their payloads and results made one wait cost gigabytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub id: TaskId,
    pub status: TaskStatus,
    pub attempts: u32,
}

/// One unit of work, as stored by the daemon and shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub title: String,
    /// Opaque to vapora: whatever the worker needs (a command line, JSON, a path).
    pub payload: String,
    pub queue: String,
    /// Higher runs first; FIFO within one priority.
    pub priority: i32,
    pub status: TaskStatus,
    /// Capabilities an agent must have to claim this task; sorted and without duplicates.
    pub requires: Vec<String>,
    /// The agent running the task, or the last one that ran it.
    pub agent: Option<String>,
    /// How many times the task has been claimed since it was added (or last retried).
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub result: Option<String>,
    pub error: Option<String>,
    /// When a scheduled task becomes queued (a delay, or a retry's backoff).
    pub run_at: Option<Millis>,
    /// When a running task's lease runs out, unless its agent shows signs of life.
    pub lease_until: Option<Millis>,
    /// The task's own lease length, if it overrides the daemon's.
    pub lease_ms: Option<u64>,
    /// Tasks that must be done before this one runs.
    pub after: Vec<TaskId>,
    /// The working directory a worker runs the payload in (an absolute path), if set.
    pub cwd: Option<String>,
    /// Variables a worker sets for the payload, in order; names are unique.
    pub env: Vec<(String, String)>,
    /// How long one attempt may run before a worker stops it, if the task sets it.
    pub timeout_ms: Option<u64>,
    /// When the latest attempt started (the claim), if the task was ever claimed.
    pub started_at: Option<Millis>,
    /// When the latest attempt ended (an outcome, a cancel, a lost lease), once it has.
    pub ended_at: Option<Millis>,
    /// How the latest attempt's command ended, as its worker reported it: the exit code,
    /// 128 + N when killed by signal N, 124 when stopped for its timeout (the shell's and
    /// `timeout(1)`'s conventions, and `vapora run`'s exit status). `None` while it runs,
    /// and when the worker does not run commands or did not say.
    pub exit_code: Option<i32>,
}

/// What a client sends to create a task. Defaults match the CLI's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    pub title: String,
    pub payload: String,
    pub priority: i32,
    pub queue: String,
    pub requires: Vec<String>,
    pub max_attempts: u32,
    /// Not claimable before this time.
    pub run_at: Option<Millis>,
    /// Lease length for this task instead of the daemon's default.
    pub lease_ms: Option<u64>,
    /// Tasks that must be done first.
    pub after: Vec<TaskId>,
    /// The working directory to run in: absolute (the client makes it so).
    pub cwd: Option<String>,
    /// Variables to set (`KEY`, `VALUE`), in order; names are unique.
    pub env: Vec<(String, String)>,
    /// How long one attempt may run.
    pub timeout_ms: Option<u64>,
}

/// The queue a task goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";
/// How many claims a task gets before a failure is final, when none is named.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

impl NewTask {
    pub fn new(title: impl Into<String>) -> NewTask {
        NewTask {
            title: title.into(),
            payload: String::new(),
            priority: 0,
            queue: DEFAULT_QUEUE.to_string(),
            requires: Vec::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_at: None,
            lease_ms: None,
            after: Vec::new(),
            cwd: None,
            env: Vec::new(),
            timeout_ms: None,
        }
    }
}

/// An agent's status as shown to users. `Idle` and `Busy` are derived by the daemon from
/// whether the agent holds tasks; `Paused` and `Offline` are set by hand and stop claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AgentStatus {
    Idle,
    Busy,
    Paused,
    Offline,
}

impl AgentStatus {
    pub const ALL: [AgentStatus; 4] = [
        AgentStatus::Idle,
        AgentStatus::Busy,
        AgentStatus::Paused,
        AgentStatus::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Idle => "idle",
            AgentStatus::Busy => "busy",
            AgentStatus::Paused => "paused",
            AgentStatus::Offline => "offline",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AgentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!("unknown agent status '{s}' (expected idle, busy, paused or offline)")
            })
    }
}

/// A registered worker, as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub name: String,
    pub status: AgentStatus,
    /// Sorted, without duplicates.
    pub capabilities: Vec<String>,
    /// How many tasks the agent may run at once.
    pub max_tasks: u32,
    /// How many tasks it runs now.
    pub running: u32,
    pub registered_at: Millis,
    pub last_heartbeat: Millis,
}

/// What `ping` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub protocol: u32,
    pub pid: u32,
    pub uptime_ms: u64,
    pub socket: String,
    /// What this daemon accepts (`--max-title`, `--max-payload`, `--max-batch`).
    pub limits: super::limits::Limits,
    /// The user the daemon runs as.
    pub uid: u32,
    /// Whether users other than the daemon's own (and root) may connect: a socket mode
    /// open to group or others, or `--allow-group`. A worker running as root refuses such
    /// a daemon: whoever may add tasks may run commands as the worker's user.
    pub admits_others: bool,
}

/// One thing that happened, as streamed by `vapora events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Millis,
    /// What happened: `task_added`, `task_claimed`, `task_done`, `task_failed`,
    /// `task_requeued`, `task_cancelled`, `task_scheduled`, `lease_expired`,
    /// `agent_registered`, `agent_status_changed`, `agent_removed`, or `lagged` (this
    /// subscriber fell behind and `dropped` events were skipped).
    pub kind: String,
    pub task: Option<TaskId>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    /// The task's or agent's status after the event.
    pub status: Option<String>,
    /// A reason, a result, a time: whatever explains the event.
    pub detail: Option<String>,
    pub dropped: u64,
}
