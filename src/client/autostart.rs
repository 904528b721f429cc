//! Starting a daemon in the background when none answers.
//!
//! The daemon runs in its own session with stdin closed and its log appended to a file
//! beside the socket. It reports readiness through a pipe (the `VAPORA_READY_FD`
//! protocol): the client blocks on that pipe, with a deadline, instead of polling the
//! socket. End of file on the pipe means the daemon exited before it was ready.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::readiness::READY_FD_ENV;

/// How long the client waits for a daemon it started.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// The descriptor the daemon finds the ready pipe on.
const CHILD_READY_FD: RawFd = 3;

/// Where an autostarted daemon logs: beside its socket.
pub fn log_path(socket: &Path) -> PathBuf {
    socket.with_extension("log")
}

/// The lock that lets one client at a time start a daemon for `socket`: beside it.
fn start_lock_path(socket: &Path) -> PathBuf {
    socket.with_extension("start.lock")
}

/// Held by the one client that may start a daemon for a socket; released on drop (or by
/// the kernel when the client dies).
pub struct StartLock(#[allow(dead_code)] Option<File>);

/// Waits for the right to start a daemon for `socket`. Clients started at once would each
/// spawn a daemon, and all but one would lose the data dir's lock and report failure while
/// a daemon runs; with this lock they queue, and those after the first find the daemon it
/// started. Waiting is bounded by the holder's own wait for readiness (2 s). Where the
/// lock cannot be created (a directory the user may not write), each client goes on
/// without it, as before.
pub fn lock_start(socket: &Path, default_socket: bool) -> StartLock {
    if crate::paths::prepare_socket_dir(socket, default_socket).is_err() {
        return StartLock(None);
    }
    let Ok(file) = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(start_lock_path(socket))
    else {
        return StartLock(None);
    };
    loop {
        // SAFETY: flock on a descriptor we own; the file is opened close-on-exec, so the
        // daemon we spawn does not inherit the lock.
        let taken = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        if taken == 0 {
            return StartLock(Some(file));
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return StartLock(None);
        }
    }
}

/// Starts `vapora daemon --socket SOCKET` in the background and waits until it accepts
/// connections. The caller holds the [`StartLock`].
pub fn start_daemon(socket: &Path, default_socket: bool) -> Result<(), String> {
    crate::paths::prepare_socket_dir(socket, default_socket).map_err(|e| e.to_string())?;
    let log_path = log_path(socket);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| format!("cannot open the daemon log {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the vapora binary: {e}"))?;

    let mut command = Command::new(exe);
    command
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid is async-signal-safe; it gives the daemon its own session.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match spawn_until_ready(&mut command, READY_TIMEOUT) {
        Ok(_) => Ok(()),
        Err(NotReady::Spawn(e)) => Err(format!("cannot start the daemon: {e}")),
        Err(NotReady::Exited(status)) => Err(format!(
            "the daemon exited ({status}) before it was ready; see {}",
            log_path.display()
        )),
        Err(NotReady::Timeout(_)) => Err(format!(
            "the daemon did not become ready within {READY_TIMEOUT:?}; see {}",
            log_path.display()
        )),
    }
}

/// Why a daemon started by [`spawn_until_ready`] is not ready.
#[derive(Debug)]
pub enum NotReady {
    Spawn(std::io::Error),
    /// It exited (or closed the pipe) first.
    Exited(ExitStatus),
    /// It still runs: the caller decides whether to kill it.
    Timeout(Child),
}

/// Spawns `command` (a `vapora daemon ...`) with a ready pipe on fd 3 (`VAPORA_READY_FD`)
/// and blocks, without polling, until the daemon writes its ready line or `timeout` passes.
/// Used by autostart, the tests and the benchmark tool alike.
pub fn spawn_until_ready(command: &mut Command, timeout: Duration) -> Result<Child, NotReady> {
    let (ready_read, ready_write) = pipe().map_err(NotReady::Spawn)?;
    command.env(READY_FD_ENV, CHILD_READY_FD.to_string());
    pass_as_fd(
        command,
        std::os::fd::AsRawFd::as_raw_fd(&ready_write),
        CHILD_READY_FD,
    );
    let mut child = command.spawn().map_err(NotReady::Spawn)?;
    drop(ready_write);

    let readable = wait_readable(&ready_read, timeout);
    let mut line = String::new();
    if readable
        && File::from(ready_read).read_to_string(&mut line).is_ok()
        && line.starts_with("ready")
    {
        return Ok(child);
    }
    if readable {
        // End of file without the ready line: the daemon is exiting.
        return Err(match child.wait() {
            Ok(status) => NotReady::Exited(status),
            Err(e) => NotReady::Spawn(e),
        });
    }
    Err(NotReady::Timeout(child))
}

/// Makes the child see descriptor `fd` (of the parent) as `target`, left open across exec
/// (the way a daemon receives its ready pipe, or systemd's socket on fd 3).
pub fn pass_as_fd(command: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if fd == target {
                // dup2 onto itself would keep close-on-exec set.
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, target) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks until `fd` is readable (data or end of file) or `timeout` passes.
fn wait_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut poll_fd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(fd),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut poll_fd, 1, left.as_millis() as i32) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return n > 0;
        }
    }
}
