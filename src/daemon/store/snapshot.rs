//! Reading the whole state back at start-up (and after a failed commit, to put memory back
//! to what is on disk).

use rusqlite::Connection;

use super::StoreError;
use crate::daemon::availability::Availability;
use crate::daemon::queue::{Restore, TaskQueue};
use crate::daemon::registry::{AgentRecord, Registry};
use crate::protocol::response::TaskCounters;
use crate::protocol::{Task, TaskStatus};

/// Everything the daemon keeps, as loaded from the database.
pub struct Snapshot {
    pub tasks: TaskQueue,
    pub registry: Registry,
    pub counters: TaskCounters,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unreadable(what.to_string())
}

fn optional_time(value: Option<i64>, what: &str) -> Result<Option<u64>, StoreError> {
    value.map(|v| non_negative(v, what)).transpose()
}

/// Ids, places in line and times are never negative; a negative one means a damaged file.
fn non_negative(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("{what} is negative ({value})")))
}

/// A JSON array column. Nearly all are empty: those skip the parser (start-up reads a
/// million of them).
fn json_list<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, serde_json::Error> {
    if text == "[]" {
        return Ok(Vec::new());
    }
    serde_json::from_str(text)
}

pub fn load(conn: &Connection) -> Result<Snapshot, StoreError> {
    let meta = |key: &str| -> Result<u64, StoreError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(|e| corrupt(format!("meta {key}: {e}")))
        .and_then(|v| non_negative(v, key))
    };
    let counters = TaskCounters {
        enqueued: meta("enqueued")?,
        claimed: meta("claimed")?,
        done: meta("done")?,
        failed: meta("failed")?,
        requeued: meta("requeued")?,
        cancelled: meta("cancelled")?,
    };
    let next_id = meta("next_task_id")?;

    let mut statement = conn.prepare(
        "SELECT id, title, payload, queue, priority, status, requires, agent, attempts,
                max_attempts, created_at, updated_at, result, error, seq,
                run_at, lease_until, lease_ms, after, cwd, env, timeout_ms, started_at,
                ended_at, exit_code
         FROM tasks ORDER BY id",
    )?;
    let mut rows = statement.query([])?;
    let mut tasks = Restore::new(next_id);
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let text = |column: usize| -> Result<&str, StoreError> {
            row.get_ref(column)?
                .as_str()
                .map_err(|e| corrupt(format!("task {id} column {column}: {e}")))
        };
        let status: TaskStatus = text(5)?
            .parse()
            .map_err(|e| corrupt(format!("task {id}: {e}")))?;
        let requires =
            json_list(text(6)?).map_err(|e| corrupt(format!("task {id} requires: {e}")))?;
        let task = Task {
            id: non_negative(id, "a task id")?,
            title: row.get(1)?,
            payload: row.get(2)?,
            queue: row.get(3)?,
            priority: row.get(4)?,
            status,
            requires,
            agent: row.get(7)?,
            attempts: row.get(8)?,
            max_attempts: row.get(9)?,
            created_at: non_negative(row.get(10)?, "created_at")?,
            updated_at: non_negative(row.get(11)?, "updated_at")?,
            result: row.get(12)?,
            error: row.get(13)?,
            run_at: optional_time(row.get(15)?, "run_at")?,
            lease_until: optional_time(row.get(16)?, "lease_until")?,
            lease_ms: optional_time(row.get(17)?, "lease_ms")?,
            after: json_list(text(18)?).map_err(|e| corrupt(format!("task {id} after: {e}")))?,
            cwd: row.get(19)?,
            env: json_list(text(20)?).map_err(|e| corrupt(format!("task {id} env: {e}")))?,
            timeout_ms: optional_time(row.get(21)?, "timeout_ms")?,
            started_at: optional_time(row.get(22)?, "started_at")?,
            ended_at: optional_time(row.get(23)?, "ended_at")?,
            exit_code: row.get(24)?,
        };
        let seq = non_negative(row.get(14)?, "seq")?;
        tasks.push(task, seq);
    }

    let mut statement = conn.prepare(
        "SELECT name, capabilities, max_tasks, availability, registered_at, last_heartbeat
         FROM agents ORDER BY name",
    )?;
    let mut rows = statement.query([])?;
    let mut agents = Vec::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let capabilities: String = row.get(1)?;
        let availability: String = row.get(3)?;
        agents.push(AgentRecord {
            capabilities: serde_json::from_str(&capabilities)
                .map_err(|e| corrupt(format!("agent {name} capabilities: {e}")))?,
            max_tasks: row.get(2)?,
            availability: Availability::parse(&availability)
                .ok_or_else(|| corrupt(format!("agent {name}: availability {availability}")))?,
            registered_at: non_negative(row.get(4)?, "registered_at")?,
            last_heartbeat: non_negative(row.get(5)?, "last_heartbeat")?,
            name,
        });
    }
    Ok(Snapshot {
        tasks: tasks.finish(),
        registry: Registry::restore(agents),
        counters,
    })
}
