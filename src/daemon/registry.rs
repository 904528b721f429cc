//! The agent registry as a plain data structure (the lock lives in `state.rs`).
//!
//! An agent's *availability* is what users set (active, paused, offline) or what the daemon
//! concluded (silent: no heartbeat for too long; shown as offline). Whether an active agent
//! shows as idle or busy is derived from the tasks it holds, so the daemon never has to
//! remember to flip it and the two can never disagree.

use std::collections::BTreeMap;

use super::availability::Availability;
use super::change::Change;
use super::queue::Claimant;
use crate::protocol::{Agent, AgentStatus, ErrorBody, Millis};

#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub name: String,
    /// Sorted, without duplicates.
    pub capabilities: Vec<String>,
    pub max_tasks: u32,
    pub availability: Availability,
    pub registered_at: Millis,
    pub last_heartbeat: Millis,
}

impl AgentRecord {
    /// What a claim needs to know, or `None` when the agent may not claim at all.
    pub fn claimant(&self) -> Option<Claimant<'_>> {
        (self.availability == Availability::Active).then_some(Claimant {
            name: &self.name,
            capabilities: &self.capabilities,
            max_tasks: self.max_tasks,
        })
    }

    /// The status clients see, given how many tasks the agent runs: the one derivation
    /// behind `agent list` and the metrics' agent gauges.
    pub fn status(&self, running: u32) -> AgentStatus {
        match self.availability {
            Availability::Paused => AgentStatus::Paused,
            Availability::Offline | Availability::Silent => AgentStatus::Offline,
            Availability::Active if running > 0 => AgentStatus::Busy,
            Availability::Active => AgentStatus::Idle,
        }
    }

    /// The agent as shown to clients, given how many tasks it runs.
    pub fn view(&self, running: u32) -> Agent {
        Agent {
            name: self.name.clone(),
            status: self.status(running),
            capabilities: self.capabilities.clone(),
            max_tasks: self.max_tasks,
            running,
            registered_at: self.registered_at,
            last_heartbeat: self.last_heartbeat,
        }
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    agents: BTreeMap<String, AgentRecord>,
}

/// The error a request naming an unknown agent gets when the agent is meant to exist
/// (show, remove).
pub fn no_such_agent(name: &str) -> ErrorBody {
    ErrorBody::not_found(format!("no agent named '{name}'"))
}

/// The error a request about an agent's work (claim, heartbeat, status) gets when the
/// agent is unknown: a worker that forgot to register.
pub fn unknown_agent(name: &str) -> ErrorBody {
    ErrorBody::not_found(format!(
        "no agent named '{name}'; register it first with `vapora agent register {name}`"
    ))
}

/// Makes an agent active again if it is in one of the `from` states.
fn bring_back(
    record: &mut AgentRecord,
    from: &[Availability],
    now: Millis,
    changes: &mut Vec<Change>,
) {
    if from.contains(&record.availability) {
        record.availability = Availability::Active;
        changes.push(Change::AgentAvailability {
            name: record.name.clone(),
            availability: Availability::Active,
            at: now,
        });
    }
}

impl Registry {
    /// Rebuilds the registry from stored records.
    pub fn restore(records: Vec<AgentRecord>) -> Registry {
        Registry {
            agents: records
                .into_iter()
                .map(|record| (record.name.clone(), record))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Result<&AgentRecord, ErrorBody> {
        self.agents.get(name).ok_or_else(|| unknown_agent(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &AgentRecord> {
        self.agents.values()
    }

    /// Registers an agent, or updates its capabilities and limit. Registering is a sign of
    /// life: an offline agent comes back active; a paused one stays paused.
    pub fn register(
        &mut self,
        name: &str,
        capabilities: Vec<String>,
        max_tasks: u32,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> &AgentRecord {
        let record = self
            .agents
            .entry(name.to_string())
            .or_insert_with(|| AgentRecord {
                name: name.to_string(),
                capabilities: Vec::new(),
                max_tasks,
                availability: Availability::Active,
                registered_at: now,
                last_heartbeat: now,
            });
        record.capabilities = capabilities;
        record.max_tasks = max_tasks;
        record.last_heartbeat = now;
        changes.push(Change::AgentRegistered {
            name: name.to_string(),
            capabilities: record.capabilities.clone(),
            max_tasks,
            at: now,
        });
        // Registering again is explicit: it brings back an agent set offline by hand too.
        bring_back(
            record,
            &[Availability::Offline, Availability::Silent],
            now,
            changes,
        );
        record
    }

    pub fn set_availability(
        &mut self,
        name: &str,
        availability: Availability,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<&AgentRecord, ErrorBody> {
        let record = self
            .agents
            .get_mut(name)
            .ok_or_else(|| unknown_agent(name))?;
        if record.availability != availability {
            record.availability = availability;
            changes.push(Change::AgentAvailability {
                name: name.to_string(),
                availability,
                at: now,
            });
        }
        Ok(record)
    }

    pub fn heartbeat(
        &mut self,
        name: &str,
        now: Millis,
        changes: &mut Vec<Change>,
    ) -> Result<&AgentRecord, ErrorBody> {
        let record = self
            .agents
            .get_mut(name)
            .ok_or_else(|| unknown_agent(name))?;
        record.last_heartbeat = now;
        changes.push(Change::AgentHeartbeat {
            name: name.to_string(),
            at: now,
        });
        // A request is a sign of life: an agent that went silent comes back; one set
        // offline or paused by hand stays so.
        bring_back(record, &[Availability::Silent], now, changes);
        Ok(record)
    }

    /// The earliest time an active agent goes silent for longer than `ttl` (a paused one is
    /// left as the operator set it; its tasks' leases still run out).
    /// Heartbeats before `not_before` count as at `not_before` (the daemon's start: agents
    /// could not reach a daemon that was down).
    pub fn next_silence(&self, ttl_ms: u64, not_before: Millis) -> Option<Millis> {
        self.agents
            .values()
            .filter(|agent| agent.availability == Availability::Active)
            .map(|agent| agent.last_heartbeat.max(not_before).saturating_add(ttl_ms))
            .min()
    }

    /// Agents silent for longer than `ttl` at `now` (see `next_silence`).
    pub fn silent(&self, ttl_ms: u64, not_before: Millis, now: Millis) -> Vec<String> {
        self.agents
            .values()
            .filter(|agent| agent.availability == Availability::Active)
            .filter(|agent| agent.last_heartbeat.max(not_before).saturating_add(ttl_ms) <= now)
            .map(|agent| agent.name.clone())
            .collect()
    }

    pub fn remove(
        &mut self,
        name: &str,
        changes: &mut Vec<Change>,
    ) -> Result<AgentRecord, ErrorBody> {
        let record = self
            .agents
            .remove(name)
            .ok_or_else(|| no_such_agent(name))?;
        changes.push(Change::AgentRemoved {
            name: name.to_string(),
        });
        Ok(record)
    }
}
