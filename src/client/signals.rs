//! Signals for a command with a loop of its own (`vapora work`: SIGTERM and SIGINT;
//! `vapora top`: those and SIGHUP): each one becomes a byte on a pipe, which a thread turns
//! into a message for the loop (a signal handler may do little else).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the pipe, for the handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write is async-signal-safe; a full pipe drops the byte, which is fine
        // (the loops only count signals up to two).
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Installs the handlers for `signals`; returns the pipe's read end, one byte per signal.
/// Once per process: every handler writes to the one pipe.
pub fn install(signals: &[libc::c_int]) -> io::Result<File> {
    let mut fds: [RawFd; 2] = [0; 2];
    // SAFETY: pipe2 fills the array; the write end is non-blocking so a handler never
    // blocks.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl on a descriptor we just created.
    unsafe {
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    for &signal in signals {
        // SAFETY: the handler only calls write(2); SA_RESTART keeps blocking calls going.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    // SAFETY: the read end is ours alone.
    Ok(unsafe { File::from_raw_fd(fds[0]) })
}

/// Blocks until the next signal.
pub fn next(pipe: &mut File) -> io::Result<()> {
    let mut byte = [0u8; 1];
    loop {
        match pipe.read(&mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::other("the signal pipe closed")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
