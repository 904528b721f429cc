//! Which open connection owns which agent name (`Request::OwnAgent`).
//!
//! `vapora work` owns its agent: its heartbeats name exactly the tasks it runs and put
//! every other task the agent holds back in the queue (`Renew::NamedOnly`). Two workers
//! under one name (two started on one host, both named after it) would each take the
//! other's tasks back on every heartbeat. Owning the name ties it to the worker's
//! connection: a second owner is refused while the first is connected, and a worker that
//! dies (its socket closes with it) frees the name at once. Kept in memory only: after a
//! daemon restart, the first worker to reconnect owns the name again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::protocol::ErrorBody;

#[derive(Default)]
pub struct AgentOwners {
    names: Mutex<HashSet<String>>,
}

/// Ownership of one agent name, given up when dropped (the connection closed).
pub struct AgentOwnership {
    owners: Arc<AgentOwners>,
    name: String,
}

impl AgentOwners {
    /// Takes `name` for the caller's connection, unless another connection holds it.
    pub fn own(self: &Arc<Self>, name: &str) -> Result<AgentOwnership, ErrorBody> {
        let mut names = self.lock();
        if !names.insert(name.to_string()) {
            return Err(ErrorBody::conflict(format!(
                "agent {name} is in use by another worker connected to this daemon; give \
                 this one its own name with --agent"
            )));
        }
        Ok(AgentOwnership {
            owners: Arc::clone(self),
            name: name.to_string(),
        })
    }

    /// Whether some open connection owns `name`.
    pub fn is_owned(&self, name: &str) -> bool {
        self.lock().contains(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AgentOwnership {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for AgentOwnership {
    fn drop(&mut self) {
        self.owners.lock().remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_has_one_owner_until_it_lets_go() {
        let owners = Arc::new(AgentOwners::default());
        let first = owners.own("w1").unwrap();
        assert_eq!(first.name(), "w1");
        assert!(owners.own("w1").is_err());
        assert!(owners.is_owned("w1") && !owners.is_owned("w3"));
        let other = owners.own("w2").unwrap();
        drop(first);
        let again = owners.own("w1").unwrap();
        drop((again, other));
        assert!(owners.lock().is_empty());
    }
}
