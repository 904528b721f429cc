//! `vapora metrics` in its three formats.

mod common;

use common::TestDaemon;

fn busy_daemon() -> TestDaemon {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "5"]).ok();
    d.run(&["agent", "register", "w2"]).ok();
    d.run(&["agent", "status", "w2", "paused"]).ok();
    for queue in ["default", "mail", "mail"] {
        d.add(&["t", "--queue", queue]);
    }
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "done", "1"]).ok();
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "cancel", "3"]).ok();
    assert_eq!(d.run(&["task", "show", "999"]).code, 4);
    d
}

#[test]
fn json_metrics_count_tasks_agents_and_requests() {
    let d = busy_daemon();
    let m = d.run(&["metrics", "--json"]).json();
    let tasks = m["tasks"].as_array().unwrap();
    let count = |queue: &str, status: &str| {
        tasks
            .iter()
            .find(|t| t["queue"] == queue && t["status"] == status)
            .map_or(0, |t| t["count"].as_u64().unwrap())
    };
    assert_eq!(count("default", "done"), 1);
    assert_eq!(count("mail", "running"), 1);
    assert_eq!(count("mail", "cancelled"), 1);
    assert_eq!(count("mail", "queued"), 0);
    let agents = m["agents"].as_array().unwrap();
    let agents_with =
        |status: &str| agents.iter().find(|a| a["status"] == status).unwrap()["count"].clone();
    assert_eq!(agents_with("busy"), 1);
    assert_eq!(agents_with("paused"), 1);
    assert_eq!(m["counters"]["enqueued"], 3);
    assert_eq!(m["counters"]["claimed"], 2);
    assert_eq!(m["counters"]["done"], 1);
    assert_eq!(m["counters"]["cancelled"], 1);
    let get_task = m["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "get_task")
        .unwrap();
    assert_eq!(get_task["errors"], 1);
    assert!(m["connections_total"].as_u64().unwrap() >= 10);
    assert_eq!(m["connections_open"], 1);
    assert_eq!(
        d.run(&["metrics", "--format", "json"]).json()["counters"],
        m["counters"]
    );
}

#[test]
fn text_metrics_are_readable() {
    let d = busy_daemon();
    let text = d.run(&["metrics"]);
    assert!(
        text.ok().contains("counters: enqueued 3 claimed 2 done 1"),
        "{text:?}"
    );
    assert!(text.stdout.contains("mail"));
}

#[test]
fn prometheus_output_passes_promtool() {
    let d = busy_daemon();
    let run = d.run(&["metrics", "--format", "prometheus"]);
    let text = run.ok().to_string() + "\n";
    assert!(
        text.contains("vapora_tasks{queue=\"mail\",status=\"running\"} 1"),
        "{text}"
    );
    assert!(text.contains("vapora_tasks_enqueued_total 3"));
    assert!(text.contains("vapora_request_duration_seconds_bucket{kind=\"claim\",le=\"+Inf\"} 2"));

    common::promtool_check(&text);
}

/// Each request kind reports the longest it held the queue lock: a batch of 10,000 adds
/// holds it (for no longer than the request took), a ping never takes it.
#[test]
fn metrics_report_the_longest_queue_lock_hold_per_request_kind() {
    let d = TestDaemon::start();
    let lines: String = (0..10_000)
        .map(|i| format!("{{\"title\":\"t{i}\"}}\n"))
        .collect();
    d.run_stdin(&["task", "add", "--stdin", "--jsonl", "-q"], &lines)
        .ok();
    d.run(&["ping"]).ok();
    let m = d.run(&["metrics", "--json"]).json();
    let kind = |name: &str| {
        m["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == name)
            .unwrap_or_else(|| panic!("no {name} in {m}"))
            .clone()
    };
    let add = kind("add_tasks");
    let held = add["lock_hold_max_us"].as_u64().unwrap();
    assert!(held > 0, "{add}");
    assert!(held <= add["latency_sum_us"].as_u64().unwrap(), "{add}");
    assert_eq!(kind("ping")["lock_hold_max_us"], 0);
    assert!(m["background_lock_hold_max_us"].is_u64(), "{m}");
    let text = d.run(&["metrics"]);
    assert!(text.ok().contains("queue lock <= "), "{text:?}");
}
