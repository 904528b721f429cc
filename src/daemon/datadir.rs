//! The data directory and its lock: one daemon per data dir.
//!
//! The lock is an `flock` on `vapora.lock`, held for the daemon's lifetime and released by
//! the kernel when the process dies however it dies, so a crash never leaves a stale lock.
//! The file holds the owner's pid, for the message a second daemon prints.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, bail};

/// Environment variable naming the data dir.
pub const DATA_DIR_ENV: &str = "VAPORA_DATA_DIR";

/// Fsyncs a directory, so that the entries created or removed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Holds the data dir's lock until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
}

/// Creates the data dir if needed (mode 0700) and takes its lock, or explains who holds it.
pub fn lock(dir: &Path) -> anyhow::Result<DataDirLock> {
    let created = !dir.exists();
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    if created && let Some(parent) = dir.parent() {
        // The new directory's entry must survive a power cut like what goes into it.
        sync_dir(parent).with_context(|| format!("cannot sync {}", parent.display()))?;
    }
    let path = dir.join("vapora.lock");
    let mut file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied
            ) =>
        {
            bail!(
                "the data dir {} is not writable ({e}); vapora keeps its database there, so it \
                 must be able to write",
                dir.display()
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot open the lock file {}", path.display()));
        }
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let who = if holder.is_empty() {
            "another vapora daemon".to_string()
        } else {
            format!("another vapora daemon (pid {holder})")
        };
        bail!(
            "the data dir {} is in use by {who}; stop it or use another --data-dir",
            dir.display()
        );
    }
    Ok(DataDirLock { file })
}

impl DataDirLock {
    /// Writes our pid into the lock file, for the message a second daemon prints. Called
    /// once the data dir was found fit to start on: a start that is refused changes nothing.
    pub fn record_pid(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = write!(self.file, "{}", std::process::id());
        let _ = self.file.flush();
    }
}
