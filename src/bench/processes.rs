//! Scenarios that measure whole processes: the real `vapora` command as a user's shell
//! runs it, the daemon's start-up, and the daemon's memory.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use super::latency::Latencies;
use super::report::Row;
use super::requests::fill;
use super::target::Target;

/// Runs `vapora ARGS` against the target `runs` times and times each run, from spawn to
/// exit, with its output read through a pipe and thrown away as it comes, the way
/// `vapora ... | cat >/dev/null` would. Returns the latencies and the bytes of output.
fn time_command(
    vapora: &Path,
    target: &Target,
    args: &[&str],
    runs: usize,
) -> anyhow::Result<(Latencies, usize)> {
    let mut latencies = Latencies::with_capacity(runs);
    let mut bytes = 0;
    let mut sink = vec![0u8; 1 << 20];
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = Command::new(vapora)
            .args(args)
            .env("VAPORA_SOCKET", &target.socket)
            .env("VAPORA_NO_AUTOSTART", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", vapora.display()))?;
        let mut stdout = child.stdout.take().context("no stdout pipe")?;
        bytes = 0;
        loop {
            match stdout.read(&mut sink) {
                Ok(0) => break,
                Ok(n) => bytes += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e).context("reading the command's output");
                }
            }
        }
        let status = child.wait()?;
        latencies.record(started.elapsed());
        if !status.success() {
            bail!("vapora {} failed: {status}", args.join(" "));
        }
    }
    Ok((latencies, bytes))
}

/// `vapora task add` as a new process each time.
pub fn oneshot(vapora: &Path, target: &Target, runs: usize) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (mut latencies, _) = time_command(vapora, target, &["task", "add", "bench"], runs)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Row::throughput(
        "oneshot",
        "task add".into(),
        "runs",
        runs as u64,
        seconds,
        &mut latencies,
    ))
}

/// `vapora task list --json` over a queue of `tasks` tasks, the whole command.
pub fn list(vapora: &Path, target: &Target, tasks: usize, runs: usize) -> anyhow::Result<Row> {
    fill(target, tasks)?;
    let started = Instant::now();
    let (mut latencies, bytes) = time_command(vapora, target, &["task", "list", "--json"], runs)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut row = Row::throughput(
        "list",
        format!("tasks={tasks}"),
        "runs",
        runs as u64,
        seconds,
        &mut latencies,
    );
    row.note = format!("{:.1} MB of JSON", bytes as f64 / 1e6);
    Ok(row)
}

/// One-shot add latency as the queue grows: a row per depth, each compared with the first.
pub fn depth(
    vapora: &Path,
    target: &Target,
    depths: &[usize],
    runs: usize,
) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    let mut queued = 0;
    let mut sorted = depths.to_vec();
    sorted.sort_unstable();
    for depth in sorted {
        fill(target, depth.saturating_sub(queued))?;
        queued = queued.max(depth);
        let started = Instant::now();
        let (mut latencies, _) = time_command(vapora, target, &["task", "add", "bench"], runs)?;
        queued += runs;
        let mut row = Row::throughput(
            "depth",
            format!("queued={depth}"),
            "runs",
            runs as u64,
            started.elapsed().as_secs_f64(),
            &mut latencies,
        );
        if let (Some(first), Some(p50)) = (rows.first().and_then(|r| r.p50_us), row.p50_us) {
            row.note = format!(
                "median {:+.1} % vs queued={}",
                (p50 / first - 1.0) * 100.0,
                depths_first(&rows)
            );
        }
        rows.push(row);
    }
    Ok(rows)
}

fn depths_first(rows: &[Row]) -> &str {
    rows.first()
        .and_then(|r| r.setting.strip_prefix("queued="))
        .unwrap_or("?")
}

/// Start-up of a daemon whose store holds `tasks` tasks: from spawn until it answers a
/// ping, `runs` times.
pub fn restart(target: &mut Target, tasks: usize, runs: usize) -> anyhow::Result<Row> {
    fill(target, tasks)?;
    let mut latencies = Latencies::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        target.stop()?;
        latencies.record(target.spawn()?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut row = Row::throughput(
        "restart",
        format!("tasks={tasks}"),
        "runs",
        runs as u64,
        seconds,
        &mut latencies,
    );
    row.ops_per_sec = None;
    row.value = row.p50_us.map(|us| us / 1e6);
    row.note = "start-up until the first answer".into();
    Ok(row)
}

/// The daemon's resident memory per queued task, beyond the task's title (1 byte here) and
/// payload (empty): RSS after adding `tasks` tasks minus RSS before, over `tasks`.
pub fn memory(target: &Target, tasks: usize) -> anyhow::Result<Row> {
    let tasks = tasks.max(1);
    let pid = target.pid()?;
    // A first small fill so that the allocator, the store and the connection buffers
    // are warm and not counted per task.
    fill(target, 1000)?;
    let before = rss_bytes(pid)?;
    let started = Instant::now();
    fill(target, tasks)?;
    let seconds = started.elapsed().as_secs_f64();
    let after = settled_rss(pid)?;
    let per_task = (after.saturating_sub(before)) as f64 / tasks as f64 - 1.0;
    Ok(Row {
        scenario: "memory".into(),
        setting: format!("tasks={tasks}"),
        ops: tasks as u64,
        unit: "tasks",
        seconds,
        ops_per_sec: None,
        p50_us: None,
        p99_us: None,
        value: Some(per_task),
        note: format!(
            "{per_task:.0} bytes per task (RSS {:.1} → {:.1} MB)",
            before as f64 / 1e6,
            after as f64 / 1e6
        ),
    })
}

/// The daemon's memory once it has settled: the fill waited for SQLite to catch up, and
/// the writer then returns the memory that held its backlog to the system. Samples every
/// 100 ms until the figure has not moved for half a second, or 10 s have passed.
fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let (mut last, mut stable) = (rss_bytes(pid)?, 0);
    while stable < 5 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = rss_bytes(pid)?;
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// VmRSS of a process, from /proc.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the memory of process {pid}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .context("no VmRSS line in /proc/PID/status")
}
