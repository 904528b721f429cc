//! Scenarios that drive the daemon through the client library: many connections, each
//! sending requests and waiting for the answers, as a worker or a script would.

use std::sync::Barrier;
use std::time::Instant;

use anyhow::{anyhow, bail};

use super::latency::Latencies;
use super::report::Row;
use super::target::{Target, call};
use crate::client::connection::Client;
use crate::protocol::{DoneFirst, NewTask, Request, Response, TaskId};

/// Runs `work` on `connections` threads, each with its own connection, released together
/// once all are connected. Returns the wall time from the release to the last one's end,
/// and every thread's latencies.
fn on_connections<F>(
    target: &Target,
    connections: usize,
    work: F,
) -> anyhow::Result<(f64, Latencies)>
where
    F: Fn(usize, &mut Client, &mut Latencies) -> anyhow::Result<()> + Sync,
{
    let barrier = Barrier::new(connections + 1);
    let (elapsed, results) = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..connections)
            .map(|index| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || -> anyhow::Result<Latencies> {
                    let client = target.connect();
                    barrier.wait();
                    let mut client = client?;
                    let mut latencies = Latencies::default();
                    work(index, &mut client, &mut latencies)?;
                    Ok(latencies)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow!("a thread panicked")))
            })
            .collect();
        (started.elapsed().as_secs_f64(), results)
    });
    let mut all = Latencies::default();
    for result in results {
        all.merge(result?);
    }
    Ok((elapsed, all))
}

/// `total` split over `parts` as evenly as possible: the share of part `index`.
fn share(total: usize, parts: usize, index: usize) -> usize {
    total / parts + usize::from(index < total % parts)
}

/// One request at a time per connection, each timed: `ping` or `add`. All connections are
/// driven by one thread (`event_loop.rs`), as `redis-benchmark` drives its own.
pub fn one_by_one(
    target: &Target,
    scenario: &str,
    connections: usize,
    requests: usize,
) -> anyhow::Result<Row> {
    let shares: Vec<usize> = (0..connections)
        .map(|index| share(requests, connections, index))
        .collect();
    let (seconds, mut latencies) = super::event_loop::run(target, &shares, |index, i| {
        if scenario == "ping" {
            Request::Ping
        } else {
            Request::AddTasks {
                tasks: vec![NewTask::new(format!("bench {index}-{i}"))],
            }
        }
    })?;
    let count = latencies.len() as u64;
    Ok(Row::throughput(
        scenario,
        format!("c={connections}"),
        "requests",
        count,
        seconds,
        &mut latencies,
    ))
}

/// Batches of `batch` tasks per request (at most the daemon's `--max-batch`), pipelined
/// (the client's window) on each connection. Throughput only: with pipelining, a batch's
/// round trip says little.
pub fn add_bulk(
    target: &Target,
    connections: usize,
    tasks: usize,
    batch: usize,
) -> anyhow::Result<Row> {
    let batch = batch.clamp(1, target.max_batch()?);
    // Built before the clock starts: the benchmark measures the daemon, not task building.
    let requests: Vec<Vec<Request>> = (0..connections)
        .map(|index| {
            batches(
                share(tasks, connections, index),
                batch,
                &format!("bulk {index}"),
            )
        })
        .collect();
    let (seconds, mut latencies) = on_connections(target, connections, |index, client, _| {
        let mut answers = Vec::with_capacity(requests[index].len());
        client
            .call_many(&requests[index], &mut answers)
            .map_err(|e| anyhow!("{}", e.message))?;
        for answer in answers {
            answer.map_err(|e| anyhow!("the daemon refused a batch: {e}"))?;
        }
        Ok(())
    })?;
    Ok(Row::throughput(
        "add-bulk",
        format!("c={connections} batch={batch}"),
        "tasks",
        tasks as u64,
        seconds,
        &mut latencies,
    ))
}

/// Add requests for `tasks` tasks, `batch` a request.
fn batches(tasks: usize, batch: usize, prefix: &str) -> Vec<Request> {
    (0..tasks)
        .step_by(batch.max(1))
        .map(|first| Request::AddTasks {
            tasks: (first..tasks.min(first + batch))
                .map(|i| NewTask::new(format!("{prefix} {i}")))
                .collect(),
        })
        .collect()
}

/// Adds `tasks` tasks titled "t" as fast as the daemon takes them, then waits until its
/// store has caught up: the set-up of the scenarios that need a full queue (not measured),
/// which would otherwise measure SQLite catching up along with themselves.
pub fn fill(target: &Target, tasks: usize) -> anyhow::Result<()> {
    fill_with(target, tasks, || NewTask::new("t"))
}

/// [`fill`] with tasks made by `task`.
pub fn fill_with(target: &Target, tasks: usize, task: impl Fn() -> NewTask) -> anyhow::Result<()> {
    let batch = target.max_batch()?.max(1);
    let mut client = target.connect()?;
    let mut done = 0;
    while done < tasks {
        let chunk = (tasks - done).min(batch * 16);
        let requests: Vec<Request> = (0..chunk)
            .step_by(batch)
            .map(|first| Request::AddTasks {
                tasks: (first..chunk.min(first + batch)).map(|_| task()).collect(),
            })
            .collect();
        let mut answers = Vec::new();
        client
            .call_many(&requests, &mut answers)
            .map_err(|e| anyhow!("{}", e.message))?;
        for answer in answers {
            answer.map_err(|e| anyhow!("the daemon refused a batch: {e}"))?;
        }
        done += chunk;
    }
    target.settle()
}

/// `agents` agents, each claiming a task and marking it done until the queue is empty.
/// The queue holds `tasks` tasks first. One operation is one task finished: its `done`
/// and the next claim, as two requests, or as one when `combined` (a claim that marks the
/// previous task done, `task claim --done`).
pub fn claim_done(
    target: &Target,
    agents: usize,
    tasks: usize,
    combined: bool,
) -> anyhow::Result<Row> {
    fill(target, tasks)?;
    let mut client = target.connect()?;
    for index in 0..agents {
        call(
            &mut client,
            &Request::RegisterAgent {
                name: agent_name(index),
                capabilities: Vec::new(),
                max_tasks: 1,
            },
        )?;
    }
    let (seconds, mut latencies) = on_connections(target, agents, |index, client, lat| {
        let agent = agent_name(index);
        let mut held: Option<TaskId> = None;
        loop {
            let started = Instant::now();
            let finishing = held.take();
            if let (Some(id), false) = (finishing, combined) {
                let done = Request::Complete {
                    id,
                    result: None,
                    agent: Some(agent.clone()),
                    run: None,
                };
                call(client, &done)?;
            }
            let claim = Request::Claim {
                agent: agent.clone(),
                queues: Vec::new(),
                wait_ms: 0,
                done: finishing.filter(|_| combined).map(|id| DoneFirst {
                    id,
                    result: None,
                    run: None,
                }),
            };
            let next = match call(client, &claim)? {
                Response::Claimed(task) => task.map(|task| task.id),
                other => bail!("unexpected answer to a claim: {other:?}"),
            };
            if finishing.is_some() {
                lat.record(started.elapsed());
            }
            match next {
                Some(id) => held = Some(id),
                None => return Ok(()),
            }
        }
    })?;
    let count = latencies.len() as u64;
    // With --socket the queue may hold more than this run added; never fewer.
    if count < tasks as u64 {
        bail!("claim-done finished {count} tasks of {tasks}");
    }
    Ok(Row::throughput(
        "claim-done",
        format!("agents={agents}{}", if combined { " combined" } else { "" }),
        "tasks",
        count,
        seconds,
        &mut latencies,
    ))
}

fn agent_name(index: usize) -> String {
    format!("bench-agent-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(10, 3), (3, 8), (0, 2), (100, 1)] {
            let sum: usize = (0..parts).map(|i| share(total, parts, i)).sum();
            assert_eq!(sum, total, "{total} over {parts}");
        }
    }

    #[test]
    fn batches_cover_every_task_once() {
        let requests = batches(25, 10, "x");
        let sizes: Vec<usize> = requests
            .iter()
            .map(|r| match r {
                Request::AddTasks { tasks } => tasks.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, [10, 10, 5]);
    }
}
