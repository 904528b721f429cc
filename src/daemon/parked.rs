//! Clients waiting on the queue: claimers parked until a task they may take arrives, and
//! `task wait` callers waiting for tasks to end.
//!
//! Both are woken by the code that changes the queue, under the queue lock, through oneshot
//! channels: nothing polls. A waiter that goes away (timeout, disconnect) drops its
//! receiver; its entry is then skipped and pruned.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

use super::change::Change;
use super::queue::TaskQueue;
use super::registry::Registry;
use super::store::{Ack, Ticket};
use crate::protocol::{Millis, Task, TaskId};

/// A claim waiting for work.
#[derive(Debug)]
pub struct ParkedClaim {
    pub agent: String,
    pub queues: Vec<String>,
    /// Receives the task and the store submission that makes the hand-off durable.
    pub reply: oneshot::Sender<(Task, Ticket)>,
}

/// Parked claims in arrival order.
#[derive(Debug, Default)]
pub struct ParkedClaims {
    waiting: VecDeque<ParkedClaim>,
}

impl ParkedClaims {
    pub fn park(&mut self, claim: ParkedClaim) {
        self.waiting.retain(|parked| !parked.reply.is_closed());
        self.waiting.push_back(claim);
    }

    /// Claimers still waiting (those that left are not counted).
    pub fn waiting(&self) -> usize {
        self.waiting
            .iter()
            .filter(|parked| !parked.reply.is_closed())
            .count()
    }

    /// Hands queued tasks to parked claimers, first come first served: each parked claimer
    /// in turn gets the best task it may take, if any. Called after every change that can
    /// make a task claimable (a task queued, an agent freed, resumed or re-registered).
    /// A claimer whose agent is gone is dropped (its receiver sees the channel close).
    pub fn serve(
        &mut self,
        queue: &mut TaskQueue,
        registry: &Registry,
        now: Millis,
        acks: &mut Vec<Ack>,
        changes: &mut Vec<Change>,
    ) {
        if self.waiting.is_empty() || queue.queued_len() == 0 {
            return;
        }
        let mut still_waiting = VecDeque::with_capacity(self.waiting.len());
        while let Some(parked) = self.waiting.pop_front() {
            if parked.reply.is_closed() || queue.queued_len() == 0 {
                if !parked.reply.is_closed() {
                    still_waiting.push_back(parked);
                }
                continue;
            }
            let Ok(record) = registry.get(&parked.agent) else {
                continue;
            };
            let Some(claimant) = record.claimant() else {
                still_waiting.push_back(parked);
                continue;
            };
            let mut claim_changes = Vec::new();
            let Some(task) = queue.claim(claimant, &parked.queues, now, &mut claim_changes) else {
                still_waiting.push_back(parked);
                continue;
            };
            let (ack, committed) = oneshot::channel();
            match parked.reply.send((task, Some(committed))) {
                Ok(()) => {
                    changes.append(&mut claim_changes);
                    acks.push(ack);
                }
                // The claimer left between the check and the send: undo the claim; the
                // task goes back to its place with its attempt refunded.
                Err((task, _)) => {
                    let mut undo = Vec::new();
                    queue.release(task.id, &parked.agent, now, &mut undo);
                    // Both halves go to the store, so disk and memory agree to the letter.
                    changes.append(&mut claim_changes);
                    changes.append(&mut undo);
                }
            }
        }
        self.waiting = still_waiting;
    }

    /// Whether `agent` has a claim waiting (its connection is open: it is alive).
    pub fn has_agent(&self, agent: &str) -> bool {
        self.waiting
            .iter()
            .any(|parked| parked.agent == agent && !parked.reply.is_closed())
    }

    /// Drops the parked claims of an agent that no longer exists.
    pub fn forget_agent(&mut self, agent: &str) {
        self.waiting.retain(|parked| parked.agent != agent);
    }

    /// Drops every parked claim (their claimers see the channel close).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }
}

/// `task wait` callers, per task.
///
/// Registering costs O(1) however many waits are parked on the same task: a waiter that
/// left (timed out, disconnected) is not searched for at each registration, but swept
/// when its task's list has doubled since the last sweep, which keeps the list within
/// twice the live waiters (amortized O(1) per registration). Before, every registration
/// swept the whole list: parked waits on one task made each new one quadratic, under the
/// queue lock.
#[derive(Debug, Default)]
pub struct TaskWatchers {
    by_task: HashMap<TaskId, Watchers>,
}

#[derive(Debug, Default)]
struct Watchers {
    waiting: Vec<oneshot::Sender<()>>,
    /// How many were left after the last sweep.
    after_sweep: usize,
}

/// A list this short is never swept.
const SWEEP_FROM: usize = 16;

impl TaskWatchers {
    /// Returns a receiver that fires when task `id` ends.
    pub fn watch(&mut self, id: TaskId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let watchers = self.by_task.entry(id).or_default();
        if watchers.waiting.len() >= SWEEP_FROM.max(2 * watchers.after_sweep) {
            watchers.waiting.retain(|w| !w.is_closed());
            watchers.after_sweep = watchers.waiting.len();
        }
        watchers.waiting.push(tx);
        rx
    }

    /// Wakes the watchers of every task these changes finished.
    pub fn notify(&mut self, changes: &[Change]) {
        if self.by_task.is_empty() {
            return;
        }
        for change in changes {
            if let Change::TaskFinished { id, .. } = change {
                let watchers = self.by_task.remove(id).unwrap_or_default();
                for watcher in watchers.waiting {
                    let _ = watcher.send(());
                }
            }
        }
    }

    /// Entries kept for task `id`, live or not yet swept (for tests of the bound).
    #[cfg(test)]
    fn kept(&self, id: TaskId) -> usize {
        self.by_task.get(&id).map_or(0, |w| w.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(id: TaskId) -> Change {
        Change::TaskFinished {
            id,
            queue: "default".into(),
            agent: None,
            status: crate::protocol::TaskStatus::Done,
            result: None,
            error: None,
            at: 0,
        }
    }

    #[test]
    fn waiters_that_left_are_swept_and_the_list_stays_within_twice_the_live_ones() {
        let mut watchers = TaskWatchers::default();
        let mut live = Vec::new();
        for i in 0..10_000 {
            let rx = watchers.watch(7);
            // One in ten stays; the others time out at once.
            if i % 10 == 0 {
                live.push(rx);
            }
        }
        assert!(
            watchers.kept(7) <= 2 * live.len() + SWEEP_FROM,
            "{} entries kept for {} live waiters",
            watchers.kept(7),
            live.len()
        );
        watchers.notify(&[finished(7)]);
        for mut rx in live {
            assert_eq!(rx.try_recv(), Ok(()), "every live waiter is woken");
        }
        assert_eq!(watchers.kept(7), 0);
    }
}
