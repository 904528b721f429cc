//! Agent commands, capability matching, limits and derived idle/busy status.

mod common;

use common::TestDaemon;

#[test]
fn register_is_idempotent_and_updates_capabilities() {
    let d = TestDaemon::start();
    let first = d
        .run(&["agent", "register", "w1", "--capability", "gpu", "--json"])
        .json();
    assert_eq!(first["name"], "w1");
    assert_eq!(first["status"], "idle");
    assert_eq!(first["capabilities"], serde_json::json!(["gpu"]));
    assert_eq!(first["max_tasks"], 1);
    assert_eq!(first["running"], 0);
    assert!(first["registered_at"].as_str().unwrap().ends_with('Z'));
    assert!(first["last_heartbeat"].as_str().unwrap().ends_with('Z'));

    let again = d
        .run(&[
            "agent",
            "register",
            "w1",
            "--capability",
            "linux",
            "--capability",
            "arm",
            "--max-tasks",
            "4",
            "--json",
        ])
        .json();
    assert_eq!(again["capabilities"], serde_json::json!(["arm", "linux"]));
    assert_eq!(again["max_tasks"], 4);
    assert_eq!(again["registered_at"], first["registered_at"]);
    let list = d.run(&["agent", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn capabilities_decide_who_gets_which_task() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "cpu", "--max-tasks", "2"])
        .ok();
    d.run(&[
        "agent",
        "register",
        "gpu",
        "--capability",
        "gpu",
        "--capability",
        "cuda",
    ])
    .ok();
    let needs_gpu = d.add(&["train", "--require", "gpu", "--priority", "9"]);
    let plain = d.add(&["lint"]);
    // The higher-priority task needs a GPU: the CPU agent skips it.
    assert_eq!(
        d.run(&["task", "claim", "--agent", "cpu", "-q"]).ok(),
        plain.to_string()
    );
    assert_eq!(d.run(&["task", "claim", "--agent", "cpu"]).code, 5);
    assert_eq!(
        d.run(&["task", "claim", "--agent", "gpu", "-q"]).ok(),
        needs_gpu.to_string()
    );
}

#[test]
fn max_tasks_limits_and_status_is_derived() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "2"]).ok();
    for t in ["a", "b", "c"] {
        d.add(&[t]);
    }
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    let busy = d.run(&["agent", "show", "w1", "--json"]).json();
    assert_eq!(
        (busy["status"].as_str(), busy["running"].as_u64()),
        (Some("busy"), Some(1))
    );
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    // At its limit is not an empty queue: exit 6, and the message says what it holds.
    let refused = d.run(&["task", "claim", "--agent", "w1"]);
    assert_eq!(refused.code, 6, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("agent w1 is at its limit (2 of 2): running tasks 1, 2"),
        "{refused:?}"
    );
    // A claim that waits may get a slot that frees up meanwhile; when none does, its
    // answer says why too.
    let refused = d.run(&[
        "task", "claim", "--agent", "w1", "--wait", "200ms", "--json",
    ]);
    assert_eq!(refused.code, 6, "{refused:?}");
    let answer: serde_json::Value = serde_json::from_str(&refused.stdout).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"agent": "w1", "at_limit": true, "max_tasks": 2, "running": [1, 2]})
    );
    d.run(&["task", "done", "1"]).ok();
    d.run(&["task", "done", "2"]).ok();
    assert_eq!(
        d.run(&["agent", "show", "w1", "--json"]).json()["status"],
        "idle"
    );
    assert_eq!(d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(), "3");
}

#[test]
fn paused_agents_claim_nothing_and_offline_requeues() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "5"]).ok();
    let a = d.add(&["a"]);
    let b = d.add(&["b"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["agent", "status", "w1", "paused"]).ok();
    assert_eq!(d.run(&["task", "claim", "--agent", "w1"]).code, 5);
    // Pausing keeps running work.
    assert_eq!(d.status_of(a), "running");
    let offline = d
        .run(&["agent", "status", "w1", "offline", "--json"])
        .json();
    assert_eq!(offline["status"], "offline");
    assert_eq!(d.status_of(a), "queued");
    // A requeued task no longer names the agent that lost it.
    assert_eq!(d.run(&["task", "list", "--agent", "w1", "-q"]).ok(), "");
    d.run(&["agent", "status", "w1", "idle"]).ok();
    // Requeued at its old place: still ahead of b.
    assert_eq!(
        d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(),
        a.to_string()
    );
    assert_eq!(
        d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(),
        b.to_string()
    );
}

#[test]
fn remove_requeues_running_tasks_and_forgets_the_agent() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["t"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    let removed = d.run(&["agent", "remove", "w1", "--json"]).json();
    assert_eq!(removed, serde_json::json!({"name": "w1", "requeued": [id]}));
    assert_eq!(d.status_of(id), "queued");
    assert_eq!(d.run(&["agent", "show", "w1"]).code, 4);
    assert_eq!(d.run(&["agent", "remove", "w1"]).code, 4);
}

#[test]
fn list_filters_by_status_and_heartbeat_touches() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "a"]).ok();
    d.run(&["agent", "register", "b"]).ok();
    d.run(&["agent", "status", "b", "paused"]).ok();
    let paused = d.run(&["agent", "list", "--status", "paused", "-q"]);
    assert_eq!(paused.ok(), "b");
    let table = d.run(&["agent", "list"]);
    assert!(table.ok().starts_with("NAME"), "{table:?}");
    assert_eq!(table.stdout.lines().count(), 3);
    let before = d.run(&["agent", "show", "a", "--json"]).json()["last_heartbeat"].clone();
    std::thread::sleep(std::time::Duration::from_millis(5)); // distinct millisecond timestamps
    let after = d.run(&["agent", "heartbeat", "a", "--json"]).json()["last_heartbeat"].clone();
    assert_ne!(before, after);
    assert_eq!(d.run(&["agent", "heartbeat", "ghost"]).code, 4);
}

#[test]
fn bad_names_are_refused() {
    let d = TestDaemon::start();
    // Refused by the daemon's validation, reported as usage errors.
    let run = d.run(&["agent", "register", "bad name"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("invalid agent name"), "{run:?}");
    let run = d.run(&["agent", "register", "ok", "--capability", "a/b"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = d.run(&["task", "claim", "--agent", "no good"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = d.run(&["agent", "status", "ok", "sleepy"]);
    assert_eq!(run.code, 2, "{run:?}");
}
