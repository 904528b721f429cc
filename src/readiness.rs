//! How an autostarting client learns that the daemon it spawned accepts connections: it
//! passes the write end of a pipe in [`READY_FD_ENV`], and the daemon writes one line to it
//! once it listens. Both sides name the variable, so it lives below both.

/// Environment variable through which an autostarting client passes the write end of a
/// pipe; the daemon writes one line to it once it accepts connections.
pub const READY_FD_ENV: &str = "VAPORA_READY_FD";
