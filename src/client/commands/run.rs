//! `vapora run [task add flags] -- CMD [ARG]...`: adds the task, prints its output as a
//! worker runs it (as `task logs --follow` does), and exits with the command's own exit
//! status, as `tsp -f` and `pueue follow` do.

use crate::client::cli::AddArgs;
use crate::client::exit::{CliError, FAILURE, OK};
use crate::client::{Session, output, unexpected};
use crate::protocol::{AgentStatus, Request, Response, Task, TaskId, TaskStatus};

pub fn run(session: &mut Session, args: AddArgs) -> Result<i32, CliError> {
    if args.stdin || args.jsonl {
        return Err(CliError::usage(
            "vapora run runs one command: --stdin and --jsonl are for `vapora task add`",
        ));
    }
    if args.command.is_empty() && args.payload.is_none() && args.payload_file.is_none() {
        return Err(CliError::usage(
            "give the command to run after --, e.g. `vapora run -- make test`",
        ));
    }
    let (args, dir) = super::task::prepare_add(args)?;
    let id = super::task::add_one(session, &args, &dir)?;
    output::note(session.quiet, &format!("vapora: task {id}"));
    say_if_no_worker(session, id, &args.requires)?;
    match super::logs::logs(session, id, true, None, None) {
        Ok(_) => {}
        // Nobody reads our output any more (`vapora run ... | head`): stop printing, but
        // the exit status is still the command's, once it ends.
        Err(closed) if closed.code == OK => {
            let wait = Request::Wait {
                ids: vec![id],
                timeout_ms: None,
            };
            super::logs::call_following(session, &wait)?;
        }
        Err(error) => return Err(error),
    }
    let task = match super::logs::call_following(session, &Request::GetTask { id })? {
        Response::Task(task) => task,
        other => return Err(unexpected(other)),
    };
    Ok(exit_status(session, &task))
}

/// Says on stderr when no active agent has the capabilities the task requires: the task
/// waits in the queue until a worker comes, and silence would look like a hang.
fn say_if_no_worker(
    session: &mut Session,
    id: TaskId,
    requires: &[String],
) -> Result<(), CliError> {
    let agents = match session.call(Request::ListAgents {
        statuses: vec![AgentStatus::Idle, AgentStatus::Busy],
    })? {
        Response::Agents(agents) => agents,
        other => return Err(unexpected(other)),
    };
    let able = agents
        .iter()
        .any(|agent| requires.iter().all(|cap| agent.capabilities.contains(cap)));
    if !able {
        let which = if requires.is_empty() {
            "no worker is running".to_string()
        } else {
            format!("no running worker has {}", requires.join(", "))
        };
        output::error(&format!(
            "task {id} waits: {which}; start one with `vapora work` (this command goes on \
             waiting)"
        ));
    }
    Ok(())
}

/// The command's own exit status as its worker recorded it (`Task::exit_code`: the exit
/// code, 128 + the signal, 124 for a timeout); 1 when there is none (cancelled, or failed
/// without running a command).
fn exit_status(session: &Session, task: &Task) -> i32 {
    match task.status {
        TaskStatus::Done => task.exit_code.unwrap_or(OK),
        TaskStatus::Failed => task.exit_code.filter(|&code| code != OK).unwrap_or(FAILURE),
        status => {
            output::note(
                session.quiet,
                &format!("vapora: task {} is {status}", task.id),
            );
            FAILURE
        }
    }
}
