//! One client connection: handshake, then read a frame, dispatch it, write the answer.
//!
//! Requests on one connection are answered in order, so a client may pipeline. Answers are
//! buffered and written when no further complete request is waiting, which turns a
//! pipelined batch into few writes. Bad input costs at most this connection: an oversized
//! length prefix is answered and the connection closed; an undecodable request body is
//! answered with its id (when readable) and the connection carries on, since the framing
//! is still intact.
//!
//! While a request that can wait is being served (a parked claim may take minutes), the
//! connection keeps reading: a client that closed its end left, and the request is dropped,
//! which for a parked claim withdraws it from the line. A client that only shut down its
//! writing side is still waiting for its answers and gets them.

use std::future::pending;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use interprocess::local_socket::traits::StreamCommon;
use interprocess::os::unix::uds_local_socket::tokio::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

use super::auth::{Access, Peer};
use super::events;
use super::handlers;
use super::lock_hold;
use super::ownership::AgentOwnership;
use super::shutdown::Phase;
use super::state::AppState;
use crate::daemon::queue::encoded_size_estimate;
use crate::protocol::codec::{self, CodecError, HEADER_LEN};
use crate::protocol::handshake::{Hello, MAGIC, PROTOCOL_VERSION, SOFTWARE_VERSION, Welcome};
use crate::protocol::types::now_millis;
use crate::protocol::{ErrorBody, Renew, Request, RequestKind, Response, ResponseFrame, Task};

/// Buffered answers are written once they reach this size, even mid-batch.
const FLUSH_THRESHOLD: usize = 64 * 1024;
/// A task list larger than this (estimated encoded bytes) goes out as pages of about this
/// size, each written as soon as it is encoded.
const PAGE_BYTES: usize = 256 * 1024;
/// Output buffer capacity kept between answers.
const OUTBUF_KEEP: usize = 1024 * 1024;
/// Input buffer capacity kept once a request was taken out of it. A connection that once
/// sent a frame near `--max-frame` (16 MiB) and then sat idle kept that capacity: 32 such
/// connections held 532 MB.
const INBUF_KEEP: usize = 64 * 1024;
/// How long a `shutdown` request waits for the socket to disappear before closing.
const SHUTDOWN_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What decides whether a new connection is served.
pub struct Admission {
    pub access: Arc<Access>,
    pub max_frame: usize,
    pub handshake_timeout: Duration,
    /// The daemon already has its maximum of open connections.
    pub over_capacity: bool,
    /// Shared by every connection: the room for large frames being received.
    pub budget: Arc<FrameBudget>,
}

/// The bytes of large frames (above [`INBUF_KEEP`]) that all connections together may be
/// receiving at once. Without it, `--max-connections` clients each sending a frame near
/// `--max-frame` could make the daemon hold their product (16 GiB at the defaults). A
/// connection reserves a large frame's length from its header before reading the body;
/// one that would exceed the budget is told so and closed; the reservation is returned
/// once the request is out of its buffer.
pub struct FrameBudget {
    limit: usize,
    in_flight: AtomicUsize,
}

/// Large frames that may be in flight at once: the budget is this many full frames.
pub const FRAMES_IN_FLIGHT: usize = 16;

impl FrameBudget {
    pub fn new(limit: usize) -> Arc<FrameBudget> {
        Arc::new(FrameBudget {
            limit,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Reserves `len` bytes, or says how many are in flight already.
    fn reserve(self: &Arc<Self>, len: usize) -> Result<Reservation, usize> {
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current + len > self.limit {
                return Err(current);
            }
            match self.in_flight.compare_exchange(
                current,
                current + len,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        budget: Arc::clone(self),
                        len,
                    });
                }
                Err(now) => current = now,
            }
        }
    }
}

/// Room taken from the [`FrameBudget`], given back when dropped.
struct Reservation {
    budget: Arc<FrameBudget>,
    len: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.in_flight.fetch_sub(self.len, Ordering::SeqCst);
    }
}

/// Why no frame could be read.
enum ReadError {
    Codec(CodecError),
    /// Receiving this frame would exceed the [`FrameBudget`].
    OverBudget {
        len: usize,
        in_flight: usize,
    },
}

impl From<CodecError> for ReadError {
    fn from(error: CodecError) -> ReadError {
        ReadError::Codec(error)
    }
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> ReadError {
        ReadError::Codec(CodecError::Io(error))
    }
}

pub async fn serve(stream: Stream, state: Arc<AppState>, admission: Admission) {
    state.metrics.connection_opened();
    let mut connection = Connection {
        stream,
        inbuf: Vec::new(),
        outbuf: Vec::new(),
        max_frame: admission.max_frame,
        budget: Arc::clone(&admission.budget),
        reserved: None,
        owned: Vec::new(),
    };
    let served = match connection.refusal(&admission) {
        // Refused before anything the client sent is read.
        Some(reason) => connection.answer_handshake(refusal(&reason)).await,
        None => connection.run(&state, admission.handshake_timeout).await,
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    state.metrics.connection_closed();
}

struct Connection {
    stream: Stream,
    /// Bytes read but not yet consumed; never more than one frame plus one read beyond.
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    max_frame: usize,
    budget: Arc<FrameBudget>,
    /// The budget a large frame being received holds.
    reserved: Option<Reservation>,
    /// Agent names this connection owns, given up when it closes.
    owned: Vec<AgentOwnership>,
}

/// What the reader found at the front of the input.
enum Incoming {
    Frame(Range<usize>),
    Closed,
    Stopping,
}

impl Connection {
    /// Why this connection may not be served, if it may not.
    fn refusal(&self, admission: &Admission) -> Option<String> {
        let peer = match self.stream.peer_creds() {
            Ok(creds) => Peer {
                uid: creds.euid().unwrap_or(u32::MAX),
                gid: creds.egid().unwrap_or(u32::MAX),
                pid: creds.pid(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a client's credentials; refusing it");
                return Some("permission denied: the daemon cannot tell who you are".into());
            }
        };
        if !admission.access.allows(&peer) {
            tracing::warn!(uid = peer.uid, pid = ?peer.pid, "refused a client without permission");
            return Some(format!(
                "permission denied: uid {} may not use this daemon (permission_denied)",
                peer.uid
            ));
        }
        if admission.over_capacity {
            tracing::warn!(uid = peer.uid, pid = ?peer.pid, "refused a client: too many connections");
            return Some("too many connections; try again later (unavailable)".into());
        }
        None
    }

    async fn run(&mut self, state: &Arc<AppState>, handshake_timeout: Duration) -> io::Result<()> {
        if !self.handshake(handshake_timeout).await? {
            return Ok(());
        }
        loop {
            let range = match self.next_frame(state).await {
                Ok(Incoming::Frame(range)) => range,
                Ok(Incoming::Closed | Incoming::Stopping) => return self.flush().await,
                Err(ReadError::Codec(CodecError::TooLarge { len, max })) => {
                    let error = ErrorBody::invalid(format!(
                        "frame of {len} bytes is larger than the limit of {max}; closing"
                    ));
                    self.queue_answer(0, Err(error));
                    return self.flush().await;
                }
                Err(ReadError::OverBudget { len, in_flight }) => {
                    tracing::warn!(len, in_flight, "refused a large frame: too much in flight");
                    let error = ErrorBody::unavailable(format!(
                        "the daemon is receiving {} MiB of large requests already; this one \
                         ({} MiB) would exceed its budget; try again shortly (closing)",
                        in_flight / (1024 * 1024),
                        len.div_ceil(1024 * 1024)
                    ));
                    self.queue_answer(0, Err(error));
                    return self.flush().await;
                }
                Err(ReadError::Codec(CodecError::Io(e))) => return Err(e),
                Err(ReadError::Codec(e)) => return Err(io::Error::other(e.to_string())),
            };
            let started = Instant::now();
            let decoded = decode_request(&self.inbuf[range.clone()]);
            self.inbuf.drain(..range.end);
            self.shrink_inbuf();
            // The frame is out of the buffer (decoded): its room goes back to the budget.
            self.reserved = None;
            let (id, request) = match decoded {
                Ok(pair) => pair,
                Err((id, error)) => {
                    self.queue_answer(id, Err(error));
                    continue;
                }
            };
            let kind = request.kind();
            if let Request::Subscribe { queue, agent } = request {
                return self.stream_events(state, id, queue, agent).await;
            }
            if let Some(result) = self.ownership_answer(state, &request) {
                state
                    .metrics
                    .observe_request(kind, started.elapsed(), result.is_ok());
                self.queue_answer(id, result);
                continue;
            }
            // Only a request that may wait long (a parked claim, a task wait) watches for
            // the client leaving, so that a claim is withdrawn if its claimer dies. Any
            // other request ends within a commit and is answered whatever happens.
            let served = if may_block(&request) {
                // Whatever is queued (the handshake's Welcome, answers to earlier
                // pipelined requests) goes out before a wait that may last minutes.
                self.flush().await?;
                tokio::select! {
                    biased;
                    result = lock_hold::serving(kind, handlers::dispatch(state, request)) => Some(result),
                    () = client_gone(&self.stream, &mut self.inbuf) => None,
                }
            } else {
                Some(lock_hold::serving(kind, handlers::dispatch(state, request)).await)
            };
            let Some(result) = served else {
                tracing::debug!(
                    request = kind.as_str(),
                    "client left while its request was served"
                );
                return Ok(());
            };
            state
                .metrics
                .observe_request(kind, started.elapsed(), result.is_ok());
            let claimed = match &result {
                Ok(Response::Claimed(Some(task))) => Some((task.id, task.agent.clone())),
                _ => None,
            };
            let encoded = match result {
                Ok(Response::Tasks(tasks)) => {
                    self.queue_task_list(id, tasks).await?;
                    true
                }
                result => self.queue_answer(id, result),
            };
            if let Some((task_id, agent)) = claimed {
                // A claimed task must reach its claimer or go back to the queue.
                let agent = agent.unwrap_or_default();
                if !encoded {
                    state.release(task_id, &agent);
                }
                if let Err(e) = self.flush().await {
                    state.release(task_id, &agent);
                    return Err(e);
                }
            }
            if kind == RequestKind::Shutdown {
                self.flush().await?;
                let _ = tokio::time::timeout(
                    SHUTDOWN_CLOSE_WAIT,
                    state.shutdown.reached(Phase::Closed),
                )
                .await;
                return Ok(());
            }
            if self.outbuf.len() >= FLUSH_THRESHOLD {
                self.flush().await?;
            }
        }
    }

    /// The answer to a request that agent ownership decides, which the connection serves
    /// itself (ownership is held by the connection, and ends when it does): `OwnAgent`, and
    /// a heartbeat releasing the agent's other tasks (`Renew::NamedOnly`) from anyone but
    /// the owner of an owned name, which would take a running worker's tasks from it.
    fn ownership_answer(
        &mut self,
        state: &AppState,
        request: &Request,
    ) -> Option<Result<Response, ErrorBody>> {
        match request {
            Request::OwnAgent { name, instance } => Some(self.own_agent(state, name, *instance)),
            Request::Heartbeat {
                name,
                renew: Renew::NamedOnly,
                ..
            } if !self.owns(name) && state.agent_owners.is_owned(name) => {
                Some(Err(ErrorBody::conflict(format!(
                    "agent {name} is owned by a running worker: only it may put the agent's                      other tasks back in the queue"
                ))))
            }
            _ => None,
        }
    }

    fn owns(&self, name: &str) -> bool {
        self.owned
            .iter()
            .any(|owned| owned.name() == name && owned.is_current())
    }

    fn own_agent(
        &mut self,
        state: &AppState,
        name: &str,
        instance: u64,
    ) -> Result<Response, ErrorBody> {
        crate::protocol::limits::check_name("agent", name).map_err(ErrorBody::invalid)?;
        let owned = state.agent_owners.own(name, instance)?;
        self.owned.retain(|earlier| earlier.name() != name);
        self.owned.push(owned);
        Ok(Response::AgentOwned)
    }

    /// Streams events to the client until it leaves or the daemon stops. A client that
    /// reads slowly blocks only this task; the broadcast buffer then overflows for it alone
    /// and it is sent a `lagged` event with the number it missed.
    async fn stream_events(
        &mut self,
        state: &Arc<AppState>,
        id: u64,
        queue: Option<String>,
        agent: Option<String>,
    ) -> io::Result<()> {
        let checked = [("queue", &queue), ("agent", &agent)]
            .into_iter()
            .filter_map(|(what, name)| name.as_deref().map(|n| (what, n)))
            .try_for_each(|(what, name)| crate::protocol::limits::check_name(what, name));
        if let Err(message) = checked {
            self.queue_answer(id, Err(ErrorBody::invalid(message)));
            return self.flush().await;
        }
        let mut events = state.events.subscribe();
        state
            .metrics
            .observe_request(RequestKind::Subscribe, Duration::ZERO, true);
        self.queue_answer(id, Ok(Response::Subscribed));
        self.flush().await?;
        loop {
            let next = tokio::select! {
                biased;
                () = state.shutdown.reached(Phase::Stopping) => break,
                () = client_gone(&self.stream, &mut self.inbuf) => return Ok(()),
                next = events.recv() => next,
            };
            let event = match next {
                Ok(event) => (*event).clone(),
                Err(RecvError::Lagged(dropped)) => events::lagged(dropped, now_millis()),
                Err(RecvError::Closed) => break,
            };
            if !events::matches(&event, queue.as_deref(), agent.as_deref()) {
                continue;
            }
            self.queue_answer(id, Ok(Response::Event(event)));
            if events.is_empty() || self.outbuf.len() >= FLUSH_THRESHOLD {
                // A reader that stopped reading must not hold up a shutdown.
                tokio::select! {
                    flushed = self.flush() => flushed?,
                    () = state.shutdown.reached(Phase::Stopping) => return Ok(()),
                }
            }
        }
        self.flush().await
    }

    /// Reads the client's `Hello` and answers it. `Ok(false)`: the client was refused or
    /// went away.
    async fn handshake(&mut self, timeout: Duration) -> io::Result<bool> {
        let read = tokio::time::timeout(timeout, self.read_frame()).await;
        let range = match read {
            Err(_elapsed) => {
                tracing::debug!("client sent no handshake in time; dropping it");
                return Ok(false);
            }
            Ok(Ok(Some(range))) => range,
            Ok(Ok(None)) => return Ok(false),
            Ok(Err(ReadError::Codec(CodecError::Io(e)))) => return Err(e),
            Ok(Err(_)) => {
                self.answer_handshake(refusal(
                    "the handshake frame is too large; not a vapora client",
                ))
                .await?;
                return Ok(false);
            }
        };
        let welcome = match codec::decode::<Hello>(&self.inbuf[range.clone()]) {
            Ok(hello) => Welcome::answer(&hello),
            Err(_) => refusal("undecodable handshake; not a vapora client"),
        };
        self.inbuf.drain(..range.end);
        let accepted = welcome.refusal.is_none();
        if let Some(reason) = &welcome.refusal {
            tracing::info!(reason, "refused a client at handshake");
        }
        if !accepted {
            self.answer_handshake(welcome).await?;
            return Ok(false);
        }
        // Not written yet: a client that sent its first request with its `Hello` (every
        // one-shot command does) gets both answers in one write and wakes once. `next_frame`
        // writes it before waiting for more input.
        self.queue_welcome(&welcome)?;
        Ok(true)
    }

    /// Answers the handshake at once: for a refusal, the last thing the client is sent.
    async fn answer_handshake(&mut self, welcome: Welcome) -> io::Result<()> {
        self.queue_welcome(&welcome)?;
        self.flush().await
    }

    fn queue_welcome(&mut self, welcome: &Welcome) -> io::Result<()> {
        codec::encode_frame(&mut self.outbuf, welcome, self.max_frame)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Waits for the next complete frame, unless the daemon starts shutting down while the
    /// connection is idle.
    async fn next_frame(&mut self, state: &AppState) -> Result<Incoming, ReadError> {
        if let Some(len) = codec::complete_frame(&self.inbuf, self.max_frame)? {
            return Ok(Incoming::Frame(HEADER_LEN..HEADER_LEN + len));
        }
        // About to wait for the client: everything answered so far goes out first.
        self.flush().await?;
        if state.shutdown.is_stopping() {
            return Ok(Incoming::Stopping);
        }
        tokio::select! {
            frame = self.read_frame() => Ok(frame?.map_or(Incoming::Closed, Incoming::Frame)),
            () = state.shutdown.reached(Phase::Stopping) => Ok(Incoming::Stopping),
        }
    }

    /// Gives back the input buffer's capacity beyond [`INBUF_KEEP`] once what it still
    /// holds (pipelined requests read ahead) fits in that.
    fn shrink_inbuf(&mut self) {
        if self.inbuf.capacity() > INBUF_KEEP && self.inbuf.len() <= INBUF_KEEP {
            self.inbuf.shrink_to(INBUF_KEEP);
        }
    }

    /// Reads until `inbuf` holds a complete frame; returns its body range. `Ok(None)` when
    /// the client closed the connection between frames.
    async fn read_frame(&mut self) -> Result<Option<Range<usize>>, ReadError> {
        loop {
            if let Some(len) = codec::complete_frame(&self.inbuf, self.max_frame)? {
                return Ok(Some(HEADER_LEN..HEADER_LEN + len));
            }
            if self.reserved.is_none()
                && let Some(len) = codec::announced_len(&self.inbuf, self.max_frame)?
                && len > INBUF_KEEP
            {
                let reservation = self
                    .budget
                    .reserve(len)
                    .map_err(|in_flight| ReadError::OverBudget { len, in_flight })?;
                self.reserved = Some(reservation);
            }
            self.inbuf.reserve(8 * 1024);
            let mut reader = &self.stream;
            if reader.read_buf(&mut self.inbuf).await? == 0 {
                return if self.inbuf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated frame").into())
                };
            }
        }
    }

    /// Queues a task list: whole when it is small, otherwise as `TaskPage`s of about
    /// [`PAGE_BYTES`] ending with a `Tasks`, writing each page once it is encoded. The
    /// client decodes and prints one page while the next is encoded: listing 100,000 tasks
    /// as one 10 MB frame made it wait for the whole encoding first, and then kept the
    /// daemon idle while it decoded. A page holds at least one task, and a task always fits
    /// in a frame (the daemon checks at start-up), so no page is ever too large to send.
    async fn queue_task_list(&mut self, id: u64, tasks: Vec<Task>) -> io::Result<()> {
        let page_bytes = PAGE_BYTES.min(self.max_frame / 4);
        let mut tasks = tasks.into_iter().peekable();
        loop {
            let mut page = Vec::new();
            let mut bytes = 0;
            while let Some(task) = tasks.peek() {
                let size = encoded_size_estimate(task);
                if !page.is_empty() && bytes + size > page_bytes {
                    break;
                }
                bytes += size;
                page.extend(tasks.next());
            }
            if tasks.peek().is_none() {
                self.queue_answer(id, Ok(Response::Tasks(page)));
                return Ok(());
            }
            if !self.queue_answer(id, Ok(Response::TaskPage(page))) {
                // Replaced by an error, which ends the answer: no more pages after it.
                return Ok(());
            }
            self.flush().await?;
        }
    }

    /// Encodes an answer into the output buffer. An answer too large for a frame is
    /// replaced by an error saying so.
    /// Returns false when the answer had to be replaced by that error.
    fn queue_answer(&mut self, id: u64, result: Result<Response, ErrorBody>) -> bool {
        let frame = ResponseFrame { id, result };
        let Err(e) = codec::encode_frame(&mut self.outbuf, &frame, self.max_frame) else {
            return true;
        };
        {
            let error = ErrorBody::new(
                crate::protocol::ErrorKind::Unavailable,
                format!("the answer is too large to send ({e}); ask for less, e.g. with --limit"),
            );
            let fallback = ResponseFrame {
                id,
                result: Err(error),
            };
            if let Err(e) = codec::encode_frame(&mut self.outbuf, &fallback, self.max_frame) {
                tracing::error!(error = %e, "cannot encode an error answer");
            }
        }
        false
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.outbuf.is_empty() {
            return Ok(());
        }
        let mut writer = &self.stream;
        writer.write_all(&self.outbuf).await?;
        self.outbuf.clear();
        if self.outbuf.capacity() > OUTBUF_KEEP {
            // After a large answer: do not keep megabytes per idle connection.
            self.outbuf = Vec::new();
        }
        Ok(())
    }
}

/// Decodes a request body. On failure, returns the request id when it could be read (0
/// otherwise) and the error to answer with.
fn decode_request(body: &[u8]) -> Result<(u64, Request), (u64, ErrorBody)> {
    let (id, used) = codec::decode_prefix::<u64>(body)
        .map_err(|_| (0, ErrorBody::invalid("undecodable request frame")))?;
    let request = codec::decode::<Request>(&body[used..]).map_err(|e| {
        (
            id,
            ErrorBody::invalid(format!(
                "unknown or malformed request ({e}); is the client a different vapora version?"
            )),
        )
    })?;
    Ok((id, request))
}

/// Whether a request can take long to answer, for reasons other than storage.
fn may_block(request: &Request) -> bool {
    match request {
        Request::Claim { wait_ms, .. } => *wait_ms > 0,
        Request::Wait { .. } => true,
        Request::ReadOutput { follow, .. } => *follow,
        _ => false,
    }
}

fn refusal(reason: &str) -> Welcome {
    Welcome {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        daemon_version: SOFTWARE_VERSION.to_string(),
        refusal: Some(reason.to_string()),
    }
}

/// Resolves when the client has gone (or the socket fails). Bytes it pipelines in the
/// meantime are kept in `inbuf` for later, up to [`INBUF_KEEP`] (a large frame is read
/// later, by `read_frame`, under the [`FrameBudget`]); beyond that, reading stops until
/// the current request is answered. A client that only shut down its writing side has not
/// gone: it is waiting for its answers.
async fn client_gone(stream: &Stream, inbuf: &mut Vec<u8>) {
    let mut reader = stream;
    loop {
        if inbuf.len() > INBUF_KEEP {
            return pending().await;
        }
        inbuf.reserve(8 * 1024);
        match reader.read_buf(inbuf).await {
            Ok(0) => {
                // End of its writing. Gone only if it cannot read our answer either.
                let ready = stream.inner().ready(tokio::io::Interest::WRITABLE).await;
                if ready.is_ok_and(|ready| !ready.is_write_closed()) {
                    return pending().await;
                }
                return;
            }
            Err(_) => return,
            Ok(_) => {}
        }
    }
}
