//! The durable store: SQLite in WAL mode, written by one dedicated thread with group
//! commit.
//!
//! Handlers never touch the database. A mutation, still under the state locks, submits its
//! `Change` values here with a sequence number; the writer thread commits everything that
//! arrived while the previous transaction ran as one transaction, then publishes how far it
//! got, and each handler answers only once its sequence number is durable. Reads are served
//! from memory.
//!
//! When a commit fails (full disk, read-only file system, I/O error), the store turns
//! *degraded*: under the state locks, it fails every submission still queued, the daemon
//! puts its memory back to what the database holds (nothing unacknowledged survives in
//! memory), and writes are refused with `unavailable` while reads keep being served. The
//! writer probes the database once a second and leaves degraded mode when a write works.

mod schema;
mod snapshot;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::watch;

pub use snapshot::Snapshot;
pub use writer::Recovery;

use super::change::Change;

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `synchronous=NORMAL`: a commit is in the OS before it is acknowledged, so it survives
    /// the daemon being killed; the last commits may be lost on power loss.
    Normal,
    /// `synchronous=FULL`: the WAL is fsynced on every commit; survives power loss.
    Full,
}

impl std::str::FromStr for SyncMode {
    type Err = String;
    fn from_str(text: &str) -> Result<SyncMode, String> {
        match text {
            "normal" => Ok(SyncMode::Normal),
            "full" => Ok(SyncMode::Full),
            _ => Err(format!(
                "unknown sync mode '{text}' (expected normal or full)"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unreadable: {0}")]
    Unreadable(String),
    #[error(
        "the database was written by a newer vapora (schema version {found}; this build \
         knows up to {supported}); upgrade vapora"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// How far the writer got: every submission up to `durable` is committed, except those in
/// `failed` ranges, which were not (and were rolled back in memory).
#[derive(Debug, Clone, Default)]
struct Progress {
    durable: u64,
    failed: Vec<(u64, u64, String)>,
}

impl Progress {
    fn outcome(&self, seq: u64) -> Option<Result<(), String>> {
        if let Some((_, _, error)) = self
            .failed
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&seq))
        {
            return Some(Err(error.clone()));
        }
        (self.durable >= seq).then_some(Ok(()))
    }
}

enum Message {
    Submit { seq: u64, changes: Vec<Change> },
    Close,
}

/// A handler's claim on a commit: await it with [`Store::wait`].
#[derive(Debug, Clone, Copy)]
pub enum Ticket {
    /// Nothing needed writing.
    Nothing,
    Seq(u64),
}

pub struct Store {
    sender: Mutex<mpsc::Sender<Message>>,
    progress: watch::Receiver<Progress>,
    next_seq: AtomicU64,
    degraded: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The writer's half, until it is started with [`WriterHalf::spawn`].
pub struct WriterHalf(writer::Writer);

impl WriterHalf {
    /// Starts the writer thread; `recovery` is the state that rolls back after a failure.
    pub fn spawn(
        self,
        store: &Store,
        recovery: std::sync::Weak<dyn Recovery>,
    ) -> std::io::Result<()> {
        let mut writer = self.0;
        writer.recovery = Some(recovery);
        let handle = std::thread::Builder::new()
            .name("vapora-store".into())
            .spawn(move || writer.run())?;
        if let Ok(mut slot) = store.writer.lock() {
            *slot = Some(handle);
        }
        Ok(())
    }
}

impl Store {
    /// Opens (or creates) the database, checks and migrates its schema, and loads it.
    pub fn open(path: &Path, sync: SyncMode) -> Result<(Store, Snapshot, WriterHalf), StoreError> {
        let mut conn = Connection::open(path)?;
        // Reading the schema first validates the file before anything writes to it.
        schema::migrate_checked(&mut conn, sync)?;
        let snapshot = snapshot::load(&conn)?;
        let (sender, receiver) = mpsc::channel();
        let (progress_tx, progress) = watch::channel(Progress::default());
        let degraded = Arc::new(AtomicBool::new(false));
        let writer = writer::Writer::new(conn, receiver, progress_tx, Arc::clone(&degraded));
        let store = Store {
            sender: Mutex::new(sender),
            progress,
            next_seq: AtomicU64::new(1),
            degraded,
            writer: Mutex::new(None),
        };
        Ok((store, snapshot, WriterHalf(writer)))
    }

    /// Whether writes are refused because the last commit failed.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// Hands changes to the writer. Called under the queue lock, so submissions reach the
    /// writer in the order they were applied in memory.
    pub fn submit(&self, changes: Vec<Change>) -> Ticket {
        if changes.is_empty() {
            return Ticket::Nothing;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let sent = self
            .sender
            .lock()
            .map(|sender| sender.send(Message::Submit { seq, changes }).is_ok())
            .unwrap_or(false);
        if !sent {
            tracing::error!("the store writer is gone; a change was not saved");
        }
        Ticket::Seq(seq)
    }

    /// The sequence number the next submission will get (for hand-offs made during a
    /// mutation, before its changes are submitted).
    pub fn upcoming_seq(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst)
    }

    /// Waits until the ticket's changes are committed; `Err` carries why they were not.
    pub async fn wait(&self, ticket: Ticket) -> Result<(), String> {
        let Ticket::Seq(seq) = ticket else {
            return Ok(());
        };
        let mut progress = self.progress.clone();
        let mut outcome = None;
        let waited = progress
            .wait_for(|p| {
                outcome = p.outcome(seq);
                outcome.is_some()
            })
            .await;
        match (waited, outcome) {
            (Ok(_), Some(result)) => result,
            _ => Err("the store writer stopped".into()),
        }
    }

    /// Commits what is queued and stops the writer thread.
    pub fn close(&self) {
        if let Ok(sender) = self.sender.lock() {
            let _ = sender.send(Message::Close);
        }
        let handle = self.writer.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reports_failures_before_durability() {
        let progress = Progress {
            durable: 10,
            failed: vec![(4, 6, "disk full".into())],
        };
        assert_eq!(progress.outcome(3), Some(Ok(())));
        assert_eq!(progress.outcome(5), Some(Err("disk full".into())));
        assert_eq!(progress.outcome(10), Some(Ok(())));
        assert_eq!(progress.outcome(11), None);
    }
}
