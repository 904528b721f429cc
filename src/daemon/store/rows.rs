//! How each change is written into SQLite: the rows it inserts, updates or deletes.
//!
//! The changes that come by the hundred thousand (a task added, claimed or finished, a
//! lease extended) run statements prepared once per transaction and kept in [`Rows`].
//! Looking them up in rusqlite's statement cache for every row hashed the SQL text, and
//! returning them cleared their bindings: a tenth of the writer's time under bulk adds
//! (perf, BENCHMARKS.md). A plain new task (no agent, result, error, delay, capabilities,
//! dependencies, working directory, variables or timeout, as most are) binds 11 values
//! instead of 22.

use rusqlite::{CachedStatement, Connection, params};

use crate::daemon::change::{Change, RequeueCause};
use crate::protocol::Task;

/// The statements [`Rows`] keeps.
#[derive(Clone, Copy)]
enum Hot {
    AddPlain,
    Add,
    Claim,
    LeaseExtended,
    Finish,
}

impl Hot {
    const COUNT: usize = 5;

    fn sql(self) -> &'static str {
        match self {
            Hot::AddPlain => {
                "INSERT INTO tasks (id, title, payload, queue, priority, status, requires, agent,
                    attempts, max_attempts, created_at, updated_at, result, error, seq,
                    run_at, lease_until, lease_ms, after, cwd, env, timeout_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '[]', NULL, ?7, ?8, ?9, ?10, NULL, NULL, ?11,
                    NULL, NULL, NULL, '[]', NULL, '[]', NULL)"
            }
            Hot::Add => {
                "INSERT INTO tasks (id, title, payload, queue, priority, status, requires, agent,
                    attempts, max_attempts, created_at, updated_at, result, error, seq,
                    run_at, lease_until, lease_ms, after, cwd, env, timeout_ms, started_at,
                    ended_at, exit_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                    ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
            }
            Hot::Claim => {
                "UPDATE tasks SET status = 'running', agent = ?2, attempts = ?3, updated_at = ?4,
                    lease_until = ?5, started_at = ?4, ended_at = NULL, exit_code = NULL
                 WHERE id = ?1"
            }
            Hot::LeaseExtended => "UPDATE tasks SET lease_until = ?2 WHERE id = ?1",
            Hot::Finish => {
                "UPDATE tasks SET status = ?2, result = ?3, error = ?4, updated_at = ?5,
                    lease_until = NULL, ended_at = CASE WHEN status = 'running' THEN ?5
                        ELSE ended_at END
                 WHERE id = ?1"
            }
        }
    }
}

/// Writes changes on a connection with a transaction open (a `Transaction` derefs to
/// its connection), keeping the frequent statements prepared until dropped.
pub struct Rows<'a> {
    conn: &'a Connection,
    hot: [Option<CachedStatement<'a>>; Hot::COUNT],
}

impl<'a> Rows<'a> {
    pub fn new(conn: &'a Connection) -> Rows<'a> {
        Rows {
            conn,
            hot: [None, None, None, None, None],
        }
    }

    fn hot(&mut self, which: Hot) -> Result<&mut CachedStatement<'a>, rusqlite::Error> {
        let slot = &mut self.hot[which as usize];
        if slot.is_none() {
            *slot = Some(self.conn.prepare_cached(which.sql())?);
        }
        slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
    }

    /// Writes one change: the frequent kinds with the kept statements, the rest through
    /// rusqlite's statement cache.
    pub fn apply(&mut self, change: &Change) -> Result<(), rusqlite::Error> {
        let tx = self.conn;
        match change {
            Change::TaskAdded { task, seq } => self.task_added(task, *seq)?,
            Change::TaskClaimed {
                id,
                agent,
                attempts,
                lease_until,
                at,
                ..
            } => {
                self.hot(Hot::Claim)?.execute(params![
                    *id as i64,
                    agent,
                    attempts,
                    *at as i64,
                    *lease_until as i64
                ])?;
            }
            Change::LeaseExtended { id, lease_until } => {
                self.hot(Hot::LeaseExtended)?
                    .execute(params![*id as i64, *lease_until as i64])?;
            }
            Change::TaskFinished {
                id,
                status,
                result,
                error,
                at,
                ..
            } => {
                self.hot(Hot::Finish)?.execute(params![
                    *id as i64,
                    status.as_str(),
                    result,
                    error,
                    *at as i64
                ])?;
            }
            Change::TaskScheduled {
                id,
                attempts,
                run_at,
                error,
                at,
                ..
            } => {
                tx.prepare_cached(
                    "UPDATE tasks SET status = 'scheduled', agent = NULL, lease_until = NULL,
                        attempts = ?2, run_at = ?3, error = ?4, updated_at = ?5,
                        ended_at = CASE WHEN status = 'running' THEN ?5 ELSE ended_at END
                     WHERE id = ?1",
                )?
                .execute(params![
                    *id as i64,
                    attempts,
                    *run_at as i64,
                    error,
                    *at as i64
                ])?;
            }
            Change::TaskRequeued {
                id,
                attempts,
                seq,
                error,
                cause,
                at,
                ..
            } => {
                // A manual retry runs now, whatever delay the task had.
                let keep_run_at = *cause != RequeueCause::ManualRetry;
                tx.prepare_cached(
                    "UPDATE tasks SET status = 'queued', agent = NULL, result = NULL, attempts = ?2,
                        seq = ?3, error = ?4, updated_at = ?5, lease_until = NULL,
                        run_at = CASE WHEN ?6 THEN run_at ELSE NULL END,
                        ended_at = CASE WHEN status = 'running' THEN ?5 ELSE ended_at END
                     WHERE id = ?1",
                )?
                .execute(params![
                    *id as i64,
                    attempts,
                    *seq as i64,
                    error,
                    *at as i64,
                    keep_run_at
                ])?;
            }
            Change::TasksPruned { ids } => {
                let mut delete = tx.prepare_cached("DELETE FROM tasks WHERE id = ?1")?;
                for id in ids {
                    delete.execute([*id as i64])?;
                }
            }
            Change::AgentRegistered {
                name,
                capabilities,
                max_tasks,
                at,
            } => {
                tx.prepare_cached(
                    "INSERT INTO agents (name, capabilities, max_tasks, availability, registered_at,
                        last_heartbeat)
                     VALUES (?1, ?2, ?3, 'active', ?4, ?4)
                     ON CONFLICT (name) DO UPDATE SET capabilities = ?2, max_tasks = ?3,
                        last_heartbeat = ?4",
                )?
                .execute(params![name, json(capabilities), max_tasks, *at as i64])?;
            }
            Change::AgentAvailability {
                name, availability, ..
            } => {
                tx.prepare_cached("UPDATE agents SET availability = ?2 WHERE name = ?1")?
                    .execute(params![name, availability.as_str()])?;
            }
            Change::AgentHeartbeat { name, at } => {
                tx.prepare_cached("UPDATE agents SET last_heartbeat = ?2 WHERE name = ?1")?
                    .execute(params![name, *at as i64])?;
            }
            Change::AgentRemoved { name } => {
                tx.prepare_cached("DELETE FROM agents WHERE name = ?1")?
                    .execute([name])?;
            }
            // A bookkeeping row: the transaction's `next_task_id` update covers it.
            Change::IdsUsed { .. } => {}
            Change::AttemptEnded { id, exit_code, .. } => {
                tx.prepare_cached("UPDATE tasks SET exit_code = ?2 WHERE id = ?1")?
                    .execute(params![*id as i64, exit_code])?;
            }
        }
        Ok(())
    }

    fn task_added(&mut self, task: &Task, seq: u64) -> Result<(), rusqlite::Error> {
        let plain = task.requires.is_empty()
            && task.after.is_empty()
            && task.agent.is_none()
            && task.result.is_none()
            && task.error.is_none()
            && task.run_at.is_none()
            && task.lease_until.is_none()
            && task.lease_ms.is_none()
            && task.cwd.is_none()
            && task.env.is_empty()
            && task.timeout_ms.is_none()
            && task.started_at.is_none()
            && task.ended_at.is_none()
            && task.exit_code.is_none();
        if plain {
            self.hot(Hot::AddPlain)?.execute(params![
                task.id as i64,
                task.title,
                task.payload,
                task.queue,
                task.priority,
                task.status.as_str(),
                task.attempts,
                task.max_attempts,
                task.created_at as i64,
                task.updated_at as i64,
                seq as i64,
            ])?;
            return Ok(());
        }
        self.hot(Hot::Add)?.execute(params![
            task.id as i64,
            task.title,
            task.payload,
            task.queue,
            task.priority,
            task.status.as_str(),
            json(&task.requires),
            task.agent,
            task.attempts,
            task.max_attempts,
            task.created_at as i64,
            task.updated_at as i64,
            task.result,
            task.error,
            seq as i64,
            task.run_at.map(|v| v as i64),
            task.lease_until.map(|v| v as i64),
            task.lease_ms.map(|v| v as i64),
            json(&task.after),
            task.cwd,
            json(&task.env),
            task.timeout_ms.map(|v| v as i64),
            task.started_at.map(|v| v as i64),
            task.ended_at.map(|v| v as i64),
            task.exit_code,
        ])?;
        Ok(())
    }
}

/// A list as the JSON array stored in its TEXT column. Most lists are empty: those skip
/// the serializer (it showed in the writer's profile of bulk adds).
fn json<T: serde::Serialize>(list: &[T]) -> std::borrow::Cow<'static, str> {
    if list.is_empty() {
        return "[]".into();
    }
    serde_json::to_string(list)
        .unwrap_or_else(|_| "[]".into())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::store::{SyncMode, schema, snapshot};
    use crate::protocol::TaskStatus;

    fn task(id: u64) -> Task {
        Task {
            id,
            title: format!("task {id}"),
            payload: "{\"n\": 1}".into(),
            queue: "default".into(),
            priority: 3,
            status: TaskStatus::Queued,
            requires: Vec::new(),
            agent: None,
            attempts: 0,
            max_attempts: 2,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_001,
            result: None,
            error: None,
            run_at: None,
            lease_until: None,
            lease_ms: None,
            after: Vec::new(),
            cwd: None,
            env: Vec::new(),
            timeout_ms: None,
            started_at: None,
            ended_at: None,
            exit_code: None,
        }
    }

    /// Both insert statements (the plain one binds literals for the empty fields) store
    /// a task that loads back equal, and so do the kept update statements.
    #[test]
    fn plain_and_full_tasks_load_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        schema::migrate_checked(&mut conn, SyncMode::Normal).unwrap();
        let plain = task(1);
        let mut full = task(2);
        full.status = TaskStatus::Scheduled;
        full.requires = vec!["gpu".into(), "linux".into()];
        full.attempts = 1;
        full.error = Some("timed out".into());
        full.run_at = Some(1_700_000_060_000);
        full.lease_ms = Some(30_000);
        full.after = vec![1];
        full.cwd = Some("/srv/app dir".into());
        full.env = vec![("B".into(), "2".into()), ("A".into(), "x 'y'\n".into())];
        full.timeout_ms = Some(90_000);
        full.started_at = Some(1_700_000_000_100);
        full.ended_at = Some(1_700_000_000_200);
        full.exit_code = Some(-1);
        let mut claimed = task(3);
        let mut ended = task(4);
        let tx = conn.transaction().unwrap();
        let mut rows = Rows::new(&tx);
        for (seq, task) in [&plain, &full, &claimed, &ended].into_iter().enumerate() {
            let change = Change::TaskAdded {
                task: Box::new(task.clone()),
                seq: seq as u64,
            };
            rows.apply(&change).unwrap();
        }
        for id in [3, 4] {
            rows.apply(&Change::TaskClaimed {
                id,
                agent: "w".into(),
                attempts: 1,
                lease_until: 1_700_000_090_000,
                at: 1_700_000_000_500,
                queue: "default".into(),
            })
            .unwrap();
        }
        rows.apply(&Change::AttemptEnded {
            id: 4,
            exit_code: Some(3),
            started_at: 1_700_000_000_500,
            at: 1_700_000_000_900,
        })
        .unwrap();
        rows.apply(&Change::TaskFinished {
            id: 4,
            queue: "default".into(),
            agent: Some("w".into()),
            status: TaskStatus::Failed,
            result: None,
            error: Some("exit 3".into()),
            at: 1_700_000_000_900,
        })
        .unwrap();
        drop(rows);
        tx.commit().unwrap();
        claimed.status = TaskStatus::Running;
        claimed.agent = Some("w".into());
        claimed.attempts = 1;
        claimed.lease_until = Some(1_700_000_090_000);
        claimed.updated_at = 1_700_000_000_500;
        claimed.started_at = Some(1_700_000_000_500);
        ended.status = TaskStatus::Failed;
        ended.agent = Some("w".into());
        ended.attempts = 1;
        ended.updated_at = 1_700_000_000_900;
        ended.started_at = Some(1_700_000_000_500);
        ended.ended_at = Some(1_700_000_000_900);
        ended.exit_code = Some(3);
        ended.error = Some("exit 3".into());

        let loaded = snapshot::load(&conn).unwrap();
        assert_eq!(loaded.tasks.get(1), Some(plain));
        assert_eq!(loaded.tasks.get(2), Some(full));
        assert_eq!(loaded.tasks.get(3), Some(claimed));
        assert_eq!(loaded.tasks.get(4), Some(ended));
    }
}
