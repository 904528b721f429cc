//! The first journal record format (`VAPJRN01`), read only, so that records a daemon of
//! the previous release journaled but did not commit (it was killed, or the machine lost
//! power) are not lost when a newer vapora starts on its data dir.
//!
//! Records are bincode, which is not self-describing: a record holds a `Vec<Change>` of the
//! shape of its time. Version 1 differs from the current one only in its task, which had
//! no `cwd`, `env` or `timeout_ms`. These types are frozen copies of that shape; never
//! change them. A later format change gets its own module like this one.

use serde::Deserialize;

use crate::daemon::availability::Availability;
use crate::daemon::change::{Change, RequeueCause};
use crate::protocol::{Millis, Task, TaskId, TaskStatus};

/// The segment magic of this format.
pub const MAGIC: &[u8; 8] = b"VAPJRN01";

/// `Task` as version 1 wrote it.
#[derive(Deserialize)]
struct TaskV1 {
    id: TaskId,
    title: String,
    payload: String,
    queue: String,
    priority: i32,
    status: TaskStatus,
    requires: Vec<String>,
    agent: Option<String>,
    attempts: u32,
    max_attempts: u32,
    created_at: Millis,
    updated_at: Millis,
    result: Option<String>,
    error: Option<String>,
    run_at: Option<Millis>,
    lease_until: Option<Millis>,
    lease_ms: Option<u64>,
    after: Vec<TaskId>,
}

/// `Change` as version 1 wrote it: the same variants, in the same order.
#[derive(Deserialize)]
enum ChangeV1 {
    TaskAdded {
        task: Box<TaskV1>,
        seq: u64,
    },
    TaskClaimed {
        id: TaskId,
        queue: String,
        agent: String,
        attempts: u32,
        lease_until: Millis,
        at: Millis,
    },
    LeaseExtended {
        id: TaskId,
        lease_until: Millis,
    },
    TaskScheduled {
        id: TaskId,
        queue: String,
        agent: Option<String>,
        attempts: u32,
        run_at: Millis,
        error: Option<String>,
        cause: RequeueCause,
        at: Millis,
    },
    TaskFinished {
        id: TaskId,
        queue: String,
        agent: Option<String>,
        status: TaskStatus,
        result: Option<String>,
        error: Option<String>,
        at: Millis,
    },
    TaskRequeued {
        id: TaskId,
        queue: String,
        agent: Option<String>,
        attempts: u32,
        seq: u64,
        error: Option<String>,
        cause: RequeueCause,
        at: Millis,
    },
    AgentRegistered {
        name: String,
        capabilities: Vec<String>,
        max_tasks: u32,
        at: Millis,
    },
    AgentAvailability {
        name: String,
        availability: Availability,
        at: Millis,
    },
    AgentHeartbeat {
        name: String,
        at: Millis,
    },
    AgentRemoved {
        name: String,
    },
    TasksPruned {
        ids: Vec<TaskId>,
    },
    IdsUsed {
        next_id: TaskId,
    },
}

impl From<TaskV1> for Task {
    fn from(t: TaskV1) -> Task {
        Task {
            id: t.id,
            title: t.title,
            payload: t.payload,
            queue: t.queue,
            priority: t.priority,
            status: t.status,
            requires: t.requires,
            agent: t.agent,
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            created_at: t.created_at,
            updated_at: t.updated_at,
            result: t.result,
            error: t.error,
            run_at: t.run_at,
            lease_until: t.lease_until,
            lease_ms: t.lease_ms,
            after: t.after,
            cwd: None,
            env: Vec::new(),
            timeout_ms: None,
            started_at: None,
            ended_at: None,
            exit_code: None,
        }
    }
}

impl From<ChangeV1> for Change {
    fn from(change: ChangeV1) -> Change {
        match change {
            ChangeV1::TaskAdded { task, seq } => Change::TaskAdded {
                task: Box::new(Task::from(*task)),
                seq,
            },
            ChangeV1::TaskClaimed {
                id,
                queue,
                agent,
                attempts,
                lease_until,
                at,
            } => Change::TaskClaimed {
                id,
                queue,
                agent,
                attempts,
                lease_until,
                at,
            },
            ChangeV1::LeaseExtended { id, lease_until } => {
                Change::LeaseExtended { id, lease_until }
            }
            ChangeV1::TaskScheduled {
                id,
                queue,
                agent,
                attempts,
                run_at,
                error,
                cause,
                at,
            } => Change::TaskScheduled {
                id,
                queue,
                agent,
                attempts,
                run_at,
                error,
                cause,
                at,
            },
            ChangeV1::TaskFinished {
                id,
                queue,
                agent,
                status,
                result,
                error,
                at,
            } => Change::TaskFinished {
                id,
                queue,
                agent,
                status,
                result,
                error,
                at,
            },
            ChangeV1::TaskRequeued {
                id,
                queue,
                agent,
                attempts,
                seq,
                error,
                cause,
                at,
            } => Change::TaskRequeued {
                id,
                queue,
                agent,
                attempts,
                seq,
                error,
                cause,
                at,
            },
            ChangeV1::AgentRegistered {
                name,
                capabilities,
                max_tasks,
                at,
            } => Change::AgentRegistered {
                name,
                capabilities,
                max_tasks,
                at,
            },
            ChangeV1::AgentAvailability {
                name,
                availability,
                at,
            } => Change::AgentAvailability {
                name,
                availability,
                at,
            },
            ChangeV1::AgentHeartbeat { name, at } => Change::AgentHeartbeat { name, at },
            ChangeV1::AgentRemoved { name } => Change::AgentRemoved { name },
            ChangeV1::TasksPruned { ids } => Change::TasksPruned { ids },
            ChangeV1::IdsUsed { next_id } => Change::IdsUsed { next_id },
        }
    }
}

/// The changes of one version-1 record body.
pub fn decode(body: &[u8]) -> Result<Vec<Change>, crate::protocol::codec::CodecError> {
    let changes: Vec<ChangeV1> = crate::protocol::codec::decode_unframed(body)?;
    Ok(changes.into_iter().map(Change::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// Writes like version 1 did: the same shape, serialized.
    #[derive(Serialize)]
    struct TaskV1Out<'a> {
        id: TaskId,
        title: &'a str,
        payload: &'a str,
        queue: &'a str,
        priority: i32,
        status: TaskStatus,
        requires: Vec<String>,
        agent: Option<String>,
        attempts: u32,
        max_attempts: u32,
        created_at: Millis,
        updated_at: Millis,
        result: Option<String>,
        error: Option<String>,
        run_at: Option<Millis>,
        lease_until: Option<Millis>,
        lease_ms: Option<u64>,
        after: Vec<TaskId>,
    }

    #[derive(Serialize)]
    enum ChangeV1Out<'a> {
        TaskAdded {
            task: Box<TaskV1Out<'a>>,
            seq: u64,
        },
        TaskClaimed {
            id: TaskId,
            queue: &'a str,
            agent: &'a str,
            attempts: u32,
            lease_until: Millis,
            at: Millis,
        },
    }

    #[test]
    fn version_1_records_decode_into_current_changes() {
        let old = vec![
            ChangeV1Out::TaskAdded {
                task: Box::new(TaskV1Out {
                    id: 5,
                    title: "old",
                    payload: "echo hi",
                    queue: "default",
                    priority: 2,
                    status: TaskStatus::Queued,
                    requires: vec!["gpu".into()],
                    agent: None,
                    attempts: 0,
                    max_attempts: 3,
                    created_at: 10,
                    updated_at: 11,
                    result: None,
                    error: None,
                    run_at: None,
                    lease_until: None,
                    lease_ms: Some(30_000),
                    after: vec![1],
                }),
                seq: 9,
            },
            ChangeV1Out::TaskClaimed {
                id: 5,
                queue: "default",
                agent: "w1",
                attempts: 1,
                lease_until: 40_000,
                at: 12,
            },
        ];
        let mut body = Vec::new();
        crate::protocol::codec::encode_unframed(&mut body, &old).unwrap();
        let changes = decode(&body).unwrap();
        let Change::TaskAdded { task, seq } = &changes[0] else {
            panic!("{changes:?}");
        };
        assert_eq!(*seq, 9);
        assert_eq!(
            (task.id, task.title.as_str(), task.payload.as_str()),
            (5, "old", "echo hi")
        );
        assert_eq!(
            (task.lease_ms, task.after.as_slice()),
            (Some(30_000), &[1][..])
        );
        assert_eq!(
            (&task.cwd, task.env.len(), task.timeout_ms),
            (&None, 0, None)
        );
        assert!(matches!(
            &changes[1],
            Change::TaskClaimed { id: 5, agent, lease_until: 40_000, .. } if agent == "w1"
        ));
        // The current format would misread it.
        assert!(crate::protocol::codec::decode_unframed::<Vec<Change>>(&body).is_err());
    }

    /// A segment a version-1 daemon left behind is replayed; a new segment would be
    /// written in the current format.
    #[test]
    fn a_version_1_segment_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = MAGIC.to_vec();
        for seq in 1..=2u64 {
            let old = vec![ChangeV1Out::TaskClaimed {
                id: seq,
                queue: "q",
                agent: "w1",
                attempts: 1,
                lease_until: 100,
                at: 50,
            }];
            let mut body = Vec::new();
            crate::protocol::codec::encode_unframed(&mut body, &old).unwrap();
            let mut covered = seq.to_le_bytes().to_vec();
            covered.extend_from_slice(&body);
            segment.extend_from_slice(&(body.len() as u32).to_le_bytes());
            segment.extend_from_slice(&crc32fast::hash(&covered).to_le_bytes());
            segment.extend_from_slice(&covered);
        }
        std::fs::write(dir.path().join("0000000001.log"), &segment).unwrap();
        let mut seen = Vec::new();
        let replayed = super::super::journal::replay(dir.path(), 0, |seq, changes| {
            seen.push((seq, changes));
            Ok(())
        })
        .unwrap();
        assert_eq!(replayed.records, 2);
        assert_eq!(seen.len(), 2);
        assert!(matches!(
            &seen[1].1[..],
            [Change::TaskClaimed { id: 2, .. }]
        ));
        assert_ne!(super::super::journal::MAGIC, MAGIC);
    }
}
