//! The database schema and its migrations.
//!
//! `schema_version` holds one row: the version the file is at. Each migration moves it one
//! step, in the same transaction as its DDL. A file that is not a vapora database, or one
//! written by a newer vapora, is refused — never replaced by an empty one.

use rusqlite::{Connection, OptionalExtension};

use super::{StoreError, SyncMode};

/// Migrations in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: tasks, agents, counters.
    "
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version (version) VALUES (0);

    -- Counters and the next task id (ids are never reused, even after pruning).
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta (key, value) VALUES
        ('next_task_id', 1), ('enqueued', 0), ('claimed', 0), ('done', 0),
        ('failed', 0), ('requeued', 0), ('cancelled', 0);

    CREATE TABLE tasks (
        id           INTEGER PRIMARY KEY,
        title        TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        queue        TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        status       TEXT    NOT NULL
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        requires     TEXT    NOT NULL,  -- JSON array of capability names
        agent        TEXT,
        attempts     INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,  -- milliseconds since the Unix epoch
        updated_at   INTEGER NOT NULL,
        result       TEXT,
        error        TEXT,
        seq          INTEGER NOT NULL   -- place in line within a priority (lower first)
    );

    CREATE TABLE agents (
        name           TEXT PRIMARY KEY,
        capabilities   TEXT    NOT NULL,  -- JSON array
        max_tasks      INTEGER NOT NULL,
        availability   TEXT    NOT NULL CHECK (availability IN ('active', 'paused', 'offline')),
        registered_at  INTEGER NOT NULL,
        last_heartbeat INTEGER NOT NULL
    );
    ",
    // 2: the lifecycle — scheduled and blocked tasks, leases, dependencies. SQLite cannot
    // change a CHECK constraint in place, so the table is rebuilt.
    "
    CREATE TABLE tasks_v2 (
        id           INTEGER PRIMARY KEY,
        title        TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        queue        TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        status       TEXT    NOT NULL
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled',
                                       'scheduled', 'blocked')),
        requires     TEXT    NOT NULL,
        agent        TEXT,
        attempts     INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        result       TEXT,
        error        TEXT,
        seq          INTEGER NOT NULL,
        run_at       INTEGER,           -- when a scheduled task becomes queued
        lease_until  INTEGER,           -- when a running task's lease runs out
        lease_ms     INTEGER,           -- the task's own lease length, if any
        after        TEXT NOT NULL DEFAULT '[]'  -- JSON array of dependency ids
    );
    INSERT INTO tasks_v2 (id, title, payload, queue, priority, status, requires, agent,
        attempts, max_attempts, created_at, updated_at, result, error, seq)
    SELECT id, title, payload, queue, priority, status, requires, agent,
        attempts, max_attempts, created_at, updated_at, result, error, seq
    FROM tasks;
    DROP TABLE tasks;
    ALTER TABLE tasks_v2 RENAME TO tasks;

    -- Agents may now be 'silent' (offline because they stopped reporting).
    CREATE TABLE agents_v2 (
        name           TEXT PRIMARY KEY,
        capabilities   TEXT    NOT NULL,
        max_tasks      INTEGER NOT NULL,
        availability   TEXT    NOT NULL
                       CHECK (availability IN ('active', 'paused', 'offline', 'silent')),
        registered_at  INTEGER NOT NULL,
        last_heartbeat INTEGER NOT NULL
    );
    INSERT INTO agents_v2 SELECT * FROM agents;
    DROP TABLE agents;
    ALTER TABLE agents_v2 RENAME TO agents;
    ",
    // 3: the same constraints, written as OR chains. SQLite evaluates `x IN (7 strings)`
    // in a CHECK by building a temporary b-tree for every row written, which cost a
    // quarter of the writer's time (BENCHMARKS.md); a chain of comparisons costs nothing.
    "
    CREATE TABLE tasks_v3 (
        id           INTEGER PRIMARY KEY,
        title        TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        queue        TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        status       TEXT    NOT NULL
                     CHECK (status = 'queued' OR status = 'running' OR status = 'done'
                            OR status = 'failed' OR status = 'cancelled'
                            OR status = 'scheduled' OR status = 'blocked'),
        requires     TEXT    NOT NULL,  -- JSON array of capability names
        agent        TEXT,
        attempts     INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,  -- milliseconds since the Unix epoch
        updated_at   INTEGER NOT NULL,
        result       TEXT,
        error        TEXT,
        seq          INTEGER NOT NULL,  -- place in line within a priority (lower first)
        run_at       INTEGER,           -- when a scheduled task becomes queued
        lease_until  INTEGER,           -- when a running task's lease runs out
        lease_ms     INTEGER,           -- the task's own lease length, if any
        after        TEXT NOT NULL DEFAULT '[]'  -- JSON array of dependency ids
    );
    INSERT INTO tasks_v3 SELECT * FROM tasks;
    DROP TABLE tasks;
    ALTER TABLE tasks_v3 RENAME TO tasks;

    CREATE TABLE agents_v3 (
        name           TEXT PRIMARY KEY,
        capabilities   TEXT    NOT NULL,  -- JSON array
        max_tasks      INTEGER NOT NULL,
        availability   TEXT    NOT NULL
                       CHECK (availability = 'active' OR availability = 'paused'
                              OR availability = 'offline' OR availability = 'silent'),
        registered_at  INTEGER NOT NULL,
        last_heartbeat INTEGER NOT NULL
    );
    INSERT INTO agents_v3 SELECT * FROM agents;
    DROP TABLE agents;
    ALTER TABLE agents_v3 RENAME TO agents;
    ",
    // 4: the last journal record the database holds (`store/journal.rs`). A vapora that
    // knows no journal must not open a database that may have records waiting there.
    "
    INSERT INTO meta (key, value) VALUES ('journal_seq', 0);
    ",
    // 5: how a worker runs a task, and how its latest attempt went. Added columns go at the end, where a rebuild's
    // `SELECT *` (migration 3) expects them.
    "
    ALTER TABLE tasks ADD COLUMN cwd TEXT;                      -- working directory, if set
    ALTER TABLE tasks ADD COLUMN env TEXT NOT NULL DEFAULT '[]'; -- JSON array of [name, value]
    ALTER TABLE tasks ADD COLUMN timeout_ms INTEGER;            -- one attempt's time limit, if set
    ALTER TABLE tasks ADD COLUMN started_at INTEGER;            -- the latest attempt's start
    ALTER TABLE tasks ADD COLUMN ended_at INTEGER;              -- and its end, once it ended
    ALTER TABLE tasks ADD COLUMN exit_code INTEGER;             -- how its command ended, if told
    ",
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Validates the file, then switches it to WAL with the chosen sync mode and migrates it to
/// [`LATEST`]. Nothing is written before the file is known to be ours and not too new.
pub fn migrate_checked(conn: &mut Connection, sync: SyncMode) -> Result<(), StoreError> {
    let current = check(conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unreadable(format!(
            "cannot switch the database to WAL mode (it stays in {mode} mode)"
        )));
    }
    let synchronous = match sync {
        SyncMode::Normal => "NORMAL",
        SyncMode::Full => "FULL",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Checkpoints (which fsync) run on their own thread; see `checkpoint.rs`.
    // After a checkpoint lets the WAL restart, trim the file back to at most 64 MiB.
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;")?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("UPDATE schema_version SET version = ?1", [index as i64 + 1])?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database schema migrated");
    }
    Ok(())
}

/// Returns the schema version of an existing vapora database (0 for an empty file);
/// refuses anything else. Reads only.
fn check(conn: &Connection) -> Result<i64, StoreError> {
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(|e| StoreError::Unreadable(e.to_string()))?;
    let has_version_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| StoreError::Unreadable(e.to_string()))?;
    let current = if has_version_table {
        conn.query_row("SELECT version FROM schema_version", [], |row| {
            row.get::<_, i64>(0)
        })
        .optional()
        .map_err(|e| StoreError::Unreadable(e.to_string()))?
        .ok_or_else(|| StoreError::Unreadable("schema_version is empty".into()))?
    } else if tables == 0 {
        0
    } else {
        return Err(StoreError::Unreadable(
            "the file holds tables but is not a vapora database".into(),
        ));
    };
    if current < 0 {
        return Err(StoreError::Unreadable(format!(
            "invalid schema version {current}"
        )));
    }
    if current > LATEST {
        return Err(StoreError::TooNew {
            found: current,
            supported: LATEST,
        });
    }
    Ok(current)
}
