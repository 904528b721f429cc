//! `vapora events`: a live stream, one line per event (JSON Lines with `--json`). Text
//! lines show what a client wrote (names, titles, results, reasons) through
//! `output::escape`, so an event is always one line and drives no terminal.

use std::io::{self, Write};

use serde_json::json;

use crate::client::exit::{CliError, OK};
use crate::client::{Session, output, unexpected};
use crate::protocol::{Event, Request, Response};

pub fn run(
    session: &mut Session,
    queue: Option<String>,
    agent: Option<String>,
) -> Result<i32, CliError> {
    let json = session.json;
    let quiet = session.quiet;
    let client = session.client()?;
    client.start_stream(&Request::Subscribe { queue, agent })?;
    match client.next_answer()? {
        Some(Ok(Response::Subscribed)) => {}
        Some(Ok(other)) => return Err(unexpected(other)),
        Some(Err(error)) => return Err(error.into()),
        None => {
            return Err(CliError::new(
                crate::client::exit::UNREACHABLE,
                "the daemon closed the stream",
            ));
        }
    }
    let mut out = io::stdout().lock();
    while let Some(answer) = client.next_answer()? {
        let event = match answer {
            Ok(Response::Event(event)) => event,
            Ok(other) => return Err(unexpected(other)),
            Err(error) => return Err(error.into()),
        };
        if json {
            serde_json::to_writer(&mut out, &to_json(&event)).map_err(io::Error::other)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", to_line(&event))?;
        }
        // Every event as it happens, also into a pipe.
        out.flush()?;
    }
    output::note(quiet, "the daemon stopped; end of events");
    Ok(OK)
}

fn to_json(event: &Event) -> serde_json::Value {
    json!({
        "at": output::rfc3339(event.at),
        "event": event.kind,
        "task": event.task,
        "queue": event.queue,
        "agent": event.agent,
        "status": event.status,
        "detail": event.detail,
        "dropped": event.dropped,
    })
}

fn to_line(event: &Event) -> String {
    let mut line = format!(
        "{} {}",
        output::rfc3339(event.at),
        output::escape(&event.kind)
    );
    if let Some(task) = event.task {
        line.push_str(&format!(" task={task}"));
    }
    for (key, value) in [
        ("queue", &event.queue),
        ("agent", &event.agent),
        ("status", &event.status),
    ] {
        if let Some(value) = value {
            line.push_str(&format!(" {key}={}", output::escape(value)));
        }
    }
    if let Some(detail) = &event.detail {
        // Last on the line, so the quotes need no escaping of their own.
        line.push_str(&format!(" \"{}\"", output::escape(detail)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_line_escapes_what_a_client_wrote() {
        let event = Event {
            at: 0,
            kind: "task_failed".into(),
            task: Some(3),
            queue: Some("q".into()),
            agent: Some("w\u{1b}1".into()),
            status: Some("failed".into()),
            detail: Some("bad\n\u{1b}[2J\u{202e}\"x\"".into()),
            dropped: 0,
        };
        assert_eq!(
            to_line(&event),
            "1970-01-01T00:00:00.000Z task_failed task=3 queue=q agent=w\\e1 status=failed \
             \"bad\\n\\e[2J\\u202e\"x\"\""
        );
    }
}
