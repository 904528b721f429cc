//! `vapora task logs`: a task's output, raw on stdout, as its worker ran it.

use std::io::{self, Write};

use crate::client::exit::{CliError, FAILURE, OK};
use crate::client::{Session, output, unexpected};
use crate::protocol::limits::MAX_OUTPUT_CHUNK;
use crate::protocol::{Request, Response, TaskId, TaskStatus};

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
    match session.call(request)? {
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
        let task = match session.call(Request::GetTask { id })? {
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
