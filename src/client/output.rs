//! Everything the client prints: JSON views with stable snake_case field names and RFC 3339
//! times, aligned tables with relative times, and the detail view of one task or agent.
//! Results go to stdout; `note` sends messages to stderr.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::protocol::types::now_millis;
use crate::protocol::{Agent, Millis, Task};

/// A time as RFC 3339 UTC with milliseconds, e.g. `2026-11-25T14:03:07.123Z`.
pub fn rfc3339(ms: Millis) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    match UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
        // humantime cannot write years past 9999; such times never pass validation, but a
        // damaged value must not crash whoever prints it.
        Some(time) if write!(text, "{}", humantime::format_rfc3339_millis(time)).is_ok() => text,
        _ => format!("{ms}ms"),
    }
}

/// A time relative to now, e.g. `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn relative(ms: Millis) -> String {
    let now = now_millis();
    if ms > now {
        let secs = (ms - now).div_ceil(1000);
        return match secs {
            0..=59 => format!("in {secs}s"),
            60..=3599 => format!("in {}m", secs / 60),
            3600..=86399 => format!("in {}h", secs / 3600),
            _ => format!("in {}d", secs / 86400),
        };
    }
    let secs = (now - ms) / 1000;
    match secs {
        0 => "just now".into(),
        1..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

#[derive(Serialize)]
pub struct TaskJson<'a> {
    id: u64,
    title: &'a str,
    payload: &'a str,
    queue: &'a str,
    priority: i32,
    status: &'static str,
    requires: &'a [String],
    agent: Option<&'a str>,
    attempts: u32,
    max_attempts: u32,
    created_at: String,
    updated_at: String,
    result: Option<&'a str>,
    error: Option<&'a str>,
    run_at: Option<String>,
    lease_until: Option<String>,
    after: &'a [u64],
}

impl<'a> From<&'a Task> for TaskJson<'a> {
    fn from(task: &'a Task) -> TaskJson<'a> {
        TaskJson {
            id: task.id,
            title: &task.title,
            payload: &task.payload,
            queue: &task.queue,
            priority: task.priority,
            status: task.status.as_str(),
            requires: &task.requires,
            agent: task.agent.as_deref(),
            attempts: task.attempts,
            max_attempts: task.max_attempts,
            created_at: rfc3339(task.created_at),
            updated_at: rfc3339(task.updated_at),
            result: task.result.as_deref(),
            error: task.error.as_deref(),
            run_at: task.run_at.map(rfc3339),
            lease_until: task.lease_until.map(rfc3339),
            after: &task.after,
        }
    }
}

#[derive(Serialize)]
pub struct AgentJson<'a> {
    name: &'a str,
    status: &'static str,
    capabilities: &'a [String],
    max_tasks: u32,
    running: u32,
    registered_at: String,
    last_heartbeat: String,
}

impl<'a> From<&'a Agent> for AgentJson<'a> {
    fn from(agent: &'a Agent) -> AgentJson<'a> {
        AgentJson {
            name: &agent.name,
            status: agent.status.as_str(),
            capabilities: &agent.capabilities,
            max_tasks: agent.max_tasks,
            running: agent.running,
            registered_at: rfc3339(agent.registered_at),
            last_heartbeat: rfc3339(agent.last_heartbeat),
        }
    }
}

/// Prints one JSON document on its own line. Buffered in large blocks: stdout alone
/// writes every 1 KiB, which made a 30 MB list 30,000 `write` calls into a pipe.
pub fn json<T: Serialize + ?Sized>(value: &T) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    serde_json::to_writer(&mut out, value).map_err(io::Error::other)?;
    writeln!(out)?;
    out.flush()
}

pub fn task_json(task: &Task) -> io::Result<()> {
    json(&TaskJson::from(task))
}

pub fn tasks_json(tasks: &[Task]) -> io::Result<()> {
    json(&tasks.iter().map(TaskJson::from).collect::<Vec<_>>())
}

pub fn agent_json(agent: &Agent) -> io::Result<()> {
    json(&AgentJson::from(agent))
}

pub fn agents_json(agents: &[Agent]) -> io::Result<()> {
    json(&agents.iter().map(AgentJson::from).collect::<Vec<_>>())
}

/// Prints rows as a table with aligned columns; the last column is never padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut line = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        line.clear();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    out.flush()
}

pub fn task_table(tasks: &[Task]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|task| {
            vec![
                task.id.to_string(),
                task.status.to_string(),
                task.priority.to_string(),
                task.queue.clone(),
                task.agent.clone().unwrap_or_else(|| "-".into()),
                format!("{}/{}", task.attempts, task.max_attempts),
                relative(task.updated_at),
                task.title.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "STATUS", "PRI", "QUEUE", "AGENT", "TRIES", "UPDATED", "TITLE",
        ],
        &rows,
    )
}

pub fn agent_table(agents: &[Agent]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|agent| {
            vec![
                agent.name.clone(),
                agent.status.to_string(),
                format!("{}/{}", agent.running, agent.max_tasks),
                relative(agent.last_heartbeat),
                join_or_dash(&agent.capabilities),
            ]
        })
        .collect();
    table(
        &["NAME", "STATUS", "RUNNING", "HEARTBEAT", "CAPABILITIES"],
        &rows,
    )
}

fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// The detail view of one task: `key: value` lines.
pub fn task_details(task: &Task) -> io::Result<()> {
    let mut rows = vec![
        ("id", task.id.to_string()),
        ("title", task.title.clone()),
        ("status", task.status.to_string()),
        ("queue", task.queue.clone()),
        ("priority", task.priority.to_string()),
        ("requires", join_or_dash(&task.requires)),
        ("agent", task.agent.clone().unwrap_or_else(|| "-".into())),
        (
            "attempts",
            format!("{}/{}", task.attempts, task.max_attempts),
        ),
        (
            "created",
            format!(
                "{} ({})",
                rfc3339(task.created_at),
                relative(task.created_at)
            ),
        ),
        (
            "updated",
            format!(
                "{} ({})",
                rfc3339(task.updated_at),
                relative(task.updated_at)
            ),
        ),
    ];
    if let Some(result) = &task.result {
        rows.push(("result", result.clone()));
    }
    if let Some(error) = &task.error {
        rows.push(("error", error.clone()));
    }
    if let Some(at) = task.run_at {
        rows.push(("run at", format!("{} ({})", rfc3339(at), relative(at))));
    }
    if let Some(until) = task.lease_until {
        rows.push(("lease until", rfc3339(until)));
    }
    if !task.after.is_empty() {
        let ids: Vec<String> = task.after.iter().map(u64::to_string).collect();
        rows.push(("after", ids.join(", ")));
    }
    rows.push(("payload", describe_payload(&task.payload)));
    details(&rows)
}

pub fn agent_details(agent: &Agent) -> io::Result<()> {
    details(&[
        ("name", agent.name.clone()),
        ("status", agent.status.to_string()),
        ("capabilities", join_or_dash(&agent.capabilities)),
        ("running", format!("{}/{}", agent.running, agent.max_tasks)),
        (
            "registered",
            format!(
                "{} ({})",
                rfc3339(agent.registered_at),
                relative(agent.registered_at)
            ),
        ),
        (
            "heartbeat",
            format!(
                "{} ({})",
                rfc3339(agent.last_heartbeat),
                relative(agent.last_heartbeat)
            ),
        ),
    ])
}

/// Short one-line payloads are shown; others are summarized (use `--payload` for the raw bytes).
fn describe_payload(payload: &str) -> String {
    if payload.is_empty() {
        "-".into()
    } else if payload.len() <= 200 && !payload.contains('\n') {
        payload.to_string()
    } else {
        format!(
            "({} bytes; `vapora task show ID --payload` prints it)",
            payload.len()
        )
    }
}

pub fn details(rows: &[(&str, String)]) -> io::Result<()> {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for (key, value) in rows {
        writeln!(out, "{:<width$} {value}", format!("{key}:"))?;
    }
    out.flush()
}

/// A message for the person at the terminal (stderr), unless `--quiet`.
pub fn note(quiet: bool, message: &str) {
    if !quiet {
        eprintln!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn relative_times_pick_a_unit() {
        let now = now_millis();
        assert_eq!(relative(now), "just now");
        assert_eq!(relative(now - 5_000), "5s ago");
        assert_eq!(relative(now - 120_000), "2m ago");
        assert_eq!(relative(now - 3 * 86_400_000), "3d ago");
        assert_eq!(relative(now + 90_000), "in 1m");
        assert_eq!(rfc3339(u64::MAX), format!("{}ms", u64::MAX));
    }
}
