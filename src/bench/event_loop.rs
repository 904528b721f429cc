//! One thread driving many connections, as `redis-benchmark` does: each connection sends a
//! request, and the next once its answer is in; `poll` waits for whichever answers first.
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
    let mut pollfds: Vec<libc::pollfd> = connections
        .iter()
        .map(|c| libc::pollfd {
            fd: c.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let started = Instant::now();
    let mut done = 0;
    while done < total {
        for (index, connection) in connections.iter_mut().enumerate() {
            if connection.sent.is_none() && connection.remaining > 0 {
                let n = requests[index] - connection.remaining;
                connection.send(make(index, n))?;
            }
        }
        // SAFETY: `pollfds` is a valid array of `len` entries for descriptors we own.
        let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as _, -1) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error.into());
        }
        for (pollfd, connection) in pollfds.iter_mut().zip(&mut connections) {
            if pollfd.revents == 0 {
                continue;
            }
            pollfd.revents = 0;
            // One request in flight per connection: at most one answer.
            if let Some(elapsed) = connection.receive()? {
                latencies.record(elapsed);
                done += 1;
            }
        }
    }
    Ok((started.elapsed().as_secs_f64(), latencies))
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
