//! `lock-hold`: the longest each kind of request holds the queue lock, with a big queue and
//! many parked waits. Every request passes through that one lock, so its longest hold is
//! how long any other client can be kept waiting by one request.
//!
//! The set-up is the worst a single user can ask for within the limits: `tasks` queued
//! tasks, an agent holding 10,000 of them (half finished with a result), `waits` waits
//! parked on their own connections, each naming 1,000 queued tasks, and as many claims
//! parked for a queue that stays empty, and 10,000 tasks that wait for one task. Then the
//! heavy requests run (a full batch of adds, whole-queue and per-status lists, a wait
//! naming 10,000 tasks, a heartbeat renewing 10,000 leases, a cancel that cancels 10,000
//! dependents, a prune, the agent going offline with 5,000 tasks...), and the daemon's own
//! figures (`vapora metrics`: `lock_hold_max_us` per request kind) are read back: one row
//! per kind, the value in microseconds. The daemon measures the hold itself, from taking
//! the lock to releasing it, so the figure does not include waiting for it.

use std::time::Instant;

use anyhow::{anyhow, bail};

use super::report::Row;
use super::requests::fill;
use super::target::{Target, call};
use crate::client::connection::Client;
use crate::protocol::limits::MAX_WAIT_IDS;
use crate::protocol::{
    AgentStatus, NewTask, Renew, Request, Response, TaskFilter, TaskId, TaskStatus,
};

/// Tasks the agent holds (and the heartbeat renews).
const HELD: usize = 10_000;
/// Tasks each parked wait names.
const IDS_PER_WAIT: usize = 1_000;
const AGENT: &str = "bench-holder";

pub fn lock_hold(target: &Target, tasks: usize, waits: usize) -> anyhow::Result<Vec<Row>> {
    let tasks = tasks.max(HELD + IDS_PER_WAIT + MAX_WAIT_IDS);
    let started = Instant::now();
    fill(target, tasks)?;
    let mut client = target.connect()?;
    call(
        &mut client,
        &Request::RegisterAgent {
            name: AGENT.into(),
            capabilities: Vec::new(),
            max_tasks: HELD as u32,
        },
    )?;
    // The agent takes the first HELD tasks (ids 1..=HELD) and finishes half of them.
    let mut held: Vec<TaskId> = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        match call(&mut client, &claim())? {
            Response::Claimed(Some(task)) => held.push(task.id),
            other => bail!("the agent got no task: {other:?}"),
        }
    }
    for &id in &held[..HELD / 2] {
        call(
            &mut client,
            &Request::Complete {
                id,
                result: Some("r".repeat(100)),
                agent: Some(AGENT.into()),
                run: None,
            },
        )?;
    }
    // The parked waits: each names IDS_PER_WAIT queued tasks after the held ones.
    let first_queued = held.iter().max().copied().unwrap_or(0) + 1;
    let mut parked: Vec<Client> = Vec::with_capacity(waits);
    for _ in 0..waits {
        let mut waiter = target.connect()?;
        let ids: Vec<TaskId> = (first_queued..first_queued + IDS_PER_WAIT as TaskId).collect();
        waiter
            .start_stream(&Request::Wait {
                ids,
                timeout_ms: Some(600_000),
            })
            .map_err(|e| anyhow!("{}", e.message))?;
        parked.push(waiter);
    }
    // As many claims parked, by agents of their own, for a queue nothing is added to.
    for index in 0..waits {
        let name = format!("bench-idle-{index}");
        call(
            &mut client,
            &Request::RegisterAgent {
                name: name.clone(),
                capabilities: Vec::new(),
                max_tasks: 1,
            },
        )?;
        let mut claimer = target.connect()?;
        claimer
            .start_stream(&Request::Claim {
                agent: name,
                queues: vec!["bench-empty".into()],
                wait_ms: 600_000,
                done: None,
            })
            .map_err(|e| anyhow!("{}", e.message))?;
        parked.push(claimer);
    }
    wait_until_parked(&mut client, waits as u64)?;
    // A root task and a full batch of tasks that wait for it.
    let root = match call(
        &mut client,
        &Request::AddTasks {
            tasks: vec![NewTask::new("root")],
        },
    )? {
        Response::Added(ids) => ids.first().copied().unwrap_or_default(),
        other => bail!("unexpected answer to an add: {other:?}"),
    };
    let dependents = (0..target.max_batch()?)
        .map(|i| {
            let mut task = NewTask::new(format!("dependent {i}"));
            task.after = vec![root];
            task
        })
        .collect();
    call(&mut client, &Request::AddTasks { tasks: dependents })?;

    // The heavy requests, each once, with everything above in place.
    let heavy = [
        Request::AddTasks {
            tasks: (0..target.max_batch()?)
                .map(|i| NewTask::new(format!("more {i}")))
                .collect(),
        },
        Request::ListTasks(TaskFilter::default()),
        Request::ListTasks(TaskFilter {
            statuses: vec![TaskStatus::Done],
            ..TaskFilter::default()
        }),
        Request::Wait {
            ids: (1..=MAX_WAIT_IDS as TaskId).collect(),
            timeout_ms: Some(0),
        },
        Request::Heartbeat {
            name: AGENT.into(),
            tasks: Vec::new(),
            renew: Renew::AllHeld,
        },
        claim(),
        Request::GetTask { id: first_queued },
        // Finishing a task that every parked wait names wakes them all.
        Request::Cancel { id: first_queued },
        // Cancelling the root cancels every task that waits for it.
        Request::Cancel { id: root },
        Request::ListAgents {
            statuses: Vec::new(),
        },
        Request::Metrics,
        Request::Prune {
            older_than_ms: Some(0),
        },
        // An agent going offline gives back every task it holds.
        Request::SetAgentStatus {
            name: AGENT.into(),
            status: AgentStatus::Offline,
        },
    ];
    // Each with the store caught up first: on two cores, the SQLite writer catching up
    // with the set-up competes for the CPU, and a holder that loses its core holds longer.
    for request in &heavy {
        target.settle()?;
        // A list too big for one answer is refused, after its work under the lock: the
        // hold is what is measured, so that answer is fine here.
        let _ = client.call(request).map_err(|e| anyhow!("{}", e.message))?;
    }
    let metrics = match call(&mut client, &Request::Metrics)? {
        Response::Metrics(m) => m,
        other => bail!("unexpected answer to a metrics request: {other:?}"),
    };
    drop(parked);
    let seconds = started.elapsed().as_secs_f64();
    let setting = |kind: &str| format!("{kind} tasks={tasks} waits={waits}+{waits}");
    let mut rows: Vec<Row> = metrics
        .requests
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| hold_row(setting(&r.kind), r.count, r.lock_hold_max_us, seconds))
        .collect();
    rows.push(hold_row(
        setting("background"),
        1,
        metrics.background_lock_hold_max_us,
        seconds,
    ));
    Ok(rows)
}

fn claim() -> Request {
    Request::Claim {
        agent: AGENT.into(),
        queues: Vec::new(),
        wait_ms: 0,
        done: None,
    }
}

fn hold_row(setting: String, count: u64, hold_us: u64, seconds: f64) -> Row {
    Row {
        scenario: "lock-hold".into(),
        setting,
        ops: count,
        unit: "requests",
        seconds,
        ops_per_sec: None,
        p50_us: None,
        p99_us: None,
        value: Some(hold_us as f64),
        note: format!("longest queue-lock hold {hold_us} us"),
    }
}

/// Polls the daemon's counts of waits in progress and parked claims until all of ours are
/// in.
fn wait_until_parked(client: &mut Client, each: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match call(client, &Request::Metrics)? {
            Response::Metrics(m) if m.waits_in_progress >= each && m.parked_claims >= each => {
                return Ok(());
            }
            Response::Metrics(_) => {}
            other => bail!("unexpected answer to a metrics request: {other:?}"),
        }
        if Instant::now() > deadline {
            bail!("the waits did not all park within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
