//! `vapora-bench`: named scenarios against a running daemon (`--socket`) or against daemons
//! it starts itself, in the spirit of `redis-benchmark`. Not part of `cargo test`: the
//! numbers go into BENCHMARKS.md, never into assertions.
//!
//! - [`requests`]: scenarios through the client library (ping, add, add-bulk, claim-done);
//! - [`processes`]: whole processes (oneshot, list, depth, restart, memory);
//! - [`lock_hold`]: the longest queue-lock hold of each request kind under load;
//! - [`work`]: commands run by `vapora work`, beside `xargs -P`;
//! - [`target`]: the daemon under test; [`latency`] and [`report`]: the figures.

pub mod event_loop;
pub mod latency;
pub mod lock_hold;
pub mod processes;
pub mod report;
pub mod requests;
pub mod target;
pub mod work;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use report::Row;
use target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Round trips that touch no state.
    Ping,
    /// One task per request, each acknowledged before the next.
    Add,
    /// Batches of tasks, pipelined.
    AddBulk,
    /// Agents claiming tasks and marking them done: a done and a claim per task, then a
    /// claim that marks the previous task done (`task claim --done`).
    ClaimDone,
    /// `vapora task list --json` over a full queue, the whole command.
    List,
    /// `vapora task add` as a new process each time.
    Oneshot,
    /// One-shot add latency as the queue grows.
    Depth,
    /// Daemon memory per queued task.
    Memory,
    /// Daemon start-up with a full store.
    Restart,
    /// The longest queue-lock hold of each request kind, with a full queue and many
    /// parked waits.
    LockHold,
    /// Commands (`true`) run by `vapora work -j N`, beside `xargs -P N`.
    Work,
}

#[derive(Debug, Parser)]
#[command(
    name = "vapora-bench",
    version,
    about = "Measure a vapora daemon: throughput, latency, start-up and memory"
)]
pub struct BenchArgs {
    /// Scenarios to run, in this order (default: all).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Use the daemon at this socket instead of starting one per scenario (restart and
    /// memory need a daemon of their own and are skipped).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The vapora binary to start and to time (default: the one beside vapora-bench).
    #[arg(long, value_name = "PATH")]
    pub vapora: Option<PathBuf>,
    /// Extra argument for the daemons the benchmark starts (repeat: --daemon-arg=--sync
    /// --daemon-arg=full).
    #[arg(long = "daemon-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub daemon_args: Vec<String>,
    /// Concurrent connections for ping, add and add-bulk; a comma-separated list runs
    /// each.
    #[arg(short = 'c', long, value_delimiter = ',', default_value = "1,32")]
    pub connections: Vec<usize>,
    /// Requests per ping and add run.
    #[arg(short = 'n', long, default_value_t = 50_000)]
    pub requests: usize,
    /// Tasks added by add-bulk.
    #[arg(long, default_value_t = 1_000_000)]
    pub bulk_tasks: usize,
    /// Tasks per add-bulk request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Agents (one connection each) in claim-done.
    #[arg(long, default_value_t = 8)]
    pub agents: usize,
    /// Tasks claimed and done in claim-done.
    #[arg(long, default_value_t = 100_000)]
    pub claim_tasks: usize,
    /// Queue size for list.
    #[arg(long, default_value_t = 100_000)]
    pub list_tasks: usize,
    /// Queue sizes for depth.
    #[arg(long, value_delimiter = ',', default_value = "0,100000,1000000")]
    pub depths: Vec<usize>,
    /// Queued tasks for memory.
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_tasks: usize,
    /// Stored tasks for restart.
    #[arg(long, default_value_t = 1_000_000)]
    pub restart_tasks: usize,
    /// Tasks run by the work scenario.
    #[arg(long, default_value_t = 5000)]
    pub work_tasks: usize,
    /// Tasks run at once in the work scenario (`vapora work -j`, `xargs -P`).
    #[arg(long, default_value_t = 4)]
    pub work_jobs: usize,
    /// Queued tasks for lock-hold.
    #[arg(long, default_value_t = 1_000_000)]
    pub lock_tasks: usize,
    /// Parked task waits for lock-hold, and as many parked claims (one connection each).
    #[arg(long, default_value_t = 1000)]
    pub lock_waits: usize,
    /// Process runs per oneshot and depth measurement.
    #[arg(long, default_value_t = 500)]
    pub runs: usize,
    /// Runs of list and restart (each is slow).
    #[arg(long, default_value_t = 5)]
    pub slow_runs: usize,
    /// Print the results as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Every scenario, in the order `vapora-bench` runs them by default.
const ALL: [Scenario; 11] = [
    Scenario::Ping,
    Scenario::Add,
    Scenario::AddBulk,
    Scenario::ClaimDone,
    Scenario::List,
    Scenario::Oneshot,
    Scenario::Depth,
    Scenario::Memory,
    Scenario::Restart,
    Scenario::LockHold,
    Scenario::Work,
];

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let vapora = match &args.vapora {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot find vapora-bench's own path")?
            .with_file_name("vapora"),
    };
    if !vapora.exists() {
        bail!(
            "no vapora binary at {} (build it, or pass --vapora)",
            vapora.display()
        );
    }
    let scenarios = if args.scenarios.is_empty() {
        ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let mut rows = Vec::new();
    for scenario in scenarios {
        let new_rows = run_scenario(&args, &vapora, scenario)
            .with_context(|| format!("scenario {scenario:?}"))?;
        if !args.json {
            // Progress as it happens; the full table again at the end.
            for row in &new_rows {
                eprintln!("done: {} {}", row.scenario, row.setting);
            }
        }
        rows.extend(new_rows);
    }
    if args.json {
        report::print_json(&rows)
    } else {
        report::print_table(&rows);
        Ok(())
    }
}

fn run_scenario(args: &BenchArgs, vapora: &Path, scenario: Scenario) -> anyhow::Result<Vec<Row>> {
    // A fresh daemon per run, unless the user named one.
    let fresh = || -> anyhow::Result<Target> {
        match &args.socket {
            Some(socket) => Ok(Target::existing(socket.clone())),
            None => Target::start(vapora, &args.daemon_args),
        }
    };
    let mut rows = Vec::new();
    match scenario {
        Scenario::Ping | Scenario::Add => {
            let name = if scenario == Scenario::Ping {
                "ping"
            } else {
                "add"
            };
            for &c in &args.connections {
                rows.push(requests::one_by_one(
                    &fresh()?,
                    name,
                    c.max(1),
                    args.requests,
                )?);
            }
        }
        Scenario::AddBulk => {
            for &c in &args.connections {
                rows.push(requests::add_bulk(
                    &fresh()?,
                    c.max(1),
                    args.bulk_tasks,
                    args.batch,
                )?);
            }
        }
        Scenario::ClaimDone => {
            for combined in [false, true] {
                rows.push(requests::claim_done(
                    &fresh()?,
                    args.agents.max(1),
                    args.claim_tasks,
                    combined,
                )?);
            }
        }
        Scenario::List => rows.push(processes::list(
            vapora,
            &fresh()?,
            args.list_tasks,
            args.slow_runs,
        )?),
        Scenario::Oneshot => rows.push(processes::oneshot(vapora, &fresh()?, args.runs)?),
        Scenario::Depth => rows.extend(processes::depth(
            vapora,
            &fresh()?,
            &args.depths,
            args.runs,
        )?),
        Scenario::Work => rows.extend(work::work(
            vapora,
            &fresh()?,
            args.work_tasks,
            args.work_jobs.max(1),
        )?),
        Scenario::LockHold => {
            // Room for the parked waits and claims, one connection each.
            let target = match &args.socket {
                Some(socket) => Target::existing(socket.clone()),
                None => {
                    let mut daemon_args = args.daemon_args.clone();
                    daemon_args.push("--max-connections".into());
                    daemon_args.push((2 * args.lock_waits + 64).to_string());
                    Target::start(vapora, &daemon_args)?
                }
            };
            rows.extend(lock_hold::lock_hold(
                &target,
                args.lock_tasks,
                args.lock_waits,
            )?);
        }
        Scenario::Memory | Scenario::Restart => {
            if args.socket.is_some() {
                eprintln!("skipped: {scenario:?} needs a daemon of its own (no --socket)");
                return Ok(rows);
            }
            let mut target = fresh()?;
            rows.push(if scenario == Scenario::Memory {
                processes::memory(&target, args.memory_tasks)?
            } else {
                processes::restart(&mut target, args.restart_tasks, args.slow_runs)?
            });
        }
    }
    Ok(rows)
}
