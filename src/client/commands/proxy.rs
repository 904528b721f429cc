//! `vapora proxy`: the remote end of `--host ssh://...`.
//!
//! ssh runs it on the daemon's host with the client's frames on its stdin; it copies bytes
//! both ways between its stdin/stdout and the daemon's socket, and adds nothing: the
//! daemon sees this process's credentials (the SSH user's) and admits or refuses them as it
//! would any local client, and the handshake (protocol versions) is the client's own.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;

use crate::client::Session;
use crate::client::exit::{CliError, OK, UNREACHABLE};

/// How much one read moves: a bulk add's frames go through in few system calls.
const CHUNK: usize = 64 * 1024;

pub fn run(session: &mut Session) -> Result<i32, CliError> {
    if session.is_remote() {
        return Err(CliError::usage(
            "vapora proxy serves the daemon of the host it runs on: it takes no --host",
        ));
    }
    let Some(daemon) = session.connector().open_running_socket()? else {
        return Err(CliError::new(
            UNREACHABLE,
            format!(
                "no vapora daemon answers at {} on this host; start it there with \
                 `vapora daemon` (or its systemd unit)",
                session.location()
            ),
        ));
    };
    let input = own(io::stdin().as_fd())?;
    let output = own(io::stdout().as_fd())?;
    let to_daemon = daemon.try_clone().map_err(setup_error)?;
    // Client to daemon. When the client's side ends (ssh closed), the daemon is told it
    // will get nothing more, answers what it has and closes, which ends the other way.
    std::thread::spawn(move || {
        let _ = copy(input, &to_daemon);
        let _ = to_daemon.shutdown(Shutdown::Write);
    });
    // Daemon to client, until the daemon closes or the client is gone.
    let _ = copy(&daemon, output);
    Ok(OK)
}

/// Moves bytes from `from` to `to` as they come, until the end of `from` or an error.
fn copy(mut from: impl Read, mut to: impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

/// A descriptor of stdin or stdout of our own, unbuffered: frames pass at once, whole.
fn own(fd: std::os::fd::BorrowedFd<'_>) -> Result<File, CliError> {
    fd.try_clone_to_owned().map(File::from).map_err(setup_error)
}

fn setup_error(error: io::Error) -> CliError {
    CliError::new(
        crate::client::exit::FAILURE,
        format!("vapora proxy: {error}"),
    )
}
