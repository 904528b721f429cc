//! The event stream: committed changes, turned into events and broadcast to subscribers.
//!
//! Events are published by the store writer right after a commit, so a subscriber never
//! sees something that is not durable. The broadcast buffer is bounded: a subscriber that
//! reads too slowly misses events and is told how many (`lagged`); publishing never waits
//! for anyone, so a slow reader cannot slow the daemon.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::change::{Change, RequeueCause};
use crate::protocol::{Event, TaskStatus};

/// Events a subscriber may fall behind by before it starts missing some.
pub const BUFFER: usize = 1024;

pub struct Events {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::Sender::new(BUFFER),
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Publishes the events of committed `changes`.
    pub fn publish<'a>(&self, changes: impl Iterator<Item = &'a Change>) {
        for change in changes {
            if let Some(event) = describe(change) {
                let _ = self.sender.send(Arc::new(event));
            }
        }
    }
}

/// A `lagged` event for a subscriber that missed `dropped` events.
pub fn lagged(dropped: u64, at: u64) -> Event {
    Event {
        at,
        kind: "lagged".into(),
        task: None,
        queue: None,
        agent: None,
        status: None,
        detail: Some(format!(
            "{dropped} events were dropped: this reader was too slow"
        )),
        dropped,
    }
}

fn event(kind: &str, at: u64) -> Event {
    Event {
        at,
        kind: kind.into(),
        task: None,
        queue: None,
        agent: None,
        status: None,
        detail: None,
        dropped: 0,
    }
}

/// The event a committed change stands for, built from the change alone (memory may
/// already have moved on).
fn describe(change: &Change) -> Option<Event> {
    let task_event =
        |kind: &str, id: u64, queue: &str, agent: Option<&String>, status: &str, at: u64| Event {
            task: Some(id),
            queue: Some(queue.to_string()),
            agent: agent.cloned(),
            status: Some(status.to_string()),
            ..event(kind, at)
        };
    Some(match change {
        Change::TaskAdded { task, .. } => Event {
            detail: Some(task.title.clone()),
            ..task_event(
                "task_added",
                task.id,
                &task.queue,
                None,
                task.status.as_str(),
                task.created_at,
            )
        },
        Change::TaskClaimed {
            id,
            queue,
            agent,
            at,
            ..
        } => task_event("task_claimed", *id, queue, Some(agent), "running", *at),
        Change::TaskFinished {
            id,
            queue,
            agent,
            status,
            result,
            error,
            at,
        } => {
            let kind = match status {
                TaskStatus::Done => "task_done",
                TaskStatus::Failed => "task_failed",
                _ => "task_cancelled",
            };
            Event {
                detail: result.clone().or_else(|| error.clone()),
                ..task_event(kind, *id, queue, agent.as_ref(), status.as_str(), *at)
            }
        }
        Change::TaskRequeued {
            id,
            queue,
            agent,
            error,
            cause,
            at,
            ..
        } => Event {
            detail: error.clone(),
            ..task_event(
                kind_for(*cause, "task_requeued"),
                *id,
                queue,
                agent.as_ref(),
                "queued",
                *at,
            )
        },
        Change::TaskScheduled {
            id,
            queue,
            agent,
            run_at,
            error,
            cause,
            at,
            ..
        } => {
            let when = crate::protocol::rfc3339::rfc3339(*run_at);
            Event {
                detail: Some(match error {
                    Some(error) => format!("{error}; runs at {when}"),
                    None => format!("runs at {when}"),
                }),
                ..task_event(
                    kind_for(*cause, "task_scheduled"),
                    *id,
                    queue,
                    agent.as_ref(),
                    "scheduled",
                    *at,
                )
            }
        }
        Change::AgentRegistered { name, at, .. } => Event {
            agent: Some(name.clone()),
            ..event("agent_registered", *at)
        },
        Change::AgentAvailability {
            name,
            availability,
            at,
        } => Event {
            agent: Some(name.clone()),
            status: Some(availability.as_str().into()),
            ..event("agent_status_changed", *at)
        },
        Change::AgentRemoved { name } => Event {
            agent: Some(name.clone()),
            ..event("agent_removed", crate::protocol::types::now_millis())
        },
        Change::LeaseExtended { .. }
        | Change::AgentHeartbeat { .. }
        | Change::TasksPruned { .. }
        | Change::IdsUsed { .. }
        // The outcome event that follows says how it ended.
        | Change::AttemptEnded { .. } => {
            return None;
        }
    })
}

/// A task put back because its lease ran out is a `lease_expired` event; anything else
/// is `otherwise`.
fn kind_for(cause: RequeueCause, otherwise: &'static str) -> &'static str {
    if cause == RequeueCause::LeaseExpired {
        "lease_expired"
    } else {
        otherwise
    }
}

/// Whether `event` passes a subscriber's filters.
pub fn matches(event: &Event, queue: Option<&str>, agent: Option<&str>) -> bool {
    if event.kind == "lagged" {
        return true;
    }
    queue.is_none_or(|q| event.queue.as_deref() == Some(q))
        && agent.is_none_or(|a| event.agent.as_deref() == Some(a))
}
