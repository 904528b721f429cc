//! Command-line definitions (clap derive). Also used to generate shell completions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::protocol::{AgentStatus, TaskStatus};

/// The heading of the options every client command takes, apart from its own.
const GLOBAL: &str = "Global options";

#[derive(Debug, Parser)]
#[command(
    name = "vapora",
    version,
    about = "A local task queue: a daemon that owns tasks and agents, and this client to drive it",
    after_help = "Exit codes: 0 ok, 1 error from the daemon or a failed/cancelled wait, 2 usage, \
                  3 daemon unreachable (or not the expected user's), 4 not found, 5 nothing to \
                  claim or timed out, 6 agent at its limit."
)]
pub struct Cli {
    /// Path of the daemon's Unix socket, for the daemon and the client alike
    /// [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock].
    // The environment variables are read by `Cli::socket()` and friends, not by clap: clap
    // counts a value from the environment as typed, and showed `--socket <PATH>` in every
    // usage line whenever VAPORA_SOCKET was set.
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    socket: Option<PathBuf>,
    /// Print results as one JSON document (an object for one item, an array for lists).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// No messages on stderr (errors still show); where a command prints ids or names,
    /// only those; `ping` and `task wait` print nothing (their exit code answers).
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Only talk to a daemon running as this user (a uid or a user name); checked before
    /// anything is sent. The default per-user socket always requires your own uid; an
    /// explicit --socket is trusted as given unless this pins who must answer
    /// [env: VAPORA_EXPECT_UID].
    #[arg(long, global = true, value_name = "UID|USER", help_heading = GLOBAL)]
    expect_uid: Option<String>,
    /// Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1].
    #[arg(long, global = true, help_heading = GLOBAL)]
    no_autostart: bool,
    /// Reach the daemon on another host through OpenSSH:
    /// ssh://[USER@]HOST[:PORT][/REMOTE/SOCKET] runs `vapora proxy` there (VAPORA_SSH
    /// replaces the ssh command); never starts a daemon there [env: VAPORA_HOST].
    #[arg(long, global = true, value_name = "ssh://HOST", help_heading = GLOBAL)]
    host: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `--socket`, else `VAPORA_SOCKET`; `None` for the default socket.
    pub fn socket(&self) -> Option<PathBuf> {
        self.socket
            .clone()
            .or_else(|| env_value(crate::paths::SOCKET_ENV).map(PathBuf::from))
    }

    /// `--host`, else `VAPORA_HOST`; `None` for a daemon on this host.
    pub fn host(&self) -> Option<String> {
        self.host
            .clone()
            .or_else(|| env_value("VAPORA_HOST").and_then(|v| v.into_string().ok()))
    }

    /// Whether `--socket` itself was given (not `VAPORA_SOCKET`).
    pub fn socket_flag_given(&self) -> bool {
        self.socket.is_some()
    }

    /// `--expect-uid`, else `VAPORA_EXPECT_UID`.
    pub fn expect_uid(&self) -> Option<String> {
        self.expect_uid
            .clone()
            .or_else(|| env_value("VAPORA_EXPECT_UID").and_then(|v| v.into_string().ok()))
    }

    /// `--no-autostart`, or `VAPORA_NO_AUTOSTART` set to anything but a false-like value
    /// (`0`, `false`, `no`, `off`, `n`, `f`).
    pub fn no_autostart(&self) -> bool {
        self.no_autostart
            || env_value("VAPORA_NO_AUTOSTART").is_some_and(|value| {
                let value = value.to_string_lossy().to_ascii_lowercase();
                !matches!(value.as_str(), "0" | "false" | "no" | "off" | "n" | "f")
            })
    }
}

impl Cli {
    /// A client option given on the command line of `vapora daemon`, which has no use
    /// for it.
    pub fn client_option(&self) -> Option<&'static str> {
        [
            (self.json, "--json"),
            (self.quiet, "--quiet"),
            (self.expect_uid.is_some(), "--expect-uid"),
            (self.no_autostart, "--no-autostart"),
            (self.host.is_some(), "--host"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

/// An environment variable's value; unset and empty are the same.
fn env_value(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
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
    ///
    /// With -q nothing is printed: the exit code says whether the daemon answers (0) or
    /// not (3).
    Ping,
    /// Stop the daemon gracefully; returns once its socket is gone.
    ///
    /// Exit 3 if no daemon is running there (nothing to stop).
    Shutdown,
    /// Print daemon metrics.
    Metrics(MetricsArgs),
    /// Stream events (task added, claimed, done, ...) as they happen, one per line.
    ///
    /// Runs until interrupted or the daemon stops; --json: JSON Lines.
    Events {
        /// Only events about tasks in this queue.
        #[arg(long, value_name = "NAME")]
        queue: Option<String>,
        /// Only events about this agent.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
    },
    /// Watch the daemon live, full screen: tasks per queue and status, throughput, agents,
    /// running tasks and the latest events.
    ///
    /// Keys: q, Esc or Ctrl-C quit; arrows or j/k select a running task (Tab: an agent);
    /// Enter shows the task with the tail of its output; c cancels it (after y/n); p
    /// pauses or resumes the selected agent (or the selected task's). Needs a terminal;
    /// never starts a daemon, and waits for one that stops to come back.
    Top,
    /// Run tasks: claim them as an agent and run each payload with `sh -c`, reporting
    /// done (exit 0, the result being the last line printed) or failed (`exit N`,
    /// `killed by signal TERM`, `timed out after 30s`). SIGTERM/SIGINT: claim nothing more
    /// and exit once the running tasks end; a second signal stops them (they go back to
    /// the queue).
    Work(WorkArgs),
    /// Add a task and follow it: its output as a worker runs it, then the command's own
    /// exit status (`vapora run -- make test`). Takes `task add`'s flags; says on stderr
    /// when no worker is running to take it.
    Run(AddArgs),
    /// Copy the client protocol between standard input/output and this host's daemon
    /// socket, until either side closes: what `--host ssh://...` runs on the daemon's host.
    /// Never starts a daemon (exit 3 when none answers); the daemon admits or refuses the
    /// user running it as any local client.
    Proxy,
    /// Print a shell completion script.
    Completions {
        /// The shell to write it for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

// The client's global options stay out of `vapora daemon --help` (they are there when
// `mut_arg` runs: the daemon's arguments are built after its parent copied its global
// options in); `Cli::client_option` refuses them.
#[derive(Debug, Args)]
#[command(
    mut_arg("json", |arg| arg.hide(true)),
    mut_arg("quiet", |arg| arg.hide(true)),
    mut_arg("expect_uid", |arg| arg.hide(true)),
    mut_arg("no_autostart", |arg| arg.hide(true))
)]
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
    /// How long a client has to send its handshake before it is dropped (a duration, e.g.
    /// 500ms, 5s).
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_positive_duration)]
    pub handshake_timeout: Duration,
    /// Open connections beyond this are refused ("too many connections").
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = parse_max_connections)]
    pub max_connections: usize,
    /// Longest task title accepted, in bytes (at most 65536).
    #[arg(long, value_name = "BYTES",
          default_value_t = crate::protocol::limits::MAX_TITLE_BYTES as u32,
          value_parser = parse_max_title)]
    pub max_title: u32,
    /// Longest payload, result or failure reason accepted, in bytes (at most 5 MiB, and
    /// three of them must fit in --max-frame).
    #[arg(long, value_name = "BYTES",
          default_value_t = crate::protocol::limits::MAX_TEXT_BYTES as u32,
          value_parser = parse_max_payload)]
    pub max_payload: u32,
    /// Most tasks in one add request (at most 10000).
    #[arg(long, value_name = "N",
          default_value_t = crate::protocol::limits::MAX_BATCH as u32,
          value_parser = parse_max_batch)]
    pub max_batch: u32,
    /// Where the database (vapora.db) and the lock file live [env: VAPORA_DATA_DIR]
    /// [default: ~/.local/share/vapora].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// normal: an acknowledged change survives the daemon being killed; full: also a power
    /// loss (fsync on every commit).
    #[arg(long, value_name = "MODE", default_value = "normal", value_parser = ["normal", "full"])]
    pub sync: String,
    /// Delete finished tasks this long after they finished (a duration, e.g. 12h, 7days).
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
    /// Most bytes of output kept per task (in DATA_DIR/logs); beyond it the oldest output is
    /// dropped, with a marker line saying how much.
    #[arg(long, value_name = "BYTES",
          default_value_t = crate::protocol::limits::DEFAULT_MAX_LOG,
          value_parser = parse_max_log)]
    pub max_log: u64,
    /// Also serve Prometheus metrics over HTTP at http://ADDR:PORT/metrics (off by default;
    /// port 0 picks a free port, logged at start). A loopback address unless
    /// --metrics-listen-any.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_metrics_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// Let --metrics-listen take an address other hosts can reach: whoever reaches the port
    /// reads the metrics, with no authentication (queue and agent activity; SECURITY.md).
    #[arg(long, requires = "metrics_listen")]
    pub metrics_listen_any: bool,
}

impl DaemonArgs {
    /// `--data-dir`, else `VAPORA_DATA_DIR`.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.data_dir
            .clone()
            .or_else(|| env_value("VAPORA_DATA_DIR").map(PathBuf::from))
    }
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
        /// The task's id.
        #[arg(value_parser = parse_task_id)]
        id: u64,
        /// Print the raw payload only (for `sh -c "$(vapora task show ID --payload)"`).
        #[arg(long)]
        payload: bool,
    },
    /// Claim the best task an agent may take.
    ///
    /// Prints the task (-q: its id; --json: the object). Exit 5 when nothing is claimed:
    /// no queued task it may take, or the agent is paused or offline (stderr says which;
    /// --json prints null). Exit 6 when the agent already runs --max-tasks tasks.
    Claim(ClaimArgs),
    /// Mark a running task done.
    Done {
        /// The running task's id.
        #[arg(value_parser = parse_task_id)]
        id: u64,
        /// What came of it (kept with the task, shown by `task show`).
        #[arg(long, value_name = "TEXT")]
        result: Option<String>,
        /// Refuse unless this agent runs the task.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
    },
    /// Mark a running task failed: retried later while attempts are left, else failed.
    ///
    /// running → scheduled: with attempts left (and no --no-retry), for a retry after a
    /// backoff (straight to queued if the daemon runs with --retry-backoff 0s).
    ///
    /// running → failed: without attempts left, or with --no-retry; the tasks waiting on it
    /// (--after) are then cancelled.
    Fail {
        /// The running task's id.
        #[arg(value_parser = parse_task_id)]
        id: u64,
        /// Why it failed (kept as the task's error).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Fail for good, even with attempts left.
        #[arg(long)]
        no_retry: bool,
        /// Refuse unless this agent runs the task.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
    },
    /// Cancel a queued, scheduled, blocked or running task, and the tasks waiting on it.
    ///
    /// queued, scheduled, blocked or running → cancelled; so are the tasks waiting on it
    /// (--after), and theirs, in turn (they are named). A done, failed or cancelled task
    /// cannot be cancelled. A worker running it learns at its next heartbeat naming it.
    Cancel {
        /// The task's id.
        #[arg(value_parser = parse_task_id)]
        id: u64,
    },
    /// Put a failed or cancelled task back in the queue now.
    ///
    /// failed or cancelled → queued: attempts, result and error start over; its delay and
    /// dependencies no longer apply.
    Retry {
        /// The task's id.
        #[arg(value_parser = parse_task_id)]
        id: u64,
    },
    /// Delete finished tasks now; prints how many.
    Prune {
        /// Only those finished longer ago than this (a duration, e.g. 1h, 2days) [default:
        /// the daemon's --retain].
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        older_than: Option<Duration>,
    },
    /// Print a task's output (stdout and stderr together, as its worker ran it).
    ///
    /// The latest attempt's by default. With --follow, prints new output as it arrives
    /// and ends when the task ends: exit 0 if it is done, 1 if it failed or was cancelled
    /// (as `task wait`).
    Logs {
        /// The task's id.
        #[arg(value_parser = parse_task_id)]
        id: u64,
        /// Go on printing output as it arrives, until the task ends.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (then, with --follow, what comes next).
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
        /// The output of this attempt (1 is the first run) instead of the latest.
        #[arg(long, value_name = "K", value_parser = parse_attempt)]
        attempt: Option<u32>,
    },
    /// Wait until tasks end: exit 0 if all are done, 1 if any failed or was cancelled, 5 on
    /// timeout.
    ///
    /// Prints one line per task, `ID STATUS` (each id once, in the order first named;
    /// --json: {"id", "status", "attempts"}, an array for several). On timeout the tasks not
    /// ended are named on stderr (the first 20, then how many more). At most 10000 ids. The
    /// daemon wakes the client when they end; nothing polls.
    Wait {
        /// The tasks to wait for (1 to 10000 ids).
        #[arg(required = true, value_name = "ID", value_parser = parse_task_id)]
        ids: Vec<u64>,
        /// Give up after this long (a duration, e.g. 500ms, 30s, 5m).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The task's title (omit with --stdin: each input line is one; with a command, the
    /// command line by default).
    #[arg(
        required_unless_present_any = ["stdin", "jsonl", "command"],
        conflicts_with_all = ["stdin", "jsonl"]
    )]
    pub title: Option<String>,
    /// Opaque data for the worker (a command, JSON, a path...).
    #[arg(long, value_name = "TEXT")]
    pub payload: Option<String>,
    /// The payload is this file's content, exactly (`-`: standard input, when not
    /// combined with --stdin); for payloads too long for the command line.
    #[arg(long, value_name = "PATH", conflicts_with = "payload")]
    pub payload_file: Option<std::path::PathBuf>,
    /// Higher runs first (a whole number, may be negative).
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        default_value_t = 0,
        value_parser = parse_priority
    )]
    pub priority: i32,
    /// The queue it goes to (1 to 64 of A-Z a-z 0-9 . _ -).
    #[arg(long, value_name = "NAME", default_value = crate::protocol::types::DEFAULT_QUEUE)]
    pub queue: String,
    /// A capability the claiming agent must have (repeatable).
    #[arg(long = "require", value_name = "CAP")]
    pub requires: Vec<String>,
    /// How many claims it gets before it fails for good.
    #[arg(long, value_name = "N", default_value_t = crate::protocol::types::DEFAULT_MAX_ATTEMPTS,
          value_parser = parse_max_attempts)]
    pub max_attempts: u32,
    /// Not claimable until this long from now (a duration, e.g. 30s, 5m, 1h30m).
    #[arg(long, value_name = "DUR", value_parser = parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Not claimable before this time (RFC 3339, e.g. 2026-12-01T08:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<std::time::SystemTime>,
    /// Run only after this task is done (repeatable); if it fails or is cancelled, so is
    /// this one.
    #[arg(long, value_name = "ID", value_parser = parse_task_id)]
    pub after: Vec<u64>,
    /// Lease for this task instead of the daemon's --lease (a duration, e.g. 30m).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// The directory the task runs in (made absolute; default, for a task with a payload:
    /// the current directory).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<std::path::PathBuf>,
    /// A variable to set when the task runs (repeatable); the caller's environment is not
    /// passed on.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// How long one attempt may run before the worker stops it.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Read tasks from standard input, one per line (the line is the title).
    #[arg(long)]
    pub stdin: bool,
    /// With --stdin: each line is a JSON object with "title" (required) and optionally
    /// "payload" (text), "priority" (whole number), "queue" (name), "requires" (array of
    /// capabilities), "max_attempts" (whole number), "after" (array of task ids), "cwd"
    /// (directory), "env" ({"KEY": "VALUE"}, replacing --env), "timeout_ms" (whole
    /// number). Missing fields take the flags' values; blank lines are skipped.
    #[arg(long)]
    pub jsonl: bool,
    /// After `--`: the command to run, one word per argument; the payload becomes it,
    /// quoted for sh, and the title defaults to it.
    #[arg(
        last = true,
        value_name = "CMD",
        conflicts_with_all = ["payload", "payload_file", "stdin"]
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks with this status (repeatable).
    #[arg(long, value_name = "STATUS", value_parser = task_status_parser())]
    pub status: Vec<TaskStatus>,
    /// Only tasks in this queue.
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,
    /// Only tasks this agent holds or last held.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// At most this many tasks.
    #[arg(long, value_name = "N", value_parser = parse_limit)]
    pub limit: Option<u32>,
    /// Only tasks with an id above ID: with --limit, pages through a list too long for one
    /// answer (the next page starts after the last id printed).
    #[arg(long, value_name = "ID", value_parser = parse_task_id)]
    pub after: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// The agent that claims (registered with `vapora agent register`).
    #[arg(long, value_name = "NAME")]
    pub agent: String,
    /// Only from this queue (repeatable; default: any queue).
    #[arg(long, value_name = "NAME")]
    pub queue: Vec<String>,
    /// Wait this long for a task to arrive (a duration, e.g. 30s).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// First mark this task (which the agent runs) done, in the same request and commit:
    /// "finish, take the next" in one round trip.
    #[arg(long, value_name = "ID", value_parser = parse_task_id)]
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
        /// The agent's name (1 to 64 of A-Z a-z 0-9 . _ -).
        name: String,
        /// A capability it has (repeatable).
        #[arg(long = "capability", value_name = "CAP")]
        capabilities: Vec<String>,
        /// How many tasks it may run at once.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_max_tasks)]
        max_tasks: u32,
    },
    /// List agents.
    List {
        /// Only agents with this status (repeatable).
        #[arg(long, value_name = "STATUS", value_parser = agent_status_parser(false))]
        status: Vec<AgentStatus>,
    },
    /// Show one agent.
    Show {
        /// The agent's name.
        name: String,
    },
    /// Pause an agent, take it offline, or resume it.
    ///
    /// Whether an active agent shows as idle or busy follows the tasks it runs (busy while
    /// it runs one), so busy cannot be set; idle resumes a paused or offline agent.
    Status {
        /// The agent's name.
        name: String,
        /// paused: it claims nothing more (running tasks carry on); offline: also puts its
        /// running tasks back in the queue; idle: resumes it.
        #[arg(value_name = "STATUS", value_parser = agent_status_parser(true))]
        status: AgentStatus,
    },
    /// Record that an agent is alive and renew leases: of every task it holds, or with
    /// --task of those only (a worker that says what it runs lets a task whose claim answer
    /// was lost come back).
    Heartbeat {
        /// The agent's name.
        name: String,
        /// A task this worker runs (repeatable): only these leases are renewed. A named task
        /// the agent does not hold (any more) is reported, and the exit code is 1.
        #[arg(long = "task", value_name = "ID", value_parser = parse_task_id)]
        tasks: Vec<u64>,
        /// This process alone runs the agent's tasks: every task the agent holds that no
        /// --task names goes back to the queue now (without --task: every task it holds).
        #[arg(long)]
        release_others: bool,
        /// Go on: heartbeat again every DUR until killed, riding over daemon restarts. One
        /// process with no children, so `kill` leaves nothing behind. Exits 1 as soon as a
        /// named task is no longer the agent's.
        #[arg(long, value_name = "DUR", value_parser = parse_positive_duration,
              conflicts_with = "release_others")]
        every: Option<Duration>,
    },
    /// Remove an agent; its running tasks go back to the queue.
    Remove {
        /// The agent's name.
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct WorkArgs {
    /// The agent's name (default: the host name). The worker owns it: tasks the agent held
    /// from an earlier run go back to the queue when it starts.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Tasks run at once (the agent's --max-tasks).
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    pub jobs: u32,
    /// Only claim from this queue (repeatable; default: any).
    #[arg(long = "queue", value_name = "NAME")]
    pub queues: Vec<String>,
    /// A capability the agent has (repeatable): tasks that --require it can be claimed.
    #[arg(long = "capability", value_name = "CAP")]
    pub capabilities: Vec<String>,
    /// Stop a task that runs longer than this (SIGTERM, SIGKILL after the grace) and fail
    /// it as `timed out`.
    #[arg(long, value_name = "DUR", value_parser = parse_positive_duration)]
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when a task is stopped (default 10s); if given, also
    /// how long the worker waits for running tasks after a first SIGTERM/SIGINT before it
    /// stops them.
    #[arg(long, value_name = "DUR", value_parser = parse_positive_duration)]
    pub grace: Option<Duration>,
    /// Exit 0 once nothing is claimable and nothing runs (batch use, like xargs).
    #[arg(long)]
    pub exit_when_empty: bool,
    /// Run as root even for a daemon that other users may reach or that runs as another
    /// user (whoever may add tasks then runs commands as root).
    #[arg(long)]
    pub allow_root: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsFormat {
    Text,
    Json,
    Prometheus,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Output format [default: text; --json is --format json].
    #[arg(long, value_enum)]
    pub format: Option<MetricsFormat>,
}

/// Parses durations like `500ms`, `5s`, `2m`, `1h`, `1h30m`. The message says what is
/// expected in the user's words (clap puts the value and the option before it).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a number and a unit, e.g. 500ms, 30s, 5m, 1h30m, 2days";
    humantime::parse_duration(text).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, .. } => {
            format!("'{unit}' is not a unit of time; {EXPECTED}")
        }
        humantime::DurationError::NumberOverflow => "that is too long a time".to_string(),
        _ => EXPECTED.to_string(),
    })
}

/// A whole number from `min` to `max`; anything else is refused in those words.
fn whole_number(text: &str, min: i128, max: i128, hint: &str) -> Result<i128, String> {
    match text.parse::<i128>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}{hint}")),
    }
}

fn parse_priority(text: &str) -> Result<i32, String> {
    let n = whole_number(
        text,
        i32::MIN.into(),
        i32::MAX.into(),
        " (higher runs first)",
    )?;
    i32::try_from(n).map_err(|e| e.to_string())
}

fn parse_task_id(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(id) => Ok(id),
        Err(_) => Err("expected a task id, a whole number like 42".to_string()),
    }
}

fn parse_u32_in(text: &str, min: u32, max: u32) -> Result<u32, String> {
    let n = whole_number(text, min.into(), max.into(), "")?;
    u32::try_from(n).map_err(|e| e.to_string())
}

fn parse_max_attempts(text: &str) -> Result<u32, String> {
    parse_u32_in(text, 1, crate::protocol::limits::MAX_ATTEMPTS_LIMIT)
}

fn parse_max_tasks(text: &str) -> Result<u32, String> {
    parse_u32_in(text, 1, crate::protocol::limits::MAX_TASKS_LIMIT)
}

fn parse_limit(text: &str) -> Result<u32, String> {
    parse_u32_in(text, 0, u32::MAX)
}

fn parse_max_title(text: &str) -> Result<u32, String> {
    parse_u32_in(text, 1, crate::protocol::limits::TITLE_CEILING as u32)
}

fn parse_max_payload(text: &str) -> Result<u32, String> {
    parse_u32_in(text, 0, crate::protocol::limits::TEXT_CEILING as u32)
}

fn parse_attempt(text: &str) -> Result<u32, String> {
    parse_u32_in(text, 1, u32::MAX)
}

/// At least 4 KiB: room for a marker line and some output.
fn parse_max_log(text: &str) -> Result<u64, String> {
    let bytes: u64 = text
        .parse()
        .map_err(|_| format!("not a number of bytes: {text:?}"))?;
    if bytes < 4096 {
        return Err(format!(
            "--max-log must be at least 4096 bytes, not {bytes}"
        ));
    }
    Ok(bytes)
}

fn parse_max_batch(text: &str) -> Result<u32, String> {
    parse_u32_in(text, 1, crate::protocol::limits::BATCH_CEILING as u32)
}

fn parse_max_connections(text: &str) -> Result<usize, String> {
    parse_u32_in(text, 1, u32::MAX).map(|n| n as usize)
}

/// `KEY=VALUE` (the value may be empty or hold `=`); the name is checked with the task.
fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) => Ok((key.to_string(), value.to_string())),
        None => Err(format!("'{text}' is not KEY=VALUE")),
    }
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

/// `IP:PORT` (`127.0.0.1:9187`, `[::1]:9187`): an address, not a host name, so what is
/// bound is exactly what was typed.
fn parse_metrics_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("'{text}' is not IP:PORT (e.g. 127.0.0.1:9187, or [::1]:9187 for IPv6)")
    })
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

/// An RFC 3339 time with its zone (`Z` or an offset, as `date -Iseconds` prints).
fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    crate::protocol::rfc3339::parse(text)
        .map(|ms| std::time::UNIX_EPOCH + Duration::from_millis(ms))
        .map_err(|reason| {
            format!(
                "{reason}; use RFC 3339, e.g. 2030-01-01T08:00:00Z or \
                 2030-01-01T09:00:00+01:00"
            )
        })
}

/// Task statuses, listed in `--help` and refused with the list.
fn task_status_parser() -> impl clap::builder::TypedValueParser<Value = TaskStatus> {
    let names = TaskStatus::ALL.map(TaskStatus::as_str);
    PossibleValuesParser::new(names).try_map(|text| text.parse::<TaskStatus>())
}

/// Agent statuses. For `agent status` (`settable`), busy is refused with the reason (the
/// daemon derives idle and busy from the tasks an agent runs) and left out of the list.
fn agent_status_parser(
    settable: bool,
) -> impl clap::builder::TypedValueParser<Value = AgentStatus> {
    let values = AgentStatus::ALL.map(|status| {
        let value = PossibleValue::new(status.as_str());
        value.hide(settable && status == AgentStatus::Busy)
    });
    PossibleValuesParser::new(values).try_map(move |text| {
        let status = text.parse::<AgentStatus>()?;
        if settable && status == AgentStatus::Busy {
            return Err(
                "busy cannot be set: an agent shows as busy while it runs a task and idle \
                 when it runs none; use idle to resume a paused or offline agent"
                    .to_string(),
            );
        }
        Ok(status)
    })
}

/// For an unknown first word that is a `task` or `agent` command (`vapora add`): the
/// commands meant, e.g. `task add`.
pub fn meant_subcommands(word: &str) -> Vec<String> {
    let mut meant = Vec::new();
    if TaskCommand::has_subcommand(word) {
        meant.push(format!("task {word}"));
    }
    if AgentCommand::has_subcommand(word) {
        meant.push(format!("agent {word}"));
    }
    meant
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
