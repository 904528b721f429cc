//! What a finished process means for its task: `done` with the last line it printed, or
//! `fail` with a reason a person can read.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// The most of a task's last output line kept as its result.
pub const RESULT_BYTES: usize = 1024;

/// How a task's run ended, as the daemon is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done {
        result: Option<String>,
    },
    /// `exit_code` as the daemon records it (see `Task::exit_code`); `None` when no
    /// process ran.
    Failed {
        reason: String,
        retry: bool,
        exit_code: Option<i32>,
    },
    /// The worker stopped it before it ended: back to the queue, the attempt refunded.
    GivenBack,
}

/// `timeout(1)`'s exit status for a command it stopped: recorded for a task that timed out.
pub const TIMED_OUT: i32 = 124;

/// Why the worker itself stopped a process, which names the failure instead of the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    TimedOut { after_ms: u64 },
}

pub fn outcome(status: ExitStatus, last_line: Option<String>, stopped: Option<Stopped>) -> Outcome {
    if let Some(Stopped::TimedOut { after_ms }) = stopped {
        return Outcome::Failed {
            reason: format!("timed out after {}", duration_words(after_ms)),
            retry: true,
            exit_code: Some(TIMED_OUT),
        };
    }
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Done { result: last_line },
        (Some(code), _) => Outcome::Failed {
            reason: format!("exit {code}"),
            retry: true,
            exit_code: Some(code),
        },
        (None, Some(signal)) => Outcome::Failed {
            reason: format!("killed by signal {}", signal_name(signal)),
            retry: true,
            exit_code: Some(128 + signal),
        },
        (None, None) => Outcome::Failed {
            reason: "ended without an exit status".into(),
            retry: true,
            exit_code: None,
        },
    }
}

/// `30s`, `1m30s`, `250ms`: how a timeout is written in a failure reason.
pub fn duration_words(ms: u64) -> String {
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// The signals named in failure reasons, by number.
const SIGNAL_NAMES: [(i32, &str); 14] = [
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGILL, "ILL"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGBUS, "BUS"),
    (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"),
    (libc::SIGSEGV, "SEGV"),
    (libc::SIGPIPE, "PIPE"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
];

/// `TERM`, `KILL`, ... (the number for one without a common name).
pub fn signal_name(signal: i32) -> String {
    SIGNAL_NAMES
        .iter()
        .find(|(number, _)| *number == signal)
        .map_or_else(|| signal.to_string(), |(_, name)| (*name).to_string())
}

/// Keeps the last non-empty line of a stream of output, cut to [`RESULT_BYTES`] on a char
/// boundary, without keeping the output.
#[derive(Debug, Default)]
pub struct LastLine {
    /// The line being read (up to the cap).
    current: Vec<u8>,
    /// The last complete non-empty line.
    last: Vec<u8>,
}

impl LastLine {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.end_line();
            } else if self.current.len() < RESULT_BYTES + 4 {
                // A little beyond the cap, so that the cut can find a char boundary.
                self.current.push(byte);
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.current);
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            self.last = line;
        }
    }

    /// The last non-empty line (a final line without a newline counts).
    pub fn finish(mut self) -> Option<String> {
        self.end_line();
        if self.last.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&self.last);
        let trimmed = text.trim_end_matches('\r');
        let mut end = trimmed.len().min(RESULT_BYTES);
        while !trimmed.is_char_boundary(end) {
            end -= 1;
        }
        Some(trimmed[..end].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(chunks: &[&[u8]]) -> Option<String> {
        let mut line = LastLine::default();
        for chunk in chunks {
            line.feed(chunk);
        }
        line.finish()
    }

    #[test]
    fn the_result_is_the_last_non_empty_line() {
        assert_eq!(last(&[b"one\ntwo\n\n  \n"]), Some("two".into()));
        assert_eq!(
            last(&[b"one\ntw", b"o-and-more"]),
            Some("two-and-more".into())
        );
        assert_eq!(last(&[b"crlf\r\n"]), Some("crlf".into()));
        assert_eq!(last(&[b"\n\n"]), None);
        assert_eq!(last(&[]), None);
        let long = "é".repeat(1000);
        let kept = last(&[long.as_bytes()]).unwrap();
        assert!(kept.len() <= RESULT_BYTES && kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn exit_statuses_become_outcomes_in_words() {
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        let signalled = |signal: i32| ExitStatus::from_raw(signal);
        assert_eq!(
            outcome(exited(0), Some("ok".into()), None),
            Outcome::Done {
                result: Some("ok".into())
            }
        );
        let reason = |o: Outcome| match o {
            Outcome::Failed { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(outcome(exited(3), None, None)), "exit 3");
        let code = |o: Outcome| match o {
            Outcome::Failed { exit_code, .. } => exit_code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(outcome(exited(3), None, None)), Some(3));
        assert_eq!(
            code(outcome(signalled(libc::SIGTERM), None, None)),
            Some(143)
        );
        let timed_out = Some(Stopped::TimedOut { after_ms: 1000 });
        assert_eq!(
            code(outcome(signalled(libc::SIGKILL), None, timed_out)),
            Some(124)
        );
        assert_eq!(
            reason(outcome(signalled(libc::SIGTERM), None, None)),
            "killed by signal TERM"
        );
        assert_eq!(
            reason(outcome(
                signalled(libc::SIGKILL),
                None,
                Some(Stopped::TimedOut { after_ms: 30_000 })
            )),
            "timed out after 30s"
        );
        assert_eq!(duration_words(90_000), "1m30s");
        assert_eq!(duration_words(250), "250ms");
        assert_eq!(duration_words(7_200_000), "2h");
    }
}
