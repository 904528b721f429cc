//! The event stream, on a connection of its own (a subscribed connection carries nothing
//! else): a thread reads it, as `vapora events` does, into an [`Inbox`] that the UI loop
//! empties before it draws. A busy daemon sends thousands of events a second: one
//! message (and one wake-up of the loop) per event cost `top` a third of a CPU at 12,000
//! events a second, so the loop is woken only when the inbox stops being empty, and the
//! inbox keeps the latest [`INBOX_KEPT`] events (more than a screen shows). The thread
//! reads in batches ([`GATHER`]) but keeps up with the daemon, which never has to drop
//! events for `top`.

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Msg;
use crate::client::Connector;
use crate::protocol::{Event, Request, Response};

/// How often the stream looks for a daemon while none answers: one that is not there has
/// nothing to wake us with.
const RETRY: Duration = Duration::from_secs(1);
/// Events kept in the inbox between two draws.
pub const INBOX_KEPT: usize = 1024;
/// How long the thread lets events gather in the socket once it has caught up. Read one
/// by one, each event cost a wake-up and a `poll` and a `recv`: that thread took a fifth
/// of a CPU at 12,000 events a second. The screen shows them ten times a second anyway,
/// and the socket holds far more than this pause lets arrive.
const GATHER: Duration = Duration::from_millis(20);

/// What the stream thread tells the loop.
#[derive(Debug)]
pub enum Update {
    /// Subscribed: events flow.
    Up,
    /// The inbox has events again.
    Events,
    /// The stream is lost, and why; the thread subscribes again once a daemon answers.
    Down(String),
}

/// Events read from the stream and not yet taken by the loop, oldest first; shared by
/// the stream thread and the loop.
#[derive(Debug, Clone, Default)]
pub struct Inbox(Arc<Mutex<VecDeque<Event>>>);

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Event>> {
        // Nothing is left half done under this lock: a panic elsewhere leaves it usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything in the inbox, which is left empty.
    pub fn take(&self) -> VecDeque<Event> {
        std::mem::take(&mut *self.lock())
    }

    /// Adds an event; true when the inbox was empty (the loop must be told).
    fn put(&self, event: Event) -> bool {
        let mut events = self.lock();
        let was_empty = events.is_empty();
        events.push_back(event);
        if events.len() > INBOX_KEPT {
            events.pop_front();
        }
        was_empty
    }
}

/// Starts the thread. It ends when the loop is gone.
pub fn start(connector: Connector, inbox: Inbox, to_loop: SyncSender<Msg>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("top-events".into())
        .spawn(move || follow(&connector, &inbox, &to_loop))?;
    Ok(())
}

fn follow(connector: &Connector, inbox: &Inbox, to_loop: &SyncSender<Msg>) {
    let mut said_down = false;
    loop {
        let reason = match read(connector, inbox, to_loop, &mut said_down) {
            Ok(Ended::LoopGone) => return,
            Ok(Ended::Closed) => "the daemon closed the event stream".to_string(),
            Err(reason) => reason,
        };
        if !said_down {
            said_down = true;
            if to_loop.send(Msg::Stream(Update::Down(reason))).is_err() {
                return;
            }
        }
        std::thread::sleep(RETRY);
    }
}

enum Ended {
    Closed,
    LoopGone,
}

/// Subscribes and hands events on until the stream ends.
fn read(
    connector: &Connector,
    inbox: &Inbox,
    to_loop: &SyncSender<Msg>,
    said_down: &mut bool,
) -> Result<Ended, String> {
    let mut client = connector.connect().map_err(|e| e.message)?;
    client
        .start_stream(&Request::Subscribe {
            queue: None,
            agent: None,
        })
        .map_err(|e| e.message)?;
    match client.next_answer().map_err(|e| e.message)? {
        Some(Ok(Response::Subscribed)) => {}
        Some(Ok(other)) => return Err(format!("unexpected answer from the daemon: {other:?}")),
        Some(Err(refused)) => return Err(refused.message),
        None => return Ok(Ended::Closed),
    }
    *said_down = false;
    if to_loop.send(Msg::Stream(Update::Up)).is_err() {
        return Ok(Ended::LoopGone);
    }
    loop {
        let event = match client.next_answer().map_err(|e| e.message)? {
            Some(Ok(Response::Event(event))) => event,
            Some(Ok(other)) => return Err(format!("unexpected answer from the daemon: {other:?}")),
            Some(Err(refused)) => return Err(refused.message),
            None => return Ok(Ended::Closed),
        };
        if inbox.put(event) && to_loop.send(Msg::Stream(Update::Events)).is_err() {
            return Ok(Ended::LoopGone);
        }
        if client.buffered() == 0 {
            std::thread::sleep(GATHER);
        }
    }
}
