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

mod checkpoint;
mod schema;
mod snapshot;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

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

/// Tells one waiter whether a submission was committed (`Err` says why not).
pub type Ack = oneshot::Sender<Result<(), String>>;

/// A handler's claim on a commit: await it with [`Store::wait`]. `None`: nothing needed
/// writing.
pub type Ticket = Option<oneshot::Receiver<Result<(), String>>>;

enum Message {
    /// Changes to commit, and everyone to tell once they are (or are not).
    Submit {
        changes: Vec<Change>,
        acks: Vec<Ack>,
    },
    Close,
}

pub struct Store {
    sender: Mutex<mpsc::Sender<Message>>,
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
        let checkpointer = checkpoint::Checkpointer::start(path)?;
        let (sender, receiver) = mpsc::channel();
        let degraded = Arc::new(AtomicBool::new(false));
        let writer = writer::Writer::new(conn, receiver, Arc::clone(&degraded), checkpointer);
        let store = Store {
            sender: Mutex::new(sender),
            degraded,
            writer: Mutex::new(None),
        };
        Ok((store, snapshot, WriterHalf(writer)))
    }

    /// Whether writes are refused because the last commit failed.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// Hands changes to the writer, with `acks` to answer besides the returned ticket
    /// (parked claimers whose hand-off these changes contain). Called under the queue lock,
    /// so submissions reach the writer in the order they were applied in memory.
    pub fn submit(&self, changes: Vec<Change>, mut acks: Vec<Ack>) -> Ticket {
        if changes.is_empty() {
            return None;
        }
        let (ack, ticket) = oneshot::channel();
        acks.push(ack);
        let sent = self
            .sender
            .lock()
            .map(|sender| sender.send(Message::Submit { changes, acks }).is_ok())
            .unwrap_or(false);
        if !sent {
            // Memory must not run ahead of a disk nobody writes: refuse further changes.
            self.degraded.store(true, Ordering::SeqCst);
            tracing::error!("the store writer is gone; refusing changes");
        }
        Some(ticket)
    }

    /// A ticket that is durable once everything submitted before it is (the writer handles
    /// submissions in order). Called under the queue lock.
    pub fn barrier(&self) -> Ticket {
        let (ack, ticket) = oneshot::channel();
        let message = Message::Submit {
            changes: Vec::new(),
            acks: vec![ack],
        };
        let sent = self
            .sender
            .lock()
            .map(|sender| sender.send(message).is_ok())
            .unwrap_or(false);
        sent.then_some(ticket)
    }

    /// Waits until the ticket's changes are committed; `Err` carries why they were not.
    pub async fn wait(ticket: Ticket) -> Result<(), String> {
        match ticket {
            None => Ok(()),
            Some(receiver) => receiver
                .await
                .unwrap_or_else(|_| Err("the store writer stopped".into())),
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
