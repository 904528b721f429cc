//! WAL checkpoints on their own thread.
//!
//! A checkpoint copies committed pages from the WAL into the database file and fsyncs it.
//! Run inside the writer (SQLite's default auto-checkpoint), it stalled every few hundred
//! commits and cost about 40 % of the writer's time under load. Here a second connection
//! runs PASSIVE checkpoints, which never block the writer, whenever the writer says enough
//! has been committed since the last one.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

/// Commits between two checkpoint requests.
pub const COMMITS_PER_CHECKPOINT: u32 = 256;

/// The writer's handle: `request` asks for a checkpoint without ever blocking.
pub struct Checkpointer {
    sender: mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// Opens a second connection to `path` and starts the checkpoint thread.
    pub fn start(path: &Path) -> Result<Checkpointer, rusqlite::Error> {
        let conn = Connection::open(path)?;
        let (sender, receiver) = mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("vapora-checkpoint".into())
            .spawn(move || {
                while receiver.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry later");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the checkpoint thread; the WAL will grow");
        }
        Ok(Checkpointer { sender })
    }

    pub fn request(&self) {
        // Full means a checkpoint is already pending: nothing to add.
        let _ = self.sender.try_send(());
    }
}
