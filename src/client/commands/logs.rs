//! `vapora task logs`: a task's output, raw on stdout, as its worker ran it.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::client::exit::{CliError, FAILURE, OK, UNREACHABLE};
use crate::client::{Session, output, unexpected};
use crate::protocol::limits::MAX_OUTPUT_CHUNK;
use crate::protocol::{ErrorKind, Request, Response, TaskId, TaskStatus};

/// How long a follower waits for a daemon that went away to answer again.
const DAEMON_RETURN_WAIT: Duration = Duration::from_secs(60);
/// How often it looks for the daemon meanwhile.
const DAEMON_RETURN_POLL: Duration = Duration::from_millis(200);

/// A request of a follower (`task logs --follow`, `vapora run`), which rides over a daemon
/// restart: if the daemon goes away (killed, restarting, shutting down), it says so once,
/// waits up to [`DAEMON_RETURN_WAIT`] for one to answer there again (never starting one:
/// a daemon stopped on purpose stays stopped), and asks again. Reads only, so asking twice
/// is harmless.
pub fn call_following(session: &mut Session, request: &Request) -> Result<Response, CliError> {
    let mut gone_since: Option<Instant> = None;
    loop {
        if let Some(since) = gone_since {
            // Polling: a daemon that is not there has nothing to wake us with.
            std::thread::sleep(DAEMON_RETURN_POLL);
            if session.running_client()?.is_none() {
                if since.elapsed() >= DAEMON_RETURN_WAIT {
                    return Err(CliError::new(
                        UNREACHABLE,
                        format!(
                            "no daemon answered for {}s; the task is kept, follow it again                              with `vapora task logs --follow`",
                            DAEMON_RETURN_WAIT.as_secs()
                        ),
                    ));
                }
                continue;
            }
        }
        let failure = match session.client()?.call(request) {
            Ok(Ok(response)) => return Ok(response),
            // Shutting down: a restart, most likely.
            Ok(Err(refused)) if refused.kind == ErrorKind::Unavailable => refused.message,
            Ok(Err(refused)) => return Err(refused.into()),
            Err(error) if error.code == UNREACHABLE => error.message,
            Err(error) => return Err(error),
        };
        session.disconnect();
        if gone_since.is_none() {
            output::note(
                session.quiet,
                &format!("{failure}; waiting for the daemon to come back"),
            );
            gone_since = Some(Instant::now());
        }
    }
}

/// One answer of the daemon.
struct Chunk {
    attempt: u32,
    from: u64,
    next: u64,
    data: Vec<u8>,
    ended: bool,
}

fn read(
    session: &mut Session,
    id: TaskId,
    attempt: Option<u32>,
    from: u64,
    follow: bool,
) -> Result<Chunk, CliError> {
    let request = Request::ReadOutput {
        id,
        attempt,
        from,
        follow,
    };
    let answer = if follow {
        call_following(session, &request)?
    } else {
        session.call(request)?
    };
    match answer {
        Response::Output {
            attempt,
            from,
            next,
            data,
            ended,
        } => Ok(Chunk {
            attempt,
            from,
            next,
            data,
            ended,
        }),
        other => Err(unexpected(other)),
    }
}

pub fn logs(
    session: &mut Session,
    id: TaskId,
    follow: bool,
    tail: Option<u64>,
    only: Option<u32>,
) -> Result<i32, CliError> {
    let mut out = io::stdout().lock();
    let mut attempt = only;
    let mut from = 0;
    if let Some(lines) = tail {
        let (which, start, text) = last_lines(session, id, attempt, lines)?;
        out.write_all(&text)?;
        out.flush()?;
        attempt = Some(which);
        from = start;
    }
    loop {
        let chunk = read(session, id, attempt, from, follow)?;
        if !chunk.data.is_empty() {
            out.write_all(&chunk.data)?;
            out.flush()?;
        }
        attempt = Some(chunk.attempt);
        from = chunk.next;
        if !follow {
            if chunk.ended || chunk.data.is_empty() {
                return Ok(OK);
            }
            continue;
        }
        if !chunk.ended {
            continue;
        }
        // The attempt is over: the task ended, or a later attempt comes (or came).
        let task = match call_following(session, &Request::GetTask { id })? {
            Response::Task(task) => task,
            other => return Err(unexpected(other)),
        };
        let later = task.attempts > chunk.attempt
            || (!task.status.is_finished() && task.attempts == chunk.attempt);
        if only.is_none() && later {
            attempt = Some(chunk.attempt + 1);
            from = 0;
            output::note(
                session.quiet,
                &format!("task {id}: attempt {} follows", chunk.attempt + 1),
            );
            continue;
        }
        return Ok(if task.status == TaskStatus::Done {
            OK
        } else {
            FAILURE
        });
    }
}

/// The last `lines` lines of an attempt's output: the attempt, where its output ends, and
/// the text. Reads back from the end in growing windows, so a long output is not read
/// whole.
fn last_lines(
    session: &mut Session,
    id: TaskId,
    attempt: Option<u32>,
    lines: u64,
) -> Result<(u32, u64, Vec<u8>), CliError> {
    let end = read(session, id, attempt, u64::MAX, false)?;
    let (attempt, end) = (end.attempt, end.next);
    if lines == 0 {
        return Ok((attempt, end, Vec::new()));
    }
    let mut window = MAX_OUTPUT_CHUNK as u64;
    loop {
        let start = end.saturating_sub(window);
        let mut text = Vec::new();
        let mut at = start;
        let mut reached_dropped = false;
        while at < end {
            let chunk = read(session, id, Some(attempt), at, false)?;
            reached_dropped |= chunk.from > at;
            text.extend_from_slice(&chunk.data);
            if chunk.next == at {
                break;
            }
            at = chunk.next;
        }
        if let Some(cut) = start_of_last(&text, lines) {
            return Ok((attempt, end, text[cut..].to_vec()));
        }
        if start == 0 || reached_dropped {
            return Ok((attempt, end, text));
        }
        window = window.saturating_mul(2);
    }
}

/// Where the last `lines` lines of `text` start, if it holds that many whole ones after its
/// first newline (a window may start mid-line).
fn start_of_last(text: &[u8], lines: u64) -> Option<usize> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == lines {
                return Some(i + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::start_of_last;

    #[test]
    fn the_last_lines_start_after_a_newline() {
        assert_eq!(start_of_last(b"a\nb\nc\n", 2), Some(2));
        assert_eq!(start_of_last(b"a\nb\nc", 1), Some(4));
        assert_eq!(start_of_last(b"a\nb\n", 2), None);
    }
}
