//! How the queue keeps a task in memory: a compact record, converted to the protocol's
//! [`Task`] only when a task leaves the queue (an answer, a change for the store).
//!
//! A queued task is most of what a big queue holds, so its record keeps only what every
//! task has inline (about 136 bytes): the title and payload as boxed strings, the queue
//! name shared by every task of that queue, and the fields that only some tasks use
//! (capabilities, dependencies, a result or error, a delay, an own lease, how to run it)
//! behind one optional box. `vapora-bench memory` measures the whole cost per queued task.

use std::sync::Arc;

use crate::protocol::{Millis, Task, TaskId, TaskStatus};

#[derive(Debug)]
pub struct Record {
    pub id: TaskId,
    /// The task's place in line (meaningful while it is queued).
    pub seq: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub lease_until: Option<Millis>,
    pub priority: i32,
    pub attempts: u32,
    pub max_attempts: u32,
    pub status: TaskStatus,
    pub title: Box<str>,
    pub payload: Box<str>,
    /// Shared with every task of the same queue (see `TaskQueue::intern`).
    pub queue: Arc<str>,
    pub agent: Option<Box<str>>,
    rare: Option<Box<Rare>>,
}

/// The fields most tasks leave empty.
#[derive(Debug, Default)]
struct Rare {
    requires: Vec<String>,
    result: Option<String>,
    error: Option<String>,
    run_at: Option<Millis>,
    lease_ms: Option<u64>,
    after: Vec<TaskId>,
    cwd: Option<String>,
    env: Vec<(String, String)>,
    timeout_ms: Option<u64>,
    started_at: Option<Millis>,
    ended_at: Option<Millis>,
    exit_code: Option<i32>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.requires.is_empty()
            && self.result.is_none()
            && self.error.is_none()
            && self.run_at.is_none()
            && self.lease_ms.is_none()
            && self.after.is_empty()
            && self.cwd.is_none()
            && self.env.is_empty()
            && self.timeout_ms.is_none()
            && self.started_at.is_none()
            && self.ended_at.is_none()
            && self.exit_code.is_none()
    }
}

impl Record {
    /// The record of `task`, whose queue name is `queue` (interned).
    pub fn new(task: Task, seq: u64, queue: Arc<str>) -> Record {
        let rare = Rare {
            requires: task.requires,
            result: task.result,
            error: task.error,
            run_at: task.run_at,
            lease_ms: task.lease_ms,
            after: task.after,
            cwd: task.cwd,
            env: task.env,
            timeout_ms: task.timeout_ms,
            started_at: task.started_at,
            ended_at: task.ended_at,
            exit_code: task.exit_code,
        };
        Record {
            id: task.id,
            seq,
            created_at: task.created_at,
            updated_at: task.updated_at,
            lease_until: task.lease_until,
            priority: task.priority,
            attempts: task.attempts,
            max_attempts: task.max_attempts,
            status: task.status,
            title: task.title.into_boxed_str(),
            payload: task.payload.into_boxed_str(),
            queue,
            agent: task.agent.map(String::into_boxed_str),
            rare: (!rare.is_empty()).then(|| Box::new(rare)),
        }
    }

    /// The task as the protocol shows it.
    pub fn to_task(&self) -> Task {
        let rare = self.rare.as_deref();
        Task {
            id: self.id,
            // `String::from(&str)`, not `to_string()`: for a `Box<str>` or `Arc<str>` that
            // goes through the formatting machinery (a fifth of `task list`'s daemon time).
            title: String::from(&*self.title),
            payload: String::from(&*self.payload),
            queue: String::from(&*self.queue),
            priority: self.priority,
            status: self.status,
            requires: self.requires().to_vec(),
            agent: self.agent.as_deref().map(String::from),
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            created_at: self.created_at,
            updated_at: self.updated_at,
            result: rare.and_then(|r| r.result.clone()),
            error: rare.and_then(|r| r.error.clone()),
            run_at: self.run_at(),
            lease_until: self.lease_until,
            lease_ms: self.lease_ms(),
            after: self.after().to_vec(),
            cwd: rare.and_then(|r| r.cwd.clone()),
            env: rare.map_or_else(Vec::new, |r| r.env.clone()),
            timeout_ms: rare.and_then(|r| r.timeout_ms),
            started_at: self.started_at(),
            ended_at: rare.and_then(|r| r.ended_at),
            exit_code: rare.and_then(|r| r.exit_code),
        }
    }

    pub fn started_at(&self) -> Option<Millis> {
        self.rare.as_deref().and_then(|r| r.started_at)
    }

    /// A new attempt starts at `at`: how the previous one ended no longer applies.
    pub fn set_started(&mut self, at: Millis) {
        self.update_rare(|r| {
            r.started_at = Some(at);
            r.ended_at = None;
            r.exit_code = None;
        });
    }

    /// The running attempt ended at `at` (whatever ended it).
    pub fn set_ended(&mut self, at: Millis) {
        self.update_rare(|r| r.ended_at = Some(at));
    }

    pub fn set_exit_code(&mut self, exit_code: Option<i32>) {
        self.update_rare(|r| r.exit_code = exit_code);
    }

    pub fn requires(&self) -> &[String] {
        self.rare.as_deref().map_or(&[], |r| &r.requires)
    }

    pub fn after(&self) -> &[TaskId] {
        self.rare.as_deref().map_or(&[], |r| &r.after)
    }

    pub fn run_at(&self) -> Option<Millis> {
        self.rare.as_deref().and_then(|r| r.run_at)
    }

    pub fn lease_ms(&self) -> Option<u64> {
        self.rare.as_deref().and_then(|r| r.lease_ms)
    }

    pub fn error(&self) -> Option<&str> {
        self.rare.as_deref().and_then(|r| r.error.as_deref())
    }

    /// Bytes of free text (title, payload, result, error): most of a large task's size.
    pub fn text_bytes(&self) -> usize {
        let rare = self.rare.as_deref();
        let text = |s: Option<&String>| s.map_or(0, String::len);
        self.title.len()
            + self.payload.len()
            + text(rare.and_then(|r| r.result.as_ref()))
            + text(rare.and_then(|r| r.error.as_ref()))
    }

    pub fn set_run_at(&mut self, run_at: Option<Millis>) {
        self.update_rare(|r| r.run_at = run_at);
    }

    pub fn set_result(&mut self, result: Option<String>) {
        self.update_rare(|r| r.result = result);
    }

    pub fn set_error(&mut self, error: Option<String>) {
        self.update_rare(|r| r.error = error);
    }

    /// Changes a rare field, keeping no box when all of them are empty.
    fn update_rare(&mut self, change: impl FnOnce(&mut Rare)) {
        let rare = self.rare.get_or_insert_with(Box::default);
        change(rare);
        if rare.is_empty() {
            self.rare = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            id: 7,
            title: "t".into(),
            payload: "p".into(),
            queue: "q".into(),
            priority: -3,
            status: TaskStatus::Running,
            requires: vec!["gpu".into()],
            agent: Some("w1".into()),
            attempts: 2,
            max_attempts: 5,
            created_at: 10,
            updated_at: 20,
            result: Some("r".into()),
            error: Some("e".into()),
            run_at: Some(30),
            lease_until: Some(40),
            lease_ms: Some(50),
            after: vec![1, 2],
            cwd: Some("/srv/app".into()),
            env: vec![("A".into(), "1".into()), ("B".into(), "x y".into())],
            timeout_ms: Some(60),
            started_at: Some(15),
            ended_at: None,
            exit_code: Some(1),
        }
    }

    /// A task with every rare field empty.
    fn plain_task() -> Task {
        Task {
            requires: vec![],
            result: None,
            error: None,
            run_at: None,
            lease_ms: None,
            after: vec![],
            cwd: None,
            env: vec![],
            timeout_ms: None,
            started_at: None,
            exit_code: None,
            ..task()
        }
    }

    #[test]
    fn a_record_gives_back_the_task_it_was_made_from() {
        let full = task();
        assert_eq!(Record::new(full.clone(), 1, "q".into()).to_task(), full);
        let plain = Task {
            agent: None,
            ..plain_task()
        };
        let record = Record::new(plain.clone(), 1, "q".into());
        assert!(
            record.rare.is_none(),
            "a plain task needs no box of rare fields"
        );
        assert_eq!(record.to_task(), plain);
    }

    #[test]
    fn clearing_the_last_rare_field_drops_the_box() {
        let mut record = Record::new(plain_task(), 1, "q".into());
        record.set_error(Some("boom".into()));
        assert_eq!(record.error(), Some("boom"));
        record.set_error(None);
        assert!(record.rare.is_none());
    }

    #[test]
    fn a_queued_record_stays_small() {
        assert!(
            std::mem::size_of::<Record>() <= 136,
            "{}",
            std::mem::size_of::<Record>()
        );
    }
}
