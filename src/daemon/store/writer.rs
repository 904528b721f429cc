//! The writer thread: group commit, the journal's replay, and the failure path.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak, mpsc};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::checkpoint::{COMMITS_PER_CHECKPOINT, Checkpointer};
use super::journal::{self, Replayed};
use super::rows::Rows;
use super::snapshot::{self, Snapshot};
use super::{Ack, Message, Shared, StoreError};
use crate::daemon::change::{Change, counter_deltas};
use crate::protocol::response::TaskCounters;

/// Most submissions folded into one transaction.
const MAX_GROUP: usize = 4096;
/// Commits after which the writer itself restarts the WAL. Background checkpoints copy
/// pages but cannot reset the log while commits keep coming; this bounds its size (about
/// 40 MiB at typical commit sizes) at the cost of a short pause.
const COMMITS_PER_WAL_RESTART: u32 = 4096;
/// After a WAL restart a reader prevented, commits until the next try.
const RESTART_RETRY_COMMITS: u32 = 256;
/// How long a commit waits for another process's write lock (rusqlite's default).
const COMMIT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// A backlog at least this large is followed by returning free memory once it drains.
const TRIM_AFTER_BACKLOG: usize = 1024 * 1024;
/// How often a degraded store tries a write to see whether storage works again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// In journal mode nobody waits for the writer, so after the first submission it lets more
/// arrive for this long before committing: larger groups, and a wake-up of this thread per
/// group instead of one per request (each one costs the two shared cores a context switch).
const GATHER: Duration = Duration::from_millis(1);

/// The daemon state, as the writer sees it.
pub trait Recovery: Send + Sync {
    /// Storage works again after a failure: writes are accepted from now on.
    fn recovered(&self);

    /// `changes` were just made durable; task counters grew by `deltas`.
    fn committed(&self, changes: &mut dyn Iterator<Item = &Change>, deltas: &TaskCounters);

    /// After a failed write: calls `drain` under the state locks (so no new change can be
    /// submitted in between), then `load` without them, and if that succeeds replaces the
    /// in-memory state with the snapshot. Returns whether it did.
    fn roll_back(
        &self,
        drain: &mut dyn FnMut(),
        load: &mut dyn FnMut() -> Result<Snapshot, StoreError>,
    ) -> bool;
}

pub(super) struct Writer {
    conn: Connection,
    receiver: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    pub(super) recovery: Option<Weak<dyn Recovery>>,
    closing: bool,
    checkpointer: Checkpointer,
    commits_since_checkpoint: u32,
    commits_since_restart: u32,
    /// The last journal record committed into the database.
    committed_seq: u64,
    /// When the writer last tried a checkpoint to trim the journal.
    last_prune_try: std::time::Instant,
    /// The largest journal backlog since the writer last caught up.
    backlog_peak: usize,
}

struct Submission {
    changes: Vec<Change>,
    acks: Vec<Ack>,
    journaled: Option<journal::Appended>,
}

/// A message that ends a group: it is handled after the group's commit.
enum Control {
    RollBack { acks: Vec<Ack>, error: String },
}

/// Tells waiters that their change failed.
fn answer_error(acks: Vec<Ack>, error: &str) {
    for ack in acks {
        let _ = ack.send(Err(error.to_string()));
    }
}

/// Tells every waiter of `submissions` the outcome.
fn answer(submissions: Vec<Submission>, outcome: &Result<(), String>) {
    for submission in submissions {
        for ack in submission.acks {
            let _ = ack.send(outcome.clone());
        }
    }
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        receiver: mpsc::Receiver<Message>,
        shared: Arc<Shared>,
        checkpointer: Checkpointer,
        committed_seq: u64,
    ) -> Writer {
        Writer {
            conn,
            receiver,
            shared,
            recovery: None,
            closing: false,
            checkpointer,
            commits_since_checkpoint: 0,
            commits_since_restart: 0,
            committed_seq,
            last_prune_try: std::time::Instant::now(),
            backlog_peak: 0,
        }
    }

    /// Whether a closed journal segment is fully committed and the last try to make it
    /// durable (and delete it) was over a second ago.
    fn journal_prune_due(&self) -> bool {
        self.last_prune_try.elapsed() >= PROBE_INTERVAL
            && self
                .shared
                .journal()
                .is_some_and(|journal| journal.can_prune(self.committed_seq))
    }

    fn journaled(&self) -> bool {
        self.shared.journal.is_some()
    }

    pub(super) fn run(mut self) {
        if self.journaled() {
            yield_to_requests();
        }
        let (mut batches, mut submissions) = (0u64, 0u64);
        let mut busy = Duration::ZERO;
        let mut clean = true;
        while !self.closing {
            let Some((batch, control)) = self.next_batch() else {
                break;
            };
            if !batch.is_empty() {
                batches += 1;
                submissions += batch.len() as u64;
                let started = std::time::Instant::now();
                let committed = self.commit(&batch);
                busy += started.elapsed();
                match committed {
                    Ok(deltas) => self.committed(batch, &deltas),
                    Err(e) if self.journaled() => {
                        // A failed append behind this batch was answered when it failed
                        // (`Store::submit`); its roll-back waits for the batch to commit.
                        tracing::error!(error = %e, "commit of journaled changes failed; refusing writes and retrying");
                        match self.retry(&batch) {
                            Some(deltas) => self.committed(batch, &deltas),
                            None => {
                                // Closing with the batch uncommitted: it stays in the
                                // journal, and the next start replays it. Whoever waits
                                // for it hears the truth: it is durable.
                                clean = false;
                                self.closing = true;
                                answer(batch, &Ok(()));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "commit failed; refusing writes until storage works");
                        self.fail(batch, format!("storage failed: {e}"));
                        self.wait_for_storage();
                    }
                }
            }
            if let Some(Control::RollBack { acks, error }) = control {
                if !clean {
                    // Memory cannot be put back to a database that lacks acknowledged
                    // changes; the daemon is stopping and the next start replays them.
                    answer_error(acks, &error);
                    break;
                }
                let failed = vec![Submission {
                    changes: Vec::new(),
                    acks,
                    journaled: None,
                }];
                // Refuse writes until the probe below passes, before the roll-back's own
                // reason goes away.
                self.shared.health.set_writer_failing();
                self.fail(failed, error);
                self.shared.health.roll_back_done();
                self.wait_for_storage();
            }
        }
        // Leave a compact database behind: everything copied out of the WAL, and the
        // journal deleted once that is done.
        match checkpoint(&self.conn, "TRUNCATE") {
            Ok(true) if clean => self.prune_journal(),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "final checkpoint failed; the WAL is replayed at the next start")
            }
        }
        tracing::info!(
            batches,
            submissions,
            busy_ms = busy.as_millis() as u64,
            "store writer stopped (group commits, submissions, time spent committing)"
        );
    }

    /// After a successful commit of `batch`: counters and events (full mode; journal mode
    /// did that on append), the waiters, the journal backlog, and checkpoints.
    fn committed(&mut self, batch: Vec<Submission>, deltas: &TaskCounters) {
        if !self.journaled()
            && let Some(recovery) = self.recovery.as_ref().and_then(Weak::upgrade)
        {
            let mut changes = batch.iter().flat_map(|s| s.changes.iter());
            recovery.committed(&mut changes, deltas);
        }
        let bytes: usize = batch
            .iter()
            .filter_map(|s| s.journaled.as_ref().map(journal::Appended::bytes))
            .sum();
        if let Some(seq) = batch
            .iter()
            .filter_map(|s| s.journaled.as_ref())
            .map(|a| a.seq)
            .max()
        {
            self.committed_seq = seq;
        }
        let before = self.shared.backlog.fetch_sub(bytes, Ordering::SeqCst);
        self.backlog_peak = self.backlog_peak.max(before);
        if before == bytes && self.backlog_peak >= TRIM_AFTER_BACKLOG {
            // Caught up after a burst: hand the memory that held it back to the system.
            self.backlog_peak = 0;
            release_free_memory();
        }
        answer(batch, &Ok(()));
        self.commits_since_checkpoint += 1;
        self.commits_since_restart += 1;
        if self.commits_since_restart >= COMMITS_PER_WAL_RESTART {
            self.commits_since_checkpoint = 0;
            match self.restart_wal() {
                Ok(true) => {
                    self.commits_since_restart = 0;
                    self.prune_journal();
                }
                Ok(false) => {
                    // A reader holds an old snapshot (a `sqlite3` shell inside a
                    // transaction): the WAL grows meanwhile; try again a little later.
                    self.commits_since_restart = COMMITS_PER_WAL_RESTART - RESTART_RETRY_COMMITS;
                }
                Err(e) => {
                    self.commits_since_restart = COMMITS_PER_WAL_RESTART - RESTART_RETRY_COMMITS;
                    tracing::warn!(error = %e, "WAL restart failed; will retry later");
                }
            }
        } else if self.journal_prune_due() {
            // A closed segment waits for a checkpoint that covers it. PASSIVE never waits
            // for readers (a `sqlite3` shell, a backup); when one holds it back, the next
            // try comes a second later.
            self.last_prune_try = std::time::Instant::now();
            match checkpoint(&self.conn, "PASSIVE") {
                Ok(true) => self.prune_journal(),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "checkpoint for the journal failed; will retry")
                }
            }
        } else if self.commits_since_checkpoint >= COMMITS_PER_CHECKPOINT {
            self.commits_since_checkpoint = 0;
            self.checkpointer.request();
        }
    }

    /// A RESTART checkpoint that never waits for readers: with SQLite's busy handler it
    /// waited up to the connection's busy timeout (5 s) for a reader holding an old
    /// snapshot, and every write waited behind it. Without one it does what it can and
    /// says whether it completed. Commits keep their busy timeout (another process may
    /// hold the write lock for a moment).
    fn restart_wal(&self) -> Result<bool, rusqlite::Error> {
        self.conn.busy_timeout(Duration::ZERO)?;
        let restarted = checkpoint(&self.conn, "RESTART");
        self.conn.busy_timeout(COMMIT_BUSY_TIMEOUT)?;
        restarted
    }

    /// Deletes the journal segments a completed checkpoint made redundant.
    fn prune_journal(&self) {
        let done = match self.shared.journal() {
            Some(mut journal) => journal.prune(self.committed_seq),
            None => return,
        };
        // Outside the journal's lock: appends wait on it.
        let kept = delete_segments(done);
        if !kept.is_empty() {
            tracing::warn!(segments = kept.len(), "journal segments left in place");
        }
    }

    /// Journal mode, after a failed commit: the batch is acknowledged and journaled, so it
    /// is retried (not rolled back) once a second until it commits, with writes refused
    /// meanwhile. `None`: the store closed first; the journal keeps the batch for the next
    /// start.
    fn retry(&mut self, batch: &[Submission]) -> Option<TaskCounters> {
        self.shared.health.set_writer_failing();
        loop {
            std::thread::sleep(PROBE_INTERVAL);
            if self.shared.closing.load(Ordering::SeqCst) {
                return None;
            }
            // A commit reported failed may still have landed: then committing it again
            // would hit its own rows.
            let highest = batch
                .iter()
                .filter_map(|s| s.journaled.as_ref())
                .map(|a| a.seq)
                .max();
            let landed = highest.is_some_and(|seq| stored_journal_seq(&self.conn) >= Some(seq));
            let outcome = if landed {
                Ok(counter_deltas(batch.iter().flat_map(|s| s.changes.iter())))
            } else {
                self.commit(batch)
            };
            if let Ok(deltas) = outcome {
                self.shared.health.clear_writer_failing();
                if let Some(recovery) = self.recovery.as_ref().and_then(Weak::upgrade) {
                    recovery.recovered();
                }
                tracing::info!("storage works again; accepting writes");
                return Some(deltas);
            }
        }
    }

    /// Blocks for the next submission, then takes everything else already waiting, up to
    /// a control message. `None` when the store is closed.
    fn next_batch(&mut self) -> Option<(Vec<Submission>, Option<Control>)> {
        let mut batch = Vec::new();
        match self.receiver.recv() {
            Ok(Message::Submit {
                changes,
                acks,
                journaled,
            }) => {
                let gather = journaled.is_some() && acks.is_empty();
                batch.push(Submission {
                    changes,
                    acks,
                    journaled,
                });
                if gather {
                    std::thread::sleep(GATHER);
                }
            }
            Ok(Message::RollBack { acks, error }) => {
                return Some((batch, Some(Control::RollBack { acks, error })));
            }
            Ok(Message::Close) | Err(_) => return None,
        }
        while batch.len() < MAX_GROUP {
            match self.receiver.try_recv() {
                Ok(Message::Submit {
                    changes,
                    acks,
                    journaled,
                }) => batch.push(Submission {
                    changes,
                    acks,
                    journaled,
                }),
                Ok(Message::RollBack { acks, error }) => {
                    return Some((batch, Some(Control::RollBack { acks, error })));
                }
                Ok(Message::Close) => {
                    self.closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        Some((batch, None))
    }

    /// Commits a batch as one transaction; returns the counter deltas it made durable.
    fn commit(&mut self, batch: &[Submission]) -> Result<TaskCounters, rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut group = Group::default();
        let mut rows = Rows::new(&tx);
        for submission in batch {
            for change in &submission.changes {
                group.write(&mut rows, change)?;
            }
            if let Some(appended) = &submission.journaled {
                let changes = appended.changes().map_err(|e| {
                    // Cannot happen (the daemon encoded it a moment ago); if it did, the
                    // commit fails and is retried, and the record stays in the journal.
                    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
                })?;
                for change in &changes {
                    group.write(&mut rows, change)?;
                }
                group.journal_seq = Some(appended.seq);
            }
        }
        drop(rows);
        let deltas = group.finish(&tx)?;
        tx.commit()?;
        Ok(deltas)
    }

    /// After a failed write: turn degraded, fail everything queued behind it, and have the
    /// daemon put memory back to what is on disk. All of that happens under the daemon's
    /// locks, so no new change slips in between. Waiters hear of the failure only once
    /// memory is back in line with the disk.
    fn fail(&mut self, mut batch: Vec<Submission>, error: String) {
        let rolled_back = {
            let receiver = &self.receiver;
            let conn = &self.conn;
            let health = &self.shared.health;
            let closing = &mut self.closing;
            let failed = &mut batch;
            let mut drain = || {
                health.set_writer_failing();
                // Writes were refused since the failure, under these same locks, so nothing
                // journaled (hence acknowledged) can be queued here.
                while let Ok(message) = receiver.try_recv() {
                    match message {
                        Message::Submit {
                            changes,
                            acks,
                            journaled,
                        } => failed.push(Submission {
                            changes,
                            acks,
                            journaled,
                        }),
                        Message::RollBack { acks, .. } => {
                            health.roll_back_done();
                            failed.push(Submission {
                                changes: Vec::new(),
                                acks,
                                journaled: None,
                            });
                        }
                        Message::Close => *closing = true,
                    }
                }
            };
            let mut load = || snapshot::load(conn);
            match self.recovery.as_ref().and_then(Weak::upgrade) {
                Some(recovery) => recovery.roll_back(&mut drain, &mut load),
                None => {
                    drain();
                    false
                }
            }
        };
        if !rolled_back {
            tracing::error!(
                "cannot read the database back: memory may hold changes that are not on disk; \
                 writes stay refused"
            );
        }
        answer(batch, &Err(error));
    }

    /// While degraded: probe once a second until a write works (to the database and, in
    /// journal mode, to the journal), then roll memory back to disk once more (in case the
    /// first roll-back could not read it) and accept writes.
    fn wait_for_storage(&mut self) {
        while self.shared.health.writer_failing() && !self.closing {
            match self.receiver.recv_timeout(PROBE_INTERVAL) {
                Ok(Message::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.closing = true;
                }
                Ok(Message::Submit { acks, .. }) => {
                    // Cannot happen (writes are refused while degraded); fail it to be safe.
                    answer_error(acks, "storage is failing");
                }
                Ok(Message::RollBack { acks, error }) => {
                    // Cannot happen either (it needs an append, refused while degraded);
                    // memory is being put back to the database anyway.
                    self.shared.health.roll_back_done();
                    answer_error(acks, &error);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if probe(&self.conn).is_err() {
                        continue;
                    }
                    if let Some(Err(e)) = self.shared.journal().map(|mut journal| journal.probe()) {
                        tracing::debug!(error = %e, "the journal still cannot be written");
                        continue;
                    }
                    let conn = &self.conn;
                    let mut load = || snapshot::load(conn);
                    let recovered = match self.recovery.as_ref().and_then(Weak::upgrade) {
                        Some(recovery) => recovery.roll_back(&mut || {}, &mut load),
                        None => load().is_ok(),
                    };
                    if recovered {
                        self.shared.health.clear_writer_failing();
                        if let Some(recovery) = self.recovery.as_ref().and_then(Weak::upgrade) {
                            recovery.recovered();
                        }
                        tracing::info!("storage works again; accepting writes");
                    }
                }
            }
        }
    }
}

/// The changes of one transaction, with the bookkeeping rows they move: the next task id,
/// the task counters, and the last journal record they include.
#[derive(Default)]
struct Group {
    highest_id: Option<u64>,
    deltas: TaskCounters,
    journal_seq: Option<u64>,
}

impl Group {
    fn write(&mut self, rows: &mut Rows<'_>, change: &Change) -> Result<(), rusqlite::Error> {
        rows.apply(change)?;
        match change {
            Change::TaskAdded { task, .. } => self.highest_id = self.highest_id.max(Some(task.id)),
            Change::IdsUsed { next_id } => {
                self.highest_id = self.highest_id.max(next_id.checked_sub(1));
            }
            _ => {}
        }
        let deltas = counter_deltas(std::iter::once(change));
        self.deltas.enqueued += deltas.enqueued;
        self.deltas.claimed += deltas.claimed;
        self.deltas.done += deltas.done;
        self.deltas.failed += deltas.failed;
        self.deltas.requeued += deltas.requeued;
        self.deltas.cancelled += deltas.cancelled;
        Ok(())
    }

    /// Writes the bookkeeping rows; returns the counter deltas.
    fn finish(self, tx: &Transaction<'_>) -> Result<TaskCounters, rusqlite::Error> {
        if let Some(id) = self.highest_id {
            tx.prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE key = 'next_task_id'")?
                .execute([id as i64 + 1])?;
        }
        let deltas = self.deltas;
        for (key, delta) in [
            ("enqueued", deltas.enqueued),
            ("claimed", deltas.claimed),
            ("done", deltas.done),
            ("failed", deltas.failed),
            ("requeued", deltas.requeued),
            ("cancelled", deltas.cancelled),
        ] {
            if delta > 0 {
                tx.prepare_cached("UPDATE meta SET value = value + ?1 WHERE key = ?2")?
                    .execute(params![delta as i64, key])?;
            }
        }
        if let Some(seq) = self.journal_seq {
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'journal_seq'")?
                .execute([seq as i64])?;
        }
        Ok(deltas)
    }
}

/// At start-up: commits every journal record the database lacks, in one transaction, then
/// checkpoints and deletes the segments (the database now holds their records durably).
pub(super) fn replay_journal(conn: &mut Connection, dir: &Path) -> Result<Replayed, StoreError> {
    let applied: i64 = conn.query_row(
        "SELECT value FROM meta WHERE key = 'journal_seq'",
        [],
        |row| row.get(0),
    )?;
    let applied = u64::try_from(applied)
        .map_err(|_| StoreError::Unreadable(format!("meta journal_seq is negative ({applied})")))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut group = Group::default();
    let mut rows = Rows::new(&tx);
    let mut replayed = journal::replay(dir, applied, |seq, changes| {
        for change in &changes {
            group.write(&mut rows, change).map_err(|e| e.to_string())?;
        }
        group.journal_seq = Some(seq);
        Ok(())
    })?;
    drop(rows);
    group.finish(&tx)?;
    tx.commit()?;
    if replayed.records > 0 {
        tracing::info!(
            records = replayed.records,
            "journal replayed into the database"
        );
    }
    if !replayed.segments.is_empty() && matches!(checkpoint(conn, "TRUNCATE"), Ok(true)) {
        // What cannot be deleted now is left to the running journal's first prune.
        replayed.segments = delete_segments(std::mem::take(&mut replayed.segments));
    }
    Ok(replayed)
}

/// Puts this thread in the `SCHED_BATCH` class at nice 5: its wake-ups no longer preempt
/// the threads that answer requests, and it takes a smaller share of a busy CPU. In journal
/// mode nobody waits for the writer, and on a small machine its SQLite work, scheduled the
/// instant it woke, delayed the handler and the client sharing the two cores. It cannot
/// starve: once it is [`super::MAX_BACKLOG`] behind, requests wait for its commits, which
/// gives it the CPU back. (Measured against nice 0, nice 10 and batch alone in alternating
/// rounds: BENCHMARKS.md.)
fn yield_to_requests() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: changes the calling thread's (pid 0) policy; `param` is valid.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot make the store writer a batch thread");
    }
    // SAFETY: gettid (glibc's wrapper is missing from static builds) and setpriority on the
    // calling thread only.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid);
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 5)
    };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the store writer's priority");
    }
}

/// Returns the heap's free pages to the system. After a burst of bulk adds, the records
/// the writer held while behind are freed in the middle of the heap, where glibc keeps
/// them: the daemon's memory would stay at its high-water mark.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: no arguments beyond a size; glibc takes its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs a checkpoint of the given mode; `Ok(true)` when it completed (every WAL frame is
/// in the database file, and the file is fsynced), so everything committed so far is
/// durable and the journal segments it covers can go.
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> Result<bool, rusqlite::Error> {
    let (busy, log, checkpointed): (i64, i64, i64) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok(busy == 0 && log == checkpointed)
}

/// Deletes journal segments; returns those that could not be deleted.
fn delete_segments(paths: Vec<std::path::PathBuf>) -> Vec<std::path::PathBuf> {
    paths
        .into_iter()
        .filter(|path| match std::fs::remove_file(path) {
            Ok(()) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a journal segment");
                true
            }
        })
        .collect()
}

/// The last journal record the database holds, if it can be read.
pub(super) fn stored_journal_seq(conn: &Connection) -> Option<u64> {
    conn.query_row(
        "SELECT value FROM meta WHERE key = 'journal_seq'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .ok()
    .and_then(|seq| u64::try_from(seq).ok())
}

/// A write that changes nothing, to test whether storage accepts writes again.
fn probe(conn: &Connection) -> Result<(), rusqlite::Error> {
    let result = conn.execute_batch(
        "BEGIN IMMEDIATE; UPDATE meta SET value = value WHERE key = 'next_task_id'; COMMIT;",
    );
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK;");
    }
    result
}
