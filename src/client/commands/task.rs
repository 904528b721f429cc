//! `vapora task ...`

use std::io::{self, BufRead, Write};

use serde::Deserialize;
use serde_json::json;

use crate::client::cli::{AddArgs, ClaimArgs, ListArgs, TaskCommand};
use crate::client::exit::{CliError, EMPTY, FAILURE, OK};
use crate::client::{Session, output, unexpected};
use crate::protocol::limits::{Limits, MAX_BATCH};
use crate::protocol::types::now_millis;
use crate::protocol::{
    DoneFirst, NewTask, Request, Response, Task, TaskFilter, TaskId, TaskStatus,
};

/// Most tasks per request when adding from stdin.
const STDIN_BATCH: usize = 1000;
const _: () = assert!(STDIN_BATCH <= MAX_BATCH);
/// Roughly how many bytes of task data per request: well below the smallest frame cap a
/// daemon may run with (4 MiB), whatever the payload sizes.
const STDIN_BATCH_BYTES: usize = 2 * 1024 * 1024;

pub fn run(session: &mut Session, command: TaskCommand) -> Result<i32, CliError> {
    match command {
        TaskCommand::Add(args) if args.stdin => add_stdin(session, args),
        TaskCommand::Add(args) => add(session, args),
        TaskCommand::List(args) => list(session, args),
        TaskCommand::Show { id, payload } => show(session, id, payload),
        TaskCommand::Claim(args) => claim(session, args),
        TaskCommand::Done { id, result, agent } => {
            let task = expect_task(session.call(Request::Complete { id, result, agent })?)?;
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
            })?)?;
            let message = if matches!(task.status, TaskStatus::Queued | TaskStatus::Scheduled) {
                let when = task
                    .run_at
                    .filter(|_| task.status == TaskStatus::Scheduled)
                    .map(|at| format!(", retried at {}", output::rfc3339(at)))
                    .unwrap_or_default();
                format!(
                    "task {id} failed; {} of {} attempts used{when}",
                    task.attempts, task.max_attempts
                )
            } else {
                format!("task {id} failed")
            };
            report(session, &task, &message)
        }
        TaskCommand::Cancel { id } => {
            let task = expect_task(session.call(Request::Cancel { id })?)?;
            report(session, &task, &format!("task {id} cancelled"))
        }
        TaskCommand::Retry { id } => {
            let task = expect_task(session.call(Request::Retry { id })?)?;
            report(session, &task, &format!("task {id} queued again"))
        }
        TaskCommand::Wait { ids, timeout } => wait(session, ids, timeout),
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
    }
}

fn add(session: &mut Session, args: AddArgs) -> Result<i32, CliError> {
    let mut task = new_task(&args, args.title.clone().unwrap_or_default());
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
            eprintln!("vapora: task {id} was added cancelled: {reason}");
        }
    }
    if session.json {
        output::json(&json!({ "id": id }))?;
    } else {
        println!("{id}");
    }
    Ok(OK)
}

fn expect_added(response: Response) -> Result<Vec<TaskId>, CliError> {
    match response {
        Response::Added(ids) => Ok(ids),
        other => Err(unexpected(other)),
    }
}

/// A `--jsonl` line. Missing fields take the values of the command-line flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTask {
    title: String,
    payload: Option<String>,
    priority: Option<i32>,
    queue: Option<String>,
    requires: Option<Vec<String>>,
    max_attempts: Option<u32>,
    after: Option<Vec<u64>>,
}

/// Parses one input line into a task validated against the daemon's `limits`.
fn parse_line(args: &AddArgs, limits: &Limits, line: &str) -> Result<NewTask, String> {
    let mut task = if args.jsonl {
        let fields: JsonTask =
            serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let mut task = new_task(args, fields.title);
        if let Some(payload) = fields.payload {
            task.payload = payload;
        }
        if let Some(priority) = fields.priority {
            task.priority = priority;
        }
        if let Some(queue) = fields.queue {
            task.queue = queue;
        }
        if let Some(requires) = fields.requires {
            task.requires = requires;
        }
        if let Some(max_attempts) = fields.max_attempts {
            task.max_attempts = max_attempts;
        }
        if let Some(after) = fields.after {
            task.after = after;
        }
        task
    } else {
        new_task(args, line.to_string())
    };
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
fn add_stdin(session: &mut Session, args: AddArgs) -> Result<i32, CliError> {
    let mut tasks = Vec::new();
    let mut bad_lines = 0usize;
    for (index, line) in io::stdin().lock().lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| CliError::usage(format!("line {number}: cannot read: {e}")))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if args.jsonl && line.trim().is_empty() {
            continue;
        }
        match parse_line(&args, &Limits::CEILINGS, line) {
            Ok(task) => tasks.push((number, task)),
            Err(message) => {
                bad_lines += 1;
                eprintln!("vapora: line {number}: {message}");
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
            eprintln!("vapora: line {number}: {message}");
        }
    }
    if bad_lines > 0 {
        return Err(CliError::usage(format!(
            "{bad_lines} bad line(s) for this daemon's limits (see `vapora ping --json`); \
             no tasks were added"
        )));
    }
    let tasks = tasks.into_iter().map(|(_, task)| task).collect();
    let requests = batches(tasks, STDIN_BATCH.min(limits.batch as usize));
    let mut answers = Vec::with_capacity(requests.len());
    let transport_error = session.client()?.call_many(&requests, &mut answers).err();
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
    let response = session.call(Request::Claim {
        agent: args.agent,
        queues: args.queue,
        wait_ms,
        done: args.done.map(|id| DoneFirst {
            id,
            result: args.result,
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
    let response = session.call(Request::Wait {
        ids: ids.clone(),
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
    })?;
    let (tasks, timed_out) = match response {
        Response::Waited { tasks, timed_out } => (tasks, timed_out),
        other => return Err(unexpected(other)),
    };
    if session.json {
        match tasks.as_slice() {
            [task] => output::task_json(task)?,
            _ => output::tasks_json(&tasks)?,
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
            &format!("timed out; still not ended: {}", pending.join(", ")),
        );
        return Ok(EMPTY);
    }
    if tasks.iter().all(|task| task.status == TaskStatus::Done) {
        Ok(OK)
    } else {
        Ok(FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
