//! The journal's background fsync (`--sync normal`).
//!
//! An acknowledged append is in the operating system: it survives `kill -9`, not a power
//! cut. This thread fsyncs what was appended every [`SYNC_INTERVAL`], whatever the load,
//! off the request path (as Redis's `appendfsync everysec`): a power cut loses at most the
//! changes of about the last second. Nothing waits for it; appends go on while it syncs.
//!
//! **A failed fsync means lost data** (PostgreSQL's "fsyncgate"): the kernel may already
//! have dropped the pages it could not write and marked them clean, so a second fsync of
//! the same file would succeed and prove nothing. So the descriptors are never synced
//! again, the segment is closed, and writes are refused (reads go on) until the database
//! itself holds durably every change acknowledged so far: SQLite got them from memory, not
//! from the journal file, and a completed checkpoint fsyncs its file. Then writes resume,
//! into a new segment.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::Shared;
use super::journal::Unsynced;
use super::writer::{checkpoint, stored_journal_seq};
use crate::daemon::datadir::sync_dir;

/// How often appended records are fsynced: twice a second keeps a power cut's loss under
/// about a second even when one fsync takes a while.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// The running syncer; [`Syncer::stop`] makes one last pass and joins it.
pub struct Syncer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread for the journal in `shared`; `database` is the SQLite file, opened
    /// only after a failure, to see when it holds everything durably.
    pub fn start(shared: Arc<Shared>, database: PathBuf) -> std::io::Result<Syncer> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("vapora-sync".into())
            .spawn(move || run(&shared, &database, &signal))?;
        Ok(Syncer {
            stop,
            handle: Some(handle),
        })
    }

    /// Syncs what is left and stops the thread.
    pub fn stop(mut self) {
        let (flag, wake) = &*self.stop;
        if let Ok(mut stopping) = flag.lock() {
            *stopping = true;
            wake.notify_all();
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Waits until `deadline` or a stop request; returns whether to stop.
fn wait_until(stop: &(Mutex<bool>, Condvar), deadline: Instant) -> bool {
    let (flag, wake) = stop;
    let Ok(mut stopping) = flag.lock() else {
        return true;
    };
    while !*stopping {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stopping = match wake.wait_timeout(stopping, left) {
            Ok((guard, _)) => guard,
            Err(_) => return true,
        };
    }
    true
}

fn run(shared: &Shared, database: &std::path::Path, stop: &(Mutex<bool>, Condvar)) {
    // After a failed fsync: the last record acknowledged when it failed, which the database
    // must hold durably before writes resume.
    let mut failed_through: Option<u64> = None;
    let mut connection: Option<Connection> = None;
    let mut next = Instant::now() + SYNC_INTERVAL;
    loop {
        // Passes are spaced start to start, so a slow fsync does not stretch the interval.
        let stopping = wait_until(stop, next);
        next = Instant::now() + SYNC_INTERVAL;
        match failed_through {
            None => {
                if let Err(e) = sync_once(shared) {
                    let through = shared
                        .journal()
                        .map(|mut journal| journal.distrust_unsynced())
                        .unwrap_or(0);
                    shared.health.set_sync_failed();
                    failed_through = Some(through);
                    tracing::error!(
                        error = %e,
                        "fsync of the journal failed: what it held may not be on disk; \
                         refusing writes until the database holds every acknowledged change \
                         durably (reads go on)"
                    );
                }
            }
            Some(through) => {
                if database_holds_durably(database, &mut connection, through) {
                    failed_through = None;
                    connection = None;
                    shared.health.clear_sync_failed();
                    tracing::info!(
                        "the database holds every acknowledged change durably; accepting writes"
                    );
                }
            }
        }
        if stopping {
            break;
        }
    }
}

/// Fsyncs whatever was appended since the last pass: closed segments first, then the
/// current one, then the directory if a segment was created in it.
fn sync_once(shared: &Shared) -> std::io::Result<()> {
    let work: Option<Unsynced> = match shared.journal() {
        Some(mut journal) => journal.take_unsynced()?,
        None => None,
    };
    let Some(work) = work else {
        return Ok(());
    };
    for file in &work.files {
        file.sync_data()?;
    }
    if let Some(dir) = &work.dir {
        sync_dir(dir)?;
    }
    tracing::trace!(through = work.through_seq, "journal synced");
    Ok(())
}

/// Whether the database holds every journal record up to `through` durably: it has
/// committed them (`meta.journal_seq`) and a checkpoint then completed (it copies the WAL
/// into the database file and fsyncs it).
fn database_holds_durably(
    database: &std::path::Path,
    connection: &mut Option<Connection>,
    through: u64,
) -> bool {
    if connection.is_none() {
        match Connection::open(database) {
            Ok(opened) => *connection = Some(opened),
            Err(e) => {
                tracing::debug!(error = %e, "cannot open the database to check it");
                return false;
            }
        }
    }
    let Some(conn) = connection.as_ref() else {
        return false;
    };
    // Read first: a checkpoint that completes after it covers at least that much.
    let committed = stored_journal_seq(conn);
    committed.is_some_and(|seq| seq >= through) && matches!(checkpoint(conn, "PASSIVE"), Ok(true))
}
