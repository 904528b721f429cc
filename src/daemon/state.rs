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
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::change::Change;
use super::clock::Clock;
use super::events::Events;
use super::metrics::{LATENCY_BUCKETS_US, Metrics};
use super::parked::{ParkedClaim, ParkedClaims, TaskWatchers};
use super::queue::{Policy, TaskQueue};
use super::registry::{Availability, Registry};
use super::shutdown::{Phase, Shutdown};
use super::store::{Ack, Recovery, Snapshot, Store, StoreError, Ticket};
use crate::protocol::handshake::{PROTOCOL_VERSION, SOFTWARE_VERSION};
use crate::protocol::limits::{self, Limits, MAX_TASKS_LIMIT};
use crate::protocol::response::TaskCounters;
use crate::protocol::{
    Agent, AgentStatus, DaemonInfo, DoneFirst, ErrorBody, ErrorKind, MetricsSnapshot, Millis,
    NewTask, Task, TaskFilter, TaskId,
};

/// Most task ids one `wait` request may name.
const MAX_WAIT_IDS: usize = 10_000;

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
                Change::AgentHeartbeat { .. } | Change::TaskClaimed { .. }
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
    /// Size limits on what clients send.
    limits: Limits,
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
            limits,
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

    fn queue_lock(&self) -> MutexGuard<'_, QueueState> {
        self.queue.lock().unwrap_or_else(|poisoned| {
            tracing::error!("task queue lock was poisoned by a panic; recovering");
            poisoned.into_inner()
        })
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
        }
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
            }
            // A claim is a sign of life.
            let record = registry.heartbeat(&agent, now, changes)?;
            if let Some(done) = done {
                queue.tasks.complete(done.id, done.result, now, changes)?;
            }
            queue.tasks.extend_leases(&agent, now, changes);
            let claimed = record
                .claimant()
                .and_then(|who| queue.tasks.claim(who, &queues, now, changes));
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
    ) -> Result<Task, ErrorBody> {
        if let Some(result) = &result {
            self.limits
                .check_text("the result", result)
                .map_err(ErrorBody::invalid)?;
        }
        let applied = self.change_registry(|registry, queue, now, changes| {
            queue.tasks.check_holder(id, agent.as_deref())?;
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
    ) -> Result<Task, ErrorBody> {
        if let Some(reason) = &reason {
            self.limits
                .check_text("the reason", reason)
                .map_err(ErrorBody::invalid)?;
        }
        let applied = self.change_registry(|registry, queue, now, changes| {
            queue.tasks.check_holder(id, agent.as_deref())?;
            sign_of_life(registry, queue, id, now, changes);
            queue.tasks.fail(id, reason, retry, now, changes)
        });
        self.commit(applied).await
    }

    pub async fn cancel(&self, id: TaskId) -> Result<Task, ErrorBody> {
        let applied =
            self.change_queue(|_, queue, now, changes| queue.tasks.cancel(id, now, changes));
        self.commit(applied).await
    }

    pub async fn retry(&self, id: TaskId) -> Result<Task, ErrorBody> {
        let applied =
            self.change_queue(|_, queue, now, changes| queue.tasks.retry(id, now, changes));
        self.commit(applied).await
    }

    /// Waits until every task in `ids` has ended or `timeout` runs out; returns the tasks
    /// as they are then and whether the wait timed out.
    pub async fn wait(
        &self,
        ids: Vec<TaskId>,
        timeout: Option<Duration>,
    ) -> Result<(Vec<Task>, bool), ErrorBody> {
        if ids.is_empty() || ids.len() > MAX_WAIT_IDS {
            return Err(ErrorBody::invalid(format!(
                "wait for 1 to {MAX_WAIT_IDS} tasks, not {}",
                ids.len()
            )));
        }
        let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
        loop {
            // Under the lock: the tasks as they are, a watcher for each one still running,
            // and a barrier that is durable once everything applied so far is.
            let (tasks, pending, barrier) = {
                let mut queue = self.queue_lock();
                let mut tasks = Vec::with_capacity(ids.len());
                let mut pending = Vec::new();
                let mut bytes = 0;
                for &id in &ids {
                    let mut task = queue
                        .tasks
                        .get(id)
                        .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))?;
                    // Outcomes are what a wait reports: payloads that would not fit in one
                    // answer are left out rather than copied.
                    bytes += crate::daemon::queue::encoded_size_estimate(&task);
                    if bytes > crate::protocol::codec::DEFAULT_MAX_FRAME / 2 {
                        task.payload.clear();
                    }
                    if !task.status.is_finished() {
                        pending.push(queue.watchers.watch(id));
                    }
                    tasks.push(task);
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
                // As of the last look (payloads possibly left out, see above).
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
    pub async fn prune(&self, older_than: Duration) -> Result<usize, ErrorBody> {
        let applied = self.change_queue(|_, queue, now, changes| {
            let cutoff = now.saturating_sub(older_than.as_millis() as u64);
            Ok(queue.tasks.prune(cutoff, changes).len())
        });
        self.commit(applied).await
    }

    /// When the oldest finished task finished.
    pub fn oldest_finished(&self) -> Option<Millis> {
        self.queue_lock().tasks.oldest_finished()
    }

    pub fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, ErrorBody> {
        let budget = crate::protocol::codec::DEFAULT_MAX_FRAME;
        self.queue_lock().tasks.list(filter, budget)
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

    pub async fn heartbeat(&self, name: String) -> Result<Agent, ErrorBody> {
        let applied = self.change_registry(|registry, queue, now, changes| {
            let record = registry.heartbeat(&name, now, changes)?;
            let view = record.view(queue.tasks.running_count(&name));
            queue.tasks.extend_leases(&name, now, changes);
            Ok(view)
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
        let record = registry.get(name)?;
        Ok(record.view(queue.tasks.running_count(name)))
    }

    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let agents = self.list_agents(&[]);
        let (tasks, parked_claims) = {
            let queue = self.queue_lock();
            (queue.tasks.counts(), queue.parked.waiting() as u64)
        };
        let mut by_status = [0u64; AgentStatus::ALL.len()];
        for agent in &agents {
            by_status[agent.status.index()] += 1;
        }
        let (connections_open, connections_total) = self.metrics.connections();
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
        }
    }
}

/// A finishing request is a sign of life from the task's agent: it counts as a heartbeat
/// and renews the leases of the agent's other tasks.
fn sign_of_life(
    registry: &mut Registry,
    queue: &mut QueueState,
    id: TaskId,
    now: Millis,
    changes: &mut Vec<Change>,
) {
    let running_agent = queue.tasks.running_agent(id).map(str::to_string);
    if let Some(agent) = running_agent
        && registry.heartbeat(&agent, now, changes).is_ok()
    {
        queue.tasks.extend_leases(&agent, now, changes);
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
    }

    fn committed(&self, changes: &mut dyn Iterator<Item = &Change>, deltas: &TaskCounters) {
        self.metrics.add_counters(deltas);
        if self.events.has_subscribers() {
            self.events.publish(changes);
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
