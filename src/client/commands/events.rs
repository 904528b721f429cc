//! `vapora events`: a live stream, one line per event (JSON Lines with `--json`).

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
    let mut line = format!("{} {}", output::rfc3339(event.at), event.kind);
    if let Some(task) = event.task {
        line.push_str(&format!(" task={task}"));
    }
    for (key, value) in [
        ("queue", &event.queue),
        ("agent", &event.agent),
        ("status", &event.status),
    ] {
        if let Some(value) = value {
            line.push_str(&format!(" {key}={value}"));
        }
    }
    if let Some(detail) = &event.detail {
        line.push_str(&format!(" {detail:?}"));
    }
    line
}
