//! The first frame each way on a connection.
//!
//! bincode is not self-describing: a client and daemon that disagree on a type would decode
//! garbage. So these two structs never change shape; they carry the protocol version, and
//! both sides refuse to go on when the versions differ.

use serde::{Deserialize, Serialize};

/// Identifies a vapora peer (and rejects anything else talking to the socket).
pub const MAGIC: [u8; 8] = *b"VAPORA\0\x01";

/// Bumped whenever a request or response changes shape.
/// (3: `DaemonInfo` carries the daemon's size limits; 4: `MetricsSnapshot` carries the
/// store's backlog; 5: long task lists come as `TaskPage`s; 6: heartbeats name the tasks
/// they renew, a claim at the agent's limit is answered `AtLimit`, and a wait answers
/// with `TaskOutcome`s; 7: a claim by a paused or offline agent is answered
/// `AgentUnavailable`, a cancel `Cancelled` with the dependents cancelled too, and metrics
/// carry the longest queue-lock hold of each request kind and the waits in progress;
/// 8: `GiveBack`, `DaemonInfo` says who the daemon admits, and `NewTask` and `Task` carry
/// `cwd`, `env` and `timeout_ms`; 9: `AppendOutput` and `ReadOutput`, answered
/// `OutputKept` and `Output`; 10: `Task` carries its latest attempt's times and exit
/// code, `Complete` and `Fail` a `RunEnd`, `MetricsSnapshot` a run-time histogram, and
/// `OwnAgent` answered `AgentOwned`.)
pub const PROTOCOL_VERSION: u32 = 11;

/// The version of this build, sent for humans reading error messages.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Client → daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: [u8; 8],
    pub protocol: u32,
    pub client_version: String,
}

/// Daemon → client. `refusal` is set when the daemon will not serve this client (it then
/// closes the connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub magic: [u8; 8],
    pub protocol: u32,
    pub daemon_version: String,
    pub refusal: Option<String>,
}

impl Hello {
    pub fn current() -> Hello {
        Hello {
            magic: MAGIC,
            protocol: PROTOCOL_VERSION,
            client_version: SOFTWARE_VERSION.to_string(),
        }
    }
}

impl Welcome {
    /// The daemon's answer to `hello`.
    pub fn answer(hello: &Hello) -> Welcome {
        let refusal = if hello.magic != MAGIC {
            Some("not a vapora client (bad magic bytes)".to_string())
        } else if hello.protocol != PROTOCOL_VERSION {
            Some(incompatible_message(
                hello.protocol,
                &hello.client_version,
                PROTOCOL_VERSION,
                SOFTWARE_VERSION,
            ))
        } else {
            None
        };
        Welcome {
            magic: MAGIC,
            protocol: PROTOCOL_VERSION,
            daemon_version: SOFTWARE_VERSION.to_string(),
            refusal,
        }
    }
}

/// The one wording of a version mismatch, used by whichever side notices it.
pub fn incompatible_message(
    client_protocol: u32,
    client_version: &str,
    daemon_protocol: u32,
    daemon_version: &str,
) -> String {
    format!(
        "incompatible protocol: client {client_version} speaks protocol {client_protocol}, \
         daemon {daemon_version} speaks protocol {daemon_protocol}; restart the daemon \
         with the same vapora version as the client"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec;

    /// The handshake's encoding is the one thing that must never change: an old client and
    /// a new daemon (or the reverse) must still understand each other's versions.
    #[test]
    fn hello_and_welcome_keep_their_wire_shape() {
        let mut out = Vec::new();
        let hello = Hello {
            magic: MAGIC,
            protocol: 7,
            client_version: "1.2.3".into(),
        };
        codec::encode_frame(&mut out, &hello, 1024).unwrap();
        let mut expected = vec![0, 0, 0, 15];
        expected.extend_from_slice(b"VAPORA\0\x01");
        expected.extend_from_slice(&[7, 5]);
        expected.extend_from_slice(b"1.2.3");
        assert_eq!(out, expected);
    }
}
