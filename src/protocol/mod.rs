//! The language the client and the daemon speak, and nothing else: the types, the requests
//! and responses, the handshake, input limits, and the frame codec.

pub mod codec;
pub mod handshake;
pub mod limits;
pub mod request;
pub mod response;
pub mod types;

pub use request::{DoneFirst, Request, RequestFrame, RequestKind, TaskFilter};
pub use response::{ErrorBody, ErrorKind, MetricsSnapshot, Response, ResponseFrame};
pub use types::{Agent, AgentStatus, DaemonInfo, Event, Millis, NewTask, Task, TaskId, TaskStatus};
