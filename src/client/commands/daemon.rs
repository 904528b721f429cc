//! `vapora ping`, `vapora shutdown`, `vapora completions`.

use std::io;

use clap::CommandFactory;
use serde_json::json;

use crate::client::cli::Cli;
use crate::client::exit::{CliError, OK, UNREACHABLE};
use crate::client::{Session, output, unexpected};
use crate::protocol::{Request, Response};

pub fn ping(session: &mut Session) -> Result<i32, CliError> {
    let info = match session.call(Request::Ping)? {
        Response::Pong(info) => info,
        other => return Err(unexpected(other)),
    };
    if session.json {
        output::json(&json!({
            "version": info.version,
            "protocol": info.protocol,
            "pid": info.pid,
            "uptime_ms": info.uptime_ms,
            "socket": info.socket,
            "limits": {
                "max_title_bytes": info.limits.title_bytes,
                "max_payload_bytes": info.limits.text_bytes,
                "max_batch": info.limits.batch,
            },
        }))?;
    } else if !session.quiet {
        println!(
            "vapora daemon {} (protocol {}), pid {}, up {}, socket {}",
            output::escape(&info.version),
            info.protocol,
            info.pid,
            humantime::format_duration(std::time::Duration::from_secs(info.uptime_ms / 1000)),
            output::escape(&info.socket)
        );
    }
    Ok(OK)
}

/// Asks the daemon to stop and returns once its socket is gone.
pub fn shutdown(session: &mut Session) -> Result<i32, CliError> {
    let socket = session.location();
    let Some(client) = session.running_client()? else {
        return Err(CliError::new(
            UNREACHABLE,
            format!("no vapora daemon is running at {socket}; nothing to stop"),
        ));
    };
    match client.call(&Request::Shutdown)?? {
        Response::ShuttingDown => {}
        other => return Err(unexpected(other)),
    }
    client.wait_closed();
    if session.json {
        output::json(&json!({ "stopped": true }))?;
    }
    output::note(session.quiet, "daemon stopped");
    Ok(OK)
}

pub fn completions(shell: clap_complete::Shell) -> Result<i32, CliError> {
    clap_complete::generate(shell, &mut Cli::command(), "vapora", &mut io::stdout());
    Ok(OK)
}
