//! `vapora work`: a worker that claims tasks and runs their payloads.
//!
//! One loop owns the worker's state and reacts to messages from small threads:
//! - the claimer, on a connection of its own, makes one parked claim at a time when the
//!   loop asks for one (so waiting for work costs nothing);
//! - per running task, a thread reads its output and one waits for its shell's exit
//!   ([`process::run_to_end`]);
//! - a ticker, once a second: the heartbeat naming exactly the tasks being run (a named
//!   task no longer the agent's, cancelled for example, is stopped), timeouts, the grace
//!   after a stop, and outcomes that could not be reported yet;
//! - the signal thread: SIGTERM/SIGINT.
//!
//! Outcomes are reported on the loop's own connection. While no daemon answers (a
//! restart), running tasks carry on and their outcomes wait in order, to be reported once
//! it answers again.
//!
//! - [`process`]: starting and stopping a task's processes, and the guard that kills them
//!   if the worker dies; [`outcome`]: what an exit means; [`signals`](super::signals):
//!   SIGTERM/SIGINT;
//!   [`pool`]: the reused threads that read each task's output and wait for its shell.

pub(crate) mod outcome;
mod output;
mod pool;
mod process;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod spawn;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outcome::{LastLine, Outcome, Stopped};
use process::Guard;

use super::Session;
use super::cli::WorkArgs;
use super::connection::Client;
use super::exit::{AT_LIMIT, CliError, EMPTY, FAILURE, OK, UNREACHABLE};
use super::output as say;
use super::signals;
use crate::protocol::{DoneFirst, Renew, Request, Response, RunEnd, Task, TaskId, TaskStatus};

/// How long a parked claim waits before it is asked again.
const CLAIM_WAIT_MS: u64 = 30_000;
/// How long the worker waits for the daemon to answer a request (beyond a claim's own
/// wait). A daemon that hangs (stopped with SIGSTOP, stuck on a disk) must not freeze the
/// worker: its timeouts, cancels and signals are served meanwhile, and the call is made
/// again on a new connection, as after a restart.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The heartbeat and the checks of timeouts and graces.
const TICK: Duration = Duration::from_secs(1);
/// How long the worker waits before claiming again after a claim failed.
const CLAIM_BACKOFF: Duration = Duration::from_secs(2);
/// Between SIGTERM and SIGKILL when the worker stops a task.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Outcomes kept while no daemon answers; beyond this the oldest are reported lost.
const MAX_PENDING_REPORTS: usize = 10_000;

/// A message for the worker's loop.
enum Event {
    Claimed(Box<Task>),
    /// A claim ended with nothing to claim.
    NothingClaimed,
    /// The agent holds as many tasks as it may run, although this worker runs fewer: an
    /// answer was lost (the daemon or the worker restarted).
    AtLimit,
    /// The agent is paused or offline.
    Unavailable(crate::protocol::AgentStatus),
    ClaimFailed(CliError),
    Exited {
        id: TaskId,
        attempt: u32,
        status: ExitStatus,
        last_line: Option<String>,
    },
    Signal,
    Tick,
}

/// Why the worker is stopping a task's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The task is no longer this agent's (cancelled, or its lease ran out): no outcome
    /// is reported.
    NotHeld,
    TimedOut,
    /// The worker is stopping: the task goes back to the queue.
    Worker,
}

struct Running {
    pgid: u32,
    attempt: u32,
    timeout_ms: Option<u64>,
    deadline: Option<Instant>,
    /// Why and since when it is being stopped (SIGTERM sent; SIGKILL after the grace).
    stopping: Option<(Stop, Instant, bool)>,
}

pub fn run(session: &mut Session, args: WorkArgs) -> Result<i32, CliError> {
    if args.jobs == 0 {
        return Err(CliError::usage("-j must be at least 1"));
    }
    // Before any thread: a fork copies only the calling thread.
    let guard = Guard::start()
        .map_err(|e| CliError::new(FAILURE, format!("cannot start the worker's guard: {e}")))?;
    let agent = args.agent.clone().unwrap_or_else(default_agent_name);
    let mut control = session.new_client()?;
    control.set_answer_timeout(Some(CALL_TIMEOUT));
    refuse_root_for_others(&mut control, args.allow_root)?;
    register(&mut control, &agent, &args)?;
    let mut worker = Worker::new(session, args, agent, control, guard)?;
    worker.run()
}

/// The host name, cut to the characters an agent name may hold.
fn default_agent_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(if ok { &buf[..end] } else { &[] })
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if name.is_empty() {
        "worker".into()
    } else {
        name
    }
}

/// A worker running as root runs whatever anyone who may add tasks asks, as root: refuse a
/// daemon that others may reach, or that runs as another user, unless told otherwise.
fn refuse_root_for_others(control: &mut Client, allow_root: bool) -> Result<(), CliError> {
    if crate::paths::current_uid() != 0 || allow_root {
        return Ok(());
    }
    let info = match control.call(&Request::Ping)?? {
        Response::Pong(info) => info,
        other => return Err(super::unexpected(other)),
    };
    if info.admits_others || info.uid != 0 {
        return Err(CliError::usage(format!(
            "refusing to run tasks as root for a daemon that {}: anyone who may add tasks \
             would run commands as root. Run the worker as an unprivileged user, or pass \
             --allow-root if that is what you want",
            if info.uid != 0 {
                format!("runs as uid {}", info.uid)
            } else {
                "other users may connect to".into()
            }
        )));
    }
    Ok(())
}

/// The agent as the worker registers it: its capabilities, and `-j` as its limit.
fn registration(agent: &str, args: &WorkArgs) -> Request {
    Request::RegisterAgent {
        name: agent.to_string(),
        capabilities: args.capabilities.clone(),
        max_tasks: args.jobs,
    }
}

fn register(control: &mut Client, agent: &str, args: &WorkArgs) -> Result<(), CliError> {
    own(control, agent)??;
    control.call(&registration(agent, args))??;
    // This process owns the name: whatever an earlier run of it held goes back now.
    control.call(&Request::Heartbeat {
        name: agent.to_string(),
        tasks: Vec::new(),
        renew: Renew::NamedOnly,
    })??;
    Ok(())
}

/// Takes the agent name for this connection (see `Request::OwnAgent`): refused while
/// another worker's connection owns it; taken over from an earlier connection of this one.
fn own(
    control: &mut Client,
    agent: &str,
) -> Result<Result<Response, crate::protocol::ErrorBody>, CliError> {
    control.call(&Request::OwnAgent {
        name: agent.to_string(),
        instance: instance(),
    })
}

/// This worker's instance number: drawn once per process, from the clock and the process
/// id, different for every worker that could share a daemon.
fn instance() -> u64 {
    static INSTANCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *INSTANCE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // A randomly keyed hasher (std seeds it from the OS) over the pid and the time.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
        );
        hasher.finish()
    })
}

struct Worker<'s> {
    session: &'s mut Session,
    args: WorkArgs,
    agent: String,
    control: Option<Client>,
    guard: Guard,
    shell: std::ffi::OsString,
    events: Receiver<Event>,
    sender: Sender<Event>,
    /// Each task's output, on its way to the daemon.
    output: std::sync::mpsc::SyncSender<output::Message>,
    /// Orders for the claimer: the wait of the next claim.
    claims: Sender<u64>,
    /// The claimer's current connection, to end its parked claim when stopping.
    claim_closer: Arc<Mutex<Option<OwnedFd>>>,
    /// Set once the worker stops: the claimer makes no claim after it.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// How the worker's connections are made (never starting a daemon).
    connector: super::Connector,
    claim_in_flight: bool,
    /// A claim failed as if the agent were gone: register it again before the next.
    register_again: bool,
    /// Another worker took the agent name while this one was disconnected: it stops.
    name_taken: Option<String>,
    /// With --exit-when-empty: nothing was claimable; claim again once a task ends.
    idle_until_exit: bool,
    retry_claim_at: Option<Instant>,
    running: HashMap<TaskId, Running>,
    /// Earlier attempts still ending after the daemon handed their task out again (to this
    /// worker): (task, attempt) → process group.
    stale: HashMap<(TaskId, u32), u32>,
    reports: VecDeque<(TaskId, u32, Outcome)>,
    signals: u32,
    first_signal: Option<Instant>,
    unreachable_said: bool,
    unavailable_said: bool,
    /// With --exit-when-empty, tasks this worker failed that will be retried: it waits for
    /// them (a retry is part of the batch).
    awaiting_retry: Vec<TaskId>,
}

impl<'s> Worker<'s> {
    fn new(
        session: &'s mut Session,
        args: WorkArgs,
        agent: String,
        control: Client,
        guard: Guard,
    ) -> Result<Worker<'s>, CliError> {
        let (sender, events) = mpsc::channel();
        let signal_pipe = signals::install(&[libc::SIGTERM, libc::SIGINT])
            .map_err(|e| CliError::new(FAILURE, format!("cannot handle signals: {e}")))?;
        spawn_signal_thread(signal_pipe, sender.clone());
        spawn_ticker(sender.clone());
        let claim_closer = Arc::new(Mutex::new(None));
        // After the first connection, no connection starts a daemon: one stopped on
        // purpose (`vapora shutdown`) stays stopped.
        let connector = session
            .connector()
            .without_autostart()
            .with_answer_timeout(CALL_TIMEOUT);
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let claims = spawn_claimer(
            connector.clone(),
            agent.clone(),
            args.queues.clone(),
            sender.clone(),
            Arc::clone(&claim_closer),
            Arc::clone(&stopping),
        );
        let output = output::spawn(connector.clone(), agent.clone());
        Ok(Worker {
            output,
            session,
            args,
            agent,
            control: Some(control),
            guard,
            shell: process::shell(),
            events,
            sender,
            claims,
            claim_closer,
            stopping,
            connector,
            claim_in_flight: false,
            register_again: false,
            name_taken: None,
            idle_until_exit: false,
            retry_claim_at: None,
            running: HashMap::new(),
            stale: HashMap::new(),
            reports: VecDeque::new(),
            signals: 0,
            first_signal: None,
            unreachable_said: false,
            unavailable_said: false,
            awaiting_retry: Vec::new(),
        })
    }

    fn run(&mut self) -> Result<i32, CliError> {
        say::note(
            self.session.quiet,
            &format!(
                "vapora work: agent {} runs up to {} task{} at once",
                self.agent,
                self.args.jobs,
                if self.args.jobs == 1 { "" } else { "s" }
            ),
        );
        loop {
            self.claim_if_room();
            if let Some(refusal) = self.name_taken.take() {
                return Err(self.give_up_name(refusal));
            }
            if self.finished() {
                for (id, _, _) in &self.reports {
                    say::error(&format!(
                        "the outcome of task {id} was not reported: no daemon answers"
                    ));
                }
                return Ok(OK);
            }
            let Ok(event) = self.events.recv() else {
                return Err(CliError::new(FAILURE, "the worker's threads stopped"));
            };
            match event {
                Event::Claimed(task) => {
                    self.claim_in_flight = false;
                    self.unavailable_said = false;
                    self.awaiting_retry.retain(|&id| id != task.id);
                    self.start(*task);
                }
                Event::NothingClaimed => {
                    self.claim_in_flight = false;
                    if self.args.exit_when_empty && !self.retries_pending() {
                        self.idle_until_exit = true;
                    }
                }
                Event::AtLimit => {
                    self.claim_in_flight = false;
                    self.release_unknown_tasks();
                    // Not at once: the agent may have been registered elsewhere with a
                    // lower limit than -j.
                    self.retry_claim_at = Some(Instant::now() + TICK);
                }
                Event::Unavailable(status) => {
                    self.claim_in_flight = false;
                    if !self.unavailable_said {
                        say::note(
                            self.session.quiet,
                            &format!(
                                "agent {} is {status}: waiting until it is set idle",
                                self.agent
                            ),
                        );
                        self.unavailable_said = true;
                    }
                    if self.args.exit_when_empty {
                        self.idle_until_exit = true;
                    } else {
                        self.retry_claim_at = Some(Instant::now() + TICK);
                    }
                }
                Event::ClaimFailed(error) => {
                    self.claim_in_flight = false;
                    if self.signals > 0 {
                        // The claim ended because the worker is stopping.
                        continue;
                    }
                    // No error ends the worker while it may run tasks (a daemon shutting
                    // down answers `unavailable`; a removed agent, `not found`): it says so
                    // and tries again, registering again if the agent is gone.
                    if error.code == UNREACHABLE {
                        self.say_unreachable(&error);
                    } else {
                        say::error(&format!("{}; trying again in a few seconds", error.message));
                        self.register_again = true;
                    }
                    self.retry_claim_at = Some(Instant::now() + CLAIM_BACKOFF);
                }
                Event::Exited {
                    id,
                    attempt,
                    status,
                    last_line,
                } => {
                    if let Some(pgid) = self.stale.remove(&(id, attempt)) {
                        // A run replaced by a later attempt: nothing to report.
                        self.guard.ended(pgid);
                        continue;
                    }
                    self.ended(id, status, last_line);
                    self.idle_until_exit = false;
                    // Reported before the next claim: a claim that reached the daemon first
                    // would find the agent still at its limit.
                    self.report_then_claim();
                }
                Event::Signal => self.on_signal(),
                Event::Tick => self.tick(),
            }
        }
    }

    /// Another worker owns the agent name now (it took it while this one could not reach
    /// the daemon, and its heartbeats put this one's tasks back in the queue): this worker
    /// stops its processes, whose tasks are no longer its own, and exits.
    fn give_up_name(&mut self, refusal: String) -> CliError {
        for (_, running) in self.running.drain() {
            process::signal_group(running.pgid, libc::SIGKILL);
        }
        CliError::new(FAILURE, format!("{refusal}; this worker stops"))
    }

    /// Done: stopping (or --exit-when-empty with nothing claimable), with nothing running,
    /// no claim out and every outcome reported (or the daemon gone for good).
    fn finished(&self) -> bool {
        // After a second signal, outcomes that no daemon takes are given up (and named).
        let reported = self.reports.is_empty() || (self.signals > 1 && self.unreachable_said);
        let idle = self.running.is_empty() && !self.claim_in_flight && reported;
        idle && (self.signals > 0 || (self.args.exit_when_empty && self.idle_until_exit))
    }

    /// Whether the worker may claim a task now: not stopping, no claim out, room for one
    /// more, and not waiting out an error or for the end of an `--exit-when-empty` run.
    fn may_claim(&self) -> bool {
        let waiting_out_error = self.retry_claim_at.is_some_and(|at| Instant::now() < at);
        self.signals == 0
            && !self.claim_in_flight
            && !self.idle_until_exit
            && !waiting_out_error
            && self.running.len() < self.args.jobs as usize
    }

    fn claim_if_room(&mut self) {
        if !self.may_claim() {
            return;
        }
        self.retry_claim_at = None;
        if self.register_again {
            let request = registration(&self.agent, &self.args);
            if matches!(self.call(&request), Ok(Ok(_))) {
                self.register_again = false;
            }
        }
        // With --exit-when-empty, a claim that finds nothing ends the run, unless a retry
        // of this worker's is still to come: then it waits for that.
        let wait_ms = if self.args.exit_when_empty && self.awaiting_retry.is_empty() {
            0
        } else {
            CLAIM_WAIT_MS
        };
        if self.claims.send(wait_ms).is_ok() {
            self.claim_in_flight = true;
        }
    }

    fn start(&mut self, task: Task) {
        let unrunnable = if task.payload.is_empty() {
            Some("no payload to run")
        } else if task.payload.contains('\0') {
            Some("its payload holds a NUL byte, which no shell command can")
        } else {
            None
        };
        if let Some(reason) = unrunnable {
            let reason = reason.into();
            return self.report_now(
                task.id,
                task.attempts,
                Outcome::Failed {
                    reason,
                    retry: false,
                    exit_code: None,
                },
            );
        }
        let unusable_dir = task
            .cwd
            .as_ref()
            .and_then(|dir| match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => None,
                Ok(_) => Some(format!("cannot enter its directory {dir}: not a directory")),
                Err(e) => Some(format!("cannot enter its directory {dir}: {e}")),
            });
        if let Some(reason) = unusable_dir {
            return self.report_now(
                task.id,
                task.attempts,
                Outcome::Failed {
                    reason,
                    retry: true,
                    exit_code: None,
                },
            );
        }
        if let Some(old) = self.running.remove(&task.id) {
            // This worker still runs an earlier attempt of the task, which the daemon has
            // since handed out again (its lease ran out): that run is not ours any more.
            process::signal_group(old.pgid, libc::SIGKILL);
            self.stale.insert((task.id, old.attempt), old.pgid);
        }
        let (pid, output) = match process::spawn(&task, &self.agent, &self.shell) {
            Ok(started) => started,
            Err(e) => {
                // The worker's fault (a wrong VAPORA_SHELL, no descriptors or processes
                // left), not the task's: it goes back with its attempt refunded, and the
                // worker waits before it claims again instead of failing the whole queue.
                say::error(&format!(
                    "cannot start {} for task {}: {e}; giving it back and waiting",
                    self.shell.to_string_lossy(),
                    task.id
                ));
                self.retry_claim_at = Some(Instant::now() + CLAIM_BACKOFF);
                return self.report_now(task.id, task.attempts, Outcome::GivenBack);
            }
        };
        let pgid = pid;
        self.guard.started(pgid);
        // The task's own timeout, else the worker's.
        let timeout_ms = task
            .timeout_ms
            .or(self.args.timeout.map(|t| t.as_millis() as u64));
        self.running.insert(
            task.id,
            Running {
                pgid,
                attempt: task.attempts,
                timeout_ms,
                deadline: timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms)),
                stopping: None,
            },
        );
        let sender = self.sender.clone();
        let to_daemon = self.output.clone();
        let id = task.id;
        let attempt = task.attempts;
        pool::run(move || {
            let mut last_line = LastLine::default();
            let mut printed = false;
            let status = process::run_to_end(pid, output, |chunk| {
                printed = true;
                last_line.feed(chunk);
                let data = chunk.to_vec();
                let _ = to_daemon.send(output::Message::Chunk { id, attempt, data });
            });
            // Its output reaches the daemon before its outcome, unless no daemon answers.
            // A task that printed nothing has nothing to wait for (most quick jobs).
            let (done, sent) = mpsc::channel();
            if printed
                && to_daemon
                    .send(output::Message::End { id, attempt, done })
                    .is_ok()
            {
                let _ = sent.recv_timeout(output::FLUSH_WAIT);
            }
            let _ = sender.send(Event::Exited {
                id,
                attempt,
                status,
                last_line: last_line.finish(),
            });
        });
    }

    /// The outcome of a task that did not run (nothing to run, no directory, no shell).
    fn report_now(&mut self, id: TaskId, attempt: u32, outcome: Outcome) {
        self.reports.push_back((id, attempt, outcome));
        self.report();
    }

    fn ended(&mut self, id: TaskId, status: ExitStatus, last_line: Option<String>) {
        let Some(running) = self.running.remove(&id) else {
            return;
        };
        // Its group was killed when its shell exited (`process::run_to_end`).
        self.guard.ended(running.pgid);
        let outcome = match running.stopping.map(|(why, _, _)| why) {
            Some(Stop::NotHeld) => return,
            Some(Stop::Worker) => Outcome::GivenBack,
            Some(Stop::TimedOut) => outcome::outcome(
                status,
                last_line,
                Some(Stopped::TimedOut {
                    after_ms: running.timeout_ms.unwrap_or(0),
                }),
            ),
            None => outcome::outcome(status, last_line, None),
        };
        self.reports.push_back((id, running.attempt, outcome));
        while self.reports.len() > MAX_PENDING_REPORTS {
            if let Some((lost, _, _)) = self.reports.pop_front() {
                say::error(&format!(
                    "the outcome of task {lost} was dropped: too many waited for the daemon"
                ));
            }
        }
    }

    /// Reports the outcomes waiting after a task ended. When the only one is a task done
    /// and the worker may claim, the report and the next claim go in one request on the
    /// loop's connection: one round trip instead of two, and no hand-off to the claimer's
    /// thread (most of a quick task's cost, measured in BENCHMARKS.md). A claim that finds
    /// nothing leaves the waiting, parked claim to the claimer, as usual.
    fn report_then_claim(&mut self) {
        let done_alone = match self.reports.front() {
            Some((id, attempt, Outcome::Done { result })) if self.reports.len() == 1 => {
                Some(DoneFirst {
                    id: *id,
                    result: result.clone(),
                    run: Some(RunEnd {
                        attempt: *attempt,
                        exit_code: Some(0),
                    }),
                })
            }
            _ => None,
        };
        let Some(done) = done_alone.filter(|_| self.may_claim() && !self.register_again) else {
            return self.report();
        };
        let request = Request::Claim {
            agent: self.agent.clone(),
            queues: self.args.queues.clone(),
            wait_ms: 0,
            done: Some(done),
        };
        match self.call(&request) {
            Ok(Ok(answer)) => {
                self.reports.pop_front();
                match answer {
                    Response::Claimed(Some(task)) => {
                        self.unavailable_said = false;
                        self.awaiting_retry.retain(|&id| id != task.id);
                        self.start(task);
                    }
                    Response::Claimed(None)
                        if self.args.exit_when_empty && !self.retries_pending() =>
                    {
                        self.idle_until_exit = true;
                    }
                    // At its limit, paused, or nothing now: the claimer's claim says so and
                    // waits as usual.
                    _ => {}
                }
            }
            // Refused (the daemon says why when the outcome goes on its own), or no daemon
            // answers (it waits for the next tick).
            Ok(Err(_)) | Err(()) => self.report(),
        }
    }

    /// Reports waiting outcomes, in order, while the daemon answers.
    fn report(&mut self) {
        while let Some((id, attempt, outcome)) = self.reports.front().cloned() {
            let request = match outcome {
                Outcome::Done { result } => Request::Complete {
                    id,
                    result,
                    agent: Some(self.agent.clone()),
                    run: Some(RunEnd {
                        attempt,
                        exit_code: Some(0),
                    }),
                },
                Outcome::Failed {
                    reason,
                    retry,
                    exit_code,
                } => Request::Fail {
                    id,
                    reason: Some(reason),
                    retry,
                    agent: Some(self.agent.clone()),
                    run: Some(RunEnd { attempt, exit_code }),
                },
                Outcome::GivenBack => Request::GiveBack {
                    id,
                    agent: self.agent.clone(),
                },
            };
            match self.call(&request) {
                Ok(Ok(Response::Task(task)))
                    if self.args.exit_when_empty
                        && matches!(task.status, TaskStatus::Scheduled | TaskStatus::Queued) =>
                {
                    self.awaiting_retry.push(id);
                }
                Ok(Ok(_)) => {}
                Ok(Err(refused)) => say::error(&format!(
                    "task {id}: the daemon refused its outcome: {}",
                    refused.message
                )),
                Err(()) => return,
            }
            self.reports.pop_front();
        }
    }

    /// One request on the loop's connection, connecting again if needed. `Err(())` when no
    /// daemon answers (said once until one does).
    fn call(
        &mut self,
        request: &Request,
    ) -> Result<Result<Response, crate::protocol::ErrorBody>, ()> {
        if self.control.is_none() {
            match self.connector.connect() {
                Ok(mut client) => match own(&mut client, &self.agent) {
                    Ok(Ok(_)) => self.control = Some(client),
                    Ok(Err(refused)) => {
                        self.name_taken = Some(refused.message);
                        return Err(());
                    }
                    Err(error) => {
                        self.say_unreachable(&error);
                        return Err(());
                    }
                },
                Err(error) => {
                    self.say_unreachable(&error);
                    return Err(());
                }
            }
        }
        let Some(control) = self.control.as_mut() else {
            return Err(());
        };
        match control.call(request) {
            Ok(answer) => {
                self.unreachable_said = false;
                Ok(answer)
            }
            Err(error) => {
                self.control = None;
                self.say_unreachable(&error);
                Err(())
            }
        }
    }

    /// Whether a retry of a task this worker failed is still to come (each checked with
    /// the daemon; those that ended or run elsewhere are forgotten).
    fn retries_pending(&mut self) -> bool {
        let ids = std::mem::take(&mut self.awaiting_retry);
        for id in ids {
            match self.call(&Request::GetTask { id }) {
                Ok(Ok(Response::Task(task)))
                    if matches!(task.status, TaskStatus::Scheduled | TaskStatus::Queued) =>
                {
                    self.awaiting_retry.push(id);
                }
                Ok(_) => {}
                // No daemon: keep waiting for it.
                Err(()) => self.awaiting_retry.push(id),
            }
        }
        !self.awaiting_retry.is_empty()
    }

    /// The agent is at its limit with tasks this worker does not run (a claim answer was
    /// lost): those go back to the queue, and the claim is made again.
    fn release_unknown_tasks(&mut self) {
        let request = Request::Heartbeat {
            name: self.agent.clone(),
            tasks: self.running.keys().copied().collect(),
            renew: Renew::NamedOnly,
        };
        if self.call(&request).is_err() {
            self.retry_claim_at = Some(Instant::now() + TICK);
        }
    }

    fn say_unreachable(&mut self, error: &CliError) {
        if !self.unreachable_said {
            say::error(&format!(
                "{}; running tasks carry on, trying again every second",
                error.message
            ));
            self.unreachable_said = true;
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.heartbeat();
        let grace = self.grace();
        for running in self.running.values_mut() {
            match running.stopping {
                None if running.deadline.is_some_and(|deadline| now >= deadline) => {
                    process::signal_group(running.pgid, libc::SIGTERM);
                    running.stopping = Some((Stop::TimedOut, now, false));
                }
                Some((why, since, false)) if now >= since + grace => {
                    process::signal_group(running.pgid, libc::SIGKILL);
                    running.stopping = Some((why, since, true));
                }
                _ => {}
            }
        }
        if let Some(first) = self.first_signal
            && self.args.grace.is_some()
            && now >= first + grace
        {
            self.stop_all();
        }
        self.report();
    }

    /// Renews the leases of exactly the tasks being run; stops those that are no longer
    /// the agent's.
    fn heartbeat(&mut self) {
        let tasks: Vec<TaskId> = self.running.keys().copied().collect();
        // Only the tasks it runs. With no claim answer on its way and no outcome waiting
        // to be reported, whatever else the agent holds was never received (a lost claim
        // answer) and goes back to the queue now; otherwise it is just not renewed.
        let renew = if !self.claim_in_flight && self.reports.is_empty() {
            Renew::NamedOnly
        } else {
            Renew::Named
        };
        let request = Request::Heartbeat {
            name: self.agent.clone(),
            tasks,
            renew,
        };
        let Ok(Ok(Response::Heartbeat(report))) = self.call(&request) else {
            return;
        };
        let now = Instant::now();
        for lost in report.not_held {
            if let Some(running) = self.running.get_mut(&lost.id)
                && running.stopping.is_none()
            {
                say::note(
                    self.session.quiet,
                    &format!("task {} is no longer ours: stopping it", lost.id),
                );
                process::signal_group(running.pgid, libc::SIGTERM);
                running.stopping = Some((Stop::NotHeld, now, false));
            }
        }
    }

    /// How long a stopped task has between SIGTERM and SIGKILL (`--grace`, default 10 s).
    fn grace(&self) -> Duration {
        self.args.grace.unwrap_or(DEFAULT_GRACE)
    }

    fn on_signal(&mut self) {
        self.signals += 1;
        if self.signals == 1 {
            self.first_signal = Some(Instant::now());
            say::note(
                self.session.quiet,
                &format!(
                    "vapora work: stopping once {} running task{} end (signal again to stop them now)",
                    self.running.len(),
                    if self.running.len() == 1 { "" } else { "s" }
                ),
            );
        } else {
            self.stop_all();
        }
        self.stop_claiming();
    }

    /// Ends the parked claim, if one is out. Both directions: the daemon takes a client
    /// that only stopped writing for one still waiting for its answer. Once the client is
    /// gone, the daemon withdraws the claim, and an answer it can no longer deliver puts
    /// its task back (attempt refunded); an answer already received still arrives, and
    /// its task runs.
    fn stop_claiming(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(closer) = self.claim_closer.lock()
            && let Some(fd) = closer.as_ref()
        {
            // SAFETY: shutdown on a descriptor we own; the claimer sees its claim end.
            unsafe {
                libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
    }

    /// SIGTERM to every running task, SIGKILL after the grace; they go back to the queue.
    fn stop_all(&mut self) {
        let now = Instant::now();
        for running in self.running.values_mut() {
            if running.stopping.is_none() {
                process::signal_group(running.pgid, libc::SIGTERM);
                running.stopping = Some((Stop::Worker, now, false));
            }
        }
    }
}

/// Turns signals into events.
fn spawn_signal_thread(mut pipe: std::fs::File, sender: Sender<Event>) {
    std::thread::spawn(move || {
        while signals::next(&mut pipe).is_ok() {
            if sender.send(Event::Signal).is_err() {
                return;
            }
        }
    });
}

fn spawn_ticker(sender: Sender<Event>) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(TICK);
            if sender.send(Event::Tick).is_err() {
                return;
            }
        }
    });
}

/// The claimer: one claim per order, on a connection of its own (made again after a
/// failure), whose descriptor it shares so that the loop can end a parked claim.
fn spawn_claimer(
    connect: super::Connector,
    agent: String,
    queues: Vec<String>,
    events: Sender<Event>,
    closer: Arc<Mutex<Option<OwnedFd>>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> Sender<u64> {
    let (orders, received) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        let mut client: Option<Client> = None;
        for wait_ms in received {
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                // Answered, so that the loop does not wait for a claim never made.
                if events.send(Event::NothingClaimed).is_err() {
                    return;
                }
                continue;
            }
            if client.is_none() {
                match connect.connect() {
                    Ok(connected) => {
                        let stopped = match closer.lock() {
                            // Checked under the lock that `stop_claiming` takes.
                            Ok(_) if stopping.load(std::sync::atomic::Ordering::SeqCst) => true,
                            Ok(mut slot) => {
                                *slot = connected.closer().ok();
                                false
                            }
                            Err(_) => false,
                        };
                        if stopped {
                            if events.send(Event::NothingClaimed).is_err() {
                                return;
                            }
                            continue;
                        }
                        client = Some(connected);
                    }
                    Err(error) => {
                        if events.send(Event::ClaimFailed(error)).is_err() {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(connected) = client.as_mut() else {
                continue;
            };
            connected.set_answer_timeout(Some(Duration::from_millis(wait_ms) + CALL_TIMEOUT));
            let request = Request::Claim {
                agent: agent.clone(),
                queues: queues.clone(),
                wait_ms,
                done: None,
            };
            let event = match connected.call(&request) {
                Ok(Ok(Response::Claimed(Some(task)))) => Event::Claimed(Box::new(task)),
                Ok(Ok(Response::AtLimit { .. })) => Event::AtLimit,
                Ok(Ok(Response::AgentUnavailable { status })) => Event::Unavailable(status),
                Ok(Ok(_)) => Event::NothingClaimed,
                Ok(Err(refused)) => {
                    let error = CliError::from(refused);
                    if error.code == EMPTY || error.code == AT_LIMIT {
                        Event::NothingClaimed
                    } else {
                        Event::ClaimFailed(error)
                    }
                }
                Err(error) => {
                    client = None;
                    if let Ok(mut slot) = closer.lock() {
                        *slot = None;
                    }
                    Event::ClaimFailed(CliError::new(UNREACHABLE, error.message))
                }
            };
            if events.send(event).is_err() {
                return;
            }
        }
    });
    orders
}
