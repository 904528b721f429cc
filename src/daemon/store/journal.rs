//! The journal: with `--sync normal`, every change is appended to a log file before it is
//! acknowledged, and SQLite is brought up to date from it behind the answers.
//!
//! Why: `--sync normal` promises that an acknowledged change survives `kill -9`, which
//! needs it in the operating system, not on the platter. Handing each change to the SQLite
//! writer thread and waiting for its commit cost four cross-CPU wake-ups per request
//! (client → handler → writer → handler → client) and held durable requests to a quarter of
//! a ping's rate (BENCHMARKS.md). One `pwrite` into this file, on the handler's own thread
//! and under the queue lock (so records are in the order the changes were applied), is as
//! durable against a killed process, and the answer goes out at once, as Redis's AOF does.
//! SQLite stays the store: it is what start-up loads and what people inspect.
//!
//! The price: the append runs under the queue lock, so a write that *hangs* (a dying disk,
//! a stalled network file system) holds up reads too, where the writer thread kept them
//! apart. A write that *fails* is answered and rolled back as before. `--sync full` keeps
//! the old arrangement.
//!
//! Not a shared memory mapping of the segment: copying records into one saved about a tenth
//! of the daemon's CPU per add, but where the file system cannot honour a write fault (an
//! ext4 gone read-only after an error; btrfs or ZFS, whose `fallocate` reserves no
//! metadata) the process dies of SIGBUS, where `pwrite` returns an error the daemon answers
//! and rolls back.
//!
//! **Layout.** `journal/NNNNNNNNNN.log` segments, numbered in the order they were opened.
//! Each starts with [`MAGIC`], then records: `len: u32 LE, crc: u32 LE, seq: u64 LE`, then
//! `len` bytes (the encoded `Vec<Change>` of one mutation). The CRC-32 covers seq and body.
//! Record numbers (`seq`) are consecutive across segments. Space is reserved ahead with
//! `fallocate`, so a full disk fails an append before any byte of it is written; the
//! reserved tail reads as zeros, and a zero length ends a segment.
//!
//! **Recovery** ([`replay`]). The database records the last journal record it holds
//! (`meta.journal_seq`, in the same transaction as the record's changes). At start-up every
//! later record is committed into SQLite, in order, before the state is loaded. A torn or
//! corrupt record ends its segment: it was never acknowledged (its append failed, or the
//! process died inside it). A segment opened after a failed append starts again at that
//! record's number and supersedes whatever its predecessor holds from there on.
//!
//! **Syncing** ([`Journal::take_unsynced`], run by `syncer.rs`). An append reaches the
//! operating system, which survives `kill -9` but not a power cut. A background thread
//! fsyncs what was appended at least once a second, off the request path (as Redis's
//! `appendfsync everysec`), older segments before newer ones, and the directory after a
//! segment was created; so a power cut loses at most about the last second.
//!
//! **Trimming** ([`Journal::prune`]). A segment is deleted only once the database holds all
//! its records durably, i.e. after a WAL checkpoint that completed (checkpoints fsync);
//! after a bare commit under `synchronous=NORMAL` the database may still lose them on
//! power loss, and the journal is what would bring them back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::daemon::change::Change;
use crate::protocol::codec;

/// The first bytes of every segment; a new record format gets a new magic, and the old
/// format stays readable (`journal_v1.rs`) so an upgrade loses nothing a crash left there.
/// (2: tasks carry `cwd`, `env` and `timeout_ms`.)
pub const MAGIC: &[u8; 8] = b"VAPJRN02";

/// Which record format a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V1,
    Current,
}

impl Format {
    fn decode(self, body: &[u8]) -> Result<Vec<Change>, codec::CodecError> {
        match self {
            Format::V1 => super::journal_v1::decode(body),
            Format::Current => codec::decode_unframed(body),
        }
    }
}
/// `len`, `crc`, `seq`.
const RECORD_HEADER: usize = 16;
/// Space reserved at a time. Small enough that a nearly full disk fails the journal while
/// SQLite still has room to absorb what was acknowledged; large enough that reserving
/// is rare (once per ~2,000 small records).
const CHUNK: u64 = 256 * 1024;
/// A segment is closed once it holds this much, so the journal can be trimmed behind
/// the database.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// What one pass of the syncer must make durable.
pub struct Unsynced {
    /// Segments with writes not yet fsynced, oldest first.
    pub files: Vec<File>,
    /// The journal directory, when a segment was created in it.
    pub dir: Option<PathBuf>,
    /// The last record these hold: durable once they are synced.
    pub through_seq: u64,
}

/// One appended record, for the writer thread to commit into SQLite.
#[derive(Debug)]
pub struct Appended {
    pub seq: u64,
    /// The record's body: the encoded changes. The writer decodes it again rather than
    /// being handed the `Change` values, which take about four times the memory while
    /// the writer is behind.
    pub body: Vec<u8>,
}

impl Appended {
    /// The changes the record holds.
    pub fn changes(&self) -> Result<Vec<Change>, codec::CodecError> {
        codec::decode_unframed(&self.body)
    }

    /// Memory (and journal) bytes it stands for, for the backlog's bound.
    pub fn bytes(&self) -> usize {
        self.body.len() + RECORD_HEADER
    }
}

/// A segment file that may hold records the database lacks.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Its last record's number; `None` while it holds none.
    last_seq: Option<u64>,
}

/// The segment being appended to.
struct OpenSegment {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    offset: u64,
    /// Bytes reserved with `fallocate` (`u64::MAX` where the file system cannot reserve).
    reserved: u64,
    last_seq: Option<u64>,
}

pub struct Journal {
    dir: PathBuf,
    current: Option<OpenSegment>,
    /// Whether the current segment was written since the syncer last took it.
    dirty: bool,
    /// Closed segments written since the syncer last took them, to fsync before the
    /// current one.
    unsynced: Vec<File>,
    /// Whether a segment was created since the syncer last looked: the directory entry
    /// must reach the disk too.
    created: bool,
    /// Closed segments, oldest first.
    closed: Vec<Segment>,
    next_number: u64,
    next_seq: u64,
    /// Set by [`Journal::close`]: appends are refused from then on.
    shut: bool,
    /// The encoding buffer, reused.
    buf: Vec<u8>,
}

impl Journal {
    /// A journal in `dir` whose next record is `next_seq`, in a new segment numbered
    /// `next_number` (opened at the first append, so an idle daemon writes nothing).
    /// `leftovers`: segments whose records the database already holds but that start-up
    /// could not delete yet; the first prune deletes them.
    pub fn new(dir: PathBuf, next_number: u64, next_seq: u64, leftovers: Vec<PathBuf>) -> Journal {
        let closed = leftovers
            .into_iter()
            .map(|path| Segment {
                path,
                last_seq: None,
            })
            .collect();
        Journal {
            dir,
            current: None,
            dirty: false,
            unsynced: Vec::new(),
            created: false,
            closed,
            next_number,
            next_seq,
            shut: false,
            buf: Vec::new(),
        }
    }

    /// Appends one mutation's changes. When this returns `Ok` they survive the process
    /// being killed; on `Err` nothing of them counts (a partial record is ignored by
    /// recovery).
    pub fn append(&mut self, changes: &[Change]) -> io::Result<Appended> {
        if self.shut {
            return Err(io::Error::other("the journal is closed"));
        }
        let seq = self.next_seq;
        let mut buf = std::mem::take(&mut self.buf);
        let written = encode_record(&mut buf, seq, changes).and_then(|()| self.write(&buf));
        let body = buf.get(RECORD_HEADER..).unwrap_or_default().to_vec();
        if buf.capacity() <= CHUNK as usize {
            // Kept for the next record, unless a large one made it large.
            self.buf = buf;
        }
        written?;
        self.next_seq += 1;
        if self
            .current
            .as_ref()
            .is_some_and(|segment| segment.offset >= SEGMENT_BYTES)
        {
            self.abandon_segment();
        }
        Ok(Appended { seq, body })
    }

    /// Writes one encoded record at the end of the current segment.
    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        let seq = self.next_seq;
        self.segment()?;
        // From here on the segment may hold bytes the syncer has yet to make durable.
        self.dirty = true;
        let segment = self
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("no journal segment"))?;
        let end = segment.offset + record.len() as u64;
        if end > segment.reserved {
            reserve(segment, end)?;
        }
        if let Err(e) = segment.file.write_all_at(record, segment.offset) {
            // Part of the record may be in the file: never write after it. Recovery stops
            // at it, and the next segment starts at this same number.
            self.abandon_segment();
            return Err(e);
        }
        segment.offset = end;
        segment.last_seq = Some(seq);
        Ok(())
    }

    /// Whether an append would find room: opens a segment and reserves a chunk ahead.
    /// Used to tell when storage works again after a failure.
    pub fn probe(&mut self) -> io::Result<()> {
        if self.shut {
            return Ok(());
        }
        let segment = self.segment()?;
        let wanted = segment.offset + CHUNK;
        if wanted > segment.reserved {
            reserve(segment, wanted)?;
        }
        Ok(())
    }

    /// Refuses appends from now on (the daemon is stopping).
    pub fn close(&mut self) {
        self.shut = true;
    }

    /// Whether a closed segment holds only records up to `seq` (so a completed checkpoint
    /// would let [`Journal::prune`] delete something).
    pub fn can_prune(&self, seq: u64) -> bool {
        self.closed
            .first()
            .is_some_and(|segment| segment.last_seq.is_none_or(|last| last <= seq))
            || (self.shut && self.current.is_some())
    }

    /// Takes the segments whose records all are in the database durably: `durable_seq` is
    /// the last record a completed checkpoint covered. Once the journal is closed, the
    /// current segment goes too. Returns their paths, for the caller to delete after
    /// releasing the journal (appends wait on it).
    #[must_use]
    pub fn prune(&mut self, durable_seq: u64) -> Vec<PathBuf> {
        if self.shut
            && let Some(current) = self.current.take()
        {
            self.closed.push(Segment {
                path: current.path,
                last_seq: current.last_seq,
            });
        }
        let covered = |segment: &Segment| segment.last_seq.is_none_or(|last| last <= durable_seq);
        let done = self
            .closed
            .iter()
            .position(|s| !covered(s))
            .unwrap_or(self.closed.len());
        self.closed
            .drain(..done)
            .map(|segment| segment.path)
            .collect()
    }

    /// The segment to append to, opening a new one if needed.
    fn segment(&mut self) -> io::Result<&mut OpenSegment> {
        if self.current.is_none() {
            let path = self.dir.join(segment_name(self.next_number));
            // Owner only: records hold payloads, like the database.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            self.next_number += 1;
            let mut segment = OpenSegment {
                file,
                path,
                offset: 0,
                reserved: 0,
                last_seq: None,
            };
            // The magic first: reserving extends the file with zeros, and a process killed
            // in between must not leave a file that looks like a foreign segment.
            let opened = segment
                .file
                .write_all_at(MAGIC, 0)
                .and_then(|()| reserve(&mut segment, MAGIC.len() as u64));
            if let Err(e) = opened {
                let _ = fs::remove_file(&segment.path);
                return Err(e);
            }
            segment.offset = MAGIC.len() as u64;
            self.current = Some(segment);
            self.dirty = true;
            self.created = true;
        }
        self.current
            .as_mut()
            .ok_or_else(|| io::Error::other("no journal segment"))
    }

    /// Stops appending to the current segment; the next append opens a new one. Its
    /// unsynced writes stay due for the syncer.
    fn abandon_segment(&mut self) {
        if let Some(current) = self.current.take() {
            if std::mem::take(&mut self.dirty) {
                self.unsynced.push(current.file);
            }
            self.closed.push(Segment {
                path: current.path,
                last_seq: current.last_seq,
            });
        }
    }

    /// What the syncer must fsync to make every record appended so far durable, taken
    /// (so the next call returns only what is appended after this one); `None` when
    /// nothing was appended since the last call. Called under the journal's lock, so it
    /// only duplicates a descriptor: the fsyncs happen after the lock is released.
    pub fn take_unsynced(&mut self) -> io::Result<Option<Unsynced>> {
        if !self.dirty && self.unsynced.is_empty() && !self.created {
            return Ok(None);
        }
        let mut files = std::mem::take(&mut self.unsynced);
        if std::mem::take(&mut self.dirty)
            && let Some(current) = &self.current
        {
            files.push(current.file.try_clone()?);
        }
        Ok(Some(Unsynced {
            files,
            dir: std::mem::take(&mut self.created).then(|| self.dir.clone()),
            through_seq: self.next_seq.saturating_sub(1),
        }))
    }

    /// After an fsync failed: the kernel may have dropped the pages it could not write,
    /// so nothing written through those descriptors is trusted to be on disk, and no later
    /// fsync of them could say otherwise. The current segment is closed without being
    /// synced again; the next append (once writes are accepted) opens a new one. Returns
    /// the last record appended, which only the database can now make durable.
    pub fn distrust_unsynced(&mut self) -> u64 {
        self.unsynced.clear();
        self.dirty = false;
        if let Some(current) = self.current.take() {
            self.closed.push(Segment {
                path: current.path,
                last_seq: current.last_seq,
            });
        }
        self.next_seq.saturating_sub(1)
    }
}

fn segment_name(number: u64) -> String {
    format!("{number:010}.log")
}

/// Encodes one record (header and body) into `buf`, replacing its contents.
fn encode_record(buf: &mut Vec<u8>, seq: u64, changes: &[Change]) -> io::Result<()> {
    buf.clear();
    buf.resize(RECORD_HEADER, 0);
    codec::encode_unframed(buf, &changes).map_err(io::Error::other)?;
    let len = u32::try_from(buf.len() - RECORD_HEADER)
        .map_err(|_| io::Error::other("a journal record larger than 4 GiB"))?;
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&buf[8..]);
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Reserves space up to at least `end`, a chunk at a time. Nothing is written when it
/// fails, which is how a full disk shows up before a record is torn.
fn reserve(segment: &mut OpenSegment, end: u64) -> io::Result<()> {
    let target = end.div_ceil(CHUNK) * CHUNK;
    let start = segment.reserved.min(target);
    let len = target - start;
    // SAFETY: fallocate on an open descriptor we own; it reads no memory of ours.
    let result = unsafe {
        libc::fallocate(
            segment.file.as_raw_fd(),
            0,
            start as libc::off_t,
            len as libc::off_t,
        )
    };
    if result == 0 {
        segment.reserved = target;
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        // A file system that cannot reserve: appends extend the file as they go.
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
            segment.reserved = u64::MAX;
            Ok(())
        }
        _ => Err(error),
    }
}

/// What [`replay`] found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Records handed to the database (those above its `journal_seq`).
    pub records: u64,
    /// The number the next record gets.
    pub next_seq: u64,
    /// The number the next segment gets.
    pub next_number: u64,
    /// Segment files read; all their records are now in the database.
    pub segments: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the journal: {0}")]
    Io(#[from] io::Error),
    #[error("{path}: not a vapora journal segment of this version (wrong magic)")]
    Magic { path: String },
    #[error("{path}: record {seq} has a good checksum but cannot be decoded: {reason}")]
    Undecodable {
        path: String,
        seq: u64,
        reason: String,
    },
    #[error("{0}")]
    Apply(String),
    #[error(
        "{path}: the journal has a gap: record {expected} is missing and this segment goes on \
         at record {found} (a segment deleted or truncated, or a database restored from an \
         older copy). vapora will not start on it, since everything after the gap would be \
         dropped; nothing was changed. To start with what comes before the gap, move {path} \
         and the segments numbered after it out of {dir} (keep them for inspection)"
    )]
    Gap {
        path: String,
        dir: String,
        expected: u64,
        found: u64,
    },
}

/// Hands every record numbered above `applied` to `apply`, in order, and says where the
/// journal continues. Records the database already holds are skipped. A gap (records
/// missing between what the database holds and what the journal holds next: a segment
/// deleted or truncated by hand or by a file-system fault, or a database restored from an
/// older copy) is an error that changes nothing: starting would drop everything after it
/// without a word, so the operator decides. Segments are read one at a time, so memory
/// stays within one segment however long the journal grew.
pub fn replay(
    dir: &Path,
    applied: u64,
    mut apply: impl FnMut(u64, Vec<Change>) -> Result<(), String>,
) -> Result<Replayed, ReplayError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    let mut highest = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let (stem, live) = match name.strip_suffix(".log") {
            Some(stem) => (stem, true),
            None => match name.strip_suffix(".log.discarded") {
                Some(stem) => (stem, false),
                None => continue,
            },
        };
        let Ok(number) = stem.parse::<u64>() else {
            continue;
        };
        // Numbers are never reused, so a new segment cannot overwrite a discarded one.
        highest = highest.max(number);
        if live {
            numbered.push((number, path));
        }
    }
    numbered.sort();
    let next_number = highest
        .checked_add(1)
        .ok_or_else(|| io::Error::other("journal segment numbers are exhausted"))?;
    let mut replayed = Replayed {
        next_seq: applied + 1,
        next_number,
        ..Replayed::default()
    };
    // Each segment ends where the next one that holds records begins.
    let firsts = numbered
        .iter()
        .map(|(_, path)| Ok(records(&read_segment(path)?.1).next().map(|(seq, _)| seq)))
        .collect::<Result<Vec<Option<u64>>, ReplayError>>()?;
    for (index, (_, path)) in numbered.iter().enumerate() {
        let limit = firsts[index + 1..].iter().flatten().next().copied();
        let (format, bytes) = read_segment(path)?;
        for (seq, body) in records(&bytes) {
            if limit.is_some_and(|limit| seq >= limit) {
                break;
            }
            if seq < replayed.next_seq {
                continue;
            }
            if seq > replayed.next_seq {
                return Err(ReplayError::Gap {
                    path: path.display().to_string(),
                    dir: dir.display().to_string(),
                    expected: replayed.next_seq,
                    found: seq,
                });
            }
            let changes = format.decode(body).map_err(|e| ReplayError::Undecodable {
                path: path.display().to_string(),
                seq,
                reason: e.to_string(),
            })?;
            apply(seq, changes).map_err(ReplayError::Apply)?;
            replayed.records += 1;
            replayed.next_seq += 1;
        }
    }
    replayed.segments = numbered.into_iter().map(|(_, path)| path).collect();
    Ok(replayed)
}

/// A segment's record format and bytes, checked for the magic. A file too short for it, or
/// whose first bytes are still zeros (created, then the process died or the power failed
/// before the magic reached the disk), holds no records: it reads as empty.
fn read_segment(path: &Path) -> Result<(Format, Vec<u8>), ReplayError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    match bytes.get(..MAGIC.len()) {
        None => Ok((Format::Current, Vec::new())),
        Some(start) if start == MAGIC => Ok((Format::Current, bytes)),
        Some(start) if start == super::journal_v1::MAGIC => Ok((Format::V1, bytes)),
        Some(start) if start.iter().all(|&b| b == 0) => Ok((Format::Current, Vec::new())),
        Some(_) => Err(ReplayError::Magic {
            path: path.display().to_string(),
        }),
    }
}

/// The intact records of one segment, in file order: `(seq, body)`. Stops at the first
/// zero, short or corrupt record.
fn records(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut offset = MAGIC.len().min(bytes.len());
    std::iter::from_fn(move || {
        let header = bytes.get(offset..offset + RECORD_HEADER)?;
        let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
        if len == 0 {
            return None;
        }
        let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
        let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
        let covered = bytes.get(offset + 8..offset + RECORD_HEADER + len)?;
        if crc32fast::hash(covered) != crc {
            return None;
        }
        let body = &covered[8..];
        offset += RECORD_HEADER + len;
        Some((seq, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u64) -> Vec<Change> {
        vec![Change::LeaseExtended {
            id: n,
            lease_until: n * 10,
        }]
    }

    /// Replays `dir` above `applied`, returning the records seen.
    fn read_back(dir: &Path, applied: u64) -> (Vec<u64>, Replayed) {
        let mut seen = Vec::new();
        let replayed = replay(dir, applied, |seq, changes| {
            assert_eq!(changes, change(seq));
            seen.push(seq);
            Ok(())
        })
        .unwrap();
        (seen, replayed)
    }

    fn delete(paths: Vec<PathBuf>) {
        for path in paths {
            fs::remove_file(path).unwrap();
        }
    }

    fn write(dir: &Path, next_number: u64, seqs: std::ops::RangeInclusive<u64>) -> Journal {
        let mut journal = Journal::new(dir.to_path_buf(), next_number, *seqs.start(), Vec::new());
        for seq in seqs {
            assert_eq!(journal.append(&change(seq)).unwrap().seq, seq);
        }
        journal
    }

    #[test]
    fn appended_records_replay_in_order_above_what_the_database_holds() {
        let dir = tempfile::tempdir().unwrap();
        drop(write(dir.path(), 1, 1..=50));
        let (seen, replayed) = read_back(dir.path(), 0);
        assert_eq!(seen, (1..=50).collect::<Vec<_>>());
        assert_eq!((replayed.next_seq, replayed.next_number), (51, 2));
        let (seen, replayed) = read_back(dir.path(), 20);
        assert_eq!(seen, (21..=50).collect::<Vec<_>>());
        assert_eq!(replayed.records, 30);
        // The database is ahead of the whole journal: nothing to do.
        let (seen, replayed) = read_back(dir.path(), 70);
        assert!(seen.is_empty());
        assert_eq!(replayed.next_seq, 71);
    }

    #[test]
    fn a_torn_tail_ends_the_replay_before_it() {
        let dir = tempfile::tempdir().unwrap();
        drop(write(dir.path(), 1, 1..=10));
        let path = dir.path().join(segment_name(1));
        let bytes = fs::read(&path).unwrap();
        let end = records(&bytes)
            .map(|(_, body)| body.len() + RECORD_HEADER)
            .sum::<usize>()
            + MAGIC.len();
        // Cut the last record short (a process killed inside its write).
        fs::write(&path, &bytes[..end - 3]).unwrap();
        let (seen, replayed) = read_back(dir.path(), 0);
        assert_eq!(seen, (1..=9).collect::<Vec<_>>());
        assert_eq!(replayed.next_seq, 10);
        // A flipped byte in record 5 ends it there too.
        let mut corrupt = bytes.clone();
        let fifth = MAGIC.len() + 4 * (end - MAGIC.len()) / 10 + RECORD_HEADER;
        corrupt[fifth] ^= 0xff;
        fs::write(&path, &corrupt).unwrap();
        let (seen, _) = read_back(dir.path(), 0);
        assert_eq!(seen, (1..=4).collect::<Vec<_>>());
    }

    #[test]
    fn a_segment_opened_after_a_failed_append_supersedes_its_predecessor() {
        let dir = tempfile::tempdir().unwrap();
        // Segment 1 holds 1..=5, but record 5's append was reported failed (it is complete
        // in the file: the worst case); segment 2 starts again at 5 with other content.
        drop(write(dir.path(), 1, 1..=5));
        let mut journal = Journal::new(dir.path().to_path_buf(), 2, 5, Vec::new());
        for seq in 5..=7 {
            journal.append(&change(seq)).unwrap();
        }
        let (seen, replayed) = read_back(dir.path(), 0);
        assert_eq!(seen, (1..=7).collect::<Vec<_>>());
        assert_eq!((replayed.next_seq, replayed.segments.len()), (8, 2));
    }

    #[test]
    fn a_gap_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        drop(write(dir.path(), 1, 1..=3));
        drop(write(dir.path(), 2, 6..=8));
        let names = || {
            let mut names: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = names();
        let mut seen = Vec::new();
        let error = replay(dir.path(), 0, |seq, _| {
            seen.push(seq);
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(
                error,
                ReplayError::Gap {
                    expected: 4,
                    found: 6,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("0000000002.log"), "{error}");
        assert_eq!(names(), before);
        // A database that holds the missing records bridges the gap.
        let (seen, replayed) = read_back(dir.path(), 5);
        assert_eq!(seen, vec![6, 7, 8]);
        assert_eq!(replayed.next_seq, 9);
    }

    #[test]
    fn the_syncer_takes_each_append_once_and_never_a_distrusted_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = write(dir.path(), 1, 1..=3);
        let work = journal.take_unsynced().unwrap().expect("records to sync");
        assert_eq!((work.files.len(), work.through_seq), (1, 3));
        assert!(work.dir.is_some(), "a segment was created: its entry too");
        for file in &work.files {
            file.sync_data().unwrap();
        }
        assert!(journal.take_unsynced().unwrap().is_none(), "nothing new");
        journal.append(&change(4)).unwrap();
        journal.abandon_segment();
        journal.append(&change(5)).unwrap();
        let work = journal.take_unsynced().unwrap().expect("records to sync");
        assert_eq!(
            work.files.len(),
            2,
            "the closed segment, then the current one"
        );
        assert!(work.dir.is_some());
        assert_eq!(work.through_seq, 5);
        // An fsync failed: what those descriptors hold is not trusted, nor synced again.
        journal.append(&change(6)).unwrap();
        assert_eq!(journal.distrust_unsynced(), 6);
        assert!(journal.take_unsynced().unwrap().is_none());
        // Appends go on in a new segment.
        journal.append(&change(7)).unwrap();
        assert!(dir.path().join(segment_name(3)).exists());
        assert_eq!(
            journal.take_unsynced().unwrap().map(|w| w.files.len()),
            Some(1)
        );
        let (seen, _) = read_back(dir.path(), 0);
        assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    }

    #[test]
    fn segments_are_deleted_only_up_to_the_durable_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = write(dir.path(), 1, 1..=3);
        journal.abandon_segment();
        for seq in 4..=6 {
            journal.append(&change(seq)).unwrap();
        }
        assert!(!journal.can_prune(2));
        assert!(journal.can_prune(3));
        delete(journal.prune(3));
        assert!(!dir.path().join(segment_name(1)).exists());
        assert!(dir.path().join(segment_name(2)).exists());
        // The open segment goes only once the journal is closed.
        delete(journal.prune(6));
        assert!(dir.path().join(segment_name(2)).exists());
        journal.close();
        assert!(journal.append(&change(7)).is_err());
        assert!(journal.can_prune(6));
        delete(journal.prune(6));
        assert!(!dir.path().join(segment_name(2)).exists());
    }

    #[test]
    fn the_unused_reserved_tail_reads_as_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let journal = write(dir.path(), 1, 1..=2);
        let len = fs::metadata(dir.path().join(segment_name(1)))
            .unwrap()
            .len();
        assert!(len >= CHUNK || journal.current.as_ref().unwrap().reserved == u64::MAX);
        let (seen, _) = read_back(dir.path(), 0);
        assert_eq!(seen, vec![1, 2]);
    }

    #[test]
    fn a_segment_killed_before_its_magic_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        drop(write(dir.path(), 1, 1..=3));
        // Reserved (zeros) but the magic never written; and one created and left empty.
        fs::write(dir.path().join(segment_name(2)), vec![0u8; 4096]).unwrap();
        fs::write(dir.path().join(segment_name(3)), b"").unwrap();
        let (seen, replayed) = read_back(dir.path(), 0);
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!((replayed.next_seq, replayed.next_number), (4, 4));
    }

    #[test]
    fn discarded_segments_keep_their_numbers_out_of_use() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("0000000007.log.discarded"), b"kept").unwrap();
        let (_, replayed) = read_back(dir.path(), 0);
        assert_eq!(replayed.next_number, 8);
    }

    #[test]
    fn leftover_segments_go_at_the_first_prune() {
        let dir = tempfile::tempdir().unwrap();
        drop(write(dir.path(), 1, 1..=3));
        let leftover = dir.path().join(segment_name(1));
        let mut journal = Journal::new(dir.path().to_path_buf(), 2, 4, vec![leftover.clone()]);
        assert!(journal.can_prune(0));
        assert_eq!(journal.prune(0), vec![leftover]);
    }

    #[test]
    fn records_over_many_reserved_chunks_all_read_back() {
        // Several MiB of records: reserved a chunk at a time, all read back in order.
        let dir = tempfile::tempdir().unwrap();
        let journal = write(dir.path(), 1, 1..=250_000);
        let segment = journal.current.as_ref().unwrap();
        assert!(segment.offset > 16 * CHUNK, "{}", segment.offset);
        drop(journal);
        let (seen, replayed) = read_back(dir.path(), 0);
        assert_eq!(seen.len(), 250_000);
        assert_eq!(replayed.next_seq, 250_001);
    }
}
