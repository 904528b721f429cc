//! Running under systemd: socket activation, readiness and status notifications, and a
//! watchdog that proves the daemon still works. Each is a no-op without the environment
//! systemd sets (`LISTEN_FDS`/`LISTEN_PID`, `NOTIFY_SOCKET`, `WATCHDOG_USEC`).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use interprocess::os::unix::uds_local_socket::tokio::Listener;
use sd_notify::NotifyState;

use super::shutdown::Phase;
use super::state::AppState;

/// The listening socket systemd handed over, if any. It belongs to systemd: it is never
/// unlinked, and `--socket` is ignored.
pub fn activated_listener() -> anyhow::Result<Option<Listener>> {
    let mut fds = sd_notify::listen_fds().context("invalid socket activation environment")?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        tracing::warn!("systemd passed more than one socket; using the first");
    }
    // SAFETY: systemd passes these descriptors to us alone, open, starting at fd 3.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let listener = Listener::try_from(owned).context("cannot use the socket systemd passed")?;
    Ok(Some(listener))
}

/// Tells systemd the daemon is ready (the socket listens, the store is loaded).
pub fn ready(state: &AppState) {
    let status = status(state);
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn status(state: &AppState) -> String {
    let snapshot = state.metrics_snapshot();
    let queued: u64 = snapshot
        .tasks
        .iter()
        .filter(|(_, status, _)| *status == crate::protocol::TaskStatus::Queued)
        .map(|(_, _, n)| n)
        .sum();
    let agents: u64 = snapshot.agents.iter().map(|(_, n)| n).sum();
    format!("serving {queued} queued tasks, {agents} agents")
}

/// With `WATCHDOG_USEC` set: at half the interval, checks that the daemon still works (it
/// can take the state locks) and only then pets the watchdog, with a fresh status line. A
/// deadlocked daemon stops petting and systemd restarts it.
pub async fn watchdog(state: Arc<AppState>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = state.shutdown.reached(Phase::Stopping) => return,
        }
        let probe = Arc::clone(&state);
        // The lock check runs on a blocking thread: if the locks are stuck, this task
        // simply never pets the watchdog again.
        let Ok(status) = tokio::task::spawn_blocking(move || status(&probe)).await else {
            return;
        };
        let _ = sd_notify::notify(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
    }
}
