//! Which open connection owns which agent name (`Request::OwnAgent`).
//!
//! `vapora work` owns its agent: its heartbeats name exactly the tasks it runs and put
//! every other task the agent holds back in the queue (`Renew::NamedOnly`). Two workers
//! under one name (two started on one host, both named after it) would each take the
//! other's tasks back on every heartbeat. Owning the name ties it to the worker's
//! connection: a second worker is refused while the first is connected, and a worker that
//! dies (its socket closes with it) frees the name at once. A worker names itself with an
//! instance number of its own, so that when it connects again (after a lost connection,
//! before the daemon has noticed the old one close) its new connection takes the name over
//! instead of being refused. Kept in memory only: after a daemon restart, the first worker
//! to connect owns the name again.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::protocol::ErrorBody;

#[derive(Default)]
pub struct AgentOwners {
    /// Name → (the owning worker's instance, the owning connection's token).
    names: Mutex<HashMap<String, (u64, u64)>>,
    next_token: AtomicU64,
}

/// Ownership of one agent name by one connection, given up when dropped (the connection
/// closed), unless a newer connection of the same worker took it over.
pub struct AgentOwnership {
    owners: Arc<AgentOwners>,
    name: String,
    token: u64,
}

impl AgentOwners {
    /// Takes `name` for the caller's connection, unless another worker holds it.
    pub fn own(self: &Arc<Self>, name: &str, instance: u64) -> Result<AgentOwnership, ErrorBody> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        match self.lock().entry(name.to_string()) {
            Entry::Occupied(held) if held.get().0 != instance => {
                return Err(ErrorBody::conflict(format!(
                    "agent {name} is in use by another worker connected to this daemon; give \
                     this one its own name with --agent"
                )));
            }
            Entry::Occupied(mut held) => {
                held.insert((instance, token));
            }
            Entry::Vacant(free) => {
                free.insert((instance, token));
            }
        }
        Ok(AgentOwnership {
            owners: Arc::clone(self),
            name: name.to_string(),
            token,
        })
    }

    /// Whether some open connection owns `name`.
    pub fn is_owned(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, u64)>> {
        self.names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AgentOwnership {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this connection still owns the name (not taken over since).
    pub fn is_current(&self) -> bool {
        self.owners
            .lock()
            .get(&self.name)
            .is_some_and(|&(_, token)| token == self.token)
    }
}

impl Drop for AgentOwnership {
    fn drop(&mut self) {
        let mut names = self.owners.lock();
        if names
            .get(&self.name)
            .is_some_and(|&(_, token)| token == self.token)
        {
            names.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_has_one_owner_until_it_lets_go() {
        let owners = Arc::new(AgentOwners::default());
        let first = owners.own("w1", 1).unwrap();
        assert_eq!(first.name(), "w1");
        assert!(owners.own("w1", 2).is_err(), "another worker is refused");
        assert!(owners.is_owned("w1") && !owners.is_owned("w3"));
        let other = owners.own("w2", 2).unwrap();
        drop(first);
        let again = owners.own("w1", 2).unwrap();
        drop((again, other));
        assert!(owners.lock().is_empty());
    }

    #[test]
    fn the_same_worker_connecting_again_takes_its_name_over() {
        let owners = Arc::new(AgentOwners::default());
        let old = owners.own("w1", 7).unwrap();
        let new = owners.own("w1", 7).unwrap();
        assert!(!old.is_current() && new.is_current());
        // The old connection closing late does not free the name the new one holds.
        drop(old);
        assert!(owners.is_owned("w1"));
        assert!(owners.own("w1", 8).is_err());
        drop(new);
        assert!(!owners.is_owned("w1"));
    }
}
