//! Task output: what workers send of each attempt's stdout and stderr, kept in
//! `DATA_DIR/logs/<id>.<attempt>.log`, beside the database and not in it.
//!
//! Output is not journaled: an append is answered once it is written to the file (not
//! synced), and a crash may lose its last chunks. It is not state the queue depends on.
//!
//! **The cap.** A task's files hold at most `--max-log` bytes of output together. When an
//! append goes beyond it, the oldest output goes first: earlier attempts' output (each file
//! then keeps only its marker line), then the older half of the current attempt's. A file is
//! a marker line, when output was dropped from it, followed by the output kept:
//!
//! ```text
//! [vapora: 4194304 bytes of earlier output dropped (over --max-log)]
//! ...the rest of the output, as written...
//! ```
//!
//! Offsets count the attempt's output as written, dropped bytes included, so a reader's
//! place stays valid when a file is trimmed (trimming rewrites the file; rare, since it
//! halves the attempt's share each time).
//!
//! File I/O happens on blocking threads (`spawn_blocking`) under a lock of the task's own,
//! never under the queue lock. Followers are woken through a `watch` channel per task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::protocol::TaskId;

/// The start of a marker line.
const MARKER_PREFIX: &str = "[vapora: ";

/// One chunk of an answer: also the most an append may carry.
pub const MAX_CHUNK: usize = crate::protocol::limits::MAX_OUTPUT_CHUNK;

/// The logs directory, and per task: its attempts' files and its followers' wake-up.
pub struct Logs {
    dir: PathBuf,
    max_bytes: u64,
    tasks: Mutex<HashMap<TaskId, Arc<TaskLog>>>,
}

struct TaskLog {
    /// Attempts looked at so far (loaded lazily from the files after a restart).
    files: Mutex<Attempts>,
    /// Bumped after every append (and when an attempt ends): followers look again.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Attempts {
    by_attempt: BTreeMap<u32, Meta>,
}

/// What a file holds: a marker line of `header_len` bytes saying `dropped` bytes are gone,
/// then the output from offset `dropped` to `end`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Meta {
    header_len: u64,
    dropped: u64,
    end: u64,
}

impl Meta {
    fn kept(&self) -> u64 {
        self.end - self.dropped
    }
}

/// A read of an attempt's output.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The offset the output in `data` starts at.
    pub from: u64,
    /// Where to read on.
    pub next: u64,
    /// The marker line (if the read started in dropped output), then the output.
    pub data: Vec<u8>,
    /// The attempt's output ends at `next` (as of now).
    pub at_end: bool,
}

fn marker(dropped: u64) -> String {
    format!("{MARKER_PREFIX}{dropped} bytes of earlier output dropped (over --max-log)]\n")
}

impl Logs {
    /// Creates `dir` if needed (mode 0700: output may hold secrets).
    pub fn open(dir: PathBuf, max_bytes: u64) -> io::Result<Logs> {
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        Ok(Logs {
            dir,
            max_bytes,
            tasks: Mutex::new(HashMap::new()),
        })
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<TaskId, Arc<TaskLog>>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn entry(&self, id: TaskId) -> Arc<TaskLog> {
        Arc::clone(self.tasks().entry(id).or_insert_with(|| {
            Arc::new(TaskLog {
                files: Mutex::new(Attempts::default()),
                changed: watch::channel(0).0,
            })
        }))
    }

    fn path(&self, id: TaskId, attempt: u32) -> PathBuf {
        self.dir.join(format!("{id}.{attempt}.log"))
    }

    /// A receiver that sees every change to task `id`'s output from now on.
    pub fn subscribe(&self, id: TaskId) -> watch::Receiver<u64> {
        self.entry(id).changed.subscribe()
    }

    /// Forgets what [`Logs::subscribe`] set up for an id that names no task, so that reads
    /// of ids that do not exist leave nothing behind.
    pub fn forget(&self, id: TaskId) {
        self.tasks().remove(&id);
    }

    /// Wakes the followers of task `id` (an attempt ended without more output).
    pub fn touch(&self, id: TaskId) {
        if let Some(log) = self.tasks().get(&id) {
            log.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Appends `data` to the output of attempt `attempt` of task `id`, then drops the
    /// oldest output if the task is over its cap. Blocking.
    pub fn append(&self, id: TaskId, attempt: u32, data: &[u8]) -> io::Result<()> {
        let log = self.entry(id);
        {
            let mut files = log
                .files
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.load_upto(id, attempt, &mut files)?;
            let path = self.path(id, attempt);
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(data)?;
            let meta = files.by_attempt.entry(attempt).or_default();
            meta.end += data.len() as u64;
            self.enforce_cap(id, attempt, &mut files)?;
        }
        log.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Reads up to [`MAX_CHUNK`] bytes of attempt `attempt`'s output from `from`. Blocking.
    pub fn read(&self, id: TaskId, attempt: u32, from: u64) -> io::Result<Chunk> {
        let log = self.entry(id);
        let mut files = log
            .files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.load_upto(id, attempt, &mut files)?;
        let Some(meta) = files.by_attempt.get(&attempt).copied() else {
            return Ok(Chunk {
                at_end: true,
                ..Chunk::default()
            });
        };
        let from = from.min(meta.end);
        let mut data = Vec::new();
        let start = if from < meta.dropped {
            data.extend_from_slice(marker(meta.dropped).as_bytes());
            meta.dropped
        } else {
            from
        };
        let want = (meta.end - start).min(MAX_CHUNK as u64);
        if want > 0 {
            let mut file = File::open(self.path(id, attempt))?;
            file.seek(SeekFrom::Start(meta.header_len + (start - meta.dropped)))?;
            let before = data.len();
            file.take(want).read_to_end(&mut data)?;
            let read = (data.len() - before) as u64;
            return Ok(Chunk {
                from: start,
                next: start + read,
                data,
                at_end: start + read == meta.end,
            });
        }
        Ok(Chunk {
            from: start,
            next: start,
            data,
            at_end: true,
        })
    }

    /// Deletes the files of these tasks (pruned). Blocking.
    pub fn remove(&self, ids: &HashSet<TaskId>) {
        {
            let mut tasks = self.tasks();
            for id in ids {
                if let Some(log) = tasks.remove(id) {
                    // Followers look again, and find the task gone.
                    log.changed.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot list the task logs");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|name| name.split('.').next())
                .and_then(|id| id.parse::<TaskId>().ok())
            else {
                continue;
            };
            if ids.contains(&id)
                && let Err(e) = std::fs::remove_file(entry.path())
            {
                tracing::warn!(error = %e, file = %entry.path().display(), "cannot delete a task log");
            }
        }
    }

    /// Makes sure attempts 1 to `attempt` were looked at on disk.
    fn load_upto(&self, id: TaskId, attempt: u32, files: &mut Attempts) -> io::Result<()> {
        for a in 1..=attempt {
            if files.by_attempt.contains_key(&a) {
                continue;
            }
            if let Some(meta) = read_meta(&self.path(id, a))? {
                files.by_attempt.insert(a, meta);
            }
        }
        Ok(())
    }

    /// Drops the oldest output of task `id` until its files hold at most `max_bytes`:
    /// earlier attempts' first, then the older half of `current`'s.
    fn enforce_cap(&self, id: TaskId, current: u32, files: &mut Attempts) -> io::Result<()> {
        let mut total: u64 = files.by_attempt.values().map(Meta::kept).sum();
        if total <= self.max_bytes {
            return Ok(());
        }
        let older: Vec<u32> = files
            .by_attempt
            .iter()
            .filter(|(a, meta)| **a != current && meta.kept() > 0)
            .map(|(a, _)| *a)
            .collect();
        for a in older {
            if total <= self.max_bytes {
                return Ok(());
            }
            if let Some(meta) = files.by_attempt.get_mut(&a) {
                total -= meta.kept();
                *meta = trim(&self.path(id, a), *meta, 0)?;
            }
        }
        if total > self.max_bytes
            && let Some(meta) = files.by_attempt.get_mut(&current)
        {
            let others = total - meta.kept();
            let keep = self.max_bytes.saturating_sub(others) / 2;
            *meta = trim(&self.path(id, current), *meta, keep)?;
        }
        Ok(())
    }
}

/// What the file at `path` holds, or `None` if there is none.
fn read_meta(path: &Path) -> io::Result<Option<Meta>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(128);
    (&mut file).take(128).read_to_end(&mut head)?;
    let (header_len, dropped) = parse_marker(&head).unwrap_or((0, 0));
    Ok(Some(Meta {
        header_len,
        dropped,
        end: dropped + len.saturating_sub(header_len),
    }))
}

/// The length of a marker line at the start of `head`, and the bytes it says were dropped.
fn parse_marker(head: &[u8]) -> Option<(u64, u64)> {
    let rest = head.strip_prefix(MARKER_PREFIX.as_bytes())?;
    let newline = head.iter().position(|&b| b == b'\n')?;
    let digits: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    let dropped = std::str::from_utf8(&digits).ok()?.parse().ok()?;
    Some((newline as u64 + 1, dropped))
}

/// Rewrites the file to keep only the last `keep` bytes of its output, under a marker line.
/// The cut goes after a newline near it when there is one, so the kept output starts with a
/// whole line.
fn trim(path: &Path, meta: Meta, keep: u64) -> io::Result<Meta> {
    let mut keep = keep.min(meta.kept());
    let mut dropped = meta.end - keep;
    if keep > 0 {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(meta.header_len + (dropped - meta.dropped)))?;
        let mut head = Vec::new();
        file.take(keep.min(4096)).read_to_end(&mut head)?;
        if let Some(newline) = head.iter().position(|&b| b == b'\n')
            && (newline as u64 + 1) < keep
        {
            dropped += newline as u64 + 1;
            keep -= newline as u64 + 1;
        }
    }
    let header = marker(dropped);
    let temporary = path.with_extension("log.tmp");
    {
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        out.write_all(header.as_bytes())?;
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(meta.header_len + (dropped - meta.dropped)))?;
        io::copy(&mut file.take(keep), &mut out)?;
    }
    std::fs::rename(&temporary, path)?;
    Ok(Meta {
        header_len: header.len() as u64,
        dropped,
        end: meta.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(logs: &Logs, id: TaskId, attempt: u32) -> String {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let chunk = logs.read(id, attempt, from).unwrap();
            out.extend_from_slice(&chunk.data);
            from = chunk.next;
            if chunk.at_end {
                return String::from_utf8(out).unwrap();
            }
        }
    }

    #[test]
    fn output_over_the_cap_keeps_the_newest_under_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path().join("logs"), 100).unwrap();
        for i in 0..30 {
            logs.append(7, 1, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        let text = read_all(&logs, 7, 1);
        assert!(text.starts_with("[vapora: "), "{text}");
        assert!(text.ends_with("line 29\n"), "{text}");
        // Offsets survive the trim: reading on from the end finds nothing new.
        let end = logs.read(7, 1, u64::MAX).unwrap();
        assert_eq!(end.next, 30 * 8);
        // And a restart reads the same from the file.
        let again = Logs::open(dir.path().join("logs"), 100).unwrap();
        assert_eq!(read_all(&again, 7, 1), text);
        assert_eq!(again.read(7, 1, u64::MAX).unwrap().next, 30 * 8);
    }

    #[test]
    fn earlier_attempts_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path().join("logs"), 100).unwrap();
        logs.append(3, 1, &[b'a'; 80]).unwrap();
        logs.append(3, 2, &[b'b'; 50]).unwrap();
        assert!(read_all(&logs, 3, 1).starts_with("[vapora: 80 bytes"));
        assert_eq!(read_all(&logs, 3, 2), "b".repeat(50));
        logs.remove(&HashSet::from([3]));
        assert_eq!(
            std::fs::read_dir(dir.path().join("logs")).unwrap().count(),
            0
        );
    }
}
