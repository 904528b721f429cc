//! Command-line definitions (clap derive). Also used to generate shell completions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::protocol::{AgentStatus, TaskStatus};

#[derive(Debug, Parser)]
#[command(
    name = "vapora",
    version,
    about = "A local task queue: a daemon that owns tasks and agents, and this client to drive it",
    after_help = "Exit codes: 0 ok, 1 error from the daemon or a failed/cancelled wait, 2 usage, \
                  3 daemon unreachable, 4 not found, 5 nothing to claim or timed out."
)]
pub struct Cli {
    /// Path of the daemon's Unix socket.
    #[arg(long, global = true, env = "VAPORA_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print results as one JSON document.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only the essentials (ids), no messages.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Do not start a daemon when none answers.
    #[arg(long, global = true, env = "VAPORA_NO_AUTOSTART",
          action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub no_autostart: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Deferred: only the subcommand on the command line gets its arguments built. Building the
/// whole tree was 40 % of a one-shot command's instructions (BENCHMARKS.md).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run the daemon in the foreground.
    Daemon(DaemonArgs),
    /// Add, inspect, claim and finish tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Register and manage agents (workers).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Check that the daemon answers; print its version, pid, uptime and socket.
    Ping,
    /// Stop the daemon gracefully.
    Shutdown,
    /// Print daemon metrics.
    Metrics(MetricsArgs),
    /// Stream events (task added, claimed, done, ...) as they happen, one per line, until
    /// interrupted or the daemon stops.
    Events {
        /// Only events about tasks in this queue.
        #[arg(long, value_name = "NAME")]
        queue: Option<String>,
        /// Only events about this agent.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Largest frame accepted, in bytes (4 MiB to the 16 MiB default: a frame must hold
    /// the largest task).
    #[arg(long, value_name = "BYTES", default_value_t = crate::protocol::codec::DEFAULT_MAX_FRAME,
          value_parser = parse_max_frame)]
    pub max_frame: usize,
    /// Permission bits of the socket, in octal. Widen to 660 with --allow-group (and a
    /// socket directory the group can enter).
    #[arg(long, value_name = "MODE", default_value = "600", value_parser = parse_mode)]
    pub socket_mode: u32,
    /// Also accept clients in this group (as primary or supplementary group).
    #[arg(long, value_name = "GROUP")]
    pub allow_group: Option<String>,
    /// Log lines as text or as JSON objects (for log shippers).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Seconds a client has to send its handshake before it is dropped.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_positive_duration)]
    pub handshake_timeout: Duration,
    /// Open connections beyond this are refused ("too many connections").
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Longest task title accepted, in bytes (at most 65536).
    #[arg(long, value_name = "BYTES",
          default_value_t = crate::protocol::limits::MAX_TITLE_BYTES as u32,
          value_parser = clap::value_parser!(u32).range(1..=crate::protocol::limits::TITLE_CEILING as i64))]
    pub max_title: u32,
    /// Longest payload, result or failure reason accepted, in bytes (at most 5 MiB, and
    /// three of them must fit in --max-frame).
    #[arg(long, value_name = "BYTES",
          default_value_t = crate::protocol::limits::MAX_TEXT_BYTES as u32,
          value_parser = clap::value_parser!(u32).range(0..=crate::protocol::limits::TEXT_CEILING as i64))]
    pub max_payload: u32,
    /// Most tasks in one add request (at most 10000).
    #[arg(long, value_name = "N",
          default_value_t = crate::protocol::limits::MAX_BATCH as u32,
          value_parser = clap::value_parser!(u32).range(1..=crate::protocol::limits::BATCH_CEILING as i64))]
    pub max_batch: u32,
    /// Where the database (vapora.db) and the lock file live [default: ~/.local/share/vapora].
    #[arg(long, env = "VAPORA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// normal: an acknowledged change survives the daemon being killed; full: also a power
    /// loss (fsync on every commit).
    #[arg(long, value_name = "MODE", default_value = "normal", value_parser = ["normal", "full"])]
    pub sync: String,
    /// Delete finished tasks this long after they finished.
    #[arg(long, value_name = "DUR", default_value = "7days", value_parser = parse_duration)]
    pub retain: Duration,
    /// How long a claim holds a task without a sign of life from its agent.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_positive_duration)]
    pub lease: Duration,
    /// An agent silent for longer than this goes offline and loses its tasks.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_positive_duration)]
    pub heartbeat_ttl: Duration,
    /// Delay before the first retry of a failed task; doubles per attempt (capped at 1h,
    /// with jitter). 0s retries at once.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub retry_backoff: Duration,
}

/// Deferred: only the subcommand on the command line gets its arguments built. Building the
/// whole tree was 40 % of a one-shot command's instructions (BENCHMARKS.md).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum TaskCommand {
    /// Add a task and print its id; with --stdin, one task per input line.
    Add(AddArgs),
    /// List tasks (in id order).
    List(ListArgs),
    /// Show one task.
    Show {
        id: u64,
        /// Print the raw payload only (for `sh -c "$(vapora task show ID --payload)"`).
        #[arg(long)]
        payload: bool,
    },
    /// Claim the best task an agent may take.
    Claim(ClaimArgs),
    /// Mark a running task done.
    Done {
        id: u64,
        #[arg(long, value_name = "TEXT")]
        result: Option<String>,
        /// Refuse unless this agent runs the task.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
    },
    /// Mark a running task failed; it is queued again while attempts are left.
    Fail {
        id: u64,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Fail for good, even with attempts left.
        #[arg(long)]
        no_retry: bool,
        /// Refuse unless this agent runs the task.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
    },
    /// Cancel a queued or running task.
    Cancel { id: u64 },
    /// Put a failed or cancelled task back in the queue (attempts start over).
    Retry { id: u64 },
    /// Delete finished tasks now; prints how many.
    Prune {
        /// Only those finished longer ago than this [default: the daemon's --retain].
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        older_than: Option<Duration>,
    },
    /// Wait until tasks end: exit 0 if all are done, 1 if any failed or was cancelled, 5 on timeout.
    Wait {
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Give up after this long (e.g. 500ms, 30s, 5m).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The task's title (omit with --stdin).
    #[arg(required_unless_present = "stdin", conflicts_with = "stdin")]
    pub title: Option<String>,
    /// Opaque data for the worker (a command, JSON, a path...).
    #[arg(long, value_name = "TEXT")]
    pub payload: Option<String>,
    /// Higher runs first.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    pub priority: i32,
    #[arg(long, value_name = "NAME", default_value = crate::protocol::types::DEFAULT_QUEUE)]
    pub queue: String,
    /// A capability the claiming agent must have (repeatable).
    #[arg(long = "require", value_name = "CAP")]
    pub requires: Vec<String>,
    #[arg(long, value_name = "N", default_value_t = crate::protocol::types::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
    /// Not claimable until this long from now.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Not claimable before this time (RFC 3339, e.g. 2026-12-01T08:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<std::time::SystemTime>,
    /// Run only after this task is done (repeatable); if it fails or is cancelled, so is
    /// this one.
    #[arg(long, value_name = "ID")]
    pub after: Vec<u64>,
    /// Lease for this task instead of the daemon's --lease.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// Read tasks from standard input, one per line (the line is the title).
    #[arg(long)]
    pub stdin: bool,
    /// With --stdin: each line is a JSON object with title, payload, priority, queue,
    /// requires, max_attempts (missing fields take the flags' values).
    #[arg(long, requires = "stdin")]
    pub jsonl: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks with this status (repeatable).
    #[arg(long, value_name = "STATUS", value_parser = parse_task_status)]
    pub status: Vec<TaskStatus>,
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// At most this many tasks.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Only tasks with an id above ID: with --limit, pages through a list too long for one
    /// answer (the next page starts after the last id printed).
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    #[arg(long, value_name = "NAME")]
    pub agent: String,
    /// Only from this queue (repeatable; default: any queue).
    #[arg(long, value_name = "NAME")]
    pub queue: Vec<String>,
    /// Wait this long for a task to arrive (e.g. 30s).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// First mark this task (which the agent runs) done, in the same request and commit:
    /// "finish, take the next" in one round trip.
    #[arg(long, value_name = "ID")]
    pub done: Option<u64>,
    /// The result of the --done task.
    #[arg(long, value_name = "TEXT", requires = "done")]
    pub result: Option<String>,
}

/// Deferred: only the subcommand on the command line gets its arguments built. Building the
/// whole tree was 40 % of a one-shot command's instructions (BENCHMARKS.md).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum AgentCommand {
    /// Register an agent, or update its capabilities and limit.
    Register {
        name: String,
        /// A capability it has (repeatable).
        #[arg(long = "capability", value_name = "CAP")]
        capabilities: Vec<String>,
        /// How many tasks it may run at once.
        #[arg(long, value_name = "N", default_value_t = 1)]
        max_tasks: u32,
    },
    /// List agents.
    List {
        #[arg(long, value_name = "STATUS", value_parser = parse_agent_status)]
        status: Vec<AgentStatus>,
    },
    /// Show one agent.
    Show { name: String },
    /// Set an agent's status; idle or busy resume it, paused stops claims, offline also
    /// requeues its tasks.
    Status {
        name: String,
        #[arg(value_parser = parse_agent_status)]
        status: AgentStatus,
    },
    /// Record that an agent is alive.
    Heartbeat { name: String },
    /// Remove an agent; its running tasks go back to the queue.
    Remove { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MetricsFormat {
    Text,
    Json,
    Prometheus,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[arg(long, value_enum, default_value_t = MetricsFormat::Text)]
    pub format: MetricsFormat,
}

/// Parses durations like `500ms`, `5s`, `2m`, `1h`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration '{text}' ({e}); use e.g. 500ms, 5s, 2m, 1h"))
}

fn parse_max_frame(text: &str) -> Result<usize, String> {
    use crate::protocol::codec::{DEFAULT_MAX_FRAME as max, MIN_MAX_FRAME};
    match text.parse::<usize>() {
        Ok(n) if (MIN_MAX_FRAME..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of bytes from {MIN_MAX_FRAME} to {max}"
        )),
    }
}

fn parse_mode(text: &str) -> Result<u32, String> {
    match u32::from_str_radix(text, 8) {
        Ok(mode) if mode <= 0o777 && mode & 0o600 == 0o600 => Ok(mode),
        _ => Err(format!(
            "'{text}' is not a socket mode: octal, at most 777, and the owner needs 6 (e.g. 600, 660)"
        )),
    }
}

/// A duration above zero and at most a year (a daemon's timing setting).
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() || duration > Duration::from_secs(365 * 24 * 3600) {
        return Err(format!("'{text}' must be above zero and at most a year"));
    }
    Ok(duration)
}

fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("invalid time '{text}' ({e}); use RFC 3339, e.g. 2026-12-01T08:00:00Z")
    })
}

fn parse_task_status(text: &str) -> Result<TaskStatus, String> {
    text.parse()
}

fn parse_agent_status(text: &str) -> Result<AgentStatus, String> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
    }
}
