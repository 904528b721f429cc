//! The Prometheus scrape endpoint (`vapora daemon --metrics-listen ADDR:PORT`).
//!
//! `GET /metrics` answers the exposition `vapora metrics --format prometheus` prints, from
//! the same function (`protocol::prometheus::render`) and the same snapshot
//! (`AppState::metrics_snapshot`, which holds the state locks exactly as long as a
//! `Metrics` request does; the text is rendered after they are released), and is counted
//! as a `metrics` request. `HEAD` answers the same headers; another method is 405, another
//! path 404.
//!
//! This is a second door into the daemon, reachable over TCP by anyone who can reach the
//! port, with no peer credentials to check: it is loopback-only unless asked
//! (`--metrics-listen-any`, see SECURITY.md), and it bounds what a client can take from
//! it, so that no number of scrapers, slow or hostile, can keep the daemon from serving
//! its socket:
//! - at most [`MAX_CONNECTIONS`] connections are served at once; beyond that, new ones
//!   wait in the kernel's accept queue until one ends;
//! - the request line and headers must arrive within [`HEADER_READ_TIMEOUT`] (a client
//!   trickling bytes, slowloris, is dropped) and fit in [`MAX_HEADER_BYTES`] (else 431);
//! - a request body is never read, and the connection closes after one answer (no
//!   keep-alive, so an idle scraper holds nothing between scrapes);
//! - a whole connection lasts at most [`CONNECTION_TIMEOUT`], including writing the answer
//!   to a client that does not read it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lock_hold;
use super::shutdown::Phase;
use super::state::AppState;
use crate::protocol::{RequestKind, prometheus};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its request line and headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request line plus headers accepted (a scraper sends a few hundred bytes).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 32;
/// The longest one connection is served, answer included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to serve the metrics, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsListen {
    pub addr: SocketAddr,
    /// `--metrics-listen-any`: a non-loopback address is allowed.
    pub any_address: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "--metrics-listen {0}: not a loopback address; the metrics name queues and agents and \
         show their activity, with no authentication, to whoever reaches the port. Use \
         127.0.0.1:PORT or [::1]:PORT, or add --metrics-listen-any to serve them on {0} \
         (see SECURITY.md)"
    )]
    NotLoopback(SocketAddr),
    #[error("--metrics-listen {addr}: cannot listen there")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl MetricsListen {
    /// Refuses an address other hosts may reach unless it was asked for: checked before
    /// the daemon touches anything, so a refused start leaves nothing behind.
    pub fn check(&self) -> Result<(), ListenError> {
        // `::ffff:127.0.0.1` is loopback too.
        if self.any_address || self.addr.ip().to_canonical().is_loopback() {
            Ok(())
        } else {
            Err(ListenError::NotLoopback(self.addr))
        }
    }

    /// Binds the listening socket (a port in use stops the daemon's start with a clear
    /// error, rather than a daemon running without the metrics it was asked to serve).
    pub async fn bind(&self) -> Result<TcpListener, ListenError> {
        self.check()?;
        TcpListener::bind(self.addr)
            .await
            .map_err(|source| ListenError::Bind {
                addr: self.addr,
                source,
            })
    }
}

/// Accepts scrapes until the daemon starts stopping.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A permit first, then the connection: over the bound, clients wait in the accept
        // queue instead of costing the daemon a descriptor and a task each.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return, // never closed
            },
            () = state.shutdown.reached(Phase::Stopping) => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning on the error.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = state.shutdown.reached(Phase::Stopping) => return,
        };
        tokio::spawn(serve_connection(stream, Arc::clone(&state), permit));
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<AppState>, _permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(false);
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(answer(&request, &state).await) }
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        // A client that sent garbage, too much, too slowly, or went away: its own loss.
        Ok(Err(e)) => tracing::debug!(error = %e, "metrics endpoint: connection ended"),
        Err(_) => tracing::debug!("metrics endpoint: connection took too long; closed"),
    }
}

/// The answer to one request (its body, if any, is never read).
async fn answer(request: &Request<Incoming>, state: &AppState) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    match *request.method() {
        Method::GET | Method::HEAD => {
            // A scrape is a `metrics` request come by another door: counted, timed and its
            // queue lock hold recorded as one (not as a timer's, "background").
            let started = Instant::now();
            let snapshot =
                lock_hold::serving(RequestKind::Metrics, async { state.metrics_snapshot() }).await;
            state
                .metrics
                .observe_request(RequestKind::Metrics, started.elapsed(), true);
            let mut response = Response::new(Full::new(Bytes::from(prometheus::render(&snapshot))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(prometheus::CONTENT_TYPE),
            );
            response
        }
        _ => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
