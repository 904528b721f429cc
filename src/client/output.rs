//! Everything the client prints: JSON views with stable snake_case field names and RFC 3339
//! times, aligned tables with relative times, and the detail view of one task or agent.
//! Results go to stdout; `note` and `error` send messages to stderr. Everything a human
//! view prints that a client may have written passes through [`escape`]: control
//! characters show as visible escapes (`\e`, `\n`, `\x07`, `\u202e`); JSON stays exact.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

pub use crate::client::escape::escape;
use crate::protocol::shell::quote_word;
use crate::protocol::types::now_millis;
use crate::protocol::{Agent, HeartbeatReport, Millis, Task};

pub use crate::protocol::rfc3339::rfc3339;
use crate::protocol::rfc3339::rfc3339_bytes;

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

/// Writes a task as its JSON object: the `--json` schema, whose field names and order are
/// stable. Written by hand rather than derived: `task list --json` writes a hundred
/// thousand of them, and serde_json spent half its time on the seventeen field names
/// (BENCHMARKS.md). Strings and numbers still go through serde_json (escaping).
fn write_task(out: &mut Vec<u8>, task: &Task) {
    fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &[u8], value: &T) {
        out.extend_from_slice(key);
        // Writing into a Vec cannot fail, and these types always serialize.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    fn time(out: &mut Vec<u8>, key: &[u8], ms: Option<Millis>) {
        out.extend_from_slice(key);
        match ms {
            Some(ms) => {
                out.push(b'"');
                match rfc3339_bytes(ms) {
                    Some(text) => out.extend_from_slice(&text),
                    None => out.extend_from_slice(rfc3339(ms).as_bytes()),
                }
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    value(out, b"{\"id\":", &task.id);
    value(out, b",\"title\":", &task.title);
    value(out, b",\"payload\":", &task.payload);
    value(out, b",\"queue\":", &task.queue);
    value(out, b",\"priority\":", &task.priority);
    value(out, b",\"status\":", task.status.as_str());
    value(out, b",\"requires\":", &task.requires);
    value(out, b",\"agent\":", &task.agent);
    value(out, b",\"attempts\":", &task.attempts);
    value(out, b",\"max_attempts\":", &task.max_attempts);
    time(out, b",\"created_at\":", Some(task.created_at));
    time(out, b",\"updated_at\":", Some(task.updated_at));
    value(out, b",\"result\":", &task.result);
    value(out, b",\"error\":", &task.error);
    time(out, b",\"run_at\":", task.run_at);
    time(out, b",\"lease_until\":", task.lease_until);
    value(out, b",\"after\":", &task.after);
    value(out, b",\"cwd\":", &task.cwd);
    value(out, b",\"env\":", &EnvJson(&task.env));
    value(out, b",\"timeout_ms\":", &task.timeout_ms);
    time(out, b",\"started_at\":", task.started_at);
    time(out, b",\"ended_at\":", task.ended_at);
    value(out, b",\"run_ms\":", &run_ms(task, now_millis()));
    value(out, b",\"exit_code\":", &task.exit_code);
    out.push(b'}');
}

/// How long the latest attempt ran: until it ended, or until `now` while it runs.
pub fn run_ms(task: &Task, now: Millis) -> Option<u64> {
    let started = task.started_at?;
    let end = match task.ended_at {
        Some(ended) => ended,
        None if task.status == crate::protocol::TaskStatus::Running => now,
        None => return None,
    };
    Some(end.saturating_sub(started))
}

/// `1.234s`, `2m05s`, `1h02m`: a run time, to the millisecond while short.
pub fn run_time_words(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{}.{:03}s", secs, ms % 1000),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// A task's variables as one JSON object (names are unique), in the task's order.
struct EnvJson<'a>(&'a [(String, String)]);

impl Serialize for EnvJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
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
/// writes every 1 KiB (a 30 MB document would be 30,000 `write` calls into a pipe).
/// Task lists have their own writer, `tasks_json`.
pub fn json<T: Serialize + ?Sized>(value: &T) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    serde_json::to_writer(&mut out, value).map_err(io::Error::other)?;
    writeln!(out)?;
    out.flush()
}

pub fn task_json(task: &Task) -> io::Result<()> {
    let mut text = Vec::with_capacity(512);
    write_task(&mut text, task);
    text.push(b'\n');
    let mut out = io::stdout().lock();
    out.write_all(&text)?;
    out.flush()
}

/// Tasks as one JSON array.
pub fn tasks_json(tasks: &[Task]) -> io::Result<()> {
    let mut writer = TasksJson::new();
    writer.page(tasks)?;
    writer.finish()
}

/// Writes one JSON array of tasks given a page at a time (a long `task list` arrives in
/// pages), in 64 KiB blocks as it goes. Nothing is written before the first page, so an
/// error answered instead of the list leaves stdout empty.
pub struct TasksJson {
    text: Vec<u8>,
    /// The opening `[` is in `text` (or already out).
    started: bool,
    written: usize,
}

impl TasksJson {
    const BLOCK: usize = 64 * 1024;

    pub fn new() -> TasksJson {
        TasksJson {
            text: Vec::new(),
            started: false,
            written: 0,
        }
    }

    pub fn page(&mut self, tasks: &[Task]) -> io::Result<()> {
        if !self.started {
            self.text.reserve(2 * Self::BLOCK);
            self.text.push(b'[');
            self.started = true;
        }
        if self.written <= 1000 && self.written + tasks.len() > 1000 {
            widen_stdout_pipe();
        }
        let mut out = io::stdout().lock();
        for task in tasks {
            if self.written > 0 {
                self.text.push(b',');
            }
            write_task(&mut self.text, task);
            self.written += 1;
            if self.text.len() >= Self::BLOCK {
                out.write_all(&self.text)?;
                self.text.clear();
            }
        }
        Ok(())
    }

    /// Closes the array (an empty one if no task came).
    pub fn finish(mut self) -> io::Result<()> {
        if !self.started {
            self.text.push(b'[');
        }
        self.text.extend_from_slice(b"]\n");
        let mut out = io::stdout().lock();
        out.write_all(&self.text)?;
        out.flush()
    }
}

impl Default for TasksJson {
    fn default() -> TasksJson {
        TasksJson::new()
    }
}

/// When stdout is a pipe, asks for a 1 MiB pipe buffer (the unprivileged maximum)
/// instead of 64 KiB: megabytes of output then cost a sixteenth of the hand-offs between
/// vapora and its reader (`task list --json | jq` ran 80 ms longer than into a file at
/// 100,000 tasks). Anything else, or a refusal, changes nothing.
fn widen_stdout_pipe() {
    const WIDE: i32 = 1 << 20;
    // SAFETY: fcntl on descriptor 1 with integer arguments; it fails harmlessly (EBADF,
    // EINVAL, EPERM) when stdout is not a pipe or the size is not allowed. A pipe that is
    // already wider is left alone.
    unsafe {
        let current = libc::fcntl(1, libc::F_GETPIPE_SZ);
        if current > 0 && current < WIDE {
            libc::fcntl(1, libc::F_SETPIPE_SZ, WIDE);
        }
    }
}

/// A JSON array of `view(item)` for every item, written as it goes (no vector of views).
struct Each<'a, T, V>(&'a [T], fn(&'a T) -> V);

impl<'a, T, V: Serialize> Serialize for Each<'a, T, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(self.1))
    }
}

pub fn agent_json(agent: &Agent) -> io::Result<()> {
    json(&AgentJson::from(agent))
}

/// A heartbeat's answer: the agent's fields, then what the heartbeat renewed, which named
/// tasks the agent does not hold, and which held tasks it gave back.
pub fn heartbeat_json(report: &HeartbeatReport) -> io::Result<()> {
    #[derive(Serialize)]
    struct NotHeldJson<'a> {
        id: u64,
        status: Option<&'static str>,
        agent: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct HeartbeatJson<'a> {
        #[serde(flatten)]
        agent: AgentJson<'a>,
        renewed: &'a [u64],
        not_held: Vec<NotHeldJson<'a>>,
        released: &'a [u64],
    }
    json(&HeartbeatJson {
        agent: AgentJson::from(&report.agent),
        renewed: &report.renewed,
        not_held: report
            .not_held
            .iter()
            .map(|lost| NotHeldJson {
                id: lost.id,
                status: lost.status.map(|s| s.as_str()),
                agent: lost.agent.as_deref(),
            })
            .collect(),
        released: &report.released,
    })
}

pub fn agents_json(agents: &[Agent]) -> io::Result<()> {
    json(&Each(agents, AgentJson::from))
}

/// Prints rows as a table with aligned columns; the last column is never padded. Cells are
/// printed as given: callers escape what a client wrote (`escape`).
pub fn table<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.as_ref().chars().count());
        }
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut line = String::new();
    let header: Vec<&str> = header.to_vec();
    let rows = rows
        .iter()
        .map(|row| row.iter().map(AsRef::as_ref).collect::<Vec<&str>>());
    for row in std::iter::once(header).chain(rows) {
        line.clear();
        for (i, &cell) in row.iter().enumerate() {
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
    let rows: Vec<Vec<Cow<str>>> = tasks
        .iter()
        .map(|task| {
            vec![
                task.id.to_string().into(),
                task.status.as_str().into(),
                task.priority.to_string().into(),
                escape(&task.queue),
                task.agent.as_deref().map_or("-".into(), escape),
                format!("{}/{}", task.attempts, task.max_attempts).into(),
                relative(task.updated_at).into(),
                escape(&task.title),
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
    let rows: Vec<Vec<Cow<str>>> = agents
        .iter()
        .map(|agent| {
            vec![
                escape(&agent.name),
                agent.status.as_str().into(),
                format!("{}/{}", agent.running, agent.max_tasks).into(),
                relative(agent.last_heartbeat).into(),
                join_or_dash(&agent.capabilities).into(),
            ]
        })
        .collect();
    table(
        &["NAME", "STATUS", "RUNNING", "HEARTBEAT", "CAPABILITIES"],
        &rows,
    )
}

/// The items, escaped, joined with commas; `-` for none.
fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        let items: Vec<Cow<str>> = items.iter().map(|item| escape(item)).collect();
        items.join(",")
    }
}

/// The detail view of one task: `key: value` lines.
pub fn task_details(task: &Task) -> io::Result<()> {
    details(&task_rows(task))
}

/// The lines of a task's detail view, as (key, value) with what a client wrote escaped:
/// for `task show` and `vapora top`'s task view.
pub fn task_rows(task: &Task) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("id", task.id.to_string()),
        ("title", escape(&task.title).into_owned()),
        ("status", task.status.to_string()),
        ("queue", escape(&task.queue).into_owned()),
        ("priority", task.priority.to_string()),
        ("requires", join_or_dash(&task.requires)),
        (
            "agent",
            task.agent
                .as_deref()
                .map_or("-".into(), |a| escape(a).into_owned()),
        ),
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
        rows.push(("result", escape(result).into_owned()));
    }
    if let Some(error) = &task.error {
        rows.push(("error", escape(error).into_owned()));
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
    if let Some(timeout) = task.timeout_ms {
        let timeout = humantime::format_duration(std::time::Duration::from_millis(timeout));
        rows.push(("timeout", timeout.to_string()));
    }
    if let Some(started) = task.started_at {
        rows.push((
            "started",
            format!("{} ({})", rfc3339(started), relative(started)),
        ));
    }
    if let Some(ran) = run_ms(task, now_millis()) {
        let ran = run_time_words(ran);
        let label = if task.ended_at.is_some() {
            "ran"
        } else {
            "running for"
        };
        rows.push((label, ran));
    }
    if let Some(code) = task.exit_code {
        rows.push(("exit code", describe_exit(code)));
    }
    if let Some(cwd) = &task.cwd {
        rows.push(("cwd", escape(cwd).into_owned()));
    }
    if !task.env.is_empty() {
        // As `sh` would read them: each value quoted when it needs it.
        let vars: Vec<String> = task
            .env
            .iter()
            .map(|(key, value)| format!("{key}={}", quote_word(value)))
            .collect();
        rows.push(("env", escape(&vars.join(" ")).into_owned()));
    }
    rows.push(("payload", describe_payload(&task.payload)));
    rows
}

pub fn agent_details(agent: &Agent) -> io::Result<()> {
    details(&[
        ("name", escape(&agent.name).into_owned()),
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

/// Short one-line payloads are shown (escaped); others are summarized (use `--payload` for
/// the raw bytes).
/// `0`, `3`, `143 (killed by signal TERM)`, `124 (timed out)`.
fn describe_exit(code: i32) -> String {
    use crate::client::work::outcome::{TIMED_OUT, signal_name};
    match code {
        TIMED_OUT => format!("{code} (timed out)"),
        129..=192 => format!("{code} (killed by signal {})", signal_name(code - 128)),
        _ => code.to_string(),
    }
}

fn describe_payload(payload: &str) -> String {
    if payload.is_empty() {
        "-".into()
    } else if payload.len() <= 200 && !payload.contains('\n') {
        escape(payload).into_owned()
    } else {
        format!(
            "({} bytes; `vapora task show ID --payload` prints it)",
            payload.len()
        )
    }
}

/// Prints `key: value` lines. Values are printed as given: callers escape what a client
/// wrote (`escape`).
pub fn details(rows: &[(&str, String)]) -> io::Result<()> {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for (key, value) in rows {
        writeln!(out, "{:<width$} {value}", format!("{key}:"))?;
    }
    out.flush()
}

/// A message for the person at the terminal (stderr), unless `--quiet`. Escaped as a whole
/// (it may echo a name, a title or a reason a client sent), so callers pass text raw.
/// A closed stderr is ignored: `eprintln!` would panic, and a worker that dies because
/// the `tee` after it did would take its running tasks with it.
pub fn note(quiet: bool, message: &str) {
    if !quiet {
        let _ = writeln!(std::io::stderr(), "{}", escape(message));
    }
}

/// An error on stderr as `vapora: MESSAGE`, escaped as a whole like `note`: the daemon's
/// messages and the client's own may echo anything a client sent.
pub fn error(message: &str) {
    let _ = writeln!(std::io::stderr(), "vapora: {}", escape(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_json_has_the_documented_fields_in_order() {
        let mut task = Task {
            id: 7,
            title: "quote \" and \\ and \u{1}".into(),
            payload: "line\nbreak".into(),
            queue: "q".into(),
            priority: -2,
            status: crate::protocol::TaskStatus::Running,
            requires: vec!["gpu".into()],
            agent: Some("w1".into()),
            attempts: 1,
            max_attempts: 3,
            created_at: 0,
            updated_at: 1_700_000_000_123,
            result: None,
            error: Some("e".into()),
            run_at: None,
            lease_until: Some(1_700_000_060_000),
            lease_ms: None,
            after: vec![1, 2],
            cwd: Some("/srv/app".into()),
            env: vec![("Z".into(), "last".into()), ("A".into(), "a b".into())],
            timeout_ms: Some(30_000),
            started_at: Some(1_700_000_000_000),
            ended_at: Some(1_700_000_001_500),
            exit_code: Some(3),
        };
        let mut text = Vec::new();
        write_task(&mut text, &task);
        let parsed: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let expected = serde_json::json!({
            "id": 7, "title": "quote \" and \\ and \u{1}", "payload": "line\nbreak",
            "queue": "q", "priority": -2, "status": "running", "requires": ["gpu"],
            "agent": "w1", "attempts": 1, "max_attempts": 3,
            "created_at": "1970-01-01T00:00:00.000Z", "updated_at": "2023-11-14T22:13:20.123Z",
            "result": null, "error": "e", "run_at": null,
            "lease_until": "2023-11-14T22:14:20.000Z", "after": [1, 2],
            "cwd": "/srv/app", "env": {"Z": "last", "A": "a b"}, "timeout_ms": 30_000,
            "started_at": "2023-11-14T22:13:20.000Z", "ended_at": "2023-11-14T22:13:21.500Z",
            "run_ms": 1500, "exit_code": 3
        });
        assert_eq!(parsed, expected);
        let keys: Vec<&str> = parsed
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let order = [
            "id",
            "title",
            "payload",
            "queue",
            "priority",
            "status",
            "requires",
            "agent",
            "attempts",
            "max_attempts",
            "created_at",
            "updated_at",
            "result",
            "error",
            "run_at",
            "lease_until",
            "after",
            "cwd",
            "env",
            "timeout_ms",
            "started_at",
            "ended_at",
            "run_ms",
            "exit_code",
        ];
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            keys, sorted,
            "serde_json's map sorts keys; every field is there"
        );
        let text = String::from_utf8(text).unwrap();
        let positions: Vec<usize> = order
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        task.agent = None;
        let mut text = Vec::new();
        write_task(&mut text, &task);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("\"agent\":null"));
        assert!(
            text.contains("\"env\":{\"Z\":\"last\",\"A\":\"a b\"}"),
            "{text}"
        );
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
