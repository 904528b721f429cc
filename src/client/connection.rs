//! `Client`: a blocking connection to the daemon. No async runtime: a one-shot command is a
//! connect, two small writes and two small reads.

use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use interprocess::local_socket::traits::{Stream as _, StreamCommon as _};
use interprocess::local_socket::{GenericFilePath, ToFsName};
use interprocess::os::unix::uds_local_socket::Stream;
use serde::Serialize;

use super::exit::{CliError, FAILURE, UNREACHABLE};
use super::ssh::{SshChild, SshTarget};
use crate::protocol::codec::{self, DEFAULT_MAX_FRAME};
use crate::protocol::handshake::{
    Hello, MAGIC, PROTOCOL_VERSION, SOFTWARE_VERSION, Welcome, incompatible_message,
};
use crate::protocol::{ErrorBody, Request, Response, ResponseFrame, Task};

/// How many pipelined requests may be unanswered at once in `call_many`.
const PIPELINE_WINDOW: usize = 16;
/// How many bytes of answers may be outstanding in `call_many`. The client writes a window
/// before it reads, and the daemon stops reading while it cannot write: the answers to a
/// window must fit in the socket buffer (about 200 KiB on Linux), or both sides would block
/// writing. An add of 10,000 tasks answers 80 KB of ids, so such batches go one at a time.
const PIPELINE_ANSWER_BYTES: usize = 64 * 1024;

/// A generous guess of the size of the answer to `request`.
fn answer_estimate(request: &Request) -> usize {
    match request {
        Request::AddTasks { tasks } => 64 + 10 * tasks.len(),
        Request::Ping | Request::Heartbeat { .. } => 256,
        // Anything that answers with a task may carry its payload: never pipelined deep.
        _ => PIPELINE_ANSWER_BYTES / 4,
    }
}

/// The socket, readable and writable through a shared reference (as Unix sockets are),
/// and how long a read waits for the daemon (`None`: as long as it takes).
struct Socket(Stream, Option<std::time::Duration>);

impl Read for Socket {
    /// Waits in `poll` for input, then reads. A thread asleep inside `read` on a Unix
    /// socket is also woken whenever the daemon reads from that socket (the kernel signals
    /// "room to write" on the same wait queue), so each request cost the client a spurious
    /// wake-up and the daemon a cross-CPU wake in its `recv` (28 % of the daemon's time
    /// under 32 clients was in `recv`, mostly that). `poll` sleeps for input only.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::{AsFd, AsRawFd};
        let mut pollfd = libc::pollfd {
            fd: self.0.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout_ms = self.1.map_or(-1, |timeout| {
            timeout.as_millis().min(i32::MAX as u128) as i32
        });
        loop {
            // SAFETY: one valid pollfd, for a descriptor this socket owns.
            match unsafe { libc::poll(&mut pollfd, 1, timeout_ms) } {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the daemon did not answer in time",
                    ));
                }
                ready if ready > 0 => break,
                _ => {}
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        (&self.0).read(buf)
    }
}

pub struct Client {
    reader: BufReader<Socket>,
    out: Vec<u8>,
    body: Vec<u8>,
    next_id: u64,
    /// The `Hello` went out with the first request (saving a round trip per one-shot
    /// command); its `Welcome` is read before the first answer.
    welcome_pending: bool,
    /// The `ssh` carrying this connection when the daemon is on another host (dropped,
    /// so stopped and reaped, with the connection).
    ssh: Option<SshChild>,
}

/// How long a connection through ssh may take to be answered by the remote daemon: ssh's
/// own connection, authentication and the remote proxy's start included.
const SSH_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing listens there (no socket file, or a stale one): autostart may help.
    NoDaemon(io::Error),
    /// A daemon answers, but runs as another uid than expected; nothing was sent.
    WrongOwner(WrongOwner),
    Other(CliError),
}

/// The same frame as `RequestFrame`, borrowing its request (serde encodes both alike).
#[derive(Serialize)]
struct OutgoingRequest<'a> {
    id: u64,
    request: &'a Request,
}

/// A daemon that runs as someone other than expected: nothing was sent to it.
#[derive(Debug)]
pub struct WrongOwner {
    pub expected: u32,
    pub found: u32,
}

impl Client {
    /// Connects to whoever answers at `socket` (the caller chose the path).
    pub fn connect(socket: &Path) -> Result<Client, ConnectError> {
        Client::connect_expecting(socket, None)
    }

    /// Connects, and when `expected_uid` is given checks the peer credentials of the
    /// process answering (`SO_PEERCRED`) before anything is sent: even the handshake waits
    /// in the buffer until the first request. A daemon of another uid is refused with
    /// [`ConnectError::WrongOwner`].
    pub fn connect_expecting(
        socket: &Path,
        expected_uid: Option<u32>,
    ) -> Result<Client, ConnectError> {
        let stream = Client::open_socket(socket, expected_uid)?;
        Client::over(stream)
    }

    /// The connected socket, checked as [`Client::connect_expecting`] checks it, with
    /// nothing sent on it.
    pub fn open_stream(
        socket: &Path,
        expected_uid: Option<u32>,
    ) -> Result<std::os::unix::net::UnixStream, ConnectError> {
        let stream = Client::open_socket(socket, expected_uid)?;
        let fd: std::os::fd::OwnedFd = stream.into();
        Ok(std::os::unix::net::UnixStream::from(fd))
    }

    fn open_socket(socket: &Path, expected_uid: Option<u32>) -> Result<Stream, ConnectError> {
        let name = socket.to_fs_name::<GenericFilePath>().map_err(|e| {
            ConnectError::Other(CliError::new(
                UNREACHABLE,
                format!("invalid socket path {}: {e}", socket.display()),
            ))
        })?;
        let stream = Stream::connect(name).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ConnectError::NoDaemon(e),
            _ => ConnectError::Other(CliError::new(
                UNREACHABLE,
                format!("cannot connect to the daemon at {}: {e}", socket.display()),
            )),
        })?;
        if let Some(expected) = expected_uid {
            let found = stream
                .peer_creds()
                .ok()
                .and_then(|creds| creds.euid())
                .ok_or_else(|| {
                    ConnectError::Other(CliError::new(
                        UNREACHABLE,
                        format!(
                            "cannot tell who runs the daemon at {}; nothing was sent to it",
                            socket.display()
                        ),
                    ))
                })?;
            if found != expected {
                return Err(ConnectError::WrongOwner(WrongOwner { expected, found }));
            }
        }
        Ok(stream)
    }

    /// A client on `stream`, its `Hello` waiting to go out with the first request.
    fn over(stream: Stream) -> Result<Client, ConnectError> {
        let mut client = Client {
            reader: BufReader::new(Socket(stream, None)),
            out: Vec::new(),
            body: Vec::new(),
            next_id: 1,
            welcome_pending: true,
            ssh: None,
        };
        codec::encode_frame(&mut client.out, &Hello::current(), DEFAULT_MAX_FRAME)
            .map_err(|e| ConnectError::Other(CliError::new(FAILURE, e.to_string())))?;
        Ok(client)
    }

    /// Connects to the daemon on another host through ssh ([`super::ssh`]), and has the
    /// handshake answered at once (within [`SSH_HANDSHAKE`]), so that whatever ssh or the
    /// remote side said goes into the error: ssh's own words, the remote shell's, or the
    /// remote proxy's "no daemon" ([`ConnectError::NoDaemon`]).
    pub fn connect_ssh(
        target: &SshTarget,
        expect_uid: Option<&str>,
    ) -> Result<Client, ConnectError> {
        let (stream, child) = target.start(expect_uid).map_err(|e| {
            ConnectError::Other(CliError::new(
                UNREACHABLE,
                format!("cannot start ssh for {}: {e}", target.describe()),
            ))
        })?;
        let mut client = Client::over(Stream::from(stream))?;
        client.ssh = Some(child);
        client.set_answer_timeout(Some(SSH_HANDSHAKE));
        let answered = client.flush().and_then(|()| client.check_welcome());
        client.set_answer_timeout(None);
        match answered {
            Ok(()) => Ok(client),
            // The daemon answered: it refused us, or speaks another protocol.
            Err(error) if error.code != UNREACHABLE => Err(ConnectError::Other(error)),
            Err(error) => {
                let Some(child) = client.ssh.as_mut() else {
                    return Err(ConnectError::Other(error));
                };
                let failure = child.failure(target, &error.message);
                if failure.no_daemon {
                    Err(ConnectError::NoDaemon(io::Error::other(failure.message)))
                } else {
                    Err(ConnectError::Other(CliError::new(
                        UNREACHABLE,
                        failure.message,
                    )))
                }
            }
        }
    }

    /// How long each read of an answer may wait before the call fails as unreachable
    /// (`None`, the default: as long as it takes). A worker bounds its calls so that a
    /// daemon that hangs (stopped, or stuck on a disk) cannot freeze it; the connection is
    /// of no use after such a failure.
    pub fn set_answer_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.reader.get_mut().1 = timeout;
    }

    /// A second descriptor of this connection's socket, with which another thread can
    /// end it (`shutdown`) while this one waits for an answer (a worker that stops stops
    /// its parked claim this way: the daemon sees the client leave and withdraws it).
    pub fn closer(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.reader.get_ref().0.as_fd().try_clone_to_owned()
    }

    /// The connection's socket, for a caller that drives the protocol itself (the
    /// benchmark's event loop). Only between requests: after the handshake was answered and
    /// with nothing read ahead.
    pub fn into_socket(self) -> io::Result<std::os::unix::net::UnixStream> {
        if self.welcome_pending || !self.reader.buffer().is_empty() || !self.out.is_empty() {
            return Err(io::Error::other(
                "the connection is in the middle of an exchange",
            ));
        }
        if self.ssh.is_some() {
            return Err(io::Error::other("the connection goes through ssh"));
        }
        let fd: std::os::fd::OwnedFd = self.reader.into_inner().0.into();
        Ok(std::os::unix::net::UnixStream::from(fd))
    }

    /// Reads the daemon's answer to our `Hello`, once.
    fn check_welcome(&mut self) -> Result<(), CliError> {
        if !self.welcome_pending {
            return Ok(());
        }
        self.welcome_pending = false;
        let welcome: Welcome = self.receive()?;
        if welcome.magic != MAGIC {
            return Err(CliError::new(
                UNREACHABLE,
                "the socket's owner is not a vapora daemon",
            ));
        }
        if let Some(reason) = welcome.refusal {
            return Err(CliError::new(
                FAILURE,
                format!("the daemon refused the connection: {reason}"),
            ));
        }
        if welcome.protocol != PROTOCOL_VERSION {
            return Err(CliError::new(
                FAILURE,
                incompatible_message(
                    PROTOCOL_VERSION,
                    SOFTWARE_VERSION,
                    welcome.protocol,
                    &welcome.daemon_version,
                ),
            ));
        }
        Ok(())
    }

    /// Sends one request and waits for its answer.
    pub fn call(&mut self, request: &Request) -> Result<Result<Response, ErrorBody>, CliError> {
        let mut answers = Vec::with_capacity(1);
        self.call_many(std::slice::from_ref(request), &mut answers)?;
        answers
            .pop()
            .ok_or_else(|| CliError::new(FAILURE, "the daemon sent no answer"))
    }

    /// Sends requests pipelined (a bounded window ahead of the answers) and pushes the
    /// answers onto `answers` in request order. On an error, the answers received before it
    /// are already in `answers`, so a caller can report what did happen.
    pub fn call_many(
        &mut self,
        requests: &[Request],
        answers: &mut Vec<Result<Response, ErrorBody>>,
    ) -> Result<(), CliError> {
        self.call_many_observed(requests, answers, |_| {})
    }

    /// [`Client::call_many`], calling `answered` with each request's index as its answer
    /// arrives (for a progress line).
    pub fn call_many_observed(
        &mut self,
        requests: &[Request],
        answers: &mut Vec<Result<Response, ErrorBody>>,
        mut answered: impl FnMut(usize),
    ) -> Result<(), CliError> {
        let first_id = self.next_id;
        self.next_id += requests.len() as u64;
        let mut sent = 0;
        let mut received = 0;
        let mut outstanding_bytes = 0;
        while received < requests.len() {
            while sent < requests.len()
                && (sent == received
                    || (sent - received < PIPELINE_WINDOW
                        && outstanding_bytes + answer_estimate(&requests[sent])
                            <= PIPELINE_ANSWER_BYTES))
            {
                outstanding_bytes += answer_estimate(&requests[sent]);
                let frame = OutgoingRequest {
                    id: first_id + sent as u64,
                    request: &requests[sent],
                };
                codec::encode_frame(&mut self.out, &frame, DEFAULT_MAX_FRAME)
                    .map_err(|e| CliError::new(FAILURE, format!("cannot send request: {e}")))?;
                sent += 1;
            }
            self.flush()?;
            self.check_welcome()?;
            let answer: ResponseFrame = self.receive()?;
            let expected = first_id + received as u64;
            if answer.id != expected {
                // An answer with id 0 is the daemon refusing a frame it could not read.
                if let Err(error) = answer.result {
                    return Err(CliError::new(
                        FAILURE,
                        format!("the daemon refused the request: {}", error.message),
                    ));
                }
                return Err(wrong_answer(expected, answer.id));
            }
            let result = match answer.result {
                Ok(Response::TaskPage(first)) => {
                    let mut all = Vec::new();
                    let finished = self.rest_of_list(expected, first, &mut |page| {
                        all.extend(page);
                        Ok(())
                    })?;
                    finished.map(|()| Response::Tasks(all))
                }
                result => result,
            };
            answers.push(result);
            outstanding_bytes -= answer_estimate(&requests[received]);
            answered(received);
            received += 1;
        }
        Ok(())
    }

    /// Sends `request` (a `ListTasks`) and hands its tasks to `sink` a page at a time, as
    /// they arrive, so that printing overlaps the daemon's encoding of the rest.
    pub fn list_tasks(
        &mut self,
        request: &Request,
        sink: &mut dyn FnMut(Vec<Task>) -> Result<(), CliError>,
    ) -> Result<Result<(), ErrorBody>, CliError> {
        let id = self.next_id;
        self.start_stream(request)?;
        let answer: ResponseFrame = self.receive()?;
        if answer.id != id {
            return Err(wrong_answer(id, answer.id));
        }
        match answer.result {
            Ok(Response::TaskPage(first)) => self.rest_of_list(id, first, sink),
            Ok(Response::Tasks(tasks)) => sink(tasks).map(Ok),
            Ok(other) => Err(crate::client::unexpected(other)),
            Err(error) => Ok(Err(error)),
        }
    }

    /// After the first page of a task list: hands it and every following page to `sink`,
    /// up to the closing `Tasks`. If `sink` fails, the remaining pages are still read (and
    /// dropped), so that the connection stays in step for the next request.
    fn rest_of_list(
        &mut self,
        id: u64,
        first: Vec<Task>,
        sink: &mut dyn FnMut(Vec<Task>) -> Result<(), CliError>,
    ) -> Result<Result<(), ErrorBody>, CliError> {
        let mut failed = sink(first).err();
        loop {
            let answer: ResponseFrame = self.receive()?;
            if answer.id != id {
                return Err(wrong_answer(id, answer.id));
            }
            let (page, last) = match answer.result {
                Ok(Response::TaskPage(page)) => (page, false),
                Ok(Response::Tasks(page)) => (page, true),
                Ok(other) => return Err(crate::client::unexpected(other)),
                Err(error) => return failed.map_or(Ok(Err(error)), Err),
            };
            if failed.is_none() {
                failed = sink(page).err();
            }
            if last {
                return failed.map_or(Ok(Ok(())), Err);
            }
        }
    }

    /// Sends a request whose answers come as a stream (`Subscribe`); read them with
    /// [`Client::next_answer`].
    pub fn start_stream(&mut self, request: &Request) -> Result<(), CliError> {
        let frame = OutgoingRequest {
            id: self.next_id,
            request,
        };
        self.next_id += 1;
        codec::encode_frame(&mut self.out, &frame, DEFAULT_MAX_FRAME)
            .map_err(|e| CliError::new(FAILURE, format!("cannot send request: {e}")))?;
        self.flush()?;
        self.check_welcome()
    }

    /// The next streamed answer; `None` when the daemon closed the stream.
    pub fn next_answer(&mut self) -> Result<Option<Result<Response, ErrorBody>>, CliError> {
        match codec::read_frame(&mut self.reader, &mut self.body, DEFAULT_MAX_FRAME) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                return Err(CliError::new(
                    UNREACHABLE,
                    format!("lost the connection to the daemon: {e}"),
                ));
            }
        }
        let frame: ResponseFrame = codec::decode(&self.body).map_err(|e| {
            CliError::new(
                FAILURE,
                format!("cannot understand the daemon's answer ({e})"),
            )
        })?;
        Ok(Some(frame.result))
    }

    /// How many bytes of the daemon's answers were read ahead and wait in this client's
    /// buffer: none when a stream's reader has caught up with the daemon.
    pub fn buffered(&self) -> usize {
        self.reader.buffer().len()
    }

    /// Waits until the daemon closes the connection (after `shutdown`).
    pub fn wait_closed(&mut self) {
        let mut sink = [0u8; 64];
        while matches!(self.reader.read(&mut sink), Ok(n) if n > 0) {}
    }

    fn flush(&mut self) -> Result<(), CliError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = (&self.reader.get_ref().0).write_all(&self.out);
        self.out.clear();
        let Err(e) = result else {
            return Ok(());
        };
        // A daemon that refuses a client answers the handshake and closes at once, maybe
        // before our first write is through: its reason is still there to read.
        if self.welcome_pending {
            self.check_welcome()?;
        }
        Err(CliError::new(
            UNREACHABLE,
            format!("lost the connection to the daemon: {e}"),
        ))
    }

    fn receive<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, CliError> {
        match codec::read_frame(&mut self.reader, &mut self.body, DEFAULT_MAX_FRAME) {
            Ok(true) => {}
            Ok(false) => {
                return Err(CliError::new(
                    UNREACHABLE,
                    "the daemon closed the connection",
                ));
            }
            Err(e) => {
                return Err(CliError::new(
                    UNREACHABLE,
                    format!("lost the connection to the daemon: {e}"),
                ));
            }
        }
        codec::decode(&self.body).map_err(|e| {
            CliError::new(
                FAILURE,
                format!("cannot understand the daemon's answer ({e}); are client and daemon the same version?"),
            )
        })
    }
}

fn wrong_answer(expected: u64, got: u64) -> CliError {
    CliError::new(
        FAILURE,
        format!("protocol error: expected the answer to request {expected}, got {got}"),
    )
}
