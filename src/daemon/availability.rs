//! An agent's *availability*: what users set (active, paused, offline) or what the daemon
//! concluded (silent: no heartbeat for too long; shown as offline). Its own module because
//! a `Change` names it, and what a `Change` names sits below the structures (the registry)
//! that produce it.

use crate::protocol::AgentStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Availability {
    Active,
    Paused,
    /// Set offline by hand: stays so until set `idle` or registered again.
    Offline,
    /// Went silent: offline until its next request, which brings it back.
    Silent,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Paused => "paused",
            Availability::Offline => "offline",
            Availability::Silent => "silent",
        }
    }

    pub fn parse(text: &str) -> Option<Availability> {
        [
            Availability::Active,
            Availability::Paused,
            Availability::Offline,
            Availability::Silent,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }

    /// What setting `status` by hand means: idle and busy both mean "take work".
    pub fn from_status(status: AgentStatus) -> Availability {
        match status {
            AgentStatus::Idle | AgentStatus::Busy => Availability::Active,
            AgentStatus::Paused => Availability::Paused,
            AgentStatus::Offline => Availability::Offline,
        }
    }
}
