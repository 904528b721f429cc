//! `AppState`: everything the daemon knows, shared by all connections through an `Arc`.
//!
//! Locks are `std::sync` locks held for short synchronous sections only; no guard lives
//! across an `.await` (the futures would not be `Send`, so the compiler enforces it). This is
//! the case tokio's documentation recommends a blocking mutex for.
//!
//! **Lock order: registry, then queue.** A method that needs both takes the registry (read
//! or write) first and the queue second; nothing takes the registry while holding the queue.
//! With one order there is no cycle, hence no deadlock.
//!
//! A poisoned lock (a panic while it was held) is recovered rather than propagated: every
//! mutation validates before it changes anything, so the data behind it is consistent, and
//! one panicking request must not take every later request down with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::availability::Availability;
use super::change::Change;
use super::clock::Clock;
use super::events::Events;
use super::lock_hold::TimedGuard;
use super::logs::Logs;
use super::metrics::{LATENCY_BUCKETS_US, Metrics, RUN_BUCKETS_MS};
use super::ownership::AgentOwners;
use super::parked::{ParkedClaim, ParkedClaims, TaskWatchers};
use super::queue::{Policy, TaskQueue};
use super::registry::Registry;
use super::shutdown::{Phase, Shutdown};
use super::store::{Ack, Recovery, Snapshot, Store, StoreError, Ticket};
use crate::protocol::handshake::{PROTOCOL_VERSION, SOFTWARE_VERSION};
use crate::protocol::limits::{self, Limits, MAX_TASKS_LIMIT, MAX_WAIT_IDS};
use crate::protocol::response::TaskCounters;
use crate::protocol::{
    Agent, AgentStatus, DaemonInfo, DoneFirst, ErrorBody, ErrorKind, HeartbeatReport,
    MetricsSnapshot, Millis, NewTask, Renew, RunEnd, Task, TaskFilter, TaskId, TaskOutcome,
    TaskStatus,
};

/// Tasks a list copies per hold of the queue lock (about 2 ms' worth).
const LIST_STEP: usize = 4096;
/// Tasks a list looks at per hold of the queue lock, matching or not (about 1 ms' worth).
const LIST_LOOK: usize = 16_384;

/// Finished tasks a prune deletes per hold of the queue lock.
const PRUNE_STEP: usize = 4096;

/// What sits behind the queue lock: the tasks and everyone waiting on them.
#[derive(Debug)]
pub struct QueueState {
    pub tasks: TaskQueue,
    pub parked: ParkedClaims,
    pub watchers: TaskWatchers,
}

impl QueueState {
    /// Follow-ups every mutation needs, still under the locks: hand newly claimable tasks
    /// to parked claimers (each gets an ack for the commit of its hand-off, added to
    /// `acks`), and wake watchers of tasks that ended.
    fn settle(
        &mut self,
        registry: &Registry,
        now: Millis,
        acks: &mut Vec<Ack>,
        changes: &mut Vec<Change>,
    ) {
        let may_free_work = changes.iter().any(|change| {
            !matches!(
                change,
                Change::AgentHeartbeat { .. }
                    | Change::TaskClaimed { .. }
                    | Change::AttemptEnded { .. }
            )
        });
        if may_free_work {
            self.parked
                .serve(&mut self.tasks, registry, now, acks, changes);
        }
        self.watchers.notify(changes);
    }
}

pub struct AppState {
    registry: RwLock<Registry>,
    queue: Mutex<QueueState>,
    pub store: Store,
    pub metrics: Metrics,
    pub shutdown: Shutdown,
    /// Finished tasks are deleted this long after they finished.
    pub retain: Duration,
    /// An agent silent for longer than this goes offline.
    heartbeat_ttl_ms: u64,
    /// Committed changes, for `vapora events`.
    pub events: Events,
    /// Wakes the lifecycle timer when a deadline earlier than `armed` appears.
    pub timer: Notify,
    /// The deadline the lifecycle timer sleeps toward (`u64::MAX`: none).
    armed: AtomicU64,
    started: Instant,
    /// Heartbeats before this time count as at this time: agents could not report while
    /// the daemon was down (start-up) or refused writes (storage recovery).
    silence_grace_from: AtomicU64,
    /// Where every timestamp and deadline comes from.
    pub clock: Clock,
    socket: String,
    /// Whether others than the daemon's user may connect (reported by `ping`).
    admits_others: std::sync::atomic::AtomicBool,
    /// Size limits on what clients send.
    limits: Limits,
    /// Task output files (set once at start-up; unset in tests that build a bare state).
    logs: std::sync::OnceLock<Arc<Logs>>,
    /// Agent names owned by a connection (`vapora work`).
    pub agent_owners: Arc<AgentOwners>,
}

/// The daemon's timing settings.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    pub policy: Policy,
    pub heartbeat_ttl: Duration,
    pub clock: Clock,
}

/// The result of a claim request.
pub enum ClaimOutcome {
    Claimed(Task),
    /// Nothing now; the claim waits in line for a task.
    Parked(ParkedTicket),
    Empty,
    /// The agent already holds as many tasks as it may run.
    AtLimit {
        max_tasks: u32,
        running: Vec<TaskId>,
    },
    /// The agent may not claim at all: it is paused, or was set offline by hand.
    Unavailable(AgentStatus),
}

/// A parked claim's half of the hand-off. If it is dropped after a task was handed to it
/// but before the claimer got it (the client disconnected, the wait timed out at that
/// instant), the task goes back to the queue instead of being lost to a claimer that is not
/// there.
pub struct ParkedTicket {
    reply: oneshot::Receiver<(Task, Ticket)>,
    /// A task handed over whose commit is still being awaited.
    received: Option<Task>,
    agent: String,
    state: Arc<AppState>,
}

impl ParkedTicket {
    /// Waits for the hand-off and for it to be durable. An error means the claim can no
    /// longer be served.
    pub async fn recv(&mut self) -> Result<Task, ErrorBody> {
        let (task, committed) = match (&mut self.reply).await {
            Ok(handed) => handed,
            Err(_) if self.state.shutdown.is_stopping() => {
                return Err(ErrorBody::unavailable("the daemon is shutting down"));
            }
            Err(_) => return Err(super::registry::unknown_agent(&self.agent)),
        };
        self.received = Some(task);
        Store::wait(committed).await.map_err(storage_error)?;
        self.received
            .take()
            .ok_or_else(|| ErrorBody::new(ErrorKind::Internal, "hand-off lost"))
    }
}

impl Drop for ParkedTicket {
    fn drop(&mut self) {
        // Close first so no hand-off can land after the check below.
        self.reply.close();
        let undelivered = self
            .received
            .take()
            .or_else(|| self.reply.try_recv().ok().map(|(task, _)| task));
        if let Some(task) = undelivered {
            self.state.release(task.id, &self.agent);
        }
    }
}

fn storage_error(reason: String) -> ErrorBody {
    ErrorBody::unavailable(format!("{reason}; the change was rolled back"))
}

/// A mutation applied in memory and submitted to the store, not yet durable.
struct Pending {
    ticket: Ticket,
}

/// Releases a claimed task when dropped (see `AppState::claim`).
struct ReleaseOnDrop<'a> {
    state: &'a AppState,
    id: TaskId,
    agent: &'a str,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.state.release(self.id, self.agent);
    }
}

type Applied<T> = Result<(T, Pending), ErrorBody>;

impl AppState {
    /// The state as loaded from the store.
    pub fn new(
        socket: String,
        mut snapshot: Snapshot,
        store: Store,
        retain: Duration,
        lifecycle: Lifecycle,
        limits: Limits,
    ) -> Arc<AppState> {
        let metrics = Metrics::default();
        metrics.add_counters(&snapshot.counters);
        snapshot.tasks.set_policy(lifecycle.policy);
        snapshot.tasks.grant_missing_leases(lifecycle.clock.now());
        // Nobody could renew a lease while the daemon was down: every running task gets a
        // whole lease from now, as agents get a grace for their heartbeats. Otherwise, after
        // downtime longer than a lease, every running task would be handed to another
        // worker at once while its first run carries on.
        snapshot.tasks.extend_all_leases(lifecycle.clock.now());
        Arc::new(AppState {
            registry: RwLock::new(snapshot.registry),
            queue: Mutex::new(QueueState {
                tasks: snapshot.tasks,
                parked: ParkedClaims::default(),
                watchers: TaskWatchers::default(),
            }),
            store,
            metrics,
            shutdown: Shutdown::default(),
            retain,
            heartbeat_ttl_ms: lifecycle.heartbeat_ttl.as_millis() as u64,
            events: Events::default(),
            timer: Notify::new(),
            armed: AtomicU64::new(u64::MAX),
            started: Instant::now(),
            silence_grace_from: AtomicU64::new(lifecycle.clock.now()),
            clock: lifecycle.clock,
            socket,
            admits_others: std::sync::atomic::AtomicBool::new(false),
            limits,
            logs: std::sync::OnceLock::new(),
            agent_owners: Arc::default(),
        })
    }

    fn registry_read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|poisoned| {
            tracing::error!("agent registry lock was poisoned by a panic; recovering");
            poisoned.into_inner()
        })
    }

    fn registry_write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|poisoned| {
            tracing::error!("agent registry lock was poisoned by a panic; recovering");
            poisoned.into_inner()
        })
    }

    fn queue_lock(&self) -> TimedGuard<'_, QueueState> {
        let guard = self.queue.lock().unwrap_or_else(|poisoned| {
            tracing::error!("task queue lock was poisoned by a panic; recovering");
            poisoned.into_inner()
        });
        TimedGuard::new(guard, &self.metrics)
    }

    /// Writes are refused while the store is degraded (reads go on).
    fn refuse_if_degraded(&self) -> Result<(), ErrorBody> {
        if self.store.is_degraded() {
            return Err(ErrorBody::unavailable(
                "storage is failing, so changes are refused until it works again \
                 (reads still work; see the daemon log)",
            ));
        }
        Ok(())
    }

    /// The end every mutation shares, still under the locks: settle, then submit the
    /// changes to the store in the order they were applied.
    fn submit<T>(
        &self,
        registry: &Registry,
        queue: &mut QueueState,
        now: Millis,
        value: T,
        mut changes: Vec<Change>,
    ) -> (T, Pending) {
        let mut acks = Vec::new();
        queue.settle(registry, now, &mut acks, &mut changes);
        let earlier_task_deadline = queue
            .tasks
            .next_deadline()
            .is_some_and(|deadline| deadline < self.armed.load(Ordering::SeqCst));
        let new_agent_deadline = changes.iter().any(|change| {
            matches!(
                change,
                Change::AgentRegistered { .. } | Change::AgentAvailability { .. }
            )
        });
        if earlier_task_deadline || new_agent_deadline {
            self.timer.notify_one();
        }
        let ticket = self.store.submit(changes, acks);
        (value, Pending { ticket })
    }

    /// Runs a mutation that reads the registry and changes the queue.
    fn change_queue<T>(
        &self,
        f: impl FnOnce(&Registry, &mut QueueState, Millis, &mut Vec<Change>) -> Result<T, ErrorBody>,
    ) -> Applied<T> {
        let registry = self.registry_read();
        let mut queue = self.queue_lock();
        self.refuse_if_degraded()?;
        let now = self.clock.now();
        let mut changes = Vec::new();
        let value = f(&registry, &mut queue, now, &mut changes)?;
        Ok(self.submit(&registry, &mut queue, now, value, changes))
    }

    /// Runs a mutation that changes the registry (and maybe the queue).
    fn change_registry<T>(
        &self,
        f: impl FnOnce(&mut Registry, &mut QueueState, Millis, &mut Vec<Change>) -> Result<T, ErrorBody>,
    ) -> Applied<T> {
        let mut registry = self.registry_write();
        let mut queue = self.queue_lock();
        self.refuse_if_degraded()?;
        let now = self.clock.now();
        let mut changes = Vec::new();
        let value = f(&mut registry, &mut queue, now, &mut changes)?;
        Ok(self.submit(&registry, &mut queue, now, value, changes))
    }

    /// Answers only once the mutation is durable: nothing is acknowledged before it is on
    /// disk.
    async fn commit<T>(&self, applied: Applied<T>) -> Result<T, ErrorBody> {
        let (value, pending) = applied?;
        self.finish(pending).await?;
        Ok(value)
    }

    async fn finish(&self, pending: Pending) -> Result<(), ErrorBody> {
        Store::wait(pending.ticket).await.map_err(storage_error)
    }

    pub fn info(&self) -> DaemonInfo {
        DaemonInfo {
            version: SOFTWARE_VERSION.to_string(),
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            socket: self.socket.clone(),
            limits: self.limits,
            uid: crate::paths::current_uid(),
            admits_others: self
                .admits_others
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Where task output is kept (called once, at start-up).
    pub fn set_logs(&self, logs: Logs) {
        if self.logs.set(Arc::new(logs)).is_err() {
            tracing::warn!("task logs were set twice; keeping the first");
        }
    }

    /// Where task output is kept.
    pub fn logs(&self) -> Result<Arc<Logs>, ErrorBody> {
        self.logs
            .get()
            .cloned()
            .ok_or_else(|| ErrorBody::unavailable("this daemon keeps no task output"))
    }

    /// Refuses unless `agent` runs task `id` in attempt `attempt`.
    pub fn check_runs(&self, id: TaskId, agent: &str, attempt: u32) -> Result<(), ErrorBody> {
        let queue = self.queue_lock();
        queue.tasks.check_holder(id, Some(agent))?;
        let current = queue.tasks.outcome(id).map_or(0, |task| task.attempts);
        if current != attempt {
            return Err(ErrorBody::conflict(format!(
                "task {id} is in attempt {current}, not {attempt}"
            )));
        }
        Ok(())
    }

    /// Task `id` as it stands, and, unless it has ended, a receiver that fires when it
    /// ends: both in one look, so that an end cannot slip between them.
    pub fn task_and_end_watch(
        &self,
        id: TaskId,
    ) -> Result<(TaskOutcome, Option<oneshot::Receiver<()>>), ErrorBody> {
        let mut queue = self.queue_lock();
        let task = queue
            .tasks
            .outcome(id)
            .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))?;
        let watch = (!task.status.is_finished()).then(|| queue.watchers.watch(id));
        Ok((task, watch))
    }

    /// Records that users other than the daemon's own may connect (see `DaemonInfo`).
    pub fn set_admits_others(&self, admits: bool) {
        self.admits_others
            .store(admits, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops serving: parked claims are woken with "shutting down", and the accept loop
    /// and idle connections see the phase change.
    pub fn begin_shutdown(&self) {
        self.shutdown.advance(Phase::Stopping);
        self.queue_lock().parked.clear();
    }

    pub async fn add_tasks(&self, mut tasks: Vec<NewTask>) -> Result<Vec<TaskId>, ErrorBody> {
        if tasks.is_empty() {
            return Err(ErrorBody::invalid("no tasks to add"));
        }
        self.limits
            .check_batch(tasks.len())
            .map_err(ErrorBody::invalid)?;
        let single = tasks.len() == 1;
        for (i, task) in tasks.iter_mut().enumerate() {
            task.validate(&self.limits).map_err(|message| {
                if single {
                    ErrorBody::invalid(message)
                } else {
                    ErrorBody::invalid(format!("task {} of the batch: {message}", i + 1))
                }
            })?;
        }
        let applied = self.change_queue(|_, queue, now, changes| {
            for (i, task) in tasks.iter().enumerate() {
                queue.tasks.check_new(task).map_err(|mut e| {
                    if !single {
                        e.message = format!("task {} of the batch: {}", i + 1, e.message);
                    }
                    e
                })?;
            }
            Ok(tasks
                .into_iter()
                .map(|task| queue.tasks.add(task, now, changes))
                .collect())
        });
        self.commit(applied).await
    }

    pub async fn claim(
        self: &Arc<Self>,
        agent: String,
        queues: Vec<String>,
        wait: bool,
        done: Option<DoneFirst>,
    ) -> Result<ClaimOutcome, ErrorBody> {
        limits::check_name("agent", &agent).map_err(ErrorBody::invalid)?;
        for queue in &queues {
            limits::check_name("queue", queue).map_err(ErrorBody::invalid)?;
        }
        if let Some(result) = done.as_ref().and_then(|d| d.result.as_ref()) {
            self.limits
                .check_text("the result", result)
                .map_err(ErrorBody::invalid)?;
        }
        let applied = self.change_registry(|registry, queue, now, changes| {
            // Checked under the queue lock: `begin_shutdown` sets the phase before it
            // takes this lock to wake parked claims, so no claim can park unseen.
            if wait && self.shutdown.is_stopping() {
                return Err(ErrorBody::unavailable("the daemon is shutting down"));
            }
            // Every check comes before the first change to memory: a refused request
            // changes nothing.
            if let Some(done) = &done {
                queue.tasks.check_holder(done.id, Some(&agent))?;
                if let Some(run) = done.run {
                    queue.tasks.check_attempt(done.id, run)?;
                }
            }
            // A claim is a sign of life from the agent, but says nothing about the tasks it
            // holds: their leases run on (a task whose claim answer was lost comes back).
            let record = registry.heartbeat(&agent, now, changes)?;
            if let Some(done) = done {
                if let Some(run) = done.run {
                    queue.tasks.end_attempt(done.id, run, now, changes)?;
                }
                queue.tasks.complete(done.id, done.result, now, changes)?;
            }
            let claimed = record
                .claimant()
                .and_then(|who| queue.tasks.claim(who, &queues, now, changes));
            if claimed.is_none() && !wait {
                let why = why_nothing(registry, queue, &agent);
                if !matches!(why, ClaimOutcome::Empty) {
                    return Ok(why);
                }
            }
            Ok(match claimed {
                Some(task) => ClaimOutcome::Claimed(task),
                None if wait => {
                    let (reply, rx) = oneshot::channel();
                    queue.parked.park(ParkedClaim {
                        agent: agent.clone(),
                        queues: queues.clone(),
                        reply,
                    });
                    ClaimOutcome::Parked(ParkedTicket {
                        reply: rx,
                        received: None,
                        agent: agent.clone(),
                        state: Arc::clone(self),
                    })
                }
                None => ClaimOutcome::Empty,
            })
        });
        let (outcome, pending) = applied?;
        // Until the answer leaves this function, a claimed task must go back to the queue
        // if the request is dropped (the client left while the claim was being committed).
        let guard = match &outcome {
            ClaimOutcome::Claimed(task) => Some(ReleaseOnDrop {
                state: self,
                id: task.id,
                agent: &agent,
            }),
            _ => None,
        };
        let committed = self.finish(pending).await;
        std::mem::forget(guard);
        committed?;
        Ok(outcome)
    }

    /// Why a claim by `agent` that got nothing got nothing (a claim that waited asks at
    /// its end): see [`why_nothing`].
    pub fn unclaimed(&self, agent: &str) -> ClaimOutcome {
        let registry = self.registry_read();
        let queue = self.queue_lock();
        why_nothing(&registry, &queue, agent)
    }

    /// Puts back a task whose claim never reached its claimer. Nobody awaits this commit
    /// (it also runs from `Drop`).
    pub fn release(&self, id: TaskId, agent: &str) {
        let applied = self.change_queue(|_, queue, now, changes| {
            queue.tasks.release(id, agent, now, changes);
            Ok(())
        });
        match applied {
            Ok(_) => tracing::info!(
                id,
                agent,
                "claimed task was not delivered; back in the queue"
            ),
            Err(e) => tracing::warn!(
                id,
                agent,
                error = %e.message,
                "claimed task was not delivered and cannot be put back now; it stays running"
            ),
        }
    }

    pub async fn complete(
        &self,
        id: TaskId,
        result: Option<String>,
        agent: Option<String>,
        run: Option<RunEnd>,
    ) -> Result<Task, ErrorBody> {
        if let Some(result) = &result {
            self.limits
                .check_text("the result", result)
                .map_err(ErrorBody::invalid)?;
        }
        let applied = self.change_registry(|registry, queue, now, changes| {
            queue.tasks.check_holder(id, agent.as_deref())?;
            if let Some(run) = run {
                queue.tasks.end_attempt(id, run, now, changes)?;
            }
            sign_of_life(registry, queue, id, now, changes);
            queue.tasks.complete(id, result, now, changes)
        });
        self.commit(applied).await
    }

    pub async fn fail(
        &self,
        id: TaskId,
        reason: Option<String>,
        retry: bool,
        agent: Option<String>,
        run: Option<RunEnd>,
    ) -> Result<Task, ErrorBody> {
        if let Some(reason) = &reason {
            self.limits
                .check_text("the reason", reason)
                .map_err(ErrorBody::invalid)?;
        }
        let applied = self.change_registry(|registry, queue, now, changes| {
            queue.tasks.check_holder(id, agent.as_deref())?;
            if let Some(run) = run {
                queue.tasks.end_attempt(id, run, now, changes)?;
            }
            sign_of_life(registry, queue, id, now, changes);
            queue.tasks.fail(id, reason, retry, now, changes)
        });
        self.commit(applied).await
    }

    /// A worker that stopped before `id` ended gives it back: queued again at once, the
    /// attempt refunded.
    pub async fn give_back(&self, id: TaskId, agent: String) -> Result<Task, ErrorBody> {
        let applied = self.change_registry(|registry, queue, now, changes| {
            queue.tasks.check_holder(id, Some(&agent))?;
            sign_of_life(registry, queue, id, now, changes);
            queue.tasks.give_back(id, now, changes)
        });
        self.commit(applied).await
    }

    /// Cancels a task; also returns the tasks cancelled with it (those waiting on it, and
    /// on them, in turn).
    pub async fn cancel(&self, id: TaskId) -> Result<(Task, Vec<TaskId>), ErrorBody> {
        let applied = self.change_queue(|_, queue, now, changes| {
            let before = changes.len();
            let task = queue.tasks.cancel(id, now, changes)?;
            let dependents = changes[before..]
                .iter()
                .filter_map(|change| match change {
                    Change::TaskFinished {
                        id: dependent,
                        status: TaskStatus::Cancelled,
                        ..
                    } if *dependent != id => Some(*dependent),
                    _ => None,
                })
                .collect();
            Ok((task, dependents))
        });
        self.commit(applied).await
    }

    pub async fn retry(&self, id: TaskId) -> Result<Task, ErrorBody> {
        let applied =
            self.change_queue(|_, queue, now, changes| queue.tasks.retry(id, now, changes));
        self.commit(applied).await
    }

    /// Waits until every task in `ids` has ended or `timeout` runs out; returns where they
    /// stand then (each once, in the order first named) and whether the wait timed out.
    /// Under the lock, a look costs one lookup and at most one watcher per distinct id,
    /// and copies no text.
    pub async fn wait(
        &self,
        ids: Vec<TaskId>,
        timeout: Option<Duration>,
    ) -> Result<(Vec<TaskOutcome>, bool), ErrorBody> {
        if ids.is_empty() || ids.len() > MAX_WAIT_IDS {
            return Err(ErrorBody::invalid(format!(
                "wait for 1 to {MAX_WAIT_IDS} tasks, not {}",
                ids.len()
            )));
        }
        let _in_progress = self.metrics.wait_started();
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let ids: Vec<TaskId> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
        loop {
            // Under the lock: where the tasks stand, a watcher for each one still running,
            // and a barrier that is durable once everything applied so far is.
            let (tasks, pending, barrier) = {
                let mut queue = self.queue_lock();
                let mut tasks = Vec::with_capacity(ids.len());
                let mut pending = Vec::new();
                for &id in &ids {
                    let outcome = queue
                        .tasks
                        .outcome(id)
                        .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))?;
                    if !outcome.status.is_finished() {
                        pending.push(queue.watchers.watch(id));
                    }
                    tasks.push(outcome);
                }
                let barrier = pending.is_empty().then(|| self.store.barrier());
                (tasks, pending, barrier)
            };
            if let Some(barrier) = barrier {
                // Report an end only once it is on disk.
                Store::wait(barrier).await.map_err(storage_error)?;
                return Ok((tasks, false));
            }
            let all_woken = async {
                for watcher in pending {
                    // Woken (or dropped by a roll-back): look again.
                    let _ = watcher.await;
                }
            };
            let woken = async {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, all_woken).await.is_ok(),
                    None => {
                        all_woken.await;
                        true
                    }
                }
            };
            let woke = tokio::select! {
                woke = woken => woke,
                () = self.shutdown.reached(Phase::Stopping) => {
                    return Err(ErrorBody::unavailable("the daemon is shutting down"));
                }
            };
            if !woke {
                // As of the last look.
                return Ok((tasks, true));
            }
        }
    }

    /// When the lifecycle timer must wake next: a scheduled task, a lease, or an agent
    /// going silent. Records it as the deadline the timer is armed for.
    pub fn arm_timer(&self) -> Option<Millis> {
        let registry = self.registry_read();
        let queue = self.queue_lock();
        let grace = self.silence_grace_from.load(Ordering::SeqCst);
        let silence = registry.next_silence(self.heartbeat_ttl_ms, grace);
        let next = queue.tasks.next_deadline().into_iter().chain(silence).min();
        self.armed.store(next.unwrap_or(u64::MAX), Ordering::SeqCst);
        next
    }

    /// Applies every time-driven transition that is due: scheduled tasks become queued,
    /// expired leases give their tasks back, silent agents go offline and lose theirs.
    pub async fn fire_due(&self) -> Result<(), ErrorBody> {
        let ttl = self.heartbeat_ttl_ms;
        let not_before = self.silence_grace_from.load(Ordering::SeqCst);
        let applied = self.change_registry(|registry, queue, now, changes| {
            for agent in registry.silent(ttl, not_before, now) {
                // An agent waiting in a parked claim is connected, hence alive.
                if queue.parked.has_agent(&agent) {
                    let _ = registry.heartbeat(&agent, now, changes);
                    continue;
                }
                if registry
                    .set_availability(&agent, Availability::Silent, now, changes)
                    .is_ok()
                {
                    let reason = format!(
                        "agent {agent} went silent (no heartbeat for {}s)",
                        ttl / 1000
                    );
                    let lost = queue.tasks.expire_agent(&agent, &reason, now, changes);
                    tracing::warn!(agent, tasks = lost.len(), "agent went silent; now offline");
                }
            }
            queue.tasks.fire_due(now, changes);
            Ok(())
        });
        self.commit(applied).await
    }

    /// Deletes finished tasks that finished more than `older_than` ago; returns how many.
    /// Deletes them [`PRUNE_STEP`] at a time, each step a change of its own under its own
    /// hold of the queue lock, so that pruning a million tasks never stalls other requests.
    pub async fn prune(&self, older_than: Duration) -> Result<usize, ErrorBody> {
        let cutoff = self
            .clock
            .now()
            .saturating_sub(older_than.as_millis() as u64);
        let mut pruned = std::collections::HashSet::new();
        let result = loop {
            let applied = self.change_queue(|_, queue, _, changes| {
                Ok(queue.tasks.prune(cutoff, PRUNE_STEP, changes))
            });
            let step = match self.commit(applied).await {
                Ok(step) => step,
                Err(e) => break Err(e),
            };
            let done = step.len() < PRUNE_STEP;
            pruned.extend(step);
            if done {
                break Ok(pruned.len());
            }
        };
        // Their output goes with them, once their deletion is durable (off the runtime's
        // threads: it is file I/O).
        if !pruned.is_empty()
            && let Some(logs) = self.logs.get().cloned()
        {
            let deleted = tokio::task::spawn_blocking(move || logs.remove(&pruned)).await;
            if let Err(e) = deleted {
                tracing::warn!(error = %e, "deleting the logs of pruned tasks failed");
            }
        }
        result
    }

    /// When the oldest finished task finished.
    pub fn oldest_finished(&self) -> Option<Millis> {
        self.queue_lock().tasks.oldest_finished()
    }

    /// Tasks matching `filter`, in id order, at most a frame's worth (an error naming how
    /// many fitted beyond that). Read in steps, each under its own hold of the queue lock,
    /// of at most [`LIST_STEP`] tasks copied and [`LIST_LOOK`] looked at: a list of a
    /// million tasks held the lock for a third of a second in one piece, and a filter that
    /// few tasks match still has to look at them all (BENCHMARKS.md, lock-hold). Each task
    /// appears once, as it stood when its step read it.
    pub fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, ErrorBody> {
        let budget = crate::protocol::codec::DEFAULT_MAX_FRAME;
        let limit = filter.limit.map_or(usize::MAX, |limit| limit as usize);
        let mut tasks = Vec::new();
        let mut bytes = 0;
        let mut after = filter.after;
        while tasks.len() < limit {
            let queue = self.queue_lock();
            if tasks.is_empty() {
                tasks.reserve(queue.tasks.list_capacity(filter, budget));
            }
            let copy_most = (limit - tasks.len()).min(LIST_STEP);
            let step = queue.tasks.list_step(
                filter, after, LIST_LOOK, copy_most, budget, &mut bytes, &mut tasks,
            )?;
            match step {
                Some(go_on_after) => after = Some(go_on_after),
                None => break,
            }
        }
        Ok(tasks)
    }

    pub fn get_task(&self, id: TaskId) -> Result<Task, ErrorBody> {
        self.queue_lock()
            .tasks
            .get(id)
            .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))
    }

    pub async fn register_agent(
        &self,
        name: String,
        mut capabilities: Vec<String>,
        max_tasks: u32,
    ) -> Result<Agent, ErrorBody> {
        limits::check_name("agent", &name).map_err(ErrorBody::invalid)?;
        limits::normalize_capabilities(&mut capabilities).map_err(ErrorBody::invalid)?;
        if max_tasks == 0 || max_tasks > MAX_TASKS_LIMIT {
            return Err(ErrorBody::invalid(format!(
                "max tasks must be between 1 and {MAX_TASKS_LIMIT}, not {max_tasks}"
            )));
        }
        let applied = self.change_registry(|registry, queue, now, changes| {
            let record = registry.register(&name, capabilities, max_tasks, now, changes);
            Ok(record.view(queue.tasks.running_count(&name)))
        });
        self.commit(applied).await
    }

    pub async fn set_agent_status(
        &self,
        name: String,
        status: AgentStatus,
    ) -> Result<Agent, ErrorBody> {
        let availability = Availability::from_status(status);
        let applied = self.change_registry(|registry, queue, now, changes| {
            registry.set_availability(&name, availability, now, changes)?;
            if availability == Availability::Offline {
                queue.tasks.requeue_agent(&name, now, changes);
            }
            let record = registry.get(&name)?;
            Ok(record.view(queue.tasks.running_count(&name)))
        });
        self.commit(applied).await
    }

    /// The agent is alive. Renews the leases of every task it holds (`AllHeld`), or of the
    /// named tasks only, reporting those it does not hold; with `NamedOnly`, every other
    /// task it holds goes back to the queue.
    pub async fn heartbeat(
        &self,
        name: String,
        mut tasks: Vec<TaskId>,
        renew: Renew,
    ) -> Result<HeartbeatReport, ErrorBody> {
        if renew == Renew::AllHeld && !tasks.is_empty() {
            return Err(ErrorBody::invalid(
                "a heartbeat that renews every task the agent holds names none",
            ));
        }
        if tasks.len() > MAX_TASKS_LIMIT as usize {
            return Err(ErrorBody::invalid(format!(
                "a heartbeat names at most {MAX_TASKS_LIMIT} tasks, not {}",
                tasks.len()
            )));
        }
        tasks.sort_unstable();
        tasks.dedup();
        let applied = self.change_registry(|registry, queue, now, changes| {
            registry.heartbeat(&name, now, changes)?;
            let (renewed, not_held) = match renew {
                Renew::AllHeld => (queue.tasks.extend_leases(&name, now, changes), Vec::new()),
                Renew::Named | Renew::NamedOnly => {
                    queue.tasks.renew_named(&name, &tasks, now, changes)
                }
            };
            let released = if renew == Renew::NamedOnly {
                queue.tasks.take_back_unnamed(&name, &tasks, now, changes)
            } else {
                Vec::new()
            };
            if !released.is_empty() {
                tracing::warn!(
                    agent = name,
                    tasks = ?released,
                    "held tasks the agent's owner does not run; back in the queue"
                );
            }
            let agent = registry.get(&name)?.view(queue.tasks.running_count(&name));
            Ok(HeartbeatReport {
                agent,
                renewed,
                not_held,
                released,
            })
        });
        self.commit(applied).await
    }

    pub async fn remove_agent(&self, name: String) -> Result<Vec<TaskId>, ErrorBody> {
        let applied = self.change_registry(|registry, queue, now, changes| {
            registry.remove(&name, changes)?;
            queue.parked.forget_agent(&name);
            Ok(queue.tasks.requeue_agent(&name, now, changes))
        });
        self.commit(applied).await
    }

    pub fn list_agents(&self, statuses: &[AgentStatus]) -> Vec<Agent> {
        let registry = self.registry_read();
        let queue = self.queue_lock();
        registry
            .iter()
            .map(|record| record.view(queue.tasks.running_count(&record.name)))
            .filter(|agent| statuses.is_empty() || statuses.contains(&agent.status))
            .collect()
    }

    pub fn get_agent(&self, name: &str) -> Result<Agent, ErrorBody> {
        let registry = self.registry_read();
        let queue = self.queue_lock();
        let record = registry
            .get(name)
            .map_err(|_| super::registry::no_such_agent(name))?;
        Ok(record.view(queue.tasks.running_count(name)))
    }

    /// The metrics. Agents by status and tasks by status are counted in one look under
    /// both locks, from the same records `agent list` and `task list` show, so the gauges
    /// agree with those lists at every moment (busy means holding a running task).
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut by_status = [0u64; AgentStatus::ALL.len()];
        let (tasks, parked_claims) = {
            let registry = self.registry_read();
            let queue = self.queue_lock();
            for record in registry.iter() {
                let status = record.status(queue.tasks.running_count(&record.name));
                by_status[status.index()] += 1;
            }
            (queue.tasks.counts(), queue.parked.waiting() as u64)
        };
        let (connections_open, connections_total) = self.metrics.connections();
        let (run_cumulative, run_sum_ms) = self.metrics.run_times();
        MetricsSnapshot {
            uptime_ms: self.started.elapsed().as_millis() as u64,
            tasks,
            agents: AgentStatus::ALL
                .into_iter()
                .map(|status| (status, by_status[status.index()]))
                .collect(),
            counters: self.metrics.counters(),
            latency_buckets_us: LATENCY_BUCKETS_US.to_vec(),
            requests: self.metrics.request_stats(),
            connections_open,
            connections_total,
            parked_claims,
            store_backlog_bytes: self.store.backlog_bytes(),
            background_lock_hold_max_us: self.metrics.background_hold_max_us(),
            waits_in_progress: self.metrics.waits_in_progress(),
            run_buckets_ms: RUN_BUCKETS_MS.to_vec(),
            run_cumulative,
            run_sum_ms,
        }
    }
}

/// The agent's limit and the tasks it holds, when it holds as many as it may run (and is
/// not paused or offline, which say more about why it gets nothing).
/// Why `agent` gets nothing: `Unavailable` when it is paused or offline, `AtLimit` when it
/// holds as many tasks as it may run, else `Empty` (no queued task it may take).
fn why_nothing(registry: &Registry, queue: &QueueState, agent: &str) -> ClaimOutcome {
    let Ok(record) = registry.get(agent) else {
        return ClaimOutcome::Empty;
    };
    let running = queue.tasks.running_count(agent);
    let Some(who) = record.claimant() else {
        return ClaimOutcome::Unavailable(record.status(running));
    };
    if running >= who.max_tasks {
        return ClaimOutcome::AtLimit {
            max_tasks: who.max_tasks,
            running: queue.tasks.running_of(agent),
        };
    }
    ClaimOutcome::Empty
}

/// A finishing request is a sign of life from the task's agent: it counts as a heartbeat.
/// It says nothing about the agent's other tasks, whose leases run on: only a sign of life
/// about a task renews its lease.
fn sign_of_life(
    registry: &mut Registry,
    queue: &QueueState,
    id: TaskId,
    now: Millis,
    changes: &mut Vec<Change>,
) {
    if let Some(agent) = queue.tasks.running_agent(id) {
        let _ = registry.heartbeat(agent, now, changes);
    }
}

impl Recovery for AppState {
    fn recovered(&self) {
        // While writes were refused, agents could neither heartbeat nor finish: give them
        // back the time they lost instead of expiring everything at once.
        let now = self.clock.now();
        self.silence_grace_from.store(now, Ordering::SeqCst);
        self.queue_lock().tasks.extend_all_leases(now);
        self.timer.notify_one();
        // A roll-back kept in memory the ids clients may have seen (`raise_next_id`); store
        // that mark too, so that a restart does not hand them out again. Nobody awaits it.
        let stored = self.change_queue(|_, queue, _, changes| {
            changes.push(Change::IdsUsed {
                next_id: queue.tasks.next_id(),
            });
            Ok(())
        });
        if let Err(e) = stored {
            tracing::warn!(error = %e.message, "cannot store the next task id yet");
        }
    }

    fn committed(&self, changes: &mut dyn Iterator<Item = &Change>, deltas: &TaskCounters) {
        self.metrics.add_counters(deltas);
        let mut changes = changes.inspect(|change| {
            if let Change::AttemptEnded { started_at, at, .. } = change {
                self.metrics.observe_run(at.saturating_sub(*started_at));
            }
        });
        if self.events.has_subscribers() {
            self.events.publish(&mut changes);
        } else {
            changes.for_each(drop);
        }
    }

    fn roll_back(
        &self,
        drain: &mut dyn FnMut(),
        load: &mut dyn FnMut() -> Result<Snapshot, StoreError>,
    ) -> bool {
        {
            // Under the locks, so nothing is submitted between the failure and the drain.
            let _registry = self.registry_write();
            let _queue = self.queue_lock();
            drain();
        }
        // Reading the database happens without the locks: a hanging disk must not stop
        // reads, pings or a shutdown. Writes are refused meanwhile (the store is degraded).
        let mut snapshot = match load() {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the database back");
                return false;
            }
        };
        let mut registry = self.registry_write();
        let mut queue = self.queue_lock();
        // Ids some client may have seen are never handed out again.
        snapshot.tasks.raise_next_id(queue.tasks.next_id());
        snapshot.tasks.set_policy(queue.tasks.policy());
        *registry = snapshot.registry;
        queue.tasks = snapshot.tasks;
        queue.tasks.grant_missing_leases(self.clock.now());
        // Waiters look again, at the restored state; the timer re-arms for its deadlines.
        queue.watchers = TaskWatchers::default();
        self.timer.notify_one();
        tracing::warn!("in-memory state reset to what the database holds");
        true
    }
}

/// Test hooks for the ADR-026 lock tests (`tests/shared_state.rs`): a test holds one of the
/// two locks to show who waits for it (readers beside a registry reader, writers behind
/// it; writers behind the queue lock). Not part of the daemon's interface; `f` must not call
/// back into `AppState` methods that take the same lock.
impl AppState {
    /// Runs `f` while holding a read guard of the agent registry.
    #[doc(hidden)]
    pub fn with_registry_read<R>(&self, f: impl FnOnce() -> R) -> R {
        let _registry = self.registry_read();
        f()
    }

    /// Runs `f` while holding the task queue lock.
    #[doc(hidden)]
    pub fn with_queue_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _queue = self.queue_lock();
        f()
    }
}
