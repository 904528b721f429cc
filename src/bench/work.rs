//! `work`: commands run by `vapora work`, beside `xargs -P` running the same commands
//! (the machine's process-spawn limit, which no job runner can beat).
//!
//! `tasks` tasks whose payload is `true` are queued first; then `vapora work -j JOBS
//! --exit-when-empty` runs them all, timed from its start to its exit (it reports every
//! outcome before it exits). Then `xargs -P JOBS` runs `sh -c true` as many times.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};

use super::latency::Latencies;
use super::report::Row;
use super::requests::fill_with;
use super::target::{Target, call};
use crate::protocol::{NewTask, Request, Response};

pub fn work(vapora: &Path, target: &Target, tasks: usize, jobs: usize) -> anyhow::Result<Vec<Row>> {
    fill_with(target, tasks, || {
        let mut task = NewTask::new("true");
        task.payload = "true".into();
        task
    })?;
    let started = Instant::now();
    let status = Command::new(vapora)
        .args([
            "work",
            "--agent",
            "bench-worker",
            "-q",
            "--exit-when-empty",
            "-j",
        ])
        .arg(jobs.to_string())
        .env("VAPORA_SOCKET", &target.socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", vapora.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("vapora work failed: {status}");
    }
    let done = match call(&mut target.connect()?, &Request::Metrics)? {
        Response::Metrics(m) => m.counters.done,
        other => bail!("unexpected answer to a metrics request: {other:?}"),
    };
    if done != tasks as u64 {
        bail!("vapora work ended with {done} of {tasks} tasks done");
    }
    let vapora_row = Row::throughput(
        "work",
        format!("vapora work -j {jobs}"),
        "tasks",
        tasks as u64,
        seconds,
        &mut Latencies::with_capacity(0),
    );

    let started = Instant::now();
    let mut xargs = Command::new("xargs")
        .args(["-P", &jobs.to_string(), "-n", "1", "sh", "-c", "true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run xargs")?;
    {
        use std::io::Write;
        let mut input = xargs
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no stdin for xargs"))?;
        let lines: String = (0..tasks).map(|i| format!("{i}\n")).collect();
        input.write_all(lines.as_bytes())?;
    }
    let status = xargs.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("xargs failed: {status}");
    }
    let mut xargs_row = Row::throughput(
        "work",
        format!("xargs -P {jobs} sh -c true"),
        "tasks",
        tasks as u64,
        seconds,
        &mut Latencies::with_capacity(0),
    );
    if let (Some(ours), Some(theirs)) = (vapora_row.ops_per_sec, xargs_row.ops_per_sec) {
        xargs_row.note = format!("vapora work at {:.2}x of this", ours / theirs);
    }
    Ok(vec![vapora_row, xargs_row])
}
