//! The daemon: owns all state and serves clients on a Unix socket.
//!
//! `run` binds the socket, accepts connections (one tokio task each) until a shutdown is
//! requested (SIGINT, SIGTERM or the `shutdown` request), then stops accepting, removes the
//! socket, lets in-flight requests finish and exits. With `--metrics-listen` it also serves
//! its metrics to Prometheus over HTTP (`metrics_http`), until the same shutdown.

pub mod auth;
pub mod availability;
pub mod change;
pub mod clock;
mod connection;
pub mod datadir;
mod events;
mod handlers;
mod lifecycle;
mod lock_hold;
pub mod logs;
pub mod metrics;
pub mod metrics_http;
mod ownership;
pub mod parked;
pub mod queue;
mod record;
pub mod registry;
mod retention;
mod shutdown;
mod socket;
pub mod state;
pub mod store;
mod systemd;

use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;

use shutdown::Phase;
use state::AppState;

use crate::readiness::READY_FD_ENV;

/// How long in-flight requests get to finish after a shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub socket: PathBuf,
    /// Whether `socket` is the default path, whose directory must be private to this user.
    pub default_socket: bool,
    pub max_frame: usize,
    /// Permission bits of the socket file (0o600 unless a group is let in).
    pub socket_mode: u32,
    /// Who besides the daemon's user and root may connect.
    pub allow_group: Option<String>,
    /// Open connections beyond this are told so and closed.
    pub max_connections: usize,
    /// Size limits on titles, payloads and batches.
    pub limits: crate::protocol::limits::Limits,
    /// How long a client has to send its handshake.
    pub handshake_timeout: Duration,
    /// Where `vapora.db` and the lock file live.
    pub data_dir: PathBuf,
    pub sync: store::SyncMode,
    /// Finished tasks are deleted this long after they finished.
    pub retain: Duration,
    pub lifecycle: state::Lifecycle,
    /// Most bytes of output kept per task (`--max-log`).
    pub max_log: u64,
    /// Where to serve Prometheus metrics over HTTP (`--metrics-listen`), if anywhere.
    pub metrics_listen: Option<metrics_http::MetricsListen>,
}

/// Runs the daemon in the foreground until it is told to stop.
pub fn run(options: DaemonOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Everything runs on the worker threads, none of it on this one: the accept loop on
    // `block_on`'s thread took a connection through three threads (the worker whose epoll
    // saw it, this thread to accept, a worker to serve it), a cross-CPU wake-up each, which
    // was 0.3 ms of a one-shot command's 1.2 ms. Accepted on a worker, a connection's task
    // runs next on that same worker.
    runtime.block_on(async {
        tokio::spawn(serve(options))
            .await
            .context("the daemon's main task panicked")?
    })
}

async fn serve(options: DaemonOptions) -> anyhow::Result<()> {
    let signals = catch_stop_signals();
    options
        .limits
        .check_fits(options.max_frame)
        .map_err(anyhow::Error::msg)?;
    if let Some(listen) = &options.metrics_listen {
        listen.check()?;
    }
    let access = Arc::new(auth::Access::new(options.allow_group.as_deref())?);
    let budget = connection::FrameBudget::new(
        connection::FRAMES_IN_FLIGHT.saturating_mul(options.max_frame),
    );
    let mut lock = datadir::lock(&options.data_dir)?;
    let db_path = options.data_dir.join("vapora.db");
    let (store, snapshot, writer) = store::Store::open(&db_path, options.sync)
        .with_context(|| format!("cannot open {}", db_path.display()))?;
    lock.record_pid();
    let logs_dir = options.data_dir.join("logs");
    let logs = logs::Logs::open(logs_dir.clone(), options.max_log)
        .with_context(|| format!("cannot create {}", logs_dir.display()))?;
    // A task stored under larger limits could never be answered (and a claim of it would
    // fail forever at the head of its lane): refuse to start rather than serve it.
    if let Some((id, size)) = snapshot.tasks.task_larger_than(options.max_frame) {
        anyhow::bail!(
            "task {id} is about {size} bytes, more than --max-frame {}: start with a larger \
             --max-frame",
            options.max_frame
        );
    }
    let (listener, socket_path) = match systemd::activated_listener()? {
        Some(listener) => {
            let path = listener
                .inner()
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(Path::to_path_buf))
                .unwrap_or_else(|| options.socket.clone());
            tracing::info!(socket = %path.display(), "using the socket systemd passed (--socket ignored)");
            (listener, path)
        }
        None => (
            socket::bind(&options.socket, options.default_socket, options.socket_mode)?,
            options.socket.clone(),
        ),
    };
    // After the socket, so that a second daemon is told about the socket first; before
    // readiness, so that a started daemon serves what it was asked to.
    let metrics_listener = match &options.metrics_listen {
        Some(listen) => Some(listen.bind().await?),
        None => None,
    };
    let state = AppState::new(
        socket_path.display().to_string(),
        snapshot,
        store,
        options.retain,
        options.lifecycle,
        options.limits,
    );
    state.set_logs(logs);
    // The socket file's own mode (systemd's SocketMode= when it passed the socket).
    let open_to_others = std::fs::metadata(&socket_path).map_or(true, |meta| {
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0
    });
    state.set_admits_others(open_to_others || options.allow_group.is_some());
    let recovery: std::sync::Weak<dyn store::Recovery> = {
        let weak: std::sync::Weak<AppState> = Arc::downgrade(&state);
        weak
    };
    writer
        .spawn(&state.store, recovery)
        .context("cannot start the store writer")?;
    tracing::info!(
        database = %db_path.display(),
        queued = state.metrics_snapshot().tasks.iter().filter(|(_, s, _)| *s == crate::protocol::TaskStatus::Queued).map(|(_, _, n)| n).sum::<u64>(),
        "state loaded"
    );
    let retention = tokio::spawn(retention::run(Arc::clone(&state)));
    let lifecycle = tokio::spawn(lifecycle::run(Arc::clone(&state)));
    let metrics_endpoint = metrics_listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(url = %format!("http://{addr}/metrics"), "serving Prometheus metrics");
        }
        tokio::spawn(metrics_http::serve(listener, Arc::clone(&state)))
    });
    tracing::info!(
        socket = %socket_path.display(),
        pid = std::process::id(),
        version = env!("CARGO_PKG_VERSION"),
        "vapora daemon listening"
    );
    signal_ready();
    systemd::ready(&state);
    let watchdog = tokio::spawn(systemd::watchdog(Arc::clone(&state)));
    tokio::spawn(stop_on_signals(Arc::clone(&state), signals));

    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = interprocess::local_socket::traits::tokio::Listener::accept(&listener) => match accepted {
                Ok(stream) => {
                    let limits = connection::Admission {
                        access: Arc::clone(&access),
                        max_frame: options.max_frame,
                        handshake_timeout: options.handshake_timeout,
                        over_capacity: connections.len() >= options.max_connections,
                        budget: Arc::clone(&budget),
                    };
                    connections.spawn(connection::serve(stream, Arc::clone(&state), limits));
                }
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = state.shutdown.reached(Phase::Stopping) => break,
        }
    }

    systemd::stopping();
    drop(listener); // removes the socket file (unless systemd owns it)
    state.shutdown.advance(Phase::Closed);
    tracing::info!(
        connections = connections.len(),
        "stopped accepting; finishing in-flight requests"
    );
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "connections still open after {DRAIN_TIMEOUT:?}; closing them"
        );
        connections.shutdown().await;
    }
    retention.abort();
    watchdog.abort();
    lifecycle.abort();
    if let Some(endpoint) = metrics_endpoint {
        endpoint.abort();
    }
    // Everything acknowledged is committed already; this waits for the writer to finish
    // what is queued (e.g. a release whose commit nobody awaited) and stop.
    let closing = Arc::clone(&state);
    let _ = tokio::task::spawn_blocking(move || closing.store.close()).await;
    tracing::info!("vapora daemon stopped");
    Ok(())
}

/// SIGINT and SIGTERM, caught from the moment this returns: installed first thing at
/// start-up, so that a signal sent at any time after (even the instant readiness is
/// announced) stops the daemon cleanly instead of killing it.
type StopSignals = Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>;

fn catch_stop_signals() -> StopSignals {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => Some((interrupt, terminate)),
        _ => {
            tracing::error!(
                "cannot install signal handlers; stop the daemon with `vapora shutdown`"
            );
            None
        }
    }
}

async fn stop_on_signals(state: Arc<AppState>, signals: StopSignals) {
    let Some((mut interrupt, mut terminate)) = signals else {
        return;
    };
    let mut first = true;
    loop {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        if first {
            tracing::info!(
                signal = name,
                "shutting down (a second signal stops at once)"
            );
            state.begin_shutdown();
            first = false;
        } else {
            tracing::warn!(signal = name, "second signal: exiting without waiting");
            std::process::exit(1);
        }
    }
}

/// Tells an autostarting client that the socket accepts connections.
fn signal_ready() {
    let Some(fd) = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|value| value.parse::<i32>().ok())
        .filter(|&fd| fd > 2 && is_pipe(fd))
    else {
        return;
    };
    // SAFETY: `fd` is an open pipe (checked above) handed to us for exactly this purpose;
    // we take ownership and close it after writing.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = writeln!(pipe, "ready");
}

fn is_pipe(fd: i32) -> bool {
    // SAFETY: fstat writes into a zeroed stat buffer we own; an invalid fd returns -1.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut stat) == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFIFO
    }
}
