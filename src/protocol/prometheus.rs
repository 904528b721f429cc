//! The Prometheus text exposition (format 0.0.4) of a metrics snapshot.
//!
//! One function for both sides: `vapora metrics --format prometheus` prints it and the
//! daemon's scrape endpoint (`--metrics-listen`) serves it, so the two can never drift
//! apart. Label values need no escaping: queue names and request kinds are
//! `[A-Za-z0-9._-]` (checked by the daemon on input, `limits.rs`).

use std::fmt::Write as _;

use super::MetricsSnapshot;

/// The `Content-Type` of this exposition over HTTP.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition of `m` (checked with `promtool check metrics` in the tests).
pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    header(
        &mut out,
        "vapora_tasks",
        "gauge",
        "Tasks by queue and status.",
    );
    for (queue, status, count) in &m.tasks {
        let _ = writeln!(
            out,
            "vapora_tasks{{queue=\"{queue}\",status=\"{}\"}} {count}",
            status.as_str()
        );
    }
    header(&mut out, "vapora_agents", "gauge", "Agents by status.");
    for (status, count) in &m.agents {
        let _ = writeln!(
            out,
            "vapora_agents{{status=\"{}\"}} {count}",
            status.as_str()
        );
    }
    let c = &m.counters;
    for (name, help, value) in [
        ("vapora_tasks_enqueued_total", "Tasks added.", c.enqueued),
        (
            "vapora_tasks_claimed_total",
            "Tasks claimed by agents.",
            c.claimed,
        ),
        ("vapora_tasks_done_total", "Tasks completed.", c.done),
        (
            "vapora_tasks_failed_total",
            "Task failures, retried or final.",
            c.failed,
        ),
        (
            "vapora_tasks_requeued_total",
            "Tasks put back in the queue.",
            c.requeued,
        ),
        (
            "vapora_tasks_cancelled_total",
            "Tasks cancelled.",
            c.cancelled,
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    header(
        &mut out,
        "vapora_request_duration_seconds",
        "histogram",
        "Time to answer a request, by request kind.",
    );
    for r in &m.requests {
        for (bound, count) in m.latency_buckets_us.iter().zip(&r.latency_cumulative) {
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "vapora_request_duration_seconds_bucket{{kind=\"{}\",le=\"{le}\"}} {count}",
                r.kind
            );
        }
        let _ = writeln!(
            out,
            "vapora_request_duration_seconds_bucket{{kind=\"{}\",le=\"+Inf\"}} {}",
            r.kind, r.count
        );
        let _ = writeln!(
            out,
            "vapora_request_duration_seconds_sum{{kind=\"{}\"}} {}",
            r.kind,
            r.latency_sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "vapora_request_duration_seconds_count{{kind=\"{}\"}} {}",
            r.kind, r.count
        );
    }
    header(
        &mut out,
        "vapora_task_run_seconds",
        "histogram",
        "How long attempts ran, from claim to the outcome their worker reported.",
    );
    for (bound, count) in m.run_buckets_ms.iter().zip(&m.run_cumulative) {
        let le = *bound as f64 / 1e3;
        let _ = writeln!(out, "vapora_task_run_seconds_bucket{{le=\"{le}\"}} {count}");
    }
    let runs = m.run_cumulative.last().copied().unwrap_or(0);
    let _ = writeln!(out, "vapora_task_run_seconds_bucket{{le=\"+Inf\"}} {runs}");
    let _ = writeln!(
        out,
        "vapora_task_run_seconds_sum {}",
        m.run_sum_ms as f64 / 1e3
    );
    let _ = writeln!(out, "vapora_task_run_seconds_count {runs}");
    header(
        &mut out,
        "vapora_request_errors_total",
        "counter",
        "Requests answered with an error, by request kind.",
    );
    for r in &m.requests {
        let _ = writeln!(
            out,
            "vapora_request_errors_total{{kind=\"{}\"}} {}",
            r.kind, r.errors
        );
    }
    header(
        &mut out,
        "vapora_queue_lock_hold_max_seconds",
        "gauge",
        "The longest one request of this kind held the queue lock since the daemon started \
         (kind \"background\": timers and releases outside any request).",
    );
    for r in &m.requests {
        let _ = writeln!(
            out,
            "vapora_queue_lock_hold_max_seconds{{kind=\"{}\"}} {}",
            r.kind,
            r.lock_hold_max_us as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "vapora_queue_lock_hold_max_seconds{{kind=\"background\"}} {}",
        m.background_lock_hold_max_us as f64 / 1e6
    );
    header(
        &mut out,
        "vapora_connections",
        "gauge",
        "Open client connections.",
    );
    let _ = writeln!(out, "vapora_connections {}", m.connections_open);
    header(
        &mut out,
        "vapora_connections_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(out, "vapora_connections_total {}", m.connections_total);
    header(
        &mut out,
        "vapora_store_backlog_bytes",
        "gauge",
        "Journaled bytes not yet committed into SQLite.",
    );
    let _ = writeln!(out, "vapora_store_backlog_bytes {}", m.store_backlog_bytes);
    header(
        &mut out,
        "vapora_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    let _ = writeln!(out, "vapora_uptime_seconds {}", m.uptime_ms as f64 / 1000.0);
    header(
        &mut out,
        "vapora_parked_claims",
        "gauge",
        "Claims waiting for a task.",
    );
    let _ = writeln!(out, "vapora_parked_claims {}", m.parked_claims);
    header(
        &mut out,
        "vapora_waits_in_progress",
        "gauge",
        "Task waits being served, most of them parked until their tasks end.",
    );
    let _ = writeln!(out, "vapora_waits_in_progress {}", m.waits_in_progress);
    out
}
