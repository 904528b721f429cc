//! Whether a data dir was used before, so that a lost database is never taken for a new one.
//!
//! A zero-length or missing `vapora.db` (a file-system fault, a careless `> vapora.db`)
//! looks exactly like a first start. Starting on it would replace the queue with an empty
//! one without a word, and the next start could no longer tell. So a data dir is marked
//! once its database is durably on disk ([`MARKER`]), and a marked dir, or one whose journal
//! holds segments, whose database is missing or empty, is refused with what to do, and left
//! as it is. A brand-new data dir still starts with no setup.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use rusqlite::Connection;

use super::StoreError;
use super::writer::checkpoint;
use crate::daemon::datadir::sync_dir;

/// The marker's file name, beside `vapora.db`.
pub const MARKER: &str = "vapora.used";

/// What the marker says to whoever opens it.
const MARKER_TEXT: &str = "This data dir holds a vapora queue (vapora.db, journal/).\n\
    vapora refuses to start here if vapora.db goes missing or empty, rather than start an\n\
    empty queue. Remove this file only to start over on purpose.\n";

/// Checks the data dir of database `db` before anything opens (or creates) the database.
/// `Ok(true)`: the dir is not marked yet (new, or used by a vapora from before the marker):
/// mark it with [`mark`] once the database is open.
pub fn check(db: &Path) -> Result<bool, StoreError> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let marked = dir.join(MARKER).exists();
    let segments = journal_segments(&db.with_file_name("journal"))?;
    let size = match fs::metadata(db) {
        Ok(meta) => Some(meta.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if (!marked && segments == 0) || size.is_some_and(|len| len > 0) {
        return Ok(!marked);
    }
    let evidence = match (marked, segments) {
        (true, 0) => format!("it holds {MARKER}"),
        (true, n) => format!("it holds {MARKER} and {n} journal segment(s)"),
        (false, n) => format!("its journal holds {n} segment(s)"),
    };
    let state = match size {
        None => "is missing",
        Some(_) => "is empty (zero bytes)",
    };
    Err(StoreError::UsedDataDir(format!(
        "the data dir {} was used before ({evidence}), but its database {} {state}: it was \
         deleted or truncated (a file-system fault, or a `> vapora.db`). vapora will not \
         start an empty queue in its place; nothing was changed. Restore vapora.db from a \
         backup, or, to start over on purpose, move the data dir away or remove {MARKER} and \
         journal/ from it",
        dir.display(),
        db.display(),
    )))
}

/// Marks the data dir of `db` as used, once the database in it is durably on disk: a
/// completed checkpoint fsyncs the file, then the directory (the database's entry and
/// `journal/`), then the marker and the directory again. A power cut before the marker is
/// durable leaves an unmarked dir whose database was never acknowledged to anyone.
pub fn mark(conn: &Connection, db: &Path) -> Result<(), StoreError> {
    let dir = db.parent().unwrap_or(Path::new("."));
    if !checkpoint(conn, "TRUNCATE")? {
        // Someone reads the database (a `sqlite3` shell): mark at the next start.
        tracing::warn!("cannot checkpoint the new database now; the data dir is marked later");
        return Ok(());
    }
    sync_dir(dir)?;
    let path = dir.join(MARKER);
    let mut marker = File::create(&path)?;
    marker.write_all(MARKER_TEXT.as_bytes())?;
    marker.sync_all()?;
    sync_dir(dir)?;
    Ok(())
}

/// How many live segments (`*.log`) the journal directory holds.
fn journal_segments(dir: &Path) -> Result<usize, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut count = 0;
    for entry in entries {
        if entry?.file_name().to_string_lossy().ends_with(".log") {
            count += 1;
        }
    }
    Ok(count)
}
