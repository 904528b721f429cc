//! The `vapora` binary: parse arguments, then run the daemon or a client command.

use clap::{CommandFactory, FromArgMatches};
use vapora::client::cli::{Cli, Command};
use vapora::client::exit;
use vapora::daemon::{self, DaemonOptions};

fn main() {
    let cli = parse_arguments();
    let code = match cli.command {
        Command::Daemon(ref args) => {
            if let Some(option) = cli.client_option() {
                eprintln!(
                    "vapora daemon: {option} is an option of the client commands, not of the \
                     daemon (see `vapora daemon --help`)"
                );
                std::process::exit(exit::USAGE);
            }
            init_logging(args.log_format == "json");
            let (socket, default_socket) = match cli.socket() {
                Some(path) => (path, false),
                None => (vapora::paths::default_socket_path(), true),
            };
            let Some(data_dir) = args.data_dir().or_else(vapora::paths::default_data_dir) else {
                eprintln!("vapora daemon: cannot find a home directory; pass --data-dir");
                std::process::exit(exit::USAGE);
            };
            let options = DaemonOptions {
                socket,
                default_socket,
                max_frame: args.max_frame,
                socket_mode: args.socket_mode,
                allow_group: args.allow_group.clone(),
                max_connections: args.max_connections,
                limits: vapora::protocol::limits::Limits {
                    title_bytes: args.max_title,
                    text_bytes: args.max_payload,
                    batch: args.max_batch,
                },
                handshake_timeout: args.handshake_timeout,
                data_dir,
                sync: if args.sync == "full" {
                    vapora::daemon::store::SyncMode::Full
                } else {
                    vapora::daemon::store::SyncMode::Normal
                },
                retain: args.retain,
                max_log: args.max_log,
                metrics_listen: args.metrics_listen.map(|addr| {
                    vapora::daemon::metrics_http::MetricsListen {
                        addr,
                        any_address: args.metrics_listen_any,
                    }
                }),
                lifecycle: vapora::daemon::state::Lifecycle {
                    policy: vapora::daemon::queue::Policy {
                        lease_ms: args.lease.as_millis() as u64,
                        retry_backoff_ms: args.retry_backoff.as_millis() as u64,
                    },
                    heartbeat_ttl: args.heartbeat_ttl,
                    clock: vapora::daemon::clock::Clock::System,
                },
            };
            match daemon::run(options) {
                Ok(()) => exit::OK,
                Err(error) => {
                    // Once, as a log line: stderr is the daemon's log (under systemd, the
                    // journal; with --log-format json, a log shipper's input).
                    tracing::error!("{error:#}");
                    exit::FAILURE
                }
            }
        }
        _ => vapora::client::run(cli),
    };
    std::process::exit(code);
}

/// Logs to stderr; `VAPORA_LOG` (e.g. `debug`, `vapora=trace`) sets the level, default info.
/// Colours only on a terminal; no timestamps when the journal adds its own.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAPORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Under systemd the journal stamps each line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// `vapora add` and `vapora list` mean `vapora task add` and `vapora task list`: say so.
fn suggest_subcommand(error: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::InvalidSubcommand {
        return;
    }
    let Some(ContextValue::String(word)) = error.get(ContextKind::InvalidSubcommand) else {
        return;
    };
    let meant = vapora::client::cli::meant_subcommands(word);
    if !meant.is_empty() {
        error.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::Strings(meant),
        );
    }
}

/// `Cli::parse()`, without freeing clap's command tree: dropping its few hundred
/// allocations one by one took a tenth of a one-shot command's instructions (callgrind,
/// BENCHMARKS.md), and the process exits soon anyway.
fn parse_arguments() -> Cli {
    let mut command = Cli::command();
    let mut matches = match command.try_get_matches_from_mut(std::env::args_os()) {
        Ok(matches) => matches,
        Err(mut error) => {
            suggest_subcommand(&mut error);
            error.exit()
        }
    };
    let cli =
        Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut command).exit());
    std::mem::forget(matches);
    std::mem::forget(command);
    cli
}
