//! Exit codes: part of vapora's interface, so they live in one place (and in the README).

use crate::protocol::{ErrorBody, ErrorKind};

pub const OK: i32 = 0;
/// An error reported by the daemon, or a wait that ended in failure or cancellation.
pub const FAILURE: i32 = 1;
/// Bad command line or bad input, whether the client or the daemon noticed it (clap uses 2
/// as well).
pub const USAGE: i32 = 2;
/// No daemon answers (and autostart is off or failed).
pub const UNREACHABLE: i32 = 3;
pub const NOT_FOUND: i32 = 4;
/// Nothing to claim, or a wait timed out.
pub const EMPTY: i32 = 5;
/// Nothing claimed: the agent already holds as many tasks as its `--max-tasks`.
pub const AT_LIMIT: i32 = 6;

/// Every exit code and what it means, as the README's table says it; the EXIT STATUS
/// section of vapora(1) is rendered from this list.
pub const MEANINGS: [(i32, &str); 7] = [
    (OK, "Success."),
    (
        FAILURE,
        "An error reported by the daemon (conflict, unavailable, ...), a waited task failed \
         or was cancelled, or a heartbeat named a task its agent does not hold.",
    ),
    (
        USAGE,
        "Usage: bad flags, bad values, conflicting flags, bad --stdin lines, or input the \
         daemon refused as invalid.",
    ),
    (
        UNREACHABLE,
        "No daemon answers (autostart off or failed; shutdown with no daemon running), or \
         the one answering is not the expected user's (nothing was sent).",
    ),
    (NOT_FOUND, "Not found (task or agent)."),
    (EMPTY, "Nothing to claim, or a wait timed out."),
    (
        AT_LIMIT,
        "Nothing claimed: the agent already holds --max-tasks tasks.",
    ),
];

/// An error on its way to stderr and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(USAGE, message)
    }
}

impl From<ErrorBody> for CliError {
    fn from(error: ErrorBody) -> CliError {
        let code = match error.kind {
            ErrorKind::NotFound => NOT_FOUND,
            // The daemon found the input invalid: a usage error like a bad flag.
            ErrorKind::InvalidArgument => USAGE,
            _ => FAILURE,
        };
        CliError::new(code, error.message)
    }
}
