//! `vapora agent ...`

use serde_json::json;

use crate::client::cli::AgentCommand;
use crate::client::exit::{CliError, OK};
use crate::client::{Session, output, unexpected};
use crate::protocol::{Agent, Request, Response};

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
                    println!("{}", agent.name);
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
            print_agent(session, &agent, "updated")
        }
        AgentCommand::Heartbeat { name } => {
            let agent = expect_agent(session.call(Request::Heartbeat { name })?)?;
            if session.json {
                output::agent_json(&agent)?;
            }
            Ok(OK)
        }
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
