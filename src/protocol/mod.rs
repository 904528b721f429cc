//! The language the client and the daemon speak, and nothing else: the types, the requests
//! and responses, the handshake, input limits and the rules a new task must meet, RFC 3339
//! times, command words quoted for `sh`, the frame codec, and the Prometheus exposition of
//! the metrics (what a scraper is told).

pub mod codec;
pub mod handshake;
pub mod limits;
pub mod prometheus;
pub mod request;
pub mod response;
pub mod rfc3339;
pub mod shell;
pub mod types;
pub mod validation;

pub use request::{DoneFirst, Renew, Request, RequestFrame, RequestKind, RunEnd, TaskFilter};
pub use response::{
    ErrorBody, ErrorKind, HeartbeatReport, MetricsSnapshot, NotHeld, Response, ResponseFrame,
};
pub use types::{
    Agent, AgentStatus, DaemonInfo, Event, Millis, NewTask, Task, TaskId, TaskOutcome, TaskStatus,
};
