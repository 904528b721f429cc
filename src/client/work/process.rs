//! A task's process: `sh -c PAYLOAD` in a process group of its own, its stdout and stderr
//! on one pipe (so the worker reads them in the order written), stopped as a group.
//!
//! A task must never run twice at once, so its processes must not outlive the worker that
//! was running it: the worker may be SIGKILLed, and its tasks then go back to the queue.
//! The [`Guard`], a small process forked before any thread and placed in a process group
//! of its own (so that killing the worker's group does not kill it too), kills every
//! task's whole process group, the shell's children included, when the worker is gone.
//!
//! No `PR_SET_PDEATHSIG`: it needs a hook between fork and exec, which keeps the standard
//! library from starting the shell with `posix_spawn`, and it would reach only the shell.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::protocol::Task;

/// The shell a payload runs under: `VAPORA_SHELL`, else `/bin/sh`.
pub fn shell() -> OsString {
    std::env::var_os("VAPORA_SHELL")
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(|| "/bin/sh".into())
}

/// Starts `task`'s payload for `agent`, in the task's directory, with its variables (the
/// worker's environment besides; `VAPORA_TASK_ID`, `VAPORA_ATTEMPT` and `VAPORA_AGENT`
/// last, so a task cannot fake them), stdin `/dev/null`. Returns the shell's pid (its
/// process group's id) and the read end of its output. The caller tells the [`Guard`] at
/// once, and reaps the shell with [`run_to_end`].
///
/// With glibc, through `posix_spawnp` called directly ([`super::spawn`]), in statically
/// and dynamically linked builds alike; elsewhere through the standard library's
/// `Command`, with no `pre_exec` hook so that it may use `posix_spawn` too.
pub fn spawn(task: &Task, agent: &str, shell: &OsString) -> io::Result<(u32, File)> {
    let (read, write) = pipe()?;
    let mut env: Vec<(OsString, OsString)> = task
        .env
        .iter()
        .map(|(key, value)| (key.into(), value.into()))
        .collect();
    env.push(("VAPORA_TASK_ID".into(), task.id.to_string().into()));
    env.push(("VAPORA_ATTEMPT".into(), task.attempts.to_string().into()));
    env.push(("VAPORA_AGENT".into(), agent.into()));
    let pid = start(task, shell, &env, write)?;
    Ok((pid, File::from(read)))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn start(
    task: &Task,
    shell: &OsString,
    env: &[(OsString, OsString)],
    output: OwnedFd,
) -> io::Result<u32> {
    use std::os::fd::AsFd;
    let args = [
        shell.as_os_str(),
        std::ffi::OsStr::new("-c"),
        std::ffi::OsStr::new(&task.payload),
    ];
    super::spawn::spawn(&super::spawn::Spawn {
        program: shell,
        args: &args,
        env,
        cwd: task.cwd.as_deref(),
        output: output.as_fd(),
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn start(
    task: &Task,
    shell: &OsString,
    env: &[(OsString, OsString)],
    output: OwnedFd,
) -> io::Result<u32> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let output_err = output.try_clone()?;
    let mut command = Command::new(shell);
    command
        .arg("-c")
        .arg(&task.payload)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(output_err))
        .envs(env.iter().map(|(key, value)| (key, value)))
        .process_group(0);
    if let Some(dir) = &task.cwd {
        command.current_dir(dir);
    }
    // The child is reaped by pid (`run_to_end`); dropping its handle does not reap it.
    Ok(command.spawn()?.id())
}

/// The most output one read of a task's pipe takes (one chunk for the daemon).
pub const READ_CHUNK: usize = 64 * 1024;

/// How long output is still read after the task's shell has exited and its process group
/// was killed: a process that left the group (`setsid`) may keep the pipe open forever.
const DRAIN_AFTER_EXIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads the task's output (handing each chunk to `on_chunk`) until its shell exits, and
/// returns the shell's status. When the shell exits, whatever it left running in its
/// process group is killed (the shell is not yet reaped then, so its pid, the group's id,
/// cannot have been reused), and output is read until the pipe ends or, if something
/// outside the group still holds it, for [`DRAIN_AFTER_EXIT`] more. Before, the end of the
/// output was taken for the end of the task: `cmd &` kept a task running after its shell
/// had exited, and a process that left the group kept it running for ever.
pub fn run_to_end(pid: u32, mut output: File, mut on_chunk: impl FnMut(&[u8])) -> ExitStatus {
    use std::io::Read;
    let Ok(exit) = ExitWatch::start(pid) else {
        return reap(pid);
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let mut deadline: Option<std::time::Instant> = None;
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        let mut fds = [
            libc::pollfd {
                fd: output.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                // Once the exit is seen it stays readable: a negative descriptor is one
                // poll leaves out, so the drain below sleeps instead of spinning.
                fd: if deadline.is_none() { exit.fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds for descriptors we own (or -1, which poll skips).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if ready < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if fds[1].revents != 0 && deadline.is_none() {
            // The shell exited: what it left in its group goes, then drain a while more.
            exit.exited();
            deadline = Some(std::time::Instant::now() + DRAIN_AFTER_EXIT);
        }
        if fds[0].revents != 0 {
            match output.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => on_chunk(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    drop(output);
    exit.status()
}

/// How the reader learns that the task's shell exited, with the shell not yet reaped (so
/// its pid, the process group's id, cannot have been reused when the group is killed).
enum ExitWatch {
    /// A pidfd (Linux 5.3 and later): readable once the process has exited. The reader
    /// kills the group and reaps the shell itself.
    Pidfd { pid: u32, fd: OwnedFd },
    /// Elsewhere, a thread of the pool waits for the exit (`waitid` with `WNOWAIT`), kills
    /// the group, closes the pipe whose read end the reader polls, and reaps the shell.
    Waiter {
        ended: OwnedFd,
        status: std::sync::mpsc::Receiver<ExitStatus>,
    },
}

impl ExitWatch {
    fn start(pid: u32) -> io::Result<ExitWatch> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd >= 0 {
            // SAFETY: a descriptor just returned to us, owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            return Ok(ExitWatch::Pidfd { pid, fd });
        }
        let (ended, closed_on_exit) = pipe()?;
        let (status_sender, status) = std::sync::mpsc::channel();
        super::pool::run(move || {
            wait_for_exit(pid);
            signal_group(pid, libc::SIGKILL);
            drop(closed_on_exit);
            let _ = status_sender.send(reap(pid));
        });
        Ok(ExitWatch::Waiter { ended, status })
    }

    fn fd(&self) -> i32 {
        match self {
            ExitWatch::Pidfd { fd, .. } => fd.as_raw_fd(),
            ExitWatch::Waiter { ended, .. } => ended.as_raw_fd(),
        }
    }

    /// The shell has exited (its descriptor turned readable).
    fn exited(&self) {
        if let ExitWatch::Pidfd { pid, .. } = self {
            signal_group(*pid, libc::SIGKILL);
        }
    }

    /// The shell's status, once it has exited: reaped here, or by the waiter.
    fn status(self) -> ExitStatus {
        match self {
            ExitWatch::Pidfd { pid, .. } => {
                // Output may end before the exit is seen (the shell closed it first).
                reap_after_killing_group(pid)
            }
            ExitWatch::Waiter { status, .. } => status
                .recv()
                .unwrap_or_else(|_| ExitStatusExt::from_raw(libc::SIGKILL)),
        }
    }
}

/// Waits for the shell to exit, kills what it left in its group, and reaps it.
fn reap_after_killing_group(pid: u32) -> ExitStatus {
    wait_for_exit(pid);
    signal_group(pid, libc::SIGKILL);
    reap(pid)
}

/// Blocks until process `pid` has exited, without reaping it.
fn wait_for_exit(pid: u32) {
    loop {
        // SAFETY: waitid writes into the zeroed siginfo we own.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Reaps process `pid` and returns its status.
fn reap(pid: u32) -> ExitStatus {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes the status into our local.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r == pid as libc::pid_t {
            return ExitStatusExt::from_raw(status);
        }
        if r == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return ExitStatusExt::from_raw(libc::SIGKILL);
    }
}

/// Sends `signal` to the whole process group `pgid` (a task's shell and its children).
pub fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions; a negative pid names a group.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), signal);
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The worker's side of the guard process: tells it which process groups are running.
pub struct Guard {
    to_guard: File,
}

impl Guard {
    /// Forks the guard. Must be called before the worker starts any thread (a fork copies
    /// only the calling thread). The guard closes every descriptor but its pipe, reads
    /// `+PGID` and `-PGID` lines, and at end of file (the worker exited or was killed)
    /// SIGKILLs every group still running, then exits.
    pub fn start() -> io::Result<Guard> {
        let (read, write) = pipe()?;
        // SAFETY: called before any thread exists; the child only calls async-signal-safe
        // functions and `guard_main`, which allocates nothing after its start.
        let pid = unsafe { libc::fork() };
        if pid == -1 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            drop(write);
            // A group of its own: `kill -9 -PGID` of the worker's group spares the guard.
            // SAFETY: setpgid is async-signal-safe.
            unsafe {
                libc::setpgid(0, 0);
            }
            guard_main(read);
        }
        drop(read);
        Ok(Guard {
            to_guard: File::from(write),
        })
    }

    pub fn started(&mut self, pgid: u32) {
        self.tell(format!("+{pgid}\n"));
    }

    pub fn ended(&mut self, pgid: u32) {
        self.tell(format!("-{pgid}\n"));
    }

    /// One write per line: the guard never reads half of one.
    fn tell(&mut self, line: String) {
        let _ = self.to_guard.write_all(line.as_bytes());
    }
}

/// The guard process: never returns.
fn guard_main(read: OwnedFd) -> ! {
    let keep = read.as_raw_fd();
    // Nothing of the worker's: no socket to the daemon, no task pipes, no terminal input.
    // SAFETY: closing descriptors this process does not use; _exit ends it.
    unsafe {
        let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(3, 65_536) as i32;
        for fd in 0..max {
            if fd != keep && fd != 2 {
                libc::close(fd);
            }
        }
        // Interrupting the worker's terminal must not stop the guard before the worker.
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let mut groups: Vec<libc::pid_t> = Vec::with_capacity(1024);
    let mut line: Vec<u8> = Vec::with_capacity(32);
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: reading into a local buffer from our own descriptor.
        let n = unsafe { libc::read(keep, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            break;
        }
        for &byte in &buf[..n.max(0) as usize] {
            if byte != b'\n' {
                line.push(byte);
                continue;
            }
            let number = std::str::from_utf8(&line[1..])
                .ok()
                .and_then(|n| n.parse::<libc::pid_t>().ok());
            match (line.first(), number) {
                (Some(b'+'), Some(pgid)) => groups.push(pgid),
                (Some(b'-'), Some(pgid)) => groups.retain(|&g| g != pgid),
                _ => {}
            }
            line.clear();
        }
    }
    for pgid in groups {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    // SAFETY: ends the guard without running the worker's destructors or atexit handlers.
    unsafe { libc::_exit(0) }
}
