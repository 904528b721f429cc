//! `vapora agent ...`

use serde_json::json;

use crate::client::cli::AgentCommand;
use crate::client::exit::{CliError, FAILURE, OK, UNREACHABLE};
use crate::client::{Session, output, unexpected};
use crate::protocol::{Agent, AgentStatus, Renew, Request, Response, TaskId};

pub fn run(session: &mut Session, command: AgentCommand) -> Result<i32, CliError> {
    match command {
        AgentCommand::Register {
            name,
            capabilities,
            max_tasks,
        } => {
            let agent = expect_agent(session.call(Request::RegisterAgent {
                name,
                capabilities,
                max_tasks,
            })?)?;
            print_agent(session, &agent, "registered")
        }
        AgentCommand::List { status } => {
            let agents = match session.call(Request::ListAgents { statuses: status })? {
                Response::Agents(agents) => agents,
                other => return Err(unexpected(other)),
            };
            if session.json {
                output::agents_json(&agents)?;
            } else if session.quiet {
                for agent in &agents {
                    println!("{}", output::escape(&agent.name));
                }
            } else {
                output::agent_table(&agents)?;
            }
            Ok(OK)
        }
        AgentCommand::Show { name } => {
            let agent = expect_agent(session.call(Request::GetAgent { name })?)?;
            if session.json {
                output::agent_json(&agent)?;
            } else {
                output::agent_details(&agent)?;
            }
            Ok(OK)
        }
        AgentCommand::Status { name, status } => {
            let agent = expect_agent(session.call(Request::SetAgentStatus { name, status })?)?;
            // Says what happened, in terms of what the agent does now: idle and busy follow
            // the tasks it runs.
            let what = match agent.status {
                AgentStatus::Paused => "paused: it claims nothing more; its running tasks carry on",
                AgentStatus::Offline => {
                    "offline: it claims nothing more, and any tasks it ran went back to the queue"
                }
                AgentStatus::Idle => "active (idle: it runs no task)",
                AgentStatus::Busy => "active (busy: it runs a task)",
            };
            if session.json {
                output::agent_json(&agent)?;
            } else {
                output::note(session.quiet, &format!("agent {} is {what}", agent.name));
            }
            Ok(OK)
        }
        AgentCommand::Heartbeat {
            name,
            tasks,
            release_others,
            every: None,
        } => heartbeat(session, name, tasks, release_others),
        AgentCommand::Heartbeat {
            name,
            tasks,
            every: Some(every),
            ..
        } => heartbeat_every(session, name, tasks, every),
        AgentCommand::Remove { name } => {
            let requeued = match session.call(Request::RemoveAgent { name: name.clone() })? {
                Response::AgentRemoved { requeued } => requeued,
                other => return Err(unexpected(other)),
            };
            if session.json {
                output::json(&json!({ "name": name, "requeued": requeued }))?;
            } else {
                let ids: Vec<String> = requeued.iter().map(u64::to_string).collect();
                let tail = if ids.is_empty() {
                    String::new()
                } else {
                    format!("; tasks {} back in the queue", ids.join(", "))
                };
                output::note(session.quiet, &format!("agent {name} removed{tail}"));
            }
            Ok(OK)
        }
    }
}

fn heartbeat(
    session: &mut Session,
    name: String,
    tasks: Vec<TaskId>,
    release_others: bool,
) -> Result<i32, CliError> {
    let renew = match (tasks.is_empty(), release_others) {
        (true, false) => Renew::AllHeld,
        (false, false) => Renew::Named,
        (_, true) => Renew::NamedOnly,
    };
    let report = match session.call(Request::Heartbeat { name, tasks, renew })? {
        Response::Heartbeat(report) => report,
        other => return Err(unexpected(other)),
    };
    if session.json {
        output::heartbeat_json(&report)?;
    }
    let agent = &report.agent.name;
    for lost in &report.not_held {
        let now = match (&lost.status, &lost.agent) {
            (None, _) => "there is no such task".to_string(),
            (Some(_), Some(other)) => format!("agent {other} runs it"),
            (Some(status), None) => format!("it is {status}"),
        };
        output::note(
            session.quiet,
            &format!(
                "agent {agent} does not hold task {} ({now}): stop running it",
                lost.id
            ),
        );
    }
    if !report.released.is_empty() {
        output::note(
            session.quiet,
            &format!(
                "agent {agent} held {} but does not run {}: back in the queue",
                task_list(&report.released),
                if report.released.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            ),
        );
    }
    Ok(if report.not_held.is_empty() {
        OK
    } else {
        FAILURE
    })
}

/// `agent heartbeat --every DUR`: a heartbeat now and every `every` after, until killed
/// or until a named task is no longer the agent's (exit 1: the worker should stop running
/// it). While no daemon answers (a restart), it says so once and tries again at the next
/// beat, on a new connection.
fn heartbeat_every(
    session: &mut Session,
    name: String,
    tasks: Vec<TaskId>,
    every: std::time::Duration,
) -> Result<i32, CliError> {
    let mut unreachable_said = false;
    loop {
        match heartbeat(session, name.clone(), tasks.clone(), false) {
            Ok(OK) => unreachable_said = false,
            Ok(code) => return Ok(code),
            Err(error) if error.code == UNREACHABLE => {
                if !unreachable_said {
                    output::note(
                        session.quiet,
                        &format!("{}; trying again every {every:?}", error.message),
                    );
                    unreachable_said = true;
                }
                session.disconnect();
            }
            Err(error) => return Err(error),
        }
        std::thread::sleep(every);
    }
}

/// `task 3` or `tasks 3, 4`.
fn task_list(ids: &[TaskId]) -> String {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    match ids.len() {
        1 => format!("task {}", ids[0]),
        _ => format!("tasks {}", ids.join(", ")),
    }
}

fn expect_agent(response: Response) -> Result<Agent, CliError> {
    match response {
        Response::Agent(agent) => Ok(agent),
        other => Err(unexpected(other)),
    }
}

fn print_agent(session: &Session, agent: &Agent, what: &str) -> Result<i32, CliError> {
    if session.json {
        output::agent_json(agent)?;
    } else {
        output::note(
            session.quiet,
            &format!("agent {} {what} ({})", agent.name, agent.status),
        );
    }
    Ok(OK)
}
