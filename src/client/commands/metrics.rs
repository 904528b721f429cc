//! `vapora metrics`: the daemon's snapshot as text, JSON or Prometheus exposition format
//! (rendered by `protocol::prometheus`, which the daemon's scrape endpoint serves too).

use std::fmt::Write as _;

use serde_json::json;

use crate::client::cli::MetricsFormat;
use crate::client::exit::{CliError, OK};
use crate::client::{Session, output, unexpected};
use crate::protocol::{MetricsSnapshot, Request, Response, prometheus};

pub fn run(session: &mut Session, format: Option<MetricsFormat>) -> Result<i32, CliError> {
    // `--json` is `--format json`; with another format it is a contradiction, refused
    // before anything is asked.
    let format = match (session.json, format) {
        (true, Some(other)) if other != MetricsFormat::Json => {
            return Err(CliError::usage(
                "--json asks for JSON and --format for another format: use one of them",
            ));
        }
        (true, _) => MetricsFormat::Json,
        (false, format) => format.unwrap_or(MetricsFormat::Text),
    };
    let snapshot = match session.call(Request::Metrics)? {
        Response::Metrics(snapshot) => snapshot,
        other => return Err(unexpected(other)),
    };
    match format {
        MetricsFormat::Json => output::json(&to_json(&snapshot))?,
        MetricsFormat::Text => print!("{}", to_text(&snapshot)),
        MetricsFormat::Prometheus => print!("{}", prometheus::render(&snapshot)),
    }
    Ok(OK)
}

fn to_json(m: &MetricsSnapshot) -> serde_json::Value {
    json!({
        "uptime_ms": m.uptime_ms,
        "tasks": m.tasks.iter().map(|(queue, status, count)| json!({
            "queue": queue, "status": status.as_str(), "count": count,
        })).collect::<Vec<_>>(),
        "agents": m.agents.iter().map(|(status, count)| json!({
            "status": status.as_str(), "count": count,
        })).collect::<Vec<_>>(),
        "counters": {
            "enqueued": m.counters.enqueued,
            "claimed": m.counters.claimed,
            "done": m.counters.done,
            "failed": m.counters.failed,
            "requeued": m.counters.requeued,
            "cancelled": m.counters.cancelled,
        },
        "latency_buckets_us": m.latency_buckets_us,
        "requests": m.requests.iter().filter(|r| r.count > 0).map(|r| json!({
            "kind": r.kind,
            "count": r.count,
            "errors": r.errors,
            "latency_sum_us": r.latency_sum_us,
            "latency_cumulative": r.latency_cumulative,
            "lock_hold_max_us": r.lock_hold_max_us,
        })).collect::<Vec<_>>(),
        "background_lock_hold_max_us": m.background_lock_hold_max_us,
        "connections_open": m.connections_open,
        "connections_total": m.connections_total,
        "parked_claims": m.parked_claims,
        "waits_in_progress": m.waits_in_progress,
        "store_backlog_bytes": m.store_backlog_bytes,
        "run_buckets_ms": m.run_buckets_ms,
        "run_cumulative": m.run_cumulative,
        "run_sum_ms": m.run_sum_ms,
    })
}

fn to_text(m: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let c = &m.counters;
    let _ = writeln!(out, "uptime: {}s", m.uptime_ms / 1000);
    let _ = writeln!(
        out,
        "connections: {} open, {} total",
        m.connections_open, m.connections_total
    );
    let _ = writeln!(out, "parked claims: {}", m.parked_claims);
    let _ = writeln!(out, "task waits in progress: {}", m.waits_in_progress);
    let _ = writeln!(
        out,
        "store backlog: {} bytes (journaled, not yet in SQLite)",
        m.store_backlog_bytes
    );
    let _ = writeln!(out, "tasks:");
    if m.tasks.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (queue, status, count) in &m.tasks {
        // Queue names are checked ([A-Za-z0-9._-]), but this view trusts no daemon.
        let queue = output::escape(queue);
        let _ = writeln!(out, "  {queue:<20} {:<10} {count}", status.as_str());
    }
    let _ = writeln!(out, "agents:");
    for (status, count) in &m.agents {
        let _ = writeln!(out, "  {:<10} {count}", status.as_str());
    }
    let _ = writeln!(
        out,
        "counters: enqueued {} claimed {} done {} failed {} requeued {} cancelled {}",
        c.enqueued, c.claimed, c.done, c.failed, c.requeued, c.cancelled
    );
    let _ = writeln!(out, "requests:");
    for r in m.requests.iter().filter(|r| r.count > 0) {
        let mean = r.latency_sum_us as f64 / r.count as f64;
        let p50 = quantile_us(m, &r.latency_cumulative, 0.5);
        let p99 = quantile_us(m, &r.latency_cumulative, 0.99);
        let _ = writeln!(
            out,
            "  {:<18} {:>8} calls {:>6} errors  mean {mean:.0}us  p50 <= {p50}  p99 <= {p99}  \
             queue lock <= {}us",
            output::escape(&r.kind),
            r.count,
            r.errors,
            r.lock_hold_max_us
        );
    }
    let _ = writeln!(
        out,
        "queue lock outside requests (timers): held <= {}us",
        m.background_lock_hold_max_us
    );
    let runs = m.run_cumulative.last().copied().unwrap_or(0);
    if let Some(mean_ms) = m.run_sum_ms.checked_div(runs) {
        let _ = writeln!(
            out,
            "runs reported by workers: {runs}  mean {}  p50 <= {}  p99 <= {}",
            output::run_time_words(mean_ms),
            run_quantile(m, 0.5),
            run_quantile(m, 0.99)
        );
    }
    out
}

/// The index of the first bucket whose cumulative count reaches a fraction `q` of all.
fn quantile_bucket(cumulative: &[u64], q: f64) -> usize {
    let total = cumulative.last().copied().unwrap_or(0);
    let wanted = (total as f64 * q).ceil() as u64;
    cumulative.iter().position(|&n| n >= wanted).unwrap_or(0)
}

/// The bucket bound below which a fraction `q` of run times fell.
fn run_quantile(m: &MetricsSnapshot, q: f64) -> String {
    match m.run_buckets_ms.get(quantile_bucket(&m.run_cumulative, q)) {
        Some(&ms) => output::run_time_words(ms),
        None => "+Inf".into(),
    }
}

/// The bucket bound below which a fraction `q` of calls fell.
fn quantile_us(m: &MetricsSnapshot, cumulative: &[u64], q: f64) -> String {
    match m.latency_buckets_us.get(quantile_bucket(cumulative, q)) {
        Some(us) if *us >= 1000 => format!("{}ms", us / 1000),
        Some(us) => format!("{us}us"),
        None => "+Inf".into(),
    }
}
