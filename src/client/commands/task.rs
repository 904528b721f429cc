//! `vapora task ...`

use std::collections::HashMap;
use std::io::{self, BufRead, Write};

use serde_json::json;

use crate::client::cli::{AddArgs, ClaimArgs, ListArgs, TaskCommand};
use crate::client::exit::{AT_LIMIT, CliError, EMPTY, FAILURE, OK};
use crate::client::progress::Progress;
use crate::client::{Session, output, unexpected};
use crate::protocol::limits::{Limits, MAX_BATCH, MAX_TITLE_BYTES, MAX_WAIT_IDS};
use crate::protocol::shell::quote_words;
use crate::protocol::types::now_millis;
use crate::protocol::{
    AgentStatus, DoneFirst, NewTask, Request, Response, Task, TaskFilter, TaskId, TaskOutcome,
    TaskStatus,
};

/// Most tasks per request when adding from stdin.
const STDIN_BATCH: usize = 1000;
const _: () = assert!(STDIN_BATCH <= MAX_BATCH);
/// Roughly how many bytes of task data per request: well below the smallest frame cap a
/// daemon may run with (4 MiB), whatever the payload sizes.
const STDIN_BATCH_BYTES: usize = 2 * 1024 * 1024;

pub fn run(session: &mut Session, command: TaskCommand) -> Result<i32, CliError> {
    match command {
        TaskCommand::Add(args) if args.jsonl && !args.stdin => Err(CliError::usage(
            "--jsonl says how to read standard input: add --stdin \
             (`vapora task add --stdin --jsonl < tasks.jsonl`)",
        )),
        TaskCommand::Add(args) => {
            let (args, dir) = prepare_add(args)?;
            if args.stdin {
                add_stdin(session, args, &dir)
            } else {
                let id = add_one(session, &args, &dir)?;
                if session.json {
                    output::json(&json!({ "id": id }))?;
                } else {
                    println!("{id}");
                }
                Ok(OK)
            }
        }
        TaskCommand::List(args) => list(session, args),
        TaskCommand::Show { id, payload } => show(session, id, payload),
        TaskCommand::Claim(args) => claim(session, args),
        TaskCommand::Done { id, result, agent } => {
            let task = expect_task(session.call(Request::Complete {
                id,
                result,
                agent,
                run: None,
            })?)?;
            report(session, &task, &format!("task {id} done"))
        }
        TaskCommand::Fail {
            id,
            reason,
            no_retry,
            agent,
        } => {
            let task = expect_task(session.call(Request::Fail {
                id,
                reason,
                retry: !no_retry,
                agent,
                run: None,
            })?)?;
            let message = if matches!(task.status, TaskStatus::Queued | TaskStatus::Scheduled) {
                let when = task
                    .run_at
                    .filter(|_| task.status == TaskStatus::Scheduled)
                    .map(|at| format!("will be retried at {}", output::rfc3339(at)))
                    .unwrap_or_else(|| "queued again now".to_string());
                format!(
                    "task {id} failed; {} of {} attempts used, {when}",
                    task.attempts, task.max_attempts
                )
            } else {
                format!("task {id} failed")
            };
            report(session, &task, &message)
        }
        TaskCommand::Cancel { id } => {
            let (task, dependents) = match session.call(Request::Cancel { id })? {
                Response::Cancelled { task, dependents } => (task, dependents),
                other => return Err(unexpected(other)),
            };
            let also = match dependents.as_slice() {
                [] => String::new(),
                [one] => format!(", and task {one}, which waited on it"),
                many => format!(
                    ", and tasks {}, which waited on it",
                    shorten(&many.iter().map(u64::to_string).collect::<Vec<_>>())
                ),
            };
            report(session, &task, &format!("task {id} cancelled{also}"))
        }
        TaskCommand::Retry { id } => {
            let task = expect_task(session.call(Request::Retry { id })?)?;
            report(session, &task, &format!("task {id} queued again"))
        }
        TaskCommand::Wait { ids, timeout } => wait(session, ids, timeout),
        TaskCommand::Logs {
            id,
            follow,
            tail,
            attempt,
        } => super::logs::logs(session, id, follow, tail, attempt),
        TaskCommand::Prune { older_than } => {
            let request = Request::Prune {
                older_than_ms: older_than.map(|d| d.as_millis() as u64),
            };
            let count = match session.call(request)? {
                Response::Pruned(count) => count,
                other => return Err(unexpected(other)),
            };
            if session.json {
                output::json(&json!({ "pruned": count }))?;
            } else {
                println!("{count}");
            }
            Ok(OK)
        }
    }
}

fn expect_task(response: Response) -> Result<Task, CliError> {
    match response {
        Response::Task(task) => Ok(task),
        other => Err(unexpected(other)),
    }
}

/// After a state change: the task as JSON, or a note on stderr.
fn report(session: &Session, task: &Task, message: &str) -> Result<i32, CliError> {
    if session.json {
        output::task_json(task)?;
    } else {
        output::note(session.quiet, message);
    }
    Ok(OK)
}

/// Where tasks run: `--cwd` made absolute, or else, for a task with a payload, the
/// directory `task add` runs in (as tsp and pueue record it). Not the caller's environment:
/// only `--env` variables are recorded.
pub struct WorkDir {
    given: Option<String>,
    /// The current directory, or why it cannot be used (which matters only if a task
    /// needs it).
    current: Result<String, String>,
}

impl WorkDir {
    fn new(given: Option<&std::path::Path>) -> Result<WorkDir, CliError> {
        let current = std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory ({e}); give --cwd DIR"))
            .and_then(|dir| utf8_dir(dir.into_os_string()));
        let given = match given {
            None => None,
            Some(dir) => Some(
                absolute_dir(dir.as_os_str(), &current)
                    .map_err(|e| CliError::usage(format!("--cwd: {e}")))?,
            ),
        };
        Ok(WorkDir { given, current })
    }

    /// The working directory of a task with this payload and, from a `--jsonl` line, this
    /// `cwd`.
    fn for_task(&self, payload: &str, line_cwd: Option<&str>) -> Result<Option<String>, String> {
        if let Some(dir) = line_cwd {
            return absolute_dir(dir.as_ref(), &self.current).map(Some);
        }
        if let Some(dir) = &self.given {
            return Ok(Some(dir.clone()));
        }
        if payload.is_empty() {
            return Ok(None);
        }
        self.current.clone().map(Some)
    }
}

/// `dir` made absolute against `current` (no symbolic links resolved, nothing checked on
/// disk: the worker may run on another host, or after a task that creates it).
fn absolute_dir(dir: &std::ffi::OsStr, current: &Result<String, String>) -> Result<String, String> {
    if dir.is_empty() {
        return Err("the working directory is empty".into());
    }
    let path = std::path::Path::new(dir);
    if path.is_absolute() {
        return utf8_dir(dir.to_os_string());
    }
    let base = current.as_ref().map_err(Clone::clone)?;
    let joined = std::path::Path::new(base).join(path);
    // `absolute` drops `.` components and repeated slashes; it keeps `..` (which would be
    // wrong to fold where a component is a symbolic link).
    let joined = std::path::absolute(&joined).unwrap_or(joined);
    utf8_dir(joined.into_os_string())
}

fn utf8_dir(dir: std::ffi::OsString) -> Result<String, String> {
    dir.into_string().map_err(|dir| {
        format!(
            "the directory {} is not UTF-8 text; give --cwd DIR",
            dir.to_string_lossy()
        )
    })
}

/// The title of a task given as a command: its words joined by spaces (line breaks
/// become spaces), cut to the default title limit on a character boundary.
fn command_title(words: &[String], payload: &str) -> String {
    let mut title: String = words
        .join(" ")
        .chars()
        .map(|c| if matches!(c, '\n' | '\r') { ' ' } else { c })
        .collect();
    if title.trim().is_empty() {
        // Only empty or blank words: the quoted form at least shows them.
        title = payload.to_string();
    }
    let mut end = title.len().min(MAX_TITLE_BYTES);
    while !title.is_char_boundary(end) {
        end -= 1;
    }
    title.truncate(end);
    title
}

fn new_task(args: &AddArgs, title: String) -> NewTask {
    let run_at = match (args.delay, args.at) {
        (Some(delay), _) => Some(now_millis().saturating_add(delay.as_millis() as u64)),
        (None, Some(at)) => Some(
            at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        ),
        (None, None) => None,
    };
    NewTask {
        title,
        payload: args.payload.clone().unwrap_or_default(),
        priority: args.priority,
        queue: args.queue.clone(),
        requires: args.requires.clone(),
        max_attempts: args.max_attempts,
        run_at,
        lease_ms: args.lease.map(|lease| lease.as_millis() as u64),
        after: args.after.clone(),
        cwd: None,
        env: args.env.clone(),
        timeout_ms: args
            .timeout
            .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// The content of `--payload-file PATH` (`-`: standard input), exactly, as long as it is
/// UTF-8 text no longer than any daemon accepts; read no further than that.
fn read_payload_file(path: &std::path::Path, stdin_has_tasks: bool) -> Result<String, CliError> {
    use std::io::Read;
    let ceiling = crate::protocol::limits::TEXT_CEILING;
    let from_stdin = path.as_os_str() == "-";
    if from_stdin && stdin_has_tasks {
        return Err(CliError::usage(
            "--payload-file - reads standard input, which --stdin reads tasks from: give \
             the payload in a file, or as a \"payload\" field with --jsonl",
        ));
    }
    let shown = if from_stdin {
        "standard input".to_string()
    } else {
        output::escape(&path.display().to_string()).into_owned()
    };
    let mut bytes = Vec::new();
    let read = if from_stdin {
        std::io::stdin()
            .lock()
            .take(ceiling as u64 + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(ceiling as u64 + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::usage(format!("cannot read the payload from {shown}: {e}")))?;
    if bytes.len() > ceiling {
        return Err(CliError::usage(format!(
            "the payload in {shown} is larger than {} MiB, the most any daemon accepts",
            ceiling / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        CliError::usage(format!(
            "the payload in {shown} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The payload from `--payload-file` or the words after `--`, and where tasks run.
pub fn prepare_add(mut args: AddArgs) -> Result<(AddArgs, WorkDir), CliError> {
    if let Some(path) = args.payload_file.take() {
        args.payload = Some(read_payload_file(&path, args.stdin)?);
    }
    if !args.command.is_empty() {
        args.payload = Some(quote_words(&args.command));
    }
    let dir = WorkDir::new(args.cwd.as_deref())?;
    Ok((args, dir))
}

/// Adds the one task `args` describe; returns its id.
pub fn add_one(session: &mut Session, args: &AddArgs, dir: &WorkDir) -> Result<TaskId, CliError> {
    let title = match &args.title {
        Some(title) => title.clone(),
        None => command_title(&args.command, args.payload.as_deref().unwrap_or_default()),
    };
    let mut task = new_task(args, title);
    task.cwd = dir.for_task(&task.payload, None).map_err(CliError::usage)?;
    // What no daemon accepts is a usage error here; the daemon checks its own limits.
    task.validate(&Limits::CEILINGS).map_err(CliError::usage)?;
    let ids = expect_added(session.call(Request::AddTasks { tasks: vec![task] })?)?;
    let id = *ids
        .first()
        .ok_or_else(|| CliError::new(FAILURE, "the daemon returned no id"))?;
    if !args.after.is_empty() && !session.quiet {
        // A dependency that already failed cancels the new task at once: say so.
        if let Response::Task(task) = session.call(Request::GetTask { id })?
            && task.status == TaskStatus::Cancelled
        {
            let reason = task.error.unwrap_or_default();
            output::error(&format!("task {id} was added cancelled: {reason}"));
        }
    }
    Ok(id)
}

fn expect_added(response: Response) -> Result<Vec<TaskId>, CliError> {
    match response {
        Response::Added(ids) => Ok(ids),
        other => Err(unexpected(other)),
    }
}

/// The fields a `--jsonl` line may have (the `--help` of `--jsonl` lists them too).
const JSONL_FIELDS: &str =
    "title, payload, priority, queue, requires, max_attempts, after, cwd, env, timeout_ms";

/// Reads a `--jsonl` line into a task: missing fields take the values of the command-line
/// flags. Each field is checked by hand rather than by a derived `Deserialize`, so that a
/// wrong one is named in the user's words (`"priority" must be a whole number ...`), not
/// serde's (`expected i32`). Returns the task and the line's own `cwd`, if any (made
/// absolute by the caller).
fn json_task(args: &AddArgs, line: &str) -> Result<(NewTask, Option<String>), String> {
    use serde_json::Value;
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err(format!(
            "expected a JSON object like {{\"title\": \"...\"}} (fields: {JSONL_FIELDS})"
        ));
    };
    let text = |name: &str, value: &Value| match value {
        Value::String(text) => Ok(text.clone()),
        _ => Err(format!("\"{name}\" must be a string")),
    };
    let whole = |name: &str, value: &Value, min: i128, max: i128| match value
        .as_i64()
        .map(i128::from)
        .or(value.as_u64().map(i128::from))
    {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "\"{name}\" must be a whole number from {min} to {max}"
        )),
    };
    let list = |name: &str, value: &Value, what: &str| match value {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(format!("\"{name}\" must be an array of {what}")),
    };
    let title = match fields.get("title") {
        Some(value) => text("title", value)?,
        None => return Err("\"title\" is missing".to_string()),
    };
    let mut task = new_task(args, title);
    let mut cwd = None;
    for (name, value) in &fields {
        match name.as_str() {
            "title" => {}
            // `null` is a missing field: it takes the flag's value.
            _ if value.is_null() && JSONL_FIELDS.split(", ").any(|field| field == name) => {}
            "payload" => task.payload = text(name, value)?,
            "queue" => task.queue = text(name, value)?,
            "priority" => {
                let n = whole(name, value, i32::MIN.into(), i32::MAX.into())?;
                task.priority = i32::try_from(n).map_err(|e| e.to_string())?;
            }
            "max_attempts" => {
                let max = crate::protocol::limits::MAX_ATTEMPTS_LIMIT;
                let n = whole(name, value, 1, max.into())?;
                task.max_attempts = u32::try_from(n).map_err(|e| e.to_string())?;
            }
            "requires" => {
                task.requires = list(name, value, "capability names")?
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(text.clone()),
                        _ => Err("\"requires\" must be an array of capability names".to_string()),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "after" => {
                task.after = list(name, value, "task ids")?
                    .iter()
                    .map(|item| {
                        item.as_u64()
                            .ok_or_else(|| "\"after\" must be an array of task ids".to_string())
                    })
                    .collect::<Result<_, _>>()?;
            }
            "cwd" => cwd = Some(text(name, value)?),
            "env" => {
                let Value::Object(vars) = value else {
                    return Err("\"env\" must be an object like {\"KEY\": \"VALUE\"}".into());
                };
                task.env = vars
                    .iter()
                    .map(|(key, value)| match value {
                        Value::String(text) => Ok((key.clone(), text.clone())),
                        _ => Err(format!("\"env\": the value of {key} must be a string")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "timeout_ms" => {
                let n = whole(name, value, 0, i64::MAX.into())?;
                task.timeout_ms = Some(u64::try_from(n).map_err(|e| e.to_string())?);
            }
            other => {
                return Err(format!(
                    "unknown field \"{other}\" (fields: {JSONL_FIELDS})"
                ));
            }
        }
    }
    Ok((task, cwd))
}

/// Parses one input line into a task validated against the daemon's `limits`.
fn parse_line(
    args: &AddArgs,
    dir: &WorkDir,
    limits: &Limits,
    line: &str,
) -> Result<NewTask, String> {
    let mut line_cwd = None;
    let mut task = if args.jsonl {
        let (task, cwd) = json_task(args, line)?;
        line_cwd = cwd;
        task
    } else {
        new_task(args, line.to_string())
    };
    task.cwd = dir.for_task(&task.payload, line_cwd.as_deref())?;
    task.validate(limits)?;
    Ok(task)
}

/// Adds one task per line of stdin. Every line is checked before anything is sent: if any
/// line is bad, each bad line is reported with its number and nothing is added. Then the
/// tasks go out in pipelined batches on one connection; ids print in input order.
///
/// The input is read and checked first (against what any daemon could accept), without a
/// connection: a slow producer holds no connection open. Then the daemon is asked for its
/// own limits, and every task is checked against those too before the first is sent.
fn add_stdin(session: &mut Session, args: AddArgs, dir: &WorkDir) -> Result<i32, CliError> {
    let mut tasks = Vec::new();
    let mut bad_lines = 0usize;
    for (index, line) in io::stdin().lock().lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| CliError::usage(format!("line {number}: cannot read: {e}")))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if args.jsonl && line.trim().is_empty() {
            continue;
        }
        match parse_line(&args, dir, &Limits::CEILINGS, line) {
            Ok(task) => tasks.push((number, task)),
            Err(message) => {
                bad_lines += 1;
                output::error(&format!("line {number}: {message}"));
            }
        }
    }
    if bad_lines > 0 {
        return Err(CliError::usage(format!(
            "{bad_lines} bad line(s) in the input; no tasks were added"
        )));
    }
    if tasks.is_empty() {
        if session.json {
            output::json(&json!([]))?;
        }
        return Ok(OK);
    }
    let limits = match session.call(Request::Ping)? {
        Response::Pong(info) => info.limits,
        other => return Err(unexpected(other)),
    };
    for (number, task) in &mut tasks {
        if let Err(message) = task.validate(&limits) {
            bad_lines += 1;
            output::error(&format!("line {number}: {message}"));
        }
    }
    if bad_lines > 0 {
        return Err(CliError::usage(format!(
            "{bad_lines} bad line(s) for this daemon's limits (see `vapora ping --json`); \
             no tasks were added"
        )));
    }
    let progress = Progress::adding(tasks.len(), session.json, session.quiet);
    let tasks = tasks.into_iter().map(|(_, task)| task).collect();
    let requests = batches(tasks, STDIN_BATCH.min(limits.batch as usize));
    let mut answers = Vec::with_capacity(requests.len());
    let transport_error = session
        .client()?
        .call_many_observed(&requests, &mut answers, |index| {
            if let Request::AddTasks { tasks } = &requests[index] {
                progress.advance(tasks.len());
            }
        })
        .err();
    let mut ids = Vec::new();
    let mut failure = transport_error;
    for answer in answers {
        match answer {
            Ok(Response::Added(batch_ids)) => ids.extend(batch_ids),
            Ok(other) => {
                failure = Some(unexpected(other));
                break;
            }
            Err(error) => {
                failure = Some(CliError::from(error));
                break;
            }
        }
    }
    if failure.is_none() {
        progress.finish();
    }
    drop(progress);
    if session.json {
        output::json(&ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>())?;
    } else {
        let mut out = io::BufWriter::new(io::stdout().lock());
        for id in &ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
    }
    match failure {
        None => Ok(OK),
        Some(mut error) => {
            error.message = format!(
                "{}; the first {} tasks were added (their ids are printed), the rest were not",
                error.message,
                ids.len()
            );
            Err(error)
        }
    }
}

/// Splits tasks into `AddTasks` requests of at most `max_tasks` tasks and about
/// [`STDIN_BATCH_BYTES`] (a single larger task goes alone).
fn batches(tasks: Vec<NewTask>, max_tasks: usize) -> Vec<Request> {
    let mut requests = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for task in tasks {
        let size = task.title.len()
            + task.payload.len()
            + task.queue.len()
            + task.requires.iter().map(|r| r.len() + 8).sum::<usize>()
            + task.cwd.as_ref().map_or(0, String::len)
            + task
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len() + 16)
                .sum::<usize>()
            + 32;
        if !batch.is_empty() && (batch.len() >= max_tasks || bytes + size > STDIN_BATCH_BYTES) {
            requests.push(Request::AddTasks {
                tasks: std::mem::take(&mut batch),
            });
            bytes = 0;
        }
        bytes += size;
        batch.push(task);
    }
    if !batch.is_empty() {
        requests.push(Request::AddTasks { tasks: batch });
    }
    requests
}

fn list(session: &mut Session, args: ListArgs) -> Result<i32, CliError> {
    let filter = TaskFilter {
        statuses: args.status,
        queue: args.queue,
        agent: args.agent,
        limit: args.limit,
        after: args.after,
    };
    let request = Request::ListTasks(filter);
    let (json, quiet) = (session.json, session.quiet);
    let client = session.client()?;
    // JSON and ids are printed a page at a time, as the pages arrive; the table needs
    // every task to size its columns.
    if json {
        let mut writer = output::TasksJson::new();
        client.list_tasks(&request, &mut |page| Ok(writer.page(&page)?))??;
        writer.finish()?;
    } else if quiet {
        let mut out = io::BufWriter::new(io::stdout().lock());
        client.list_tasks(&request, &mut |page| {
            for task in &page {
                writeln!(out, "{}", task.id)?;
            }
            Ok(())
        })??;
        out.flush()?;
    } else {
        let mut tasks = Vec::new();
        client.list_tasks(&request, &mut |page| {
            tasks.extend(page);
            Ok(())
        })??;
        output::task_table(&tasks)?;
    }
    Ok(OK)
}

fn show(session: &mut Session, id: TaskId, payload_only: bool) -> Result<i32, CliError> {
    let task = expect_task(session.call(Request::GetTask { id })?)?;
    if payload_only {
        let mut out = io::stdout().lock();
        out.write_all(task.payload.as_bytes())?;
        out.flush()?;
    } else if session.json {
        output::task_json(&task)?;
    } else {
        output::task_details(&task)?;
    }
    Ok(OK)
}

fn claim(session: &mut Session, args: ClaimArgs) -> Result<i32, CliError> {
    let wait_ms = args.wait.map_or(0, |wait| wait.as_millis().max(1) as u64);
    let agent = args.agent;
    let response = session.call(Request::Claim {
        agent: agent.clone(),
        queues: args.queue,
        wait_ms,
        done: args.done.map(|id| DoneFirst {
            id,
            result: args.result,
            run: None,
        }),
    })?;
    let task = match response {
        Response::Claimed(Some(task)) => task,
        Response::Claimed(None) => {
            if session.json {
                output::json(&serde_json::Value::Null)?;
            }
            output::note(session.quiet, "nothing to claim");
            return Ok(EMPTY);
        }
        Response::AgentUnavailable { status } => {
            if session.json {
                output::json(&serde_json::Value::Null)?;
            }
            let why = match status {
                AgentStatus::Paused => format!(
                    "agent {agent} is paused: it claims nothing until resumed with \
                     `vapora agent status {agent} idle`"
                ),
                _ => format!(
                    "agent {agent} is {status}: it claims nothing until set \
                     `vapora agent status {agent} idle` (or registered again)"
                ),
            };
            output::note(session.quiet, &format!("nothing claimed: {why}"));
            return Ok(EMPTY);
        }
        Response::AtLimit { max_tasks, running } => {
            if session.json {
                output::json(&json!({
                    "agent": agent,
                    "at_limit": true,
                    "max_tasks": max_tasks,
                    "running": running,
                }))?;
            }
            let ids: Vec<String> = running.iter().map(u64::to_string).collect();
            let what = if running.len() == 1 { "task" } else { "tasks" };
            output::note(
                session.quiet,
                &format!(
                    "agent {agent} is at its limit ({} of {max_tasks}): running {what} {}; \
                     a worker that does not run them can give them back with \
                     `vapora agent heartbeat {agent} --release-others`",
                    running.len(),
                    ids.join(", ")
                ),
            );
            return Ok(AT_LIMIT);
        }
        other => return Err(unexpected(other)),
    };
    if session.json {
        output::task_json(&task)?;
    } else if session.quiet {
        println!("{}", task.id);
    } else {
        output::task_details(&task)?;
    }
    Ok(OK)
}

fn wait(
    session: &mut Session,
    ids: Vec<TaskId>,
    timeout: Option<std::time::Duration>,
) -> Result<i32, CliError> {
    if ids.len() > MAX_WAIT_IDS {
        return Err(CliError::usage(format!(
            "a wait names at most {MAX_WAIT_IDS} tasks, not {}; wait for them in parts",
            ids.len()
        )));
    }
    let progress = Progress::waiting(ids.len(), session.json, session.quiet);
    let (tasks, timed_out) = if progress.is_shown() {
        wait_in_rounds(session, ids, timeout, &progress)?
    } else {
        wait_once(session, ids, timeout)?
    };
    drop(progress);
    if session.json {
        let outcome = |task: &TaskOutcome| json!({"id": task.id, "status": task.status.as_str(), "attempts": task.attempts});
        match tasks.as_slice() {
            [task] => output::json(&outcome(task))?,
            _ => output::json(&tasks.iter().map(outcome).collect::<Vec<_>>())?,
        }
    } else if !session.quiet {
        let mut out = io::BufWriter::new(io::stdout().lock());
        for task in &tasks {
            writeln!(out, "{} {}", task.id, task.status)?;
        }
        out.flush()?;
    }
    if timed_out {
        let pending: Vec<String> = tasks
            .iter()
            .filter(|task| !task.status.is_finished())
            .map(|task| task.id.to_string())
            .collect();
        output::note(
            session.quiet,
            &format!("timed out; still not ended: {}", shorten(&pending)),
        );
        return Ok(EMPTY);
    }
    if tasks.iter().all(|task| task.status == TaskStatus::Done) {
        Ok(OK)
    } else {
        Ok(FAILURE)
    }
}

/// One `Wait` for every task, for as long as the timeout says.
fn wait_once(
    session: &mut Session,
    ids: Vec<TaskId>,
    timeout: Option<std::time::Duration>,
) -> Result<(Vec<TaskOutcome>, bool), CliError> {
    match session.call(Request::Wait {
        ids,
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
    })? {
        Response::Waited { tasks, timed_out } => Ok((tasks, timed_out)),
        other => Err(unexpected(other)),
    }
}

/// As [`wait_once`], in rounds of at most [`WAIT_ROUND`] for the tasks not yet ended, so
/// that the progress line moves as they end. Each round parks in the daemon (no polling);
/// the answer is the same as one wait's: every task, in the order asked.
fn wait_in_rounds(
    session: &mut Session,
    ids: Vec<TaskId>,
    timeout: Option<std::time::Duration>,
    progress: &Progress,
) -> Result<(Vec<TaskOutcome>, bool), CliError> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut latest: HashMap<TaskId, TaskOutcome> = HashMap::new();
    let mut pending = ids.clone();
    let mut timed_out = false;
    loop {
        let left = deadline.map(|at| at.saturating_duration_since(std::time::Instant::now()));
        let round = left.map_or(WAIT_ROUND, |left| left.min(WAIT_ROUND));
        let (tasks, round_timed_out) = wait_once(session, pending, Some(round))?;
        pending = Vec::new();
        for task in tasks {
            if !task.status.is_finished() {
                pending.push(task.id);
            }
            latest.insert(task.id, task);
        }
        let count = |status| latest.values().filter(|t| t.status == status).count();
        progress.ended(
            count(TaskStatus::Done),
            count(TaskStatus::Failed),
            count(TaskStatus::Cancelled),
        );
        if !round_timed_out || pending.is_empty() {
            break;
        }
        if left.is_some_and(|left| left <= round) {
            timed_out = true;
            break;
        }
    }
    if !timed_out {
        progress.finish();
    }
    let tasks = ids
        .iter()
        .filter_map(|id| latest.get(id).cloned())
        .collect();
    Ok((tasks, timed_out))
}

/// The longest one round of a wait with a progress line lasts.
const WAIT_ROUND: std::time::Duration = std::time::Duration::from_millis(500);

/// At most [`SHOWN_IDS`] of `ids`, then how many more: a message stays one short line.
fn shorten(ids: &[String]) -> String {
    if ids.len() <= SHOWN_IDS {
        return ids.join(", ");
    }
    format!(
        "{} and {} more",
        ids[..SHOWN_IDS].join(", "),
        ids.len() - SHOWN_IDS
    )
}

/// How many ids a message names before `and N more`.
const SHOWN_IDS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_id_lists_are_shortened() {
        let ids: Vec<String> = (1..=25).map(|n| n.to_string()).collect();
        assert_eq!(shorten(&ids[..3]), "1, 2, 3");
        assert!(shorten(&ids).ends_with("19, 20 and 5 more"));
    }

    #[test]
    fn batches_are_bounded_by_count_and_size() {
        let small: Vec<NewTask> = (0..2500).map(|i| NewTask::new(format!("t{i}"))).collect();
        let sizes: Vec<usize> = batches(small, STDIN_BATCH)
            .iter()
            .map(|r| match r {
                Request::AddTasks { tasks } => tasks.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        let tasks: Vec<NewTask> = (0..7).map(|i| NewTask::new(format!("t{i}"))).collect();
        assert_eq!(batches(tasks, 3).len(), 3, "a daemon's lower --max-batch");

        let mut big = NewTask::new("big");
        big.payload = "x".repeat(700 * 1024);
        let sizes: Vec<usize> = batches(vec![big; 7], STDIN_BATCH)
            .iter()
            .map(|r| match r {
                Request::AddTasks { tasks } => tasks.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![2, 2, 2, 1]);
    }
}
