//! The task queue as a plain data structure: no locks, no I/O, no clocks (callers pass `now`).
//!
//! Ready tasks sit in one max-heap per *lane*, a lane being a queue name plus a set of
//! required capabilities. A claim looks only at the head of each lane the agent qualifies
//! for, so its cost is O(lanes · log n) and does not grow with the number of queued tasks.
//! Heap order is priority (higher first), then `seq` (lower first), which is FIFO within a
//! priority.
//!
//! Heaps are cleaned lazily: cancelling a queued task leaves its heap entry behind, and the
//! entry is dropped when it reaches the head (its task is no longer queued under that seq).
//!
//! Time-driven transitions are indexed by deadline so the lifecycle timer never scans:
//! scheduled tasks by `run_at`, running tasks by `lease_until`. Blocked tasks are indexed by
//! the dependencies they still wait for.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;

use super::change::{Change, RequeueCause};
use super::record::Record;
use crate::protocol::{
    ErrorBody, Millis, NewTask, NotHeld, RunEnd, Task, TaskFilter, TaskId, TaskOutcome, TaskStatus,
};

/// The facts about an agent that decide what it may claim.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub name: &'a str,
    /// Sorted, without duplicates.
    pub capabilities: &'a [String],
    pub max_tasks: u32,
}

/// The daemon's timing settings, as the queue needs them.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A claim's lease, unless the task sets its own.
    pub lease_ms: u64,
    /// The first retry's delay after a failure; doubles per attempt. 0: retry at once.
    pub retry_backoff_ms: u64,
}

/// The longest retry backoff, however many attempts.
const MAX_BACKOFF_MS: u64 = 60 * 60 * 1000;

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            lease_ms: 5 * 60 * 1000,
            retry_backoff_ms: 1000,
        }
    }
}

impl Policy {
    /// The delay before retry number `attempts` of task `id`: exponential, capped, with
    /// ±25 % jitter (derived from the id and attempt, so a restart does not change it and
    /// tasks that failed together do not retry together).
    pub fn backoff_ms(&self, id: TaskId, attempts: u32) -> u64 {
        if self.retry_backoff_ms == 0 {
            return 0;
        }
        let exponent = attempts.saturating_sub(1).min(32);
        let base = self
            .retry_backoff_ms
            .saturating_mul(1u64 << exponent)
            .min(MAX_BACKOFF_MS);
        let mut x = id ^ (u64::from(attempts) << 40) ^ 0x9e37_79b9_7f4a_7c15;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let permille = 750 + (x ^ (x >> 31)) % 501; // 750..=1250
        base / 1000 * permille + base % 1000 * permille / 1000
    }
}

/// A heap entry: a queued task's ordering key.
#[derive(Debug, PartialEq, Eq)]
struct Ready {
    priority: i32,
    seq: u64,
    id: TaskId,
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lane {
    queue: String,
    requires: Vec<String>,
}

/// A lane's key as borrowed parts: every add looks its lane up, and building an owned
/// `Lane` for that cost two allocations (a tenth of start-up with a million tasks).
#[derive(PartialEq, Eq, Hash)]
struct LaneRef<'a> {
    queue: &'a str,
    requires: &'a [String],
}

/// What `Lane` and `LaneRef` share, so the lanes map can be searched with either.
trait LaneKey {
    fn parts(&self) -> LaneRef<'_>;
}

impl LaneKey for Lane {
    fn parts(&self) -> LaneRef<'_> {
        LaneRef {
            queue: &self.queue,
            requires: &self.requires,
        }
    }
}

impl LaneKey for LaneRef<'_> {
    fn parts(&self) -> LaneRef<'_> {
        LaneRef {
            queue: self.queue,
            requires: self.requires,
        }
    }
}

impl Hash for Lane {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl<'a> Borrow<dyn LaneKey + 'a> for Lane {
    fn borrow(&self) -> &(dyn LaneKey + 'a) {
        self
    }
}

impl Hash for dyn LaneKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn LaneKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn LaneKey + '_ {}

#[derive(Debug, Default)]
pub struct TaskQueue {
    /// Boxed: map nodes are kept about half full as ids grow, and half-empty nodes of
    /// whole records cost more per task than nodes of pointers (`vapora-bench memory`).
    tasks: BTreeMap<TaskId, Box<Record>>,
    /// Queue names, one shared copy each for every record of that queue.
    queue_names: HashSet<Arc<str>>,
    lanes: HashMap<Lane, BinaryHeap<Ready>>,
    /// Number of tasks whose status is `queued`.
    queued: usize,
    running_by_agent: HashMap<String, BTreeSet<TaskId>>,
    /// Task count per queue and status, kept up to date so metrics never scan.
    counts: BTreeMap<String, [u64; TaskStatus::ALL.len()]>,
    /// Finished tasks by (updated_at, id): retention finds what expired without scanning.
    finished: BTreeSet<(Millis, TaskId)>,
    /// Scheduled tasks by (run_at, id).
    scheduled: BTreeSet<(Millis, TaskId)>,
    /// Running tasks by (lease_until, id).
    leases: BTreeSet<(Millis, TaskId)>,
    /// For each unfinished task, the blocked tasks waiting for it.
    dependents: HashMap<TaskId, Vec<TaskId>>,
    /// For each blocked task, how many of its dependencies are not done yet.
    waiting_on: HashMap<TaskId, usize>,
    policy: Policy,
    next_id: TaskId,
    next_seq: u64,
}

/// Puts `task` (queued, with place `seq`) at its place in its lane's heap.
fn push_ready(lanes: &mut HashMap<Lane, BinaryHeap<Ready>>, task: &Record, seq: u64) {
    let ready = Ready {
        priority: task.priority,
        seq,
        id: task.id,
    };
    let key = LaneRef {
        queue: &task.queue,
        requires: task.requires(),
    };
    match lanes.get_mut(&key as &dyn LaneKey) {
        Some(heap) => heap.push(ready),
        None => {
            let lane = Lane {
                queue: task.queue.to_string(),
                requires: task.requires().to_vec(),
            };
            lanes.insert(lane, BinaryHeap::from(vec![ready]));
        }
    }
}

/// Whether a list with `filter` shows `task` (its statuses, queue and agent).
fn list_match(filter: &TaskFilter, task: &Record) -> bool {
    (filter.statuses.is_empty() || filter.statuses.contains(&task.status))
        && filter.queue.as_deref().is_none_or(|q| &*task.queue == q)
        && filter
            .agent
            .as_deref()
            .is_none_or(|a| task.agent.as_deref() == Some(a))
}

/// Appends a copy of `task` to a list, counting its size in `bytes`: an error once that
/// would pass `byte_budget`, the most one answer may hold.
fn list_copy(
    task: &Record,
    byte_budget: usize,
    bytes: &mut usize,
    out: &mut Vec<Task>,
) -> Result<(), ErrorBody> {
    let task = task.to_task();
    *bytes += encoded_size_estimate(&task);
    if *bytes > byte_budget {
        return Err(ErrorBody::invalid(format!(
            "the list would be larger than {byte_budget} bytes, the most one answer holds \
             ({} tasks fit): ask for fewer with --status or --queue, or page through it \
             with --limit and --after",
            out.len()
        )));
    }
    out.push(task);
    Ok(())
}

fn is_subset(required: &[String], available: &[String]) -> bool {
    required
        .iter()
        .all(|cap| available.binary_search(cap).is_ok())
}

fn not_found(id: TaskId) -> ErrorBody {
    ErrorBody::not_found(format!("no task with id {id}"))
}

impl TaskQueue {
    pub fn new() -> TaskQueue {
        TaskQueue {
            next_id: 1,
            ..TaskQueue::default()
        }
    }

    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Task `id` as the protocol shows it (a copy).
    pub fn get(&self, id: TaskId) -> Option<Task> {
        self.record(id).map(Record::to_task)
    }

    /// Where task `id` stands, without copying its texts.
    pub fn outcome(&self, id: TaskId) -> Option<TaskOutcome> {
        self.record(id).map(|task| TaskOutcome {
            id,
            status: task.status,
            attempts: task.attempts,
        })
    }

    /// The agent running task `id`, if it is running.
    pub fn running_agent(&self, id: TaskId) -> Option<&str> {
        self.record(id)
            .filter(|task| task.status == TaskStatus::Running)
            .and_then(|task| task.agent.as_deref())
    }

    fn record(&self, id: TaskId) -> Option<&Record> {
        self.tasks.get(&id).map(Box::as_ref)
    }

    /// The shared copy of queue name `name`.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.queue_names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.queue_names.insert(shared.clone());
        shared
    }

    /// The id the next added task gets.
    pub fn next_id(&self) -> TaskId {
        self.next_id
    }

    /// Makes sure ids below `next_id` are never handed out (after a roll-back).
    pub fn raise_next_id(&mut self, next_id: TaskId) {
        self.next_id = self.next_id.max(next_id);
    }

    /// Number of queued tasks.
    pub fn queued_len(&self) -> usize {
        self.queued
    }

    /// How many tasks `agent` runs now.
    pub fn running_count(&self, agent: &str) -> u32 {
        self.running_by_agent
            .get(agent)
            .map_or(0, |ids| ids.len() as u32)
    }

    /// The tasks `agent` runs now.
    pub fn running_of(&self, agent: &str) -> Vec<TaskId> {
        self.running_by_agent
            .get(agent)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The earliest time something here is due: a scheduled task or a lease.
    pub fn next_deadline(&self) -> Option<Millis> {
        let scheduled = self.scheduled.first().map(|&(at, _)| at);
        let lease = self.leases.first().map(|&(at, _)| at);
        scheduled.into_iter().chain(lease).min()
    }

    /// Checks that a task may be added: its dependencies exist.
    pub fn check_new(&self, new: &NewTask) -> Result<(), ErrorBody> {
        for &dep in &new.after {
            if !self.tasks.contains_key(&dep) {
                return Err(ErrorBody::not_found(format!(
                    "no task with id {dep} (named in --after)"
                )));
            }
        }
        Ok(())
    }

    /// Adds a checked (`check_new`) and validated task: blocked while a dependency is not
    /// done, cancelled at once if one failed or was cancelled, scheduled while `run_at` is
    /// in the future, else queued at the back of its priority. A new task cannot close a
    /// dependency cycle: its dependencies exist already and nothing can depend on it yet.
    pub fn add(&mut self, new: NewTask, now: Millis, changes: &mut Vec<Change>) -> TaskId {
        let id = self.next_id;
        self.next_id += 1;
        let mut failed_dependency = None;
        let mut pending = Vec::new();
        for &dep in &new.after {
            match self.record(dep).map(|task| task.status) {
                Some(TaskStatus::Done) | None => {}
                Some(status @ (TaskStatus::Failed | TaskStatus::Cancelled)) => {
                    failed_dependency.get_or_insert((dep, status));
                }
                Some(_) => pending.push(dep),
            }
        }
        let (status, error) = if let Some((dep, status)) = failed_dependency {
            (
                TaskStatus::Cancelled,
                Some(format!("dependency {dep} {status}")),
            )
        } else if !pending.is_empty() {
            (TaskStatus::Blocked, None)
        } else if new.run_at.is_some_and(|at| at > now) {
            (TaskStatus::Scheduled, None)
        } else {
            (TaskStatus::Queued, None)
        };
        let task = Task {
            id,
            title: new.title,
            payload: new.payload,
            queue: new.queue,
            priority: new.priority,
            status,
            requires: new.requires,
            agent: None,
            attempts: 0,
            max_attempts: new.max_attempts,
            created_at: now,
            updated_at: now,
            result: None,
            error,
            run_at: new.run_at,
            lease_until: None,
            lease_ms: new.lease_ms,
            after: new.after,
            cwd: new.cwd,
            env: new.env,
            timeout_ms: new.timeout_ms,
            started_at: None,
            ended_at: None,
            exit_code: None,
        };
        self.count(&task.queue, task.status, 1);
        let seq = self.take_seq();
        changes.push(Change::TaskAdded {
            task: Box::new(task.clone()),
            seq,
        });
        let run_at = task.run_at.unwrap_or(now);
        let queue = self.intern(&task.queue);
        self.tasks
            .insert(id, Box::new(Record::new(task, seq, queue)));
        match status {
            TaskStatus::Queued => self.make_ready(id, seq),
            TaskStatus::Scheduled => {
                self.scheduled.insert((run_at, id));
            }
            TaskStatus::Blocked => {
                self.waiting_on.insert(id, pending.len());
                for dep in pending {
                    self.dependents.entry(dep).or_default().push(id);
                }
            }
            _ => {
                self.finished.insert((now, id));
            }
        }
        id
    }

    /// Claims the best task `who` may take from `queues` (all queues when empty): the
    /// highest priority, then the oldest, among the heads of the lanes it qualifies for.
    /// The claim holds a lease until `now` plus the task's (or the policy's) lease length.
    pub fn claim(
        &mut self,
        who: Claimant<'_>,
        queues: &[String],
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Option<Task> {
        if self.queued == 0 || self.running_count(who.name) >= who.max_tasks {
            return None;
        }
        let TaskQueue { tasks, lanes, .. } = self;
        let mut best: Option<(&Lane, &Ready)> = None;
        for (lane, heap) in lanes.iter_mut() {
            if !queues.is_empty() && !queues.contains(&lane.queue) {
                continue;
            }
            if !is_subset(&lane.requires, who.capabilities) {
                continue;
            }
            drop_stale_heads(heap, tasks);
        }
        lanes.retain(|_, heap| !heap.is_empty());
        for (lane, heap) in lanes.iter() {
            if !queues.is_empty() && !queues.contains(&lane.queue) {
                continue;
            }
            if !is_subset(&lane.requires, who.capabilities) {
                continue;
            }
            if let Some(head) = heap.peek()
                && best.is_none_or(|(_, current)| head > current)
            {
                best = Some((lane, head));
            }
        }
        let lane = best.map(|(lane, _)| lane.clone())?;
        let heap = self.lanes.get_mut(&lane)?;
        let ready = heap.pop()?;
        if heap.is_empty() {
            self.lanes.remove(&lane);
        }
        let id = ready.id;
        let lease_ms = self.record(id)?.lease_ms().unwrap_or(self.policy.lease_ms);
        let lease_until = now.saturating_add(lease_ms);
        let task = self.set_status(id, TaskStatus::Running, now)?;
        task.agent = Some(who.name.into());
        task.attempts += 1;
        task.lease_until = Some(lease_until);
        task.set_started(now);
        let claimed = task.to_task();
        self.leases.insert((lease_until, id));
        self.running_by_agent
            .entry(who.name.to_string())
            .or_default()
            .insert(id);
        changes.push(Change::TaskClaimed {
            id,
            queue: claimed.queue.clone(),
            agent: who.name.to_string(),
            attempts: claimed.attempts,
            lease_until,
            at: now,
        });
        Some(claimed)
    }

    /// Renews the leases of every task `agent` runs (a heartbeat that names no task);
    /// returns their ids.
    pub fn extend_leases(
        &mut self,
        agent: &str,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Vec<TaskId> {
        let ids = self.running_of(agent);
        for &id in &ids {
            self.renew_lease(id, now, changes);
        }
        ids
    }

    /// Renews the leases of the tasks in `ids` that `agent` runs; returns those (renewed)
    /// and those it does not run (any more), with what became of them. One pass over `ids`.
    pub fn renew_named(
        &mut self,
        agent: &str,
        ids: &[TaskId],
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> (Vec<TaskId>, Vec<NotHeld>) {
        let mut renewed = Vec::new();
        let mut not_held = Vec::new();
        for &id in ids {
            match self.record(id) {
                Some(task)
                    if task.status == TaskStatus::Running
                        && task.agent.as_deref() == Some(agent) =>
                {
                    self.renew_lease(id, now, changes);
                    renewed.push(id);
                }
                task => not_held.push(NotHeld {
                    id,
                    status: task.map(|t| t.status),
                    agent: task
                        .filter(|t| t.status == TaskStatus::Running)
                        .and_then(|t| t.agent.as_deref().map(str::to_string)),
                }),
            }
        }
        (renewed, not_held)
    }

    /// Takes back every task `agent` runs that is not in `keep` (sorted): its one owner
    /// says it runs nothing else, so those are tasks whose claim answer was lost. Each is
    /// requeued with its attempt counted (or fails when out of attempts), as when a lease
    /// runs out; returns their ids.
    pub fn take_back_unnamed(
        &mut self,
        agent: &str,
        keep: &[TaskId],
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Vec<TaskId> {
        let orphans: Vec<TaskId> = self
            .running_of(agent)
            .into_iter()
            .filter(|id| keep.binary_search(id).is_err())
            .collect();
        for &id in &orphans {
            let reason = format!("agent {agent} does not run it (its heartbeat named other tasks)");
            self.expire(id, reason, now, changes);
        }
        orphans
    }

    /// Moves a running task's lease to `now` plus its length.
    fn renew_lease(&mut self, id: TaskId, now: Millis, changes: &mut Vec<Change>) {
        let Some(stored) = self.tasks.get_mut(&id) else {
            return;
        };
        let lease_ms = stored.lease_ms().unwrap_or(self.policy.lease_ms);
        let until = now.saturating_add(lease_ms);
        if let Some(old) = stored.lease_until.replace(until) {
            self.leases.remove(&(old, id));
        }
        self.leases.insert((until, id));
        changes.push(Change::LeaseExtended {
            id,
            lease_until: until,
        });
    }

    /// When `by` names an agent, checks that it is the one running task `id`.
    pub fn check_holder(&self, id: TaskId, by: Option<&str>) -> Result<(), ErrorBody> {
        let Some(by) = by else {
            return Ok(());
        };
        let task = self.record(id).ok_or_else(|| not_found(id))?;
        if task.status == TaskStatus::Running && task.agent.as_deref() == Some(by) {
            return Ok(());
        }
        let holder = match (&task.agent, task.status) {
            (Some(agent), TaskStatus::Running) => format!("agent {agent} runs it"),
            _ => format!("it is {}", task.status),
        };
        Err(ErrorBody::conflict(format!(
            "agent {by} does not hold task {id}: {holder}"
        )))
    }

    /// Refuses the report of an attempt that is over: the task, still running, was
    /// claimed again since (its lease ran out). Changes nothing, so that a request can
    /// check it before its first change.
    pub fn check_attempt(&self, id: TaskId, run: RunEnd) -> Result<(), ErrorBody> {
        let task = self.record(id).ok_or_else(|| not_found(id))?;
        if task.status == TaskStatus::Running && task.attempts != run.attempt {
            return Err(ErrorBody::conflict(format!(
                "attempt {} of task {id} is over: it runs attempt {} now",
                run.attempt, task.attempts
            )));
        }
        Ok(())
    }

    /// A worker's report of how the running attempt of task `id` ended, before its
    /// outcome is applied: refused when that attempt is over (the task was claimed again
    /// since), so a late report never ends a newer run.
    pub fn end_attempt(
        &mut self,
        id: TaskId,
        run: RunEnd,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<(), ErrorBody> {
        self.check_attempt(id, run)?;
        let task = self.record(id).ok_or_else(|| not_found(id))?;
        if task.status != TaskStatus::Running {
            // The outcome that follows is refused with the reason.
            return Ok(());
        }
        let started_at = task.started_at().unwrap_or(now);
        if let Some(task) = self.tasks.get_mut(&id) {
            task.set_exit_code(run.exit_code);
        }
        changes.push(Change::AttemptEnded {
            id,
            exit_code: run.exit_code,
            started_at,
            at: now,
        });
        Ok(())
    }

    /// `running` → `done`.
    pub fn complete(
        &mut self,
        id: TaskId,
        result: Option<String>,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        self.expect_status(id, &[TaskStatus::Running], "complete")?;
        self.finish(id, TaskStatus::Done, result, None, now, changes)
    }

    /// `running` → `scheduled` for a retry after a backoff (or straight to `queued` with no
    /// backoff) while attempts are left and `retry`; else `failed`.
    pub fn fail(
        &mut self,
        id: TaskId,
        reason: Option<String>,
        retry: bool,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        let task = self.expect_status(id, &[TaskStatus::Running], "fail")?;
        if retry && task.attempts < task.max_attempts {
            self.retry_later(id, reason, RequeueCause::FailedWithRetry, now, changes)
        } else {
            self.finish(id, TaskStatus::Failed, None, reason, now, changes)
        }
    }

    /// `queued`, `running`, `scheduled` or `blocked` → `cancelled`.
    pub fn cancel(
        &mut self,
        id: TaskId,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        let cancellable = [
            TaskStatus::Queued,
            TaskStatus::Running,
            TaskStatus::Scheduled,
            TaskStatus::Blocked,
        ];
        self.expect_status(id, &cancellable, "cancel")?;
        self.finish(id, TaskStatus::Cancelled, None, None, now, changes)
    }

    /// `failed` or `cancelled` → `queued`, with attempts, result and error reset: a revived
    /// task starts over, at the back of its priority, now (whatever its delay or
    /// dependencies were).
    pub fn retry(
        &mut self,
        id: TaskId,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        self.expect_status(id, &[TaskStatus::Failed, TaskStatus::Cancelled], "retry")?;
        if let Some(stored) = self.tasks.get_mut(&id) {
            stored.attempts = 0;
            stored.set_result(None);
        }
        let seq = self.take_seq();
        self.requeue(id, seq, None, RequeueCause::ManualRetry, now, changes)
            .ok_or_else(|| not_found(id))
    }

    /// Puts every task `agent` runs back in the queue at its old place, refunding the
    /// attempt: an agent removed or set offline by hand is not the task's fault.
    pub fn requeue_agent(
        &mut self,
        agent: &str,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Vec<TaskId> {
        let ids = self.running_of(agent);
        self.running_by_agent.remove(agent);
        for &id in &ids {
            self.refund(id, RequeueCause::AgentLost, now, changes);
        }
        ids
    }

    /// Takes every task from an agent that went silent, counting the attempt (the agent
    /// may have died of the task): each is retried later or fails when out of attempts.
    pub fn expire_agent(
        &mut self,
        agent: &str,
        reason: &str,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Vec<TaskId> {
        let ids = self.running_of(agent);
        for &id in &ids {
            self.expire(id, reason.to_string(), now, changes);
        }
        ids
    }

    /// Undoes a claim whose answer never reached the claimer: the task goes back to its
    /// old place with the attempt refunded. A no-op unless the task is still running on
    /// `agent`.
    pub fn release(&mut self, id: TaskId, agent: &str, now: Millis, changes: &mut Vec<Change>) {
        let still_running = self.record(id).is_some_and(|task| {
            task.status == TaskStatus::Running && task.agent.as_deref() == Some(agent)
        });
        if still_running {
            self.refund(id, RequeueCause::Undelivered, now, changes);
        }
    }

    /// `running` → `queued` at once, the attempt refunded: its worker stopped before it
    /// ended (the caller checked that the worker holds it).
    pub fn give_back(
        &mut self,
        id: TaskId,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        self.expect_status(id, &[TaskStatus::Running], "give back")?;
        self.refund(id, RequeueCause::GivenBack, now, changes);
        self.get(id)
            .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))
    }

    /// Makes due every scheduled task whose time has come and expires every lease that ran
    /// out. Returns whether anything happened.
    pub fn fire_due(&mut self, now: Millis, changes: &mut Vec<Change>) -> bool {
        let before = changes.len();
        while let Some(&(at, id)) = self.scheduled.first() {
            if at > now {
                break;
            }
            self.scheduled.pop_first();
            if self
                .record(id)
                .is_some_and(|t| t.status == TaskStatus::Scheduled)
            {
                let seq = self.take_seq();
                self.requeue(id, seq, None, RequeueCause::Due, now, changes);
            }
        }
        while let Some(&(at, id)) = self.leases.first() {
            if at > now {
                break;
            }
            self.leases.pop_first();
            let agent = self
                .record(id)
                .and_then(|t| t.agent.as_deref())
                .unwrap_or_default()
                .to_string();
            self.expire(id, format!("lease expired on agent {agent}"), now, changes);
        }
        changes.len() > before
    }

    /// When the oldest finished task was last updated, if there is one.
    pub fn oldest_finished(&self) -> Option<Millis> {
        self.finished.first().map(|&(at, _)| at)
    }

    /// Deletes finished tasks last updated at or before `cutoff`, the oldest first and at
    /// most `most` of them; returns their ids.
    pub fn prune(&mut self, cutoff: Millis, most: usize, changes: &mut Vec<Change>) -> Vec<TaskId> {
        let mut ids = Vec::new();
        while let Some(&(at, id)) = self.finished.first() {
            if at > cutoff || ids.len() >= most {
                break;
            }
            self.finished.pop_first();
            if let Some(stored) = self.tasks.remove(&id) {
                self.count(&stored.queue, stored.status, -1);
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            changes.push(Change::TasksPruned { ids: ids.clone() });
        }
        ids
    }

    /// Gives running tasks that have no lease (stored before leases existed) one from
    /// `now`. In memory only: a renewal or the next claim stores it.
    pub fn grant_missing_leases(&mut self, now: Millis) {
        let lease_ms = self.policy.lease_ms;
        for (&id, stored) in self.tasks.iter_mut() {
            if stored.status == TaskStatus::Running && stored.lease_until.is_none() {
                let until = now.saturating_add(stored.lease_ms().unwrap_or(lease_ms));
                stored.lease_until = Some(until);
                self.leases.insert((until, id));
            }
        }
    }

    /// Pushes every running task's lease to at least `now` plus its length (in memory),
    /// after a time in which agents could not renew them.
    pub fn extend_all_leases(&mut self, now: Millis) {
        let lease_ms = self.policy.lease_ms;
        for (&id, stored) in self.tasks.iter_mut() {
            let Some(until) = stored.lease_until else {
                continue;
            };
            let fresh = now.saturating_add(stored.lease_ms().unwrap_or(lease_ms));
            if stored.status == TaskStatus::Running && fresh > until {
                self.leases.remove(&(until, id));
                self.leases.insert((fresh, id));
                stored.lease_until = Some(fresh);
            }
        }
    }

    /// One step of a list: looks at no more than `look_at` tasks after `after`, in id
    /// order, and appends to `out` those matching `filter` (its statuses, queue and agent;
    /// not its `after` or `limit`), no more than `copy_most`. Counts their encoded size in
    /// `bytes`: an error once it would pass `byte_budget`, the most one answer may hold.
    /// Returns the id to go on after, or `None` once the end is reached. The caller takes
    /// the lock for each step, so that no list holds it for long, whatever the queue size
    /// and however few tasks match.
    #[allow(clippy::too_many_arguments)]
    pub fn list_step(
        &self,
        filter: &TaskFilter,
        after: Option<TaskId>,
        look_at: usize,
        copy_most: usize,
        byte_budget: usize,
        bytes: &mut usize,
        out: &mut Vec<Task>,
    ) -> Result<Option<TaskId>, ErrorBody> {
        if !filter.statuses.is_empty() && filter.statuses.iter().all(|&s| s == TaskStatus::Running)
        {
            return self.running_step(filter, after, look_at, copy_most, byte_budget, bytes, out);
        }
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let (mut looked, mut copied) = (0, 0);
        for (&id, task) in self.tasks.range((start, Bound::Unbounded)) {
            looked += 1;
            if list_match(filter, task) {
                list_copy(task, byte_budget, bytes, out)?;
                copied += 1;
            }
            if looked >= look_at || copied >= copy_most {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// [`TaskQueue::list_step`] for running tasks only, read from the agents' sets of
    /// running tasks instead of looking at every task: `vapora top` lists them every second,
    /// and behind a million queued tasks a scan cost the daemon 60 steps under the lock for
    /// a handful of running tasks. Takes each agent's first ids after `after` (a share of
    /// `look_at` each, at least one), so that every running id up to the lowest last id
    /// taken from a set that had more is known; those go out in id order, as a scan's.
    #[allow(clippy::too_many_arguments)]
    fn running_step(
        &self,
        filter: &TaskFilter,
        after: Option<TaskId>,
        look_at: usize,
        copy_most: usize,
        byte_budget: usize,
        bytes: &mut usize,
        out: &mut Vec<Task>,
    ) -> Result<Option<TaskId>, ErrorBody> {
        let sets: Vec<&BTreeSet<TaskId>> = match filter.agent.as_deref() {
            Some(agent) => self.running_by_agent.get(agent).into_iter().collect(),
            None => self.running_by_agent.values().collect(),
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let share = (look_at / sets.len().max(1)).max(1);
        let mut ids = Vec::new();
        // Every running id up to this one is in `ids`.
        let mut known_to = TaskId::MAX;
        for set in sets {
            let taken = ids.len();
            ids.extend(set.range((start, Bound::Unbounded)).take(share).copied());
            if ids.len() - taken == share
                && let Some(&last) = ids.last()
            {
                known_to = known_to.min(last);
            }
        }
        ids.sort_unstable();
        let mut copied = 0;
        for id in ids {
            if id > known_to {
                return Ok(Some(known_to));
            }
            let Some(task) = self.record(id) else {
                continue;
            };
            if list_match(filter, task) {
                list_copy(task, byte_budget, bytes, out)?;
                copied += 1;
                if copied >= copy_most {
                    return Ok(Some(id));
                }
            }
        }
        Ok((known_to != TaskId::MAX).then_some(known_to))
    }

    /// How many tasks a list with this filter can hold at most: every task, when nothing
    /// but a limit filters them (to size the list once instead of growing it).
    pub fn list_capacity(&self, filter: &TaskFilter, byte_budget: usize) -> usize {
        let unfiltered = filter.statuses.is_empty()
            && filter.queue.is_none()
            && filter.agent.is_none()
            && filter.after.is_none();
        if !unfiltered {
            return 0;
        }
        let limit = filter.limit.map_or(usize::MAX, |limit| limit as usize);
        self.tasks.len().min(limit).min(byte_budget / 64)
    }

    /// A stored task too large to send in a frame of `max_frame` bytes, with its size:
    /// one written under larger limits than the daemon now runs with. (Only tasks whose
    /// text alone comes near the frame are measured whole.)
    pub fn task_larger_than(&self, max_frame: usize) -> Option<(TaskId, usize)> {
        let near = max_frame.saturating_sub(64 * 1024);
        self.tasks
            .values()
            .filter(|record| record.text_bytes() > near)
            .map(|record| (record.id, encoded_size_estimate(&record.to_task())))
            .find(|&(_, size)| size > max_frame)
    }

    /// Non-zero (queue, status, count) triples.
    pub fn counts(&self) -> Vec<(String, TaskStatus, u64)> {
        let mut out = Vec::new();
        for (queue, per_status) in &self.counts {
            for status in TaskStatus::ALL {
                let n = per_status[status.index()];
                if n > 0 {
                    out.push((queue.clone(), status, n));
                }
            }
        }
        out
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn count(&mut self, queue: &str, status: TaskStatus, delta: i64) {
        if let Some(per_status) = self.counts.get_mut(queue) {
            let n = &mut per_status[status.index()];
            *n = n.saturating_add_signed(delta);
            if per_status.iter().all(|&n| n == 0) {
                // No task names this queue any more (every record is counted under one
                // status): forget it, so queue names used once do not pile up.
                self.counts.remove(queue);
                self.queue_names.remove(queue);
            }
        } else if delta > 0 {
            let mut per_status = [0; TaskStatus::ALL.len()];
            per_status[status.index()] = delta as u64;
            self.counts.insert(queue.to_string(), per_status);
        }
    }

    /// Puts a task (already marked queued) into its lane's heap.
    fn make_ready(&mut self, id: TaskId, seq: u64) {
        let Some(stored) = self.tasks.get_mut(&id) else {
            return;
        };
        stored.seq = seq;
        push_ready(&mut self.lanes, stored, seq);
        self.queued += 1;
    }

    fn expect_status(
        &self,
        id: TaskId,
        allowed: &[TaskStatus],
        action: &str,
    ) -> Result<&Record, ErrorBody> {
        let task = self.record(id).ok_or_else(|| not_found(id))?;
        if !allowed.contains(&task.status) {
            let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            return Err(ErrorBody::conflict(format!(
                "cannot {action} task {id}: it is {}, and only {} tasks can be {}",
                task.status,
                allowed.join(" or "),
                past_tense(action),
            )));
        }
        Ok(task)
    }

    /// The one place a status changes: keeps every index (counts, heaps, agents' sets,
    /// leases, schedule, dependencies, finished) in line with it.
    fn set_status(&mut self, id: TaskId, status: TaskStatus, now: Millis) -> Option<&mut Record> {
        let stored = self.tasks.get_mut(&id)?;
        let old = stored.status;
        let old_updated = stored.updated_at;
        stored.status = status;
        stored.updated_at = now;
        let queue = stored.queue.clone();
        match old {
            // Its heap entry goes stale and is dropped when it reaches the head.
            TaskStatus::Queued => self.queued -= 1,
            TaskStatus::Running => {
                stored.set_ended(now);
                if let Some(until) = stored.lease_until.take() {
                    self.leases.remove(&(until, id));
                }
                if let Some(agent) = stored.agent.as_deref()
                    && let Some(ids) = self.running_by_agent.get_mut(agent)
                {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.running_by_agent.remove(agent);
                    }
                }
            }
            TaskStatus::Scheduled => {
                if let Some(at) = stored.run_at() {
                    self.scheduled.remove(&(at, id));
                }
            }
            TaskStatus::Blocked => {
                self.waiting_on.remove(&id);
            }
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled => {
                self.finished.remove(&(old_updated, id));
            }
        }
        if status.is_finished() {
            self.finished.insert((now, id));
        }
        // Up before down: the queue never looks empty (and forgotten) on the way.
        self.count(&queue, status, 1);
        self.count(&queue, old, -1);
        self.tasks.get_mut(&id).map(Box::as_mut)
    }

    fn finish(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        result: Option<String>,
        error: Option<String>,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        let task = self
            .set_status(id, status, now)
            .ok_or_else(|| not_found(id))?;
        if result.is_some() {
            task.set_result(result);
        }
        if error.is_some() {
            task.set_error(error);
        }
        let task = task.to_task();
        changes.push(Change::TaskFinished {
            id,
            queue: task.queue.clone(),
            agent: task.agent.clone(),
            status,
            result: task.result.clone(),
            error: task.error.clone(),
            at: now,
        });
        self.resolve_dependents(id, status, now, changes);
        Ok(task)
    }

    /// After task `id` ended with `status`: its blocked dependents go on when it is done
    /// (once nothing else blocks them), and are cancelled when it failed or was cancelled
    /// (and so, in turn, are theirs).
    fn resolve_dependents(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        now: Millis,
        changes: &mut Vec<Change>,
    ) {
        let mut ended = vec![(id, status)];
        while let Some((id, status)) = ended.pop() {
            for dependent in self.dependents.remove(&id).unwrap_or_default() {
                if self.record(dependent).map(|t| t.status) != Some(TaskStatus::Blocked) {
                    continue;
                }
                if status == TaskStatus::Done {
                    let left = self.waiting_on.get_mut(&dependent).map(|n| {
                        *n = n.saturating_sub(1);
                        *n
                    });
                    if left == Some(0) {
                        self.unblock(dependent, now, changes);
                    }
                } else {
                    let reason = format!("dependency {id} {status}");
                    let Some(task) = self.set_status(dependent, TaskStatus::Cancelled, now) else {
                        continue;
                    };
                    task.set_error(Some(reason.clone()));
                    let queue = String::from(&*task.queue);
                    changes.push(Change::TaskFinished {
                        id: dependent,
                        queue,
                        agent: None,
                        status: TaskStatus::Cancelled,
                        result: None,
                        error: Some(reason),
                        at: now,
                    });
                    ended.push((dependent, TaskStatus::Cancelled));
                }
            }
        }
    }

    /// A blocked task whose dependencies are all done: scheduled if its time has not come,
    /// else queued.
    fn unblock(&mut self, id: TaskId, now: Millis, changes: &mut Vec<Change>) {
        let run_at = self
            .record(id)
            .and_then(Record::run_at)
            .filter(|&at| at > now);
        match run_at {
            Some(at) => self.schedule(id, at, None, RequeueCause::DependenciesDone, now, changes),
            None => {
                let seq = self.take_seq();
                self.requeue(id, seq, None, RequeueCause::DependenciesDone, now, changes);
            }
        }
    }

    /// A running task that failed with attempts left: retried after the policy's backoff,
    /// or at once without one.
    fn retry_later(
        &mut self,
        id: TaskId,
        error: Option<String>,
        cause: RequeueCause,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        let attempts = self.record(id).ok_or_else(|| not_found(id))?.attempts;
        let backoff = self.policy.backoff_ms(id, attempts);
        if backoff == 0 {
            let seq = self.take_seq();
            return self
                .requeue(id, seq, error, cause, now, changes)
                .ok_or_else(|| not_found(id));
        }
        self.schedule(id, now.saturating_add(backoff), error, cause, now, changes);
        self.get(id).ok_or_else(|| not_found(id))
    }

    /// Ends a running task that lost its agent or lease, counting the attempt: back in the
    /// queue at once (nothing says the task itself is at fault, so no backoff), or failed
    /// when no attempt is left.
    fn expire(&mut self, id: TaskId, reason: String, now: Millis, changes: &mut Vec<Change>) {
        let Some(task) = self.record(id) else {
            return;
        };
        if task.status != TaskStatus::Running {
            return;
        }
        if task.attempts < task.max_attempts {
            let seq = self.take_seq();
            self.requeue(
                id,
                seq,
                Some(reason),
                RequeueCause::LeaseExpired,
                now,
                changes,
            );
        } else {
            let _ = self.finish(id, TaskStatus::Failed, None, Some(reason), now, changes);
        }
    }

    /// Marks a task scheduled to become queued at `at`.
    fn schedule(
        &mut self,
        id: TaskId,
        at: Millis,
        error: Option<String>,
        cause: RequeueCause,
        now: Millis,
        changes: &mut Vec<Change>,
    ) {
        let Some(task) = self.set_status(id, TaskStatus::Scheduled, now) else {
            return;
        };
        let previous_agent = task.agent.take().map(String::from);
        task.set_run_at(Some(at));
        if error.is_some() {
            task.set_error(error);
        }
        let (attempts, error, queue) = (
            task.attempts,
            task.error().map(str::to_string),
            String::from(&*task.queue),
        );
        self.scheduled.insert((at, id));
        changes.push(Change::TaskScheduled {
            id,
            queue,
            agent: previous_agent,
            attempts,
            run_at: at,
            error,
            cause,
            at: now,
        });
    }

    /// Marks a task queued again with place `seq`.
    fn requeue(
        &mut self,
        id: TaskId,
        seq: u64,
        error: Option<String>,
        cause: RequeueCause,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Option<Task> {
        let task = self.set_status(id, TaskStatus::Queued, now)?;
        let previous_agent = task.agent.take().map(String::from);
        if cause == RequeueCause::ManualRetry {
            task.set_error(None);
            task.set_run_at(None);
        } else if error.is_some() {
            task.set_error(error);
        }
        let task = task.to_task();
        changes.push(Change::TaskRequeued {
            id,
            queue: task.queue.clone(),
            agent: previous_agent,
            attempts: task.attempts,
            seq,
            error: task.error.clone(),
            cause,
            at: now,
        });
        self.make_ready(id, seq);
        Some(task)
    }

    /// Requeues a running task at its old place with its last attempt refunded.
    fn refund(&mut self, id: TaskId, cause: RequeueCause, now: Millis, changes: &mut Vec<Change>) {
        let Some(stored) = self.tasks.get_mut(&id) else {
            return;
        };
        stored.attempts = stored.attempts.saturating_sub(1);
        let seq = stored.seq;
        self.requeue(id, seq, None, cause, now, changes);
    }
}

/// A queue being rebuilt from the store, one task at a time as rows are read (a million
/// tasks never sit in memory twice). Queued tasks go back into their lanes in their old
/// order; running tasks stay with their agents and leases; scheduled and blocked tasks
/// wait as before.
pub struct Restore {
    queue: TaskQueue,
    blocked: Vec<TaskId>,
    /// In id order (the store reads them so): the map is built from them in one go, with
    /// full nodes and no search per task.
    records: Vec<(TaskId, Box<Record>)>,
}

impl Restore {
    pub fn new(next_id: TaskId) -> Restore {
        let mut queue = TaskQueue::new();
        queue.next_id = next_id.max(1);
        Restore {
            queue,
            blocked: Vec::new(),
            records: Vec::new(),
        }
    }

    pub fn push(&mut self, task: Task, seq: u64) {
        let queue = &mut self.queue;
        let id = task.id;
        queue.next_id = queue.next_id.max(id + 1);
        queue.next_seq = queue.next_seq.max(seq);
        queue.count(&task.queue, task.status, 1);
        match task.status {
            TaskStatus::Queued => {}
            TaskStatus::Running => {
                if let Some(agent) = &task.agent {
                    queue
                        .running_by_agent
                        .entry(agent.clone())
                        .or_default()
                        .insert(id);
                }
                // Tasks from before leases existed get one at start-up (see
                // `grant_missing_leases`).
                if let Some(until) = task.lease_until {
                    queue.leases.insert((until, id));
                }
            }
            TaskStatus::Scheduled => {
                queue.scheduled.insert((task.run_at.unwrap_or(0), id));
            }
            TaskStatus::Blocked => self.blocked.push(id),
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled => {
                queue.finished.insert((task.updated_at, id));
            }
        }
        let name = queue.intern(&task.queue);
        let record = Record::new(task, seq, name);
        if record.status == TaskStatus::Queued {
            push_ready(&mut queue.lanes, &record, seq);
            queue.queued += 1;
        }
        self.records.push((id, Box::new(record)));
    }

    pub fn finish(self) -> TaskQueue {
        let Restore {
            mut queue,
            blocked,
            records,
        } = self;
        queue.tasks = records.into_iter().collect();
        for id in blocked {
            // A dependency that is gone was pruned, so it finished; had it failed, this
            // task would have been cancelled with it.
            let pending: Vec<TaskId> = queue
                .record(id)
                .map(|task| task.after().to_vec())
                .unwrap_or_default()
                .into_iter()
                .filter(|dep| {
                    queue
                        .record(*dep)
                        .is_some_and(|d| d.status != TaskStatus::Done)
                })
                .collect();
            queue.waiting_on.insert(id, pending.len());
            for dep in pending {
                queue.dependents.entry(dep).or_default().push(id);
            }
        }
        queue
    }
}

/// About how many bytes a task takes on the wire (a little more, never less).
pub fn encoded_size_estimate(task: &Task) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    64 + task.title.len()
        + task.payload.len()
        + task.queue.len()
        + text(&task.agent)
        + text(&task.result)
        + text(&task.error)
        + task.requires.iter().map(|r| r.len() + 9).sum::<usize>()
        + task.after.len() * 10
}

/// Pops heap heads whose task is no longer queued under that entry's seq.
fn drop_stale_heads(heap: &mut BinaryHeap<Ready>, tasks: &BTreeMap<TaskId, Box<Record>>) {
    while let Some(head) = heap.peek() {
        let live = tasks
            .get(&head.id)
            .is_some_and(|stored| stored.status == TaskStatus::Queued && stored.seq == head.seq);
        if live {
            return;
        }
        heap.pop();
    }
}

fn past_tense(action: &str) -> &'static str {
    match action {
        "complete" => "completed",
        "fail" => "failed",
        "cancel" => "cancelled",
        "retry" => "retried",
        _ => "changed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn add(queue: &mut TaskQueue, title: &str, priority: i32, requires: &[&str]) -> TaskId {
        let mut task = NewTask::new(title);
        task.priority = priority;
        task.requires = caps(requires);
        task.validate(&crate::protocol::limits::Limits::default())
            .unwrap();
        queue.add(task, 0, &mut Vec::new())
    }

    fn claim(
        queue: &mut TaskQueue,
        agent: &str,
        capabilities: &[String],
        max: u32,
    ) -> Option<TaskId> {
        let who = Claimant {
            name: agent,
            capabilities,
            max_tasks: max,
        };
        queue.claim(who, &[], 1, &mut Vec::new()).map(|t| t.id)
    }

    /// A claim by `agent` (any capability, up to 5 tasks) at time `now`.
    fn claim_at(queue: &mut TaskQueue, agent: &str, now: Millis) -> Option<TaskId> {
        let who = Claimant {
            name: agent,
            capabilities: &[],
            max_tasks: 5,
        };
        queue.claim(who, &[], now, &mut Vec::new()).map(|t| t.id)
    }

    /// A queue that retries a failed task at once.
    fn without_backoff() -> TaskQueue {
        let mut queue = TaskQueue::new();
        queue.set_policy(Policy {
            retry_backoff_ms: 0,
            ..Policy::default()
        });
        queue
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        let mut queue = TaskQueue::new();
        let low = add(&mut queue, "low", -1, &[]);
        let a = add(&mut queue, "a", 0, &[]);
        let high = add(&mut queue, "high", 5, &[]);
        let b = add(&mut queue, "b", 0, &[]);
        let order: Vec<_> = (0..4)
            .map(|_| claim(&mut queue, "w", &[], 10).unwrap())
            .collect();
        assert_eq!(order, vec![high, a, b, low]);
        assert_eq!(claim(&mut queue, "w", &[], 10), None);
    }

    #[test]
    fn fifo_holds_across_lanes() {
        let mut queue = TaskQueue::new();
        let gpu = add(&mut queue, "gpu", 0, &["gpu"]);
        let plain = add(&mut queue, "plain", 0, &[]);
        let all = caps(&["gpu"]);
        assert_eq!(claim(&mut queue, "w", &all, 10), Some(gpu));
        assert_eq!(claim(&mut queue, "w", &all, 10), Some(plain));
    }

    #[test]
    fn capabilities_must_cover_requirements() {
        let mut queue = TaskQueue::new();
        let id = add(&mut queue, "t", 0, &["gpu", "linux"]);
        assert_eq!(claim(&mut queue, "w", &caps(&["gpu"]), 1), None);
        assert_eq!(
            claim(&mut queue, "w", &caps(&["gpu", "linux", "x"]), 1),
            Some(id)
        );
    }

    #[test]
    fn max_tasks_limits_concurrent_claims() {
        let mut queue = TaskQueue::new();
        let first = add(&mut queue, "1", 0, &[]);
        add(&mut queue, "2", 0, &[]);
        assert_eq!(claim(&mut queue, "w", &[], 1), Some(first));
        assert_eq!(claim(&mut queue, "w", &[], 1), None);
        queue.complete(first, None, 2, &mut Vec::new()).unwrap();
        assert!(claim(&mut queue, "w", &[], 1).is_some());
    }

    #[test]
    fn queues_filter_claims() {
        let mut queue = TaskQueue::new();
        let mut task = NewTask::new("mail");
        task.queue = "mail".into();
        let mail = queue.add(task, 0, &mut Vec::new());
        let who = Claimant {
            name: "w",
            capabilities: &[],
            max_tasks: 5,
        };
        assert!(
            queue
                .claim(who, &["other".into()], 1, &mut Vec::new())
                .is_none()
        );
        let got = queue.claim(who, &["mail".into()], 1, &mut Vec::new());
        assert_eq!(got.map(|t| t.id), Some(mail));
    }

    #[test]
    fn a_list_read_in_small_steps_is_the_list_read_at_once() {
        let mut queue = TaskQueue::new();
        let mut changes = Vec::new();
        for i in 0..100 {
            let id = queue.add(NewTask::new(format!("t{i}")), 1, &mut changes);
            if i % 3 == 0 {
                queue.cancel(id, 2, &mut changes).unwrap();
            }
        }
        let filter = TaskFilter {
            statuses: vec![TaskStatus::Cancelled],
            ..TaskFilter::default()
        };
        let read = |look_at: usize, copy_most: usize| {
            let (mut out, mut bytes, mut after, mut steps) = (Vec::new(), 0, None, 0);
            loop {
                steps += 1;
                let step = queue.list_step(
                    &filter,
                    after,
                    look_at,
                    copy_most,
                    usize::MAX,
                    &mut bytes,
                    &mut out,
                );
                match step.unwrap() {
                    Some(id) => after = Some(id),
                    None => break,
                }
            }
            (out.iter().map(|t| t.id).collect::<Vec<_>>(), steps)
        };
        let (at_once, one_step) = read(usize::MAX, usize::MAX);
        assert_eq!(one_step, 1);
        assert_eq!(at_once.len(), 34);
        let (in_steps, steps) = read(7, 3);
        assert_eq!(in_steps, at_once);
        assert!(steps >= 15, "{steps} steps");
        // The byte budget counts across steps.
        let (mut out, mut bytes) = (Vec::new(), 0);
        let first = queue.list_step(&filter, None, 50, 3, 400, &mut bytes, &mut out);
        let after = first.unwrap();
        let second = queue.list_step(&filter, after, 50, 3, 400, &mut bytes, &mut out);
        assert!(
            second
                .unwrap_err()
                .message
                .contains("larger than 400 bytes")
        );
    }

    #[test]
    fn running_tasks_are_listed_from_the_agents_in_id_order_and_in_steps() {
        let mut queue = TaskQueue::new();
        let mut changes = Vec::new();
        for i in 0..200 {
            let mut task = NewTask::new(format!("t{i}"));
            task.queue = if i % 2 == 0 { "even" } else { "odd" }.into();
            queue.add(task, 1, &mut changes);
        }
        // Three agents claim in turns, so each one's tasks are spread over the ids.
        for i in 0..60 {
            let agent = ["a", "b", "c"][i % 3];
            claim(&mut queue, agent, &[], 100).unwrap();
        }
        let scan = |filter: &TaskFilter| -> Vec<TaskId> {
            // Every status: the scan, not the running tasks' index.
            let all = TaskFilter {
                statuses: Vec::new(),
                ..filter.clone()
            };
            let mut out = Vec::new();
            queue
                .list_step(
                    &all,
                    None,
                    usize::MAX,
                    usize::MAX,
                    usize::MAX,
                    &mut 0,
                    &mut out,
                )
                .unwrap();
            out.iter()
                .filter(|t| t.status == TaskStatus::Running)
                .map(|t| t.id)
                .collect()
        };
        let read = |filter: &TaskFilter, look_at: usize, copy_most: usize| {
            let (mut out, mut bytes, mut after) = (Vec::new(), 0, None);
            while let Some(id) = queue
                .list_step(
                    filter,
                    after,
                    look_at,
                    copy_most,
                    usize::MAX,
                    &mut bytes,
                    &mut out,
                )
                .unwrap()
            {
                after = Some(id);
            }
            out.iter().map(|t| t.id).collect::<Vec<_>>()
        };
        for (queue_name, agent) in [(None, None), (Some("even"), None), (None, Some("b"))] {
            let filter = TaskFilter {
                statuses: vec![TaskStatus::Running],
                queue: queue_name.map(String::from),
                agent: agent.map(String::from),
                ..TaskFilter::default()
            };
            let expected = scan(&filter);
            assert!(!expected.is_empty());
            assert_eq!(read(&filter, usize::MAX, usize::MAX), expected);
            for (look_at, copy_most) in [(1, 1), (2, 5), (7, 3), (100, 4)] {
                assert_eq!(read(&filter, look_at, copy_most), expected, "{filter:?}");
            }
        }
        assert_eq!(scan(&TaskFilter::default()).len(), 60);
    }

    #[test]
    fn a_queue_whose_tasks_are_all_pruned_is_forgotten() {
        let mut queue = TaskQueue::new();
        let mut changes = Vec::new();
        for i in 0..100 {
            let mut new = NewTask::new("t");
            new.queue = format!("q{i}");
            let id = queue.add(new, 1, &mut changes);
            queue.cancel(id, 2, &mut changes).unwrap();
        }
        let mut kept = NewTask::new("kept");
        kept.queue = "q0".into();
        queue.add(kept, 3, &mut changes);
        assert_eq!(queue.prune(2, 60, &mut changes).len(), 60);
        assert_eq!(queue.prune(2, usize::MAX, &mut changes).len(), 40);
        assert_eq!(queue.counts.len(), 1, "only q0 still has a task");
        assert_eq!(queue.queue_names.len(), 1);
        assert_eq!(
            queue.counts(),
            vec![("q0".to_string(), TaskStatus::Queued, 1)]
        );
        // Its one task changing status does not make q0 look empty on the way.
        assert!(claim(&mut queue, "w", &[], 1).is_some());
        assert_eq!(queue.queue_names.len(), 1);
        assert_eq!(
            queue.counts(),
            vec![("q0".to_string(), TaskStatus::Running, 1)]
        );
    }

    #[test]
    fn an_attempt_records_its_times_and_a_late_report_is_refused() {
        let mut queue = without_backoff();
        let mut task = NewTask::new("flaky");
        task.max_attempts = 3;
        let id = queue.add(task, 0, &mut Vec::new());
        claim_at(&mut queue, "w", 10).unwrap();
        let run = |attempt, exit_code| RunEnd { attempt, exit_code };
        let mut changes = Vec::new();
        queue
            .end_attempt(id, run(1, Some(2)), 25, &mut changes)
            .unwrap();
        assert_eq!(
            changes,
            vec![Change::AttemptEnded {
                id,
                exit_code: Some(2),
                started_at: 10,
                at: 25
            }]
        );
        let failed = queue.fail(id, None, true, 25, &mut changes).unwrap();
        assert_eq!(
            (failed.started_at, failed.ended_at, failed.exit_code),
            (Some(10), Some(25), Some(2))
        );
        // The next attempt starts afresh.
        claim_at(&mut queue, "w", 40).unwrap();
        let running = queue.get(id).unwrap();
        assert_eq!(
            (running.started_at, running.ended_at, running.exit_code),
            (Some(40), None, None)
        );
        // A report about attempt 1 arriving now is refused and changes nothing.
        let mut changes = Vec::new();
        let late = queue.end_attempt(id, run(1, Some(0)), 50, &mut changes);
        assert_eq!(late.unwrap_err().kind, crate::protocol::ErrorKind::Conflict);
        assert!(changes.is_empty());
        assert_eq!(queue.get(id).unwrap().exit_code, None);
    }

    #[test]
    fn cancelled_queued_task_is_skipped() {
        let mut queue = TaskQueue::new();
        let a = add(&mut queue, "a", 0, &[]);
        let b = add(&mut queue, "b", 0, &[]);
        queue.cancel(a, 1, &mut Vec::new()).unwrap();
        assert_eq!(queue.queued_len(), 1);
        assert_eq!(claim(&mut queue, "w", &[], 5), Some(b));
        assert_eq!(claim(&mut queue, "w", &[], 5), None);
    }

    #[test]
    fn fail_requeues_until_attempts_run_out() {
        let mut queue = without_backoff();
        let mut task = NewTask::new("flaky");
        task.max_attempts = 2;
        let id = queue.add(task, 0, &mut Vec::new());
        claim(&mut queue, "w", &[], 5).unwrap();
        let after = queue
            .fail(id, Some("boom".into()), true, 1, &mut Vec::new())
            .unwrap();
        assert_eq!(after.status, TaskStatus::Queued);
        assert_eq!(after.error.as_deref(), Some("boom"));
        claim(&mut queue, "w", &[], 5).unwrap();
        let after = queue.fail(id, None, true, 2, &mut Vec::new()).unwrap();
        assert_eq!(after.status, TaskStatus::Failed);
        assert_eq!(after.attempts, 2);
        let revived = queue.retry(id, 3, &mut Vec::new()).unwrap();
        assert_eq!((revived.status, revived.attempts), (TaskStatus::Queued, 0));
    }

    #[test]
    fn illegal_transitions_are_conflicts() {
        let mut queue = TaskQueue::new();
        let id = add(&mut queue, "t", 0, &[]);
        let conflict = |r: Result<Task, ErrorBody>| r.unwrap_err().kind;
        use crate::protocol::ErrorKind::Conflict;
        assert_eq!(
            conflict(queue.complete(id, None, 1, &mut Vec::new())),
            Conflict
        );
        assert_eq!(
            conflict(queue.fail(id, None, true, 1, &mut Vec::new())),
            Conflict
        );
        assert_eq!(conflict(queue.retry(id, 1, &mut Vec::new())), Conflict);
        claim(&mut queue, "w", &[], 1).unwrap();
        queue.complete(id, None, 1, &mut Vec::new()).unwrap();
        assert_eq!(conflict(queue.cancel(id, 1, &mut Vec::new())), Conflict);
        assert_eq!(
            conflict(queue.complete(id, None, 1, &mut Vec::new())),
            Conflict
        );
        assert_eq!(
            queue
                .complete(999, None, 1, &mut Vec::new())
                .unwrap_err()
                .kind,
            crate::protocol::ErrorKind::NotFound
        );
    }

    #[test]
    fn agent_loss_requeues_at_the_old_place_with_attempt_refunded() {
        let mut queue = TaskQueue::new();
        let first = add(&mut queue, "first", 0, &[]);
        let second = add(&mut queue, "second", 0, &[]);
        assert_eq!(claim(&mut queue, "w", &[], 1), Some(first));
        assert_eq!(queue.requeue_agent("w", 2, &mut Vec::new()), vec![first]);
        assert_eq!(queue.get(first).unwrap().attempts, 0);
        assert_eq!(queue.running_count("w"), 0);
        assert_eq!(claim(&mut queue, "v", &[], 5), Some(first));
        assert_eq!(claim(&mut queue, "v", &[], 5), Some(second));
    }

    #[test]
    fn counts_track_every_transition() {
        let mut queue = TaskQueue::new();
        let id = add(&mut queue, "t", 0, &[]);
        add(&mut queue, "u", 0, &[]);
        claim(&mut queue, "w", &[], 1).unwrap();
        queue.complete(id, None, 1, &mut Vec::new()).unwrap();
        let counts = queue.counts();
        assert_eq!(
            counts,
            vec![
                ("default".to_string(), TaskStatus::Queued, 1),
                ("default".to_string(), TaskStatus::Done, 1)
            ]
        );
    }

    #[test]
    fn claim_cost_does_not_depend_on_queue_length() {
        // Many tasks in a lane the agent cannot take must not be looked at one by one:
        // the claim inspects lane heads only. 100k ineligible tasks, then one eligible.
        let mut queue = TaskQueue::new();
        for i in 0..100_000 {
            add(&mut queue, &format!("gpu {i}"), 9, &["gpu"]);
        }
        let plain = add(&mut queue, "plain", 0, &[]);
        assert_eq!(queue.lanes.len(), 2);
        assert_eq!(claim(&mut queue, "cpu-only", &[], 1), Some(plain));
    }

    #[test]
    fn changes_describe_each_transition() {
        let mut queue = TaskQueue::new();
        let mut changes = Vec::new();
        let id = queue.add(NewTask::new("t"), 0, &mut changes);
        let who = Claimant {
            name: "w",
            capabilities: &[],
            max_tasks: 1,
        };
        queue.claim(who, &[], 1, &mut changes).unwrap();
        queue
            .complete(id, Some("ok".into()), 2, &mut changes)
            .unwrap();
        assert!(matches!(changes[0], Change::TaskAdded { ref task, .. } if task.id == id));
        assert!(matches!(
            changes[1],
            Change::TaskClaimed { attempts: 1, .. }
        ));
        assert!(matches!(
            changes[2],
            Change::TaskFinished {
                status: TaskStatus::Done,
                ..
            }
        ));
    }

    fn new_with(title: &str, f: impl FnOnce(&mut NewTask)) -> NewTask {
        let mut task = NewTask::new(title);
        f(&mut task);
        task.validate(&crate::protocol::limits::Limits::default())
            .unwrap();
        task
    }

    fn status(queue: &TaskQueue, id: TaskId) -> TaskStatus {
        queue.get(id).unwrap().status
    }

    const POLICY: Policy = Policy {
        lease_ms: 10_000,
        retry_backoff_ms: 1_000,
    };

    #[test]
    fn failure_with_attempts_left_is_scheduled_after_a_backoff() {
        let mut queue = TaskQueue::new();
        queue.set_policy(POLICY);
        let id = queue.add(NewTask::new("flaky"), 0, &mut Vec::new());
        claim(&mut queue, "w", &[], 1).unwrap();
        let failed = queue
            .fail(id, Some("boom".into()), true, 100, &mut Vec::new())
            .unwrap();
        assert_eq!(failed.status, TaskStatus::Scheduled);
        let run_at = failed.run_at.unwrap();
        assert!((100 + 750..=100 + 1250).contains(&run_at), "{run_at}");
        assert_eq!(queue.next_deadline(), Some(run_at));
        // Not claimable before it is due; queued once it is.
        assert_eq!(claim(&mut queue, "w", &[], 1), None);
        assert!(!queue.fire_due(run_at - 1, &mut Vec::new()));
        assert!(queue.fire_due(run_at, &mut Vec::new()));
        assert_eq!(status(&queue, id), TaskStatus::Queued);
        assert_eq!(claim(&mut queue, "w", &[], 1), Some(id));
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        for attempts in 1..=4u32 {
            let base = 1_000u64 << (attempts - 1);
            let delay = POLICY.backoff_ms(7, attempts);
            assert!(
                delay >= base * 3 / 4 && delay <= base * 5 / 4,
                "{attempts}: {delay}"
            );
        }
        assert!(POLICY.backoff_ms(7, 40) <= MAX_BACKOFF_MS * 5 / 4);
        let spread: BTreeSet<u64> = (1..50).map(|id| POLICY.backoff_ms(id, 1)).collect();
        assert!(spread.len() > 10, "no jitter: {spread:?}");
        assert_eq!(
            Policy {
                retry_backoff_ms: 0,
                ..POLICY
            }
            .backoff_ms(1, 3),
            0
        );
    }

    #[test]
    fn expired_lease_counts_the_attempt_and_fails_when_out_of_attempts() {
        let mut queue = TaskQueue::new();
        queue.set_policy(POLICY); // the backoff is for failures, not for lost leases
        let id = queue.add(new_with("t", |t| t.max_attempts = 2), 0, &mut Vec::new());
        let claimed = queue
            .claim(
                Claimant {
                    name: "w1",
                    capabilities: &[],
                    max_tasks: 1,
                },
                &[],
                0,
                &mut Vec::new(),
            )
            .unwrap();
        assert_eq!(claimed.lease_until, Some(10_000));
        // A sign of life renews the lease.
        queue.extend_leases("w1", 5_000, &mut Vec::new());
        assert_eq!(queue.next_deadline(), Some(15_000));
        assert!(!queue.fire_due(14_999, &mut Vec::new()));
        assert!(queue.fire_due(15_000, &mut Vec::new()));
        let task = queue.get(id).unwrap();
        assert_eq!((task.status, task.attempts), (TaskStatus::Queued, 1));
        assert_eq!(task.error.as_deref(), Some("lease expired on agent w1"));
        assert_eq!(queue.running_count("w1"), 0);
        claim(&mut queue, "w2", &[], 1).unwrap();
        queue.fire_due(40_000, &mut Vec::new());
        let task = queue.get(id).unwrap();
        assert_eq!((task.status, task.attempts), (TaskStatus::Failed, 2));
        assert_eq!(task.error.as_deref(), Some("lease expired on agent w2"));
    }

    #[test]
    fn per_task_lease_overrides_the_policy() {
        let mut queue = TaskQueue::new();
        queue.set_policy(POLICY);
        queue.add(
            new_with("short", |t| t.lease_ms = Some(50)),
            0,
            &mut Vec::new(),
        );
        let task = queue
            .claim(
                Claimant {
                    name: "w",
                    capabilities: &[],
                    max_tasks: 1,
                },
                &[],
                100,
                &mut Vec::new(),
            )
            .unwrap();
        assert_eq!(task.lease_until, Some(150));
    }

    #[test]
    fn delayed_task_is_scheduled_until_due() {
        let mut queue = TaskQueue::new();
        let id = queue.add(
            new_with("later", |t| t.run_at = Some(5_000)),
            1_000,
            &mut Vec::new(),
        );
        assert_eq!(status(&queue, id), TaskStatus::Scheduled);
        assert_eq!(claim(&mut queue, "w", &[], 1), None);
        queue.fire_due(5_000, &mut Vec::new());
        assert_eq!(claim(&mut queue, "w", &[], 1), Some(id));
        // A time already past means queued right away.
        let now = queue.add(
            new_with("past", |t| t.run_at = Some(10)),
            6_000,
            &mut Vec::new(),
        );
        assert_eq!(status(&queue, now), TaskStatus::Queued);
    }

    #[test]
    fn a_chain_of_three_runs_in_order() {
        let mut queue = TaskQueue::new();
        let a = queue.add(NewTask::new("a"), 0, &mut Vec::new());
        let b = queue.add(new_with("b", |t| t.after = vec![a]), 0, &mut Vec::new());
        let c = queue.add(new_with("c", |t| t.after = vec![a, b]), 0, &mut Vec::new());
        assert_eq!(
            (status(&queue, b), status(&queue, c)),
            (TaskStatus::Blocked, TaskStatus::Blocked)
        );
        assert_eq!(claim(&mut queue, "w", &[], 5), Some(a));
        assert_eq!(claim(&mut queue, "w", &[], 5), None);
        queue.complete(a, None, 1, &mut Vec::new()).unwrap();
        assert_eq!(status(&queue, b), TaskStatus::Queued);
        assert_eq!(status(&queue, c), TaskStatus::Blocked);
        assert_eq!(claim(&mut queue, "w", &[], 5), Some(b));
        queue.complete(b, None, 2, &mut Vec::new()).unwrap();
        assert_eq!(claim(&mut queue, "w", &[], 5), Some(c));
    }

    #[test]
    fn a_failed_dependency_cancels_its_dependents_transitively() {
        let mut queue = TaskQueue::new();
        let a = queue.add(new_with("a", |t| t.max_attempts = 1), 0, &mut Vec::new());
        let b = queue.add(new_with("b", |t| t.after = vec![a]), 0, &mut Vec::new());
        let c = queue.add(new_with("c", |t| t.after = vec![b]), 0, &mut Vec::new());
        claim(&mut queue, "w", &[], 5).unwrap();
        let mut changes = Vec::new();
        queue.fail(a, None, true, 1, &mut changes).unwrap();
        for (id, reason) in [
            (b, format!("dependency {a} failed")),
            (c, format!("dependency {b} cancelled")),
        ] {
            let task = queue.get(id).unwrap();
            assert_eq!(task.status, TaskStatus::Cancelled);
            assert_eq!(task.error.as_deref(), Some(reason.as_str()));
        }
        let finished = changes
            .iter()
            .filter(|c| matches!(c, Change::TaskFinished { .. }))
            .count();
        assert_eq!(finished, 3);
        // A dependent added after the failure is cancelled at once.
        let d = queue.add(new_with("d", |t| t.after = vec![a]), 2, &mut Vec::new());
        assert_eq!(status(&queue, d), TaskStatus::Cancelled);
        assert!(
            queue
                .check_new(&new_with("e", |t| t.after = vec![999]))
                .is_err()
        );
    }

    #[test]
    fn restore_rebuilds_schedules_leases_and_dependencies() {
        let mut queue = TaskQueue::new();
        queue.set_policy(POLICY);
        let a = queue.add(NewTask::new("a"), 0, &mut Vec::new());
        let b = queue.add(new_with("b", |t| t.after = vec![a]), 0, &mut Vec::new());
        let later = queue.add(
            new_with("later", |t| t.run_at = Some(99_000)),
            0,
            &mut Vec::new(),
        );
        claim(&mut queue, "w", &[], 5).unwrap();
        let mut restore = Restore::new(queue.next_id());
        for record in queue.tasks.values() {
            restore.push(record.to_task(), record.seq);
        }
        let mut restored = restore.finish();
        restored.set_policy(POLICY);
        assert_eq!(restored.next_deadline(), Some(10_001)); // claimed at 1
        assert_eq!(restored.running_count("w"), 1);
        restored.complete(a, None, 1, &mut Vec::new()).unwrap();
        assert_eq!(status(&restored, b), TaskStatus::Queued);
        restored.fire_due(99_000, &mut Vec::new());
        assert_eq!(status(&restored, later), TaskStatus::Queued);
    }
}
