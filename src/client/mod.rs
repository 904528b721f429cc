//! The command-line client: synchronous, one connection per invocation.
//!
//! - `cli`: the clap definitions; `commands/`: one file per command group;
//! - `connection`: the blocking `Client` (handshake, `call`, pipelined `call_many`);
//! - `autostart`: starting a daemon when none answers;
//! - `output`: tables, details and JSON; `exit`: the exit codes.

pub mod autostart;
pub mod cli;
mod commands;
pub mod connection;
pub mod exit;
pub mod output;

use std::io;
use std::path::PathBuf;

use cli::{Cli, Command};
use connection::{Client, ConnectError};
use exit::{CliError, FAILURE, UNREACHABLE};

use crate::protocol::{Request, Response};

/// What every command needs: where the daemon is, how to print, and (once made) the
/// connection.
pub struct Session {
    pub socket: PathBuf,
    default_socket: bool,
    autostart: bool,
    pub json: bool,
    pub quiet: bool,
    client: Option<Client>,
}

impl Session {
    pub fn new(cli: &Cli) -> Session {
        let (socket, default_socket) = match &cli.socket {
            Some(path) => (path.clone(), false),
            None => (crate::paths::default_socket_path(), true),
        };
        Session {
            socket,
            default_socket,
            autostart: !cli.no_autostart,
            json: cli.json,
            quiet: cli.quiet,
            client: None,
        }
    }

    /// The connection, made on first use; starts a daemon if none answers and autostart
    /// is allowed.
    pub fn client(&mut self) -> Result<&mut Client, CliError> {
        if self.client.is_none() {
            let client = self.connect(self.autostart)?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| CliError::new(FAILURE, "no connection"))
    }

    /// Connects without ever starting a daemon (for `shutdown`).
    pub fn existing_client(&mut self) -> Result<&mut Client, CliError> {
        self.autostart = false;
        self.client()
    }

    fn connect(&self, autostart: bool) -> Result<Client, CliError> {
        let first_error = match Client::connect(&self.socket) {
            Ok(client) => return Ok(client),
            Err(ConnectError::Other(error)) => return Err(error),
            Err(ConnectError::NoDaemon(error)) => error,
        };
        if !autostart {
            return Err(self.unreachable(&first_error.to_string(), "start it with `vapora daemon`"));
        }
        let started = autostart::start_daemon(&self.socket, self.default_socket);
        // Even when our daemon lost a start-up race, another one may now be answering.
        match Client::connect(&self.socket) {
            Ok(client) => Ok(client),
            Err(ConnectError::Other(error)) => Err(error),
            Err(ConnectError::NoDaemon(error)) => {
                let reason = started.err().unwrap_or_else(|| error.to_string());
                Err(self.unreachable(&reason, "start it by hand with `vapora daemon` to see why"))
            }
        }
    }

    fn unreachable(&self, reason: &str, advice: &str) -> CliError {
        CliError::new(
            UNREACHABLE,
            format!(
                "no vapora daemon answers at {} ({reason}); {advice}",
                self.socket.display()
            ),
        )
    }

    /// Sends one request; an error answer becomes a `CliError` with its exit code.
    pub fn call(&mut self, request: Request) -> Result<Response, CliError> {
        Ok(self.client()?.call(&request)??)
    }
}

/// The error for an answer of the wrong kind (a daemon bug or version skew).
pub fn unexpected(response: Response) -> CliError {
    CliError::new(
        FAILURE,
        format!("unexpected answer from the daemon: {response:?}"),
    )
}

impl From<io::Error> for CliError {
    fn from(error: io::Error) -> CliError {
        if error.kind() == io::ErrorKind::BrokenPipe {
            // The reader of our output went away (`vapora task list | head`): not an error.
            return CliError::new(exit::OK, "");
        }
        CliError::new(FAILURE, format!("cannot write output: {error}"))
    }
}

/// Runs a client command and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let mut session = Session::new(&cli);
    let outcome = match cli.command {
        Command::Task(command) => commands::task::run(&mut session, command),
        Command::Agent(command) => commands::agent::run(&mut session, command),
        Command::Metrics(args) => commands::metrics::run(&mut session, args.format),
        Command::Events { queue, agent } => commands::events::run(&mut session, queue, agent),
        Command::Ping => commands::daemon::ping(&mut session),
        Command::Shutdown => commands::daemon::shutdown(&mut session),
        Command::Completions { shell } => commands::daemon::completions(shell),
        Command::Daemon(_) => Err(CliError::usage("`vapora daemon` is not a client command")),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            if !error.message.is_empty() {
                eprintln!("vapora: {}", error.message);
            }
            error.code
        }
    }
}
