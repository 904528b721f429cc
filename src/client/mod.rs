//! The command-line client: synchronous, one connection per invocation.
//!
//! - `cli`: the clap definitions; `commands/`: one file per command group;
//! - `connection`: the blocking `Client` (handshake, `call`, pipelined `call_many`);
//! - `autostart`: starting a daemon when none answers; `owner`: who must answer;
//! - `output`: tables, details and JSON; `escape`: how human output shows control
//!   characters; `exit`: the exit codes;
//! - `work`: `vapora work`, the worker that runs tasks; `top`: `vapora top`, the live
//!   dashboard; `signals`: signals turned into messages for their loops;
//! - `progress`: progress lines on a terminal; `ssh`: reaching a daemon on another host;
//! - `manpages`: the man pages, rendered from `cli`.

pub mod autostart;
pub mod cli;
mod commands;
pub mod connection;
pub mod escape;
pub mod exit;
pub mod manpages;
pub mod output;
mod owner;
mod progress;
mod signals;
mod ssh;
mod top;
mod work;

use std::io;
use std::path::PathBuf;

use cli::{Cli, Command};
use connection::{Client, ConnectError, WrongOwner};
use escape::escape;
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
    /// The uid the daemon must run as: `--expect-uid`, else the user's own on the default
    /// socket, else anyone.
    expected_uid: Option<u32>,
    /// The daemon is on another host, reached through ssh (`--host`).
    ssh: Option<SshRoute>,
    client: Option<Client>,
}

/// A daemon on another host: where, and the `--expect-uid` the remote proxy applies there
/// (as written: a user name means that host's user).
#[derive(Debug, Clone)]
struct SshRoute {
    target: ssh::SshTarget,
    expect_uid: Option<String>,
}

impl Session {
    pub fn new(cli: &Cli) -> Result<Session, CliError> {
        let (socket, default_socket) = match cli.socket() {
            Some(path) => (path, false),
            None => (crate::paths::default_socket_path(), true),
        };
        let ssh = match cli.host().filter(|host| !host.is_empty()) {
            None => None,
            Some(_) if cli.socket_flag_given() => {
                return Err(CliError::usage(
                    "--socket names a socket on this host; with --host, put the remote \
                     socket in the address: ssh://HOST/PATH/TO/SOCKET",
                ));
            }
            Some(host) => Some(SshRoute {
                target: ssh::SshTarget::parse(&host).map_err(CliError::usage)?,
                expect_uid: cli.expect_uid(),
            }),
        };
        let expected_uid = match cli.expect_uid() {
            // Checked by the remote proxy, against that host's users.
            Some(_) if ssh.is_some() => None,
            Some(text) => Some(owner::parse_expected_uid(&text)?),
            None => default_socket.then(crate::paths::current_uid),
        };
        Ok(Session {
            socket,
            default_socket,
            autostart: !cli.no_autostart(),
            json: cli.json,
            quiet: cli.quiet,
            expected_uid,
            ssh,
            client: None,
        })
    }

    /// Where the daemon is, for messages: its socket, or the ssh address.
    pub fn location(&self) -> String {
        match &self.ssh {
            Some(route) => route.target.describe(),
            None => self.socket.display().to_string(),
        }
    }

    /// Whether the daemon is reached through ssh (`--host`).
    pub fn is_remote(&self) -> bool {
        self.ssh.is_some()
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

    /// Forgets the connection (after it failed): the next request connects again.
    pub fn disconnect(&mut self) {
        self.client = None;
    }

    /// The connection to a running daemon, never starting one (for `shutdown`); `None`
    /// when no daemon is running there.
    pub fn running_client(&mut self) -> Result<Option<&mut Client>, CliError> {
        if self.client.is_none() {
            match self.connector().connect_running()? {
                Some(client) => self.client = Some(client),
                None => return Ok(None),
            }
        }
        Ok(self.client.as_mut())
    }

    fn connect(&self, autostart: bool) -> Result<Client, CliError> {
        let mut connector = self.connector();
        connector.autostart = autostart;
        connector.connect()
    }

    /// How this session reaches the daemon, for threads that need connections of their
    /// own (`vapora work`).
    pub fn connector(&self) -> Connector {
        Connector {
            socket: self.socket.clone(),
            default_socket: self.default_socket,
            autostart: self.autostart,
            quiet: self.quiet,
            expected_uid: self.expected_uid,
            ssh: self.ssh.clone(),
            answer_timeout: None,
        }
    }

    /// A new connection besides the session's own (with the same checks and autostart).
    pub fn new_client(&self) -> Result<Client, CliError> {
        self.connector().connect()
    }

    /// Sends one request; an error answer becomes a `CliError` with its exit code.
    pub fn call(&mut self, request: Request) -> Result<Response, CliError> {
        Ok(self.client()?.call(&request)??)
    }
}

/// How to reach the daemon: the socket, who must answer there, whether to start a daemon
/// when none answers. Checks the socket's directory and the answering uid before anything
/// is sent (see SECURITY.md, "Who answers").
#[derive(Debug, Clone)]
pub struct Connector {
    socket: PathBuf,
    default_socket: bool,
    autostart: bool,
    quiet: bool,
    expected_uid: Option<u32>,
    /// Through ssh to another host, instead of the socket.
    ssh: Option<SshRoute>,
    /// Set on every connection made (`Client::set_answer_timeout`).
    answer_timeout: Option<std::time::Duration>,
}

impl Connector {
    /// The same, with every connection's answers bounded by `timeout`.
    pub fn with_answer_timeout(mut self, timeout: std::time::Duration) -> Connector {
        self.answer_timeout = Some(timeout);
        self
    }

    /// The same, never starting a daemon (for connections made again later: a daemon
    /// stopped on purpose stays stopped).
    pub fn without_autostart(mut self) -> Connector {
        self.autostart = false;
        self
    }

    /// The connection to a running daemon, never starting one; `None` when none runs
    /// there.
    pub fn connect_running(&self) -> Result<Option<Client>, CliError> {
        if let Some(route) = &self.ssh {
            return match self.connect_ssh(route) {
                Ok(client) => Ok(Some(client)),
                Err(ConnectError::NoDaemon(_)) => Ok(None),
                Err(error) => Err(ssh_error(error)),
            };
        }
        self.check_socket_dir()?;
        match self.connect_once() {
            Ok(client) => Ok(Some(client)),
            Err(ConnectError::NoDaemon(_)) => Ok(None),
            Err(ConnectError::Other(error)) => Err(error),
            Err(ConnectError::WrongOwner(wrong)) => Err(self.wrong_owner(&wrong)),
        }
    }

    /// On the default socket, refuses a socket directory another user could have made.
    fn check_socket_dir(&self) -> Result<(), CliError> {
        if self.default_socket
            && let Err(e) = crate::paths::check_private_dir(&self.socket)
        {
            // Before connecting and before starting a daemon there.
            return Err(CliError::new(
                UNREACHABLE,
                format!(
                    "not connecting to {}: {e}. Another user may have created that directory \
                     to receive your tasks; nothing was sent",
                    self.socket.display()
                ),
            ));
        }
        Ok(())
    }

    /// Connects, starting a daemon when none answers and autostart is allowed.
    pub fn connect(&self) -> Result<Client, CliError> {
        if let Some(route) = &self.ssh {
            // Never an autostart there: a remote daemon is that host's to run.
            return self.connect_ssh(route).map_err(ssh_error);
        }
        self.check_socket_dir()?;
        let first_error = match self.connect_once() {
            Ok(client) => return Ok(client),
            Err(ConnectError::Other(error)) => return Err(error),
            Err(ConnectError::WrongOwner(wrong)) => return Err(self.wrong_owner(&wrong)),
            Err(ConnectError::NoDaemon(error)) => error,
        };
        if !self.autostart {
            return Err(self.unreachable(&first_error.to_string(), "start it with `vapora daemon`"));
        }
        // One client at a time starts a daemon; those that waited find it running.
        let _start_lock = autostart::lock_start(&self.socket, self.default_socket);
        match self.connect_once() {
            Ok(client) => return Ok(client),
            Err(ConnectError::Other(error)) => return Err(error),
            Err(ConnectError::WrongOwner(wrong)) => return Err(self.wrong_owner(&wrong)),
            Err(ConnectError::NoDaemon(_)) => {}
        }
        let started = autostart::start_daemon(&self.socket, self.default_socket);
        if started.is_ok() && !self.quiet {
            // Said once, when the daemon starts: a socket chosen without its data dir
            // (VAPORA_SOCKET set, VAPORA_DATA_DIR not) opens the default one.
            let data_dir = crate::paths::data_dir_from_env()
                .map_or_else(|| "(none found)".to_string(), |d| d.display().to_string());
            let log = autostart::log_path(&self.socket).display().to_string();
            eprintln!(
                "vapora: started a daemon at {} with its data in {} (log: {})",
                escape(&self.socket.display().to_string()),
                escape(&data_dir),
                escape(&log)
            );
        }
        // Even when our daemon lost a start-up race (to a daemon started by hand), another
        // one may now be answering.
        match self.connect_once() {
            Ok(client) => Ok(client),
            Err(ConnectError::Other(error)) => Err(error),
            Err(ConnectError::WrongOwner(wrong)) => Err(self.wrong_owner(&wrong)),
            Err(ConnectError::NoDaemon(error)) => {
                let reason = started.err().unwrap_or_else(|| error.to_string());
                Err(self.unreachable(&reason, "start it by hand with `vapora daemon` to see why"))
            }
        }
    }

    fn connect_ssh(&self, route: &SshRoute) -> Result<Client, ConnectError> {
        let mut client = Client::connect_ssh(&route.target, route.expect_uid.as_deref())?;
        client.set_answer_timeout(self.answer_timeout);
        Ok(client)
    }

    /// The socket of the daemon running here, after the same checks as a connection's,
    /// with nothing sent on it (for `vapora proxy`); `None` when none runs.
    pub fn open_running_socket(&self) -> Result<Option<std::os::unix::net::UnixStream>, CliError> {
        self.check_socket_dir()?;
        match Client::open_stream(&self.socket, self.expected_uid) {
            Ok(stream) => Ok(Some(stream)),
            Err(ConnectError::NoDaemon(_)) => Ok(None),
            Err(ConnectError::Other(error)) => Err(error),
            Err(ConnectError::WrongOwner(wrong)) => Err(self.wrong_owner(&wrong)),
        }
    }

    fn connect_once(&self) -> Result<Client, ConnectError> {
        let mut client = Client::connect_expecting(&self.socket, self.expected_uid)?;
        client.set_answer_timeout(self.answer_timeout);
        Ok(client)
    }

    fn wrong_owner(&self, wrong: &WrongOwner) -> CliError {
        let advice = if self.default_socket {
            "it is not your daemon: another user may have started it there to receive your \
             tasks. Stop it, or use a socket in a directory only you can write (--socket)"
        } else {
            "check --expect-uid (VAPORA_EXPECT_UID) and the user the daemon runs as"
        };
        CliError::new(
            UNREACHABLE,
            format!(
                "the daemon at {} runs as {}, not {}; nothing was sent to it: {advice}",
                self.socket.display(),
                owner::describe_uid(wrong.found),
                owner::describe_uid(wrong.expected),
            ),
        )
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
}

/// A connection through ssh that failed, as the error the user sees (exit 3 unless the
/// remote daemon itself answered).
fn ssh_error(error: ConnectError) -> CliError {
    match error {
        ConnectError::NoDaemon(reason) => CliError::new(UNREACHABLE, reason.to_string()),
        ConnectError::Other(error) => error,
        ConnectError::WrongOwner(wrong) => CliError::new(
            UNREACHABLE,
            format!(
                "the daemon runs as {}, not {}; nothing was sent to it",
                owner::describe_uid(wrong.found),
                owner::describe_uid(wrong.expected)
            ),
        ),
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
    let mut session = match Session::new(&cli) {
        Ok(session) => session,
        Err(error) => {
            output::error(&error.message);
            return error.code;
        }
    };
    let outcome = match cli.command {
        Command::Task(command) => commands::task::run(&mut session, command),
        Command::Agent(command) => commands::agent::run(&mut session, command),
        Command::Metrics(args) => commands::metrics::run(&mut session, args.format),
        Command::Events { queue, agent } => commands::events::run(&mut session, queue, agent),
        Command::Ping => commands::daemon::ping(&mut session),
        Command::Shutdown => commands::daemon::shutdown(&mut session),
        Command::Completions { shell } => commands::daemon::completions(shell),
        Command::Proxy => commands::proxy::run(&mut session),
        Command::Work(args) => work::run(&mut session, args),
        Command::Run(args) => commands::run::run(&mut session, args),
        Command::Top => top::run(&session),
        Command::Daemon(_) => Err(CliError::usage("`vapora daemon` is not a client command")),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            if !error.message.is_empty() {
                output::error(&error.message);
            }
            error.code
        }
    }
}
