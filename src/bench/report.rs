//! One line of results per scenario run, printed as a table or as JSON.

use serde::Serialize;

use super::latency::Latencies;

#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    /// What this run varied: connections, batch size, queue depth, task count.
    pub setting: String,
    /// Operations measured (requests, tasks or process runs, see `unit`).
    pub ops: u64,
    pub unit: &'static str,
    pub seconds: f64,
    pub ops_per_sec: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// A scenario's own figure (bytes per task, start-up time), described in `note`.
    pub value: Option<f64>,
    pub note: String,
}

impl Row {
    /// A throughput row: `ops` in `seconds`, with the latency of each.
    pub fn throughput(
        scenario: &str,
        setting: String,
        unit: &'static str,
        ops: u64,
        seconds: f64,
        latencies: &mut Latencies,
    ) -> Row {
        Row {
            scenario: scenario.to_string(),
            setting,
            ops,
            unit,
            seconds,
            ops_per_sec: (seconds > 0.0).then(|| ops as f64 / seconds),
            p50_us: latencies.quantile_us(0.5),
            p99_us: latencies.quantile_us(0.99),
            value: None,
            note: String::new(),
        }
    }
}

pub fn print_json(rows: &[Row]) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(rows)?);
    Ok(())
}

pub fn print_table(rows: &[Row]) {
    println!(
        "{:<11} {:<18} {:>9} {:>12} {:>10} {:>10}  note",
        "scenario", "setting", "ops", "ops/s", "p50", "p99"
    );
    for row in rows {
        println!(
            "{:<11} {:<18} {:>9} {:>12} {:>10} {:>10}  {}",
            row.scenario,
            row.setting,
            format!("{} {}", row.ops, short_unit(row.unit)),
            row.ops_per_sec.map_or("-".into(), |r| format!("{r:.0}")),
            row.p50_us.map_or("-".into(), duration),
            row.p99_us.map_or("-".into(), duration),
            row.note
        );
    }
}

fn short_unit(unit: &str) -> &str {
    match unit {
        "requests" => "req",
        "tasks" => "tasks",
        "runs" => "runs",
        other => other,
    }
}

/// Microseconds shown in the unit that keeps them readable.
pub fn duration(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{us:.1} µs")
    }
}
