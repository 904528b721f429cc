//! The durable store: SQLite in WAL mode, written by one dedicated thread with group
//! commit, and with `--sync normal` a journal in front of it.
//!
//! Handlers never touch the database. A mutation, still under the state locks, submits its
//! `Change` values here. How it becomes durable depends on the sync mode:
//!
//! - `normal` (the default): the changes are appended to the journal (`journal.rs`) on the
//!   handler's own thread; once that `pwrite` returns they survive `kill -9`, and the
//!   handler answers at once. The writer thread commits them into SQLite behind the
//!   answers, a group at a time, from the encoded records. If it falls more than
//!   [`MAX_BACKLOG`] bytes behind, handlers wait for its commit again, which bounds the
//!   memory the backlog holds.
//! - `full`: the writer commits everything that arrived while the previous transaction ran
//!   as one transaction with an fsync, then publishes how far it got, and each handler
//!   answers only once its changes are committed.
//!
//! When a write fails (full disk, read-only file system, I/O error), the store turns
//! *degraded* and writes are refused with `unavailable` while reads keep being served.
//! What was not acknowledged is rolled back: under the state locks the writer fails every
//! submission queued behind the failure and the daemon puts its memory back to what the
//! database holds (in journal mode after committing everything journaled before it, so
//! nothing acknowledged is lost). A failed SQLite commit of journaled changes rolls nothing
//! back: they are acknowledged and in the journal, and the writer retries them. The writer
//! probes storage once a second and leaves degraded mode when a write works.

mod checkpoint;
mod journal;
mod journal_v1;
mod rows;
mod schema;
mod snapshot;
mod syncer;
mod used;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

pub use snapshot::Snapshot;
pub use writer::Recovery;

use super::change::{Change, counter_deltas};
use journal::Journal;

/// Journaled bytes the writer may have yet to commit before handlers wait for it again.
pub const MAX_BACKLOG: usize = 4 * 1024 * 1024;

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// A change is in the OS (the journal, then SQLite with `synchronous=NORMAL`) before
    /// it is acknowledged, so it survives the daemon being killed; the last changes may be
    /// lost on power loss.
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
    #[error("{0}")]
    Journal(#[from] journal::ReplayError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The data dir was used before but its database is gone or its journal broken:
    /// starting would silently replace the queue with less of it.
    #[error("{0}")]
    UsedDataDir(String),
}

/// Tells one waiter whether a submission was committed (`Err` says why not).
pub type Ack = oneshot::Sender<Result<(), String>>;

/// A handler's claim on a commit: await it with [`Store::wait`]. `None`: nothing needed
/// writing.
pub type Ticket = Option<oneshot::Receiver<Result<(), String>>>;

enum Message {
    /// Changes to commit, and everyone to tell once they are (or are not). In journal mode
    /// `changes` is empty and `journaled` holds the appended record, decoded again by the
    /// writer.
    Submit {
        changes: Vec<Change>,
        acks: Vec<Ack>,
        journaled: Option<journal::Appended>,
    },
    /// A journal append failed: after committing everything before it, put memory back to
    /// the database, then tell `acks` the error.
    RollBack {
        acks: Vec<Ack>,
        error: String,
    },
    Close,
}

/// Why writes are refused, in one atomic so no party can clear another's reason: bit 0 is
/// the writer's (a commit failed; it probes), bit 1 the syncer's (an fsync failed; it waits
/// for the database to hold everything durably), and each journal failure waiting for its
/// roll-back adds [`Health::ROLL_BACK`].
#[derive(Default)]
pub(crate) struct Health(AtomicU32);

impl Health {
    const WRITER_FAILING: u32 = 1;
    const SYNC_FAILED: u32 = 2;
    const ROLL_BACK: u32 = 4;

    fn is_degraded(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    fn writer_failing(&self) -> bool {
        self.0.load(Ordering::SeqCst) & Self::WRITER_FAILING != 0
    }

    fn set_writer_failing(&self) {
        self.0.fetch_or(Self::WRITER_FAILING, Ordering::SeqCst);
    }

    fn clear_writer_failing(&self) {
        self.0.fetch_and(!Self::WRITER_FAILING, Ordering::SeqCst);
    }

    fn set_sync_failed(&self) {
        self.0.fetch_or(Self::SYNC_FAILED, Ordering::SeqCst);
    }

    fn clear_sync_failed(&self) {
        self.0.fetch_and(!Self::SYNC_FAILED, Ordering::SeqCst);
    }

    fn roll_back_queued(&self) {
        self.0.fetch_add(Self::ROLL_BACK, Ordering::SeqCst);
    }

    fn roll_back_done(&self) {
        self.0.fetch_sub(Self::ROLL_BACK, Ordering::SeqCst);
    }
}

/// What the store and its writer thread share.
pub(crate) struct Shared {
    health: Health,
    /// Journal mode only.
    journal: Option<Mutex<Journal>>,
    /// Journaled bytes not yet committed into SQLite.
    backlog: AtomicUsize,
    /// Set when the store closes, so a writer retrying a failing disk gives up.
    closing: AtomicBool,
}

impl Shared {
    fn journal(&self) -> Option<MutexGuard<'_, Journal>> {
        self.journal.as_ref().map(|journal| {
            journal
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }
}

pub struct Store {
    sender: Mutex<mpsc::Sender<Message>>,
    shared: Arc<Shared>,
    /// The daemon state, told of changes as they become durable (journal mode; in full
    /// mode the writer tells it after each commit).
    recovery: OnceLock<Weak<dyn Recovery>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Journal mode: the thread that fsyncs the journal in the background.
    syncer: Mutex<Option<syncer::Syncer>>,
}

/// The writer's half, until it is started with [`WriterHalf::spawn`].
pub struct WriterHalf(writer::Writer);

impl WriterHalf {
    /// Starts the writer thread; `recovery` is the state that rolls back after a failure.
    pub fn spawn(self, store: &Store, recovery: Weak<dyn Recovery>) -> std::io::Result<()> {
        let mut writer = self.0;
        let _ = store.recovery.set(recovery.clone());
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
    /// Opens (or creates) the database, checks and migrates its schema, commits what the
    /// journal holds beyond it, and loads it.
    pub fn open(path: &Path, sync: SyncMode) -> Result<(Store, Snapshot, WriterHalf), StoreError> {
        // Before the database is opened, which creates it when missing.
        let unmarked = used::check(path)?;
        let mut conn = Connection::open(path)?;
        // Reading the schema first validates the file before anything writes to it.
        schema::migrate_checked(&mut conn, sync)?;
        let journal_dir = path.with_file_name("journal");
        // Replayed in either mode: a daemon last run with `--sync normal` may have left
        // acknowledged changes only there.
        let replayed = writer::replay_journal(&mut conn, &journal_dir)?;
        let snapshot = snapshot::load(&conn)?;
        if unmarked {
            used::mark(&conn, path)?;
        } else if let Some(dir) = path.parent() {
            // `journal/` may have been created just now.
            crate::daemon::datadir::sync_dir(dir)?;
        }
        let journal = (sync == SyncMode::Normal).then(|| {
            Journal::new(
                journal_dir,
                replayed.next_number,
                replayed.next_seq,
                replayed.segments,
            )
        });
        let checkpointer = checkpoint::Checkpointer::start(path)?;
        let (sender, receiver) = mpsc::channel();
        let shared = Arc::new(Shared {
            health: Health::default(),
            journal: journal.map(Mutex::new),
            backlog: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        });
        let writer = writer::Writer::new(
            conn,
            receiver,
            Arc::clone(&shared),
            checkpointer,
            replayed.next_seq - 1,
        );
        let syncer = match sync {
            SyncMode::Normal => Some(syncer::Syncer::start(
                Arc::clone(&shared),
                path.to_path_buf(),
            )?),
            SyncMode::Full => None,
        };
        let store = Store {
            sender: Mutex::new(sender),
            shared,
            recovery: OnceLock::new(),
            writer: Mutex::new(None),
            syncer: Mutex::new(syncer),
        };
        Ok((store, snapshot, WriterHalf(writer)))
    }

    /// Whether writes are refused because storage failed.
    pub fn is_degraded(&self) -> bool {
        self.shared.health.is_degraded()
    }

    /// Journaled bytes the writer has yet to commit into SQLite.
    pub fn backlog_bytes(&self) -> u64 {
        self.shared.backlog.load(Ordering::SeqCst) as u64
    }

    /// Whether changes are journaled (`--sync normal`) and so durable when submitted.
    pub fn is_journaled(&self) -> bool {
        self.shared.journal.is_some()
    }

    fn send(&self, message: Message) -> bool {
        let sent = self
            .sender
            .lock()
            .map(|sender| sender.send(message).is_ok())
            .unwrap_or(false);
        if !sent {
            // Memory must not run ahead of a disk nobody writes: refuse further changes.
            self.shared.health.set_writer_failing();
            tracing::error!("the store writer is gone; refusing changes");
        }
        sent
    }

    /// Hands changes to the store, with `acks` to answer besides the returned ticket
    /// (parked claimers whose hand-off these changes contain). Called under the queue lock,
    /// so submissions reach the journal and the writer in the order they were applied in
    /// memory.
    pub fn submit(&self, changes: Vec<Change>, mut acks: Vec<Ack>) -> Ticket {
        if changes.is_empty() {
            return None;
        }
        let Some(mut journal) = self.shared.journal() else {
            let (ack, ticket) = oneshot::channel();
            acks.push(ack);
            self.send(Message::Submit {
                changes,
                acks,
                journaled: None,
            });
            return Some(ticket);
        };
        let appended = journal.append(&changes);
        drop(journal);
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => {
                tracing::error!(error = %e, "journal append failed; refusing writes until storage works");
                self.shared.health.roll_back_queued();
                // Refused at once: the change is not journaled, so nothing was acknowledged,
                // and its answer must not wait behind a writer that may be stuck retrying
                // a failing commit. Memory is put back by the writer (writes are refused
                // meanwhile); until then reads may still show the refused change.
                let error = format!("storage failed: {e}");
                let (ack, ticket) = oneshot::channel();
                acks.push(ack);
                for ack in acks {
                    let _ = ack.send(Err(error.clone()));
                }
                self.send(Message::RollBack {
                    acks: Vec::new(),
                    error,
                });
                return Some(ticket);
            }
        };
        // Durable now: counters and events follow, and the waiters are answered.
        if let Some(recovery) = self.recovery.get().and_then(Weak::upgrade) {
            let deltas = counter_deltas(&changes);
            recovery.committed(&mut changes.iter(), &deltas);
        }
        for ack in acks.drain(..) {
            let _ = ack.send(Ok(()));
        }
        let bytes = appended.bytes();
        let backlog = self.shared.backlog.fetch_add(bytes, Ordering::SeqCst);
        let ticket = (backlog + bytes > MAX_BACKLOG).then(|| {
            let (ack, ticket) = oneshot::channel();
            acks.push(ack);
            ticket
        });
        // The writer decodes the record again: the changes go now, not when it catches up.
        drop(changes);
        self.send(Message::Submit {
            changes: Vec::new(),
            acks,
            journaled: Some(appended),
        });
        ticket
    }

    /// A ticket that is durable once everything submitted before it is. Called under the
    /// queue lock.
    pub fn barrier(&self) -> Ticket {
        if self.is_journaled() && !self.is_degraded() {
            // Everything applied so far is journaled already.
            return None;
        }
        let (ack, ticket) = oneshot::channel();
        let message = Message::Submit {
            changes: Vec::new(),
            acks: vec![ack],
            journaled: None,
        };
        self.send(message).then_some(ticket)
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
        if let Some(mut journal) = self.shared.journal() {
            journal.close();
        }
        self.shared.closing.store(true, Ordering::SeqCst);
        if let Ok(sender) = self.sender.lock() {
            let _ = sender.send(Message::Close);
        }
        let handle = self.writer.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        // Last: whatever the writer's final checkpoint left in the journal is synced.
        let syncer = self.syncer.lock().ok().and_then(|mut slot| slot.take());
        if let Some(syncer) = syncer {
            syncer.stop();
        }
    }
}
