//! Sending each task's output to the daemon without ever holding up the task.
//!
//! The thread reading a task's output hands each chunk to one sender thread over a bounded
//! channel and reads on (a task that writes faster than the daemon takes its output waits
//! on its pipe). The sender, on a connection of its own, sends what it has (batched, at most
//! [`MAX_OUTPUT_CHUNK`] per request) as `AppendOutput`. While no daemon answers, it keeps up
//! to [`MAX_BUFFERED`] bytes per task and tries again every second; beyond that it drops
//! the oldest and sends a marker line saying how much in their place. Output is never
//! allowed to hold back an outcome: a reader whose task ended waits a bounded time for its
//! output to be sent, then reports anyway.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use super::super::Connector;
use super::super::connection::Client;
use crate::protocol::limits::MAX_OUTPUT_CHUNK;
use crate::protocol::{Request, TaskId};

/// Output kept per task while no daemon answers.
pub const MAX_BUFFERED: usize = 1024 * 1024;
/// Between two tries while no daemon answers.
const RETRY: Duration = Duration::from_secs(1);
/// How long a task's reader waits for its output to be sent before its outcome is reported.
pub const FLUSH_WAIT: Duration = Duration::from_secs(5);

pub enum Message {
    Chunk {
        id: TaskId,
        attempt: u32,
        data: Vec<u8>,
    },
    /// The task's output ended: `done` is told once what was read is sent (or refused). The
    /// reader waits for that at most [`FLUSH_WAIT`], so that a daemon that stays away never
    /// holds back the outcome.
    End {
        id: TaskId,
        attempt: u32,
        done: Sender<()>,
    },
}

/// One attempt of one task: output is kept and sent per attempt, so that a task handed
/// to this worker again while the output of its earlier attempt still waits for the
/// daemon never mixes the two.
type Run = (TaskId, u32);

#[derive(Default)]
struct Buffer {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Dropped since the last send, for the marker line.
    dropped: u64,
    ended: bool,
}

/// Chunks on their way to the sender thread, and the most it takes into one round of
/// sending. A bounded channel: a task that writes faster than its output reaches the
/// daemon waits on its pipe, as it would on a slow terminal, instead of the worker's
/// memory growing. A round holds less than a task's buffer, so output is dropped only
/// while no daemon answers, never because a task wrote fast.
const IN_FLIGHT: usize = 8;
const _: () = assert!((IN_FLIGHT + 1) * super::process::READ_CHUNK < MAX_BUFFERED);

/// Starts the sender thread; its channel takes the chunks of every task.
pub fn spawn(connector: Connector, agent: String) -> SyncSender<Message> {
    let (sender, received) = mpsc::sync_channel(IN_FLIGHT);
    std::thread::spawn(move || Outbox::new(connector, agent).run(received));
    sender
}

struct Outbox {
    connector: Connector,
    agent: String,
    client: Option<Client>,
    /// Set while no daemon answers: when to try again.
    retry_at: Option<Instant>,
    buffers: BTreeMap<Run, Buffer>,
    /// Readers of ended tasks waiting for their output to be sent.
    flushes: Vec<(Run, Sender<()>)>,
}

impl Outbox {
    fn new(connector: Connector, agent: String) -> Outbox {
        Outbox {
            connector,
            agent,
            client: None,
            retry_at: None,
            buffers: BTreeMap::new(),
            flushes: Vec::new(),
        }
    }

    fn run(mut self, received: Receiver<Message>) {
        loop {
            let message = match self.retry_at {
                Some(at) => {
                    match received.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(message) => Some(message),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match received.recv() {
                    Ok(message) => Some(message),
                    Err(_) => return,
                },
            };
            // What is waiting, up to a round's worth: one request carries many chunks.
            for message in message
                .into_iter()
                .chain(received.try_iter().take(IN_FLIGHT))
            {
                match message {
                    Message::Chunk { id, attempt, data } => self.keep(id, attempt, data),
                    Message::End { id, attempt, done } => {
                        self.buffers.entry((id, attempt)).or_default().ended = true;
                        self.flushes.push(((id, attempt), done));
                    }
                }
            }
            if self.retry_at.is_none_or(|at| Instant::now() >= at) {
                self.retry_at = None;
                if self.send_all().is_err() {
                    self.retry_at = Some(Instant::now() + RETRY);
                }
            }
            self.buffers
                .retain(|_, buffer| !(buffer.ended && buffer.chunks.is_empty()));
            // A reader that gave up waiting is gone; telling it is harmless.
            let buffers = &self.buffers;
            self.flushes.retain(|(run, done)| {
                let sent = buffers.get(run).is_none_or(|b| b.chunks.is_empty());
                if sent {
                    let _ = done.send(());
                }
                !sent
            });
        }
    }

    fn keep(&mut self, id: TaskId, attempt: u32, data: Vec<u8>) {
        let buffer = self.buffers.entry((id, attempt)).or_default();
        buffer.bytes += data.len();
        buffer.chunks.push_back(data);
        while buffer.bytes > MAX_BUFFERED {
            let Some(oldest) = buffer.chunks.pop_front() else {
                break;
            };
            buffer.bytes -= oldest.len();
            buffer.dropped += oldest.len() as u64;
        }
    }

    /// Sends every buffered chunk, task by task, in order. `Err` when no daemon answers.
    fn send_all(&mut self) -> Result<(), ()> {
        let runs: Vec<Run> = self
            .buffers
            .iter()
            .filter(|(_, buffer)| !buffer.chunks.is_empty())
            .map(|(run, _)| *run)
            .collect();
        // A connection kept from before may be to a daemon that has since restarted: its
        // failure earns one more try on a new connection.
        let mut fresh = self.client.is_none();
        for run in runs {
            while let Some(request) = self.next_request(run) {
                let (request, taken) = request;
                if self.client.is_none() {
                    self.client = Some(self.connector.connect().map_err(|_| ())?);
                }
                let Some(client) = self.client.as_mut() else {
                    return Err(());
                };
                match client.call(&request) {
                    Ok(Ok(_)) => {
                        if let Some(buffer) = self.buffers.get_mut(&run) {
                            buffer.dropped = 0;
                            for _ in 0..taken {
                                if let Some(sent) = buffer.chunks.pop_front() {
                                    buffer.bytes -= sent.len();
                                }
                            }
                        }
                    }
                    // Not this agent's task (any more), or the daemon cannot keep it:
                    // nobody else will want this output.
                    Ok(Err(_)) => {
                        if let Some(buffer) = self.buffers.get_mut(&run) {
                            buffer.chunks.clear();
                            buffer.bytes = 0;
                            buffer.dropped = 0;
                        }
                        break;
                    }
                    Err(_) => {
                        self.client = None;
                        if fresh {
                            return Err(());
                        }
                        fresh = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// The next request for a run's buffered output, and how many chunks it takes.
    fn next_request(&mut self, run: Run) -> Option<(Request, usize)> {
        let (id, attempt) = run;
        let buffer = self.buffers.get_mut(&run)?;
        if buffer.chunks.is_empty() {
            return None;
        }
        let mut data = Vec::new();
        if buffer.dropped > 0 {
            data.extend_from_slice(
                format!(
                    "[vapora work: {} bytes of output dropped while the daemon did not answer]\n",
                    buffer.dropped
                )
                .as_bytes(),
            );
        }
        let mut taken = 0;
        // A chunk larger than a request's room (never from the readers) is split in place.
        if let Some(first) = buffer.chunks.front_mut()
            && data.len() + first.len() > MAX_OUTPUT_CHUNK
        {
            let room = MAX_OUTPUT_CHUNK - data.len();
            let rest = first.split_off(room);
            buffer.chunks.insert(1, rest);
        }
        for chunk in &buffer.chunks {
            if taken > 0 && data.len() + chunk.len() > MAX_OUTPUT_CHUNK {
                break;
            }
            data.extend_from_slice(chunk);
            taken += 1;
        }
        Some((
            Request::AppendOutput {
                id,
                attempt,
                agent: self.agent.clone(),
                data,
            },
            taken,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> Outbox {
        let nowhere = Connector {
            socket: "/nonexistent/vapora.sock".into(),
            default_socket: false,
            autostart: false,
            quiet: true,
            expected_uid: None,
            ssh: None,
            answer_timeout: None,
        };
        Outbox::new(nowhere, "w1".into())
    }

    fn sent(request: Option<(Request, usize)>) -> (u32, Vec<u8>) {
        match request {
            Some((Request::AppendOutput { attempt, data, .. }, _)) => (attempt, data),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn output_waiting_for_the_daemon_stays_with_its_attempt() {
        let mut outbox = outbox();
        outbox.keep(7, 1, b"first run\n".to_vec());
        // The task was handed to this worker again before the daemon took attempt 1's output.
        outbox.keep(7, 2, b"second run\n".to_vec());
        assert_eq!(
            sent(outbox.next_request((7, 1))),
            (1, b"first run\n".to_vec())
        );
        assert_eq!(
            sent(outbox.next_request((7, 2))),
            (2, b"second run\n".to_vec())
        );
    }

    #[test]
    fn output_dropped_while_waiting_is_marked() {
        let mut outbox = outbox();
        let big = vec![b'x'; MAX_BUFFERED];
        outbox.keep(1, 1, big);
        outbox.keep(1, 1, b"newest\n".to_vec());
        let (_, data) = sent(outbox.next_request((1, 1)));
        let text = String::from_utf8_lossy(&data);
        assert!(
            text.starts_with(&format!(
                "[vapora work: {MAX_BUFFERED} bytes of output dropped"
            )),
            "{}",
            &text[..80]
        );
    }
}
