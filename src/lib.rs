//! vapora: a local task queue daemon and its command-line client.
//!
//! - [`protocol`]: what the two sides say to each other (types, requests, responses, the
//!   handshake, and the frame codec, the only place that knows bincode).
//! - [`daemon`]: the long-lived process; its state (`daemon::state`) is a task queue behind
//!   a mutex and an agent registry behind a read-write lock, shared through an `Arc`.
//! - [`client`]: the synchronous command-line client: argument parsing, the connection,
//!   autostart, commands and output.
//! - [`paths`]: where the socket lives.
//! - [`readiness`]: how an autostarted daemon tells its client it is ready.
//! - [`bench`]: the `vapora-bench` tool's scenarios (not used by `vapora` itself).

pub mod bench;
pub mod client;
pub mod daemon;
pub mod paths;
pub mod protocol;
pub mod readiness;
