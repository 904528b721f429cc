//! One thread driving many connections, as `redis-benchmark` does: each connection sends a
//! request, and the next once its answer is in; `epoll` waits for whichever answers first
//! (`poll` over 32 descriptors made the load generator, not the daemon, the limit).
//!
//! Why not a thread per connection: with 32 blocking threads the load generator spent a
//! third of the machine's two cores on context switches (`finish_task_switch` was 12 % of
//! all samples), CPU the daemon under test then lacked. Redis is measured with its own
//! single-threaded event loop; vapora is measured the same way.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use anyhow::{anyhow, bail};

use super::latency::Latencies;
use super::target::{Target, call};
use crate::protocol::codec::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::protocol::request::RequestFrame;
use crate::protocol::{Request, ResponseFrame};

/// One connection of the loop.
struct Connection {
    socket: UnixStream,
    /// Requests still to send.
    remaining: usize,
    /// When the request in flight went out; `None`: nothing in flight.
    sent: Option<Instant>,
    next_id: u64,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// Sends `requests` on each of `connections` connections, one request in flight per
/// connection, `make(connection, n)` building the n-th request of a connection. Returns
/// the wall time and every request's latency.
pub fn run(
    target: &Target,
    requests: &[usize],
    make: impl Fn(usize, usize) -> Request,
) -> anyhow::Result<(f64, Latencies)> {
    let mut connections = Vec::with_capacity(requests.len());
    for &remaining in requests {
        let mut client = target.connect()?;
        // The handshake is answered with the first reply.
        call(&mut client, &Request::Ping)?;
        let socket = client.into_socket()?;
        socket.set_nonblocking(true)?;
        connections.push(Connection {
            socket,
            remaining,
            sent: None,
            next_id: 1,
            input: Vec::with_capacity(4096),
            output: Vec::with_capacity(256),
        });
    }
    let total: usize = requests.iter().sum();
    let mut latencies = Latencies::with_capacity(total);
    let epoll = Epoll::new()?;
    for (index, connection) in connections.iter().enumerate() {
        epoll.watch(connection.socket.as_raw_fd(), index)?;
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; connections.len()];
    let started = Instant::now();
    let mut done = 0;
    for (index, connection) in connections.iter_mut().enumerate() {
        if connection.remaining > 0 {
            connection.send(make(index, 0))?;
        }
    }
    while done < total {
        let ready = epoll.wait(&mut events)?;
        for event in &events[..ready] {
            let index = event.u64 as usize;
            let connection = &mut connections[index];
            // One request in flight per connection: at most one answer.
            if let Some(elapsed) = connection.receive()? {
                latencies.record(elapsed);
                done += 1;
                if connection.remaining > 0 {
                    let n = requests[index] - connection.remaining;
                    connection.send(make(index, n))?;
                }
            }
        }
    }
    Ok((started.elapsed().as_secs_f64(), latencies))
}

/// An epoll instance, closed when dropped.
struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: creates a descriptor, which `OwnedFd` then owns.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Epoll(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    /// Level-triggered readiness for input on `fd`, reported with `token`.
    fn watch(&self, fd: i32, token: usize) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token as u64,
        };
        // SAFETY: valid descriptors and a valid event.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for readiness; returns how many entries of `events` it filled.
    fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        loop {
            // SAFETY: `events` is a valid buffer of `len` entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.0.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    -1,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

impl Connection {
    fn send(&mut self, request: Request) -> anyhow::Result<()> {
        let frame = RequestFrame {
            id: self.next_id,
            request,
        };
        self.next_id += 1;
        self.output.clear();
        codec::encode_frame(&mut self.output, &frame, DEFAULT_MAX_FRAME)?;
        // A small frame on an idle connection: the socket buffer takes it whole. Should it
        // not, block until it does rather than complicate the loop.
        let mut written = 0;
        while written < self.output.len() {
            match self.socket.write(&self.output[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.sent = Some(Instant::now());
        self.remaining -= 1;
        Ok(())
    }

    /// Reads what arrived; returns the latency of the answer it completes, if any. Stops
    /// reading as soon as an answer is complete (one is in flight at a time), so a small
    /// answer costs one `read`.
    fn receive(&mut self) -> anyhow::Result<Option<std::time::Duration>> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(len) = codec::complete_frame(&self.input, DEFAULT_MAX_FRAME)? {
                return self.answer(len).map(Some);
            }
            match self.socket.read(&mut chunk) {
                Ok(0) => bail!("the daemon closed a connection"),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes the complete answer of `len` bytes off the input.
    fn answer(&mut self, len: usize) -> anyhow::Result<std::time::Duration> {
        let frame: ResponseFrame = codec::decode(&self.input[HEADER_LEN..HEADER_LEN + len])?;
        self.input.drain(..HEADER_LEN + len);
        if frame.id + 1 != self.next_id {
            bail!(
                "an answer to request {} while {} was in flight",
                frame.id,
                self.next_id - 1
            );
        }
        if let Err(e) = frame.result {
            bail!("the daemon refused: {e}");
        }
        let sent = self
            .sent
            .take()
            .ok_or_else(|| anyhow!("an answer to no request"))?;
        Ok(sent.elapsed())
    }
}
