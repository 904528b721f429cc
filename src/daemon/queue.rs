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

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use super::change::{Change, RequeueCause};
use crate::protocol::{ErrorBody, Millis, NewTask, Task, TaskFilter, TaskId, TaskStatus};

/// The facts about an agent that decide what it may claim.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub name: &'a str,
    /// Sorted, without duplicates.
    pub capabilities: &'a [String],
    pub max_tasks: u32,
}

/// A task and its place in line (meaningful while it is queued).
#[derive(Debug)]
struct Stored {
    task: Task,
    seq: u64,
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Lane {
    queue: String,
    requires: Vec<String>,
}

#[derive(Debug, Default)]
pub struct TaskQueue {
    tasks: BTreeMap<TaskId, Stored>,
    lanes: HashMap<Lane, BinaryHeap<Ready>>,
    /// Number of tasks whose status is `queued`.
    queued: usize,
    running_by_agent: HashMap<String, BTreeSet<TaskId>>,
    /// Task count per queue and status, kept up to date so metrics never scan.
    counts: BTreeMap<String, [u64; TaskStatus::ALL.len()]>,
    /// Finished tasks by (updated_at, id): retention finds what expired without scanning.
    finished: BTreeSet<(Millis, TaskId)>,
    next_id: TaskId,
    next_seq: u64,
}

fn is_subset(required: &[String], available: &[String]) -> bool {
    required
        .iter()
        .all(|cap| available.binary_search(cap).is_ok())
}

impl TaskQueue {
    pub fn new() -> TaskQueue {
        TaskQueue {
            next_id: 1,
            ..TaskQueue::default()
        }
    }

    pub fn get(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(&id).map(|stored| &stored.task)
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

    /// Adds a validated task to the back of its priority.
    pub fn add(&mut self, new: NewTask, now: Millis, changes: &mut Vec<Change>) -> TaskId {
        let id = self.next_id;
        self.next_id += 1;
        let task = Task {
            id,
            title: new.title,
            payload: new.payload,
            queue: new.queue,
            priority: new.priority,
            status: TaskStatus::Queued,
            requires: new.requires,
            agent: None,
            attempts: 0,
            max_attempts: new.max_attempts,
            created_at: now,
            updated_at: now,
            result: None,
            error: None,
        };
        self.count(&task.queue, task.status, 1);
        let seq = self.take_seq();
        changes.push(Change::TaskAdded {
            task: task.clone(),
            seq,
        });
        self.tasks.insert(id, Stored { task, seq: 0 });
        self.make_ready(id, seq);
        id
    }

    /// Claims the best task `who` may take from `queues` (all queues when empty): the
    /// highest priority, then the oldest, among the heads of the lanes it qualifies for.
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
        self.queued -= 1;
        let stored = self.tasks.get_mut(&ready.id)?;
        let queue = stored.task.queue.clone();
        let task = &mut stored.task;
        task.status = TaskStatus::Running;
        task.agent = Some(who.name.to_string());
        task.attempts += 1;
        task.updated_at = now;
        let claimed = task.clone();
        self.running_by_agent
            .entry(who.name.to_string())
            .or_default()
            .insert(ready.id);
        self.count(&queue, TaskStatus::Queued, -1);
        self.count(&queue, TaskStatus::Running, 1);
        changes.push(Change::TaskClaimed {
            id: claimed.id,
            agent: who.name.to_string(),
            attempts: claimed.attempts,
            at: now,
        });
        Some(claimed)
    }

    /// When `by` names an agent, checks that it is the one running task `id`.
    pub fn check_holder(&self, id: TaskId, by: Option<&str>) -> Result<(), ErrorBody> {
        let Some(by) = by else {
            return Ok(());
        };
        let task = self
            .get(id)
            .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))?;
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

    /// `running` → `queued` (with attempts left and `retry`) or `failed`.
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
            self.leave_agent(id);
            let seq = self.take_seq();
            self.requeue(id, seq, reason, RequeueCause::FailedWithRetry, now, changes)
                .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))
        } else {
            self.finish(id, TaskStatus::Failed, None, reason, now, changes)
        }
    }

    /// `queued` or `running` → `cancelled`.
    pub fn cancel(
        &mut self,
        id: TaskId,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        self.expect_status(id, &[TaskStatus::Queued, TaskStatus::Running], "cancel")?;
        self.finish(id, TaskStatus::Cancelled, None, None, now, changes)
    }

    /// `failed` or `cancelled` → `queued`, with attempts, result and error reset: a revived
    /// task starts over, at the back of its priority.
    pub fn retry(
        &mut self,
        id: TaskId,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<Task, ErrorBody> {
        self.expect_status(id, &[TaskStatus::Failed, TaskStatus::Cancelled], "retry")?;
        if let Some(stored) = self.tasks.get_mut(&id) {
            stored.task.attempts = 0;
            stored.task.result = None;
        }
        let seq = self.take_seq();
        self.requeue(id, seq, None, RequeueCause::ManualRetry, now, changes)
            .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))
    }

    /// Puts every task `agent` runs back in the queue at its old place, refunding the
    /// attempt: losing an agent is not the task's fault.
    pub fn requeue_agent(
        &mut self,
        agent: &str,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Vec<TaskId> {
        let ids: Vec<TaskId> = self
            .running_by_agent
            .remove(agent)
            .map(|ids| ids.into_iter().collect())
            .unwrap_or_default();
        for &id in &ids {
            self.refund(id, RequeueCause::AgentLost, now, changes);
        }
        ids
    }

    /// Undoes a claim whose answer never reached the claimer: the task goes back to its
    /// old place with the attempt refunded. A no-op unless the task is still running on
    /// `agent`.
    pub fn release(&mut self, id: TaskId, agent: &str, now: Millis, changes: &mut Vec<Change>) {
        let still_running = self.get(id).is_some_and(|task| {
            task.status == TaskStatus::Running && task.agent.as_deref() == Some(agent)
        });
        if still_running {
            self.leave_agent(id);
            self.refund(id, RequeueCause::Undelivered, now, changes);
        }
    }

    /// When the oldest finished task was last updated, if there is one.
    pub fn oldest_finished(&self) -> Option<Millis> {
        self.finished.first().map(|&(at, _)| at)
    }

    /// Deletes finished tasks last updated at or before `cutoff`; returns their ids.
    pub fn prune(&mut self, cutoff: Millis, changes: &mut Vec<Change>) -> Vec<TaskId> {
        let mut ids = Vec::new();
        while let Some(&(at, id)) = self.finished.first() {
            if at > cutoff {
                break;
            }
            self.finished.pop_first();
            if let Some(stored) = self.tasks.remove(&id) {
                self.count(&stored.task.queue, stored.task.status, -1);
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            changes.push(Change::TasksPruned { ids: ids.clone() });
        }
        ids
    }

    /// Rebuilds a queue from stored tasks (with their places in line) and the next id to
    /// hand out. Queued tasks go back into their lanes in their old order; running tasks
    /// stay with their agents.
    pub fn restore(tasks: Vec<(Task, u64)>, next_id: TaskId) -> TaskQueue {
        let mut queue = TaskQueue::new();
        queue.next_id = next_id.max(1);
        for (task, seq) in tasks {
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
                }
                _ => {
                    queue.finished.insert((task.updated_at, id));
                }
            }
            let status = task.status;
            queue.tasks.insert(id, Stored { task, seq });
            if status == TaskStatus::Queued {
                queue.make_ready(id, seq);
            }
        }
        queue
    }

    /// Every task with its place in line, in id order (what a snapshot stores).
    pub fn iter_with_seq(&self) -> impl Iterator<Item = (&Task, u64)> {
        self.tasks.values().map(|stored| (&stored.task, stored.seq))
    }

    /// Tasks matching `filter`, in id order.
    pub fn list(&self, filter: &TaskFilter) -> Vec<Task> {
        let limit = filter.limit.map_or(usize::MAX, |limit| limit as usize);
        self.tasks
            .values()
            .map(|stored| &stored.task)
            .filter(|task| filter.statuses.is_empty() || filter.statuses.contains(&task.status))
            .filter(|task| filter.queue.as_ref().is_none_or(|q| &task.queue == q))
            .filter(|task| {
                filter
                    .agent
                    .as_ref()
                    .is_none_or(|a| task.agent.as_ref() == Some(a))
            })
            .take(limit)
            .cloned()
            .collect()
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
        let lane = Lane {
            queue: stored.task.queue.clone(),
            requires: stored.task.requires.clone(),
        };
        self.lanes.entry(lane).or_default().push(Ready {
            priority: stored.task.priority,
            seq,
            id,
        });
        self.queued += 1;
    }

    fn expect_status(
        &self,
        id: TaskId,
        allowed: &[TaskStatus],
        action: &str,
    ) -> Result<&Task, ErrorBody> {
        let task = self
            .get(id)
            .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))?;
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

    /// Removes a running task from its agent's set.
    fn leave_agent(&mut self, id: TaskId) {
        let Some(agent) = self.get(id).and_then(|task| task.agent.clone()) else {
            return;
        };
        if let Some(ids) = self.running_by_agent.get_mut(&agent) {
            ids.remove(&id);
            if ids.is_empty() {
                self.running_by_agent.remove(&agent);
            }
        }
    }

    fn set_status(&mut self, id: TaskId, status: TaskStatus, now: Millis) -> Option<&mut Task> {
        let stored = self.tasks.get_mut(&id)?;
        let old = stored.task.status;
        if old.is_finished() {
            self.finished.remove(&(stored.task.updated_at, id));
        }
        if status.is_finished() {
            self.finished.insert((now, id));
        }
        stored.task.status = status;
        stored.task.updated_at = now;
        let queue = stored.task.queue.clone();
        if old == TaskStatus::Queued {
            // Its heap entry goes stale and is dropped when it reaches the head.
            self.queued -= 1;
        }
        self.count(&queue, old, -1);
        self.count(&queue, status, 1);
        self.tasks.get_mut(&id).map(|stored| &mut stored.task)
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
        self.leave_agent(id);
        let task = self
            .set_status(id, status, now)
            .ok_or_else(|| ErrorBody::not_found(format!("no task with id {id}")))?;
        if result.is_some() {
            task.result = result;
        }
        if error.is_some() {
            task.error = error;
        }
        let task = task.clone();
        changes.push(Change::TaskFinished {
            id,
            status,
            result: task.result.clone(),
            error: task.error.clone(),
            at: now,
        });
        Ok(task)
    }

    /// Marks a task queued again with place `seq`; the caller has already detached it from
    /// its agent.
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
        task.agent = None;
        if cause == RequeueCause::ManualRetry {
            task.error = None;
        } else if error.is_some() {
            task.error = error;
        }
        let task = task.clone();
        changes.push(Change::TaskRequeued {
            id,
            attempts: task.attempts,
            seq,
            error: task.error.clone(),
            cause,
            at: now,
        });
        self.make_ready(id, seq);
        Some(task)
    }

    /// Requeues a task at its old place with its last attempt refunded.
    fn refund(&mut self, id: TaskId, cause: RequeueCause, now: Millis, changes: &mut Vec<Change>) {
        let Some(stored) = self.tasks.get_mut(&id) else {
            return;
        };
        stored.task.attempts = stored.task.attempts.saturating_sub(1);
        let seq = stored.seq;
        self.requeue(id, seq, None, cause, now, changes);
    }
}

/// Pops heap heads whose task is no longer queued under that entry's seq.
fn drop_stale_heads(heap: &mut BinaryHeap<Ready>, tasks: &BTreeMap<TaskId, Stored>) {
    while let Some(head) = heap.peek() {
        let live = tasks.get(&head.id).is_some_and(|stored| {
            stored.task.status == TaskStatus::Queued && stored.seq == head.seq
        });
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
        task.validate().unwrap();
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
        let mut queue = TaskQueue::new();
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
}
