//! Leases, silent agents, retries, delays and dependencies, end to end with short durations.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDaemon;

fn task(d: &TestDaemon, id: u64) -> serde_json::Value {
    d.run(&["task", "show", &id.to_string(), "--json"]).json()
}

/// Waits (bounded) until task `id` reaches `status`; the daemon's timer does the work.
fn wait_status(d: &TestDaemon, id: u64, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = task(d, id);
        if now["status"] == status {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never became {status}: {now}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A worker process that claims a task and then hangs, as a stuck or crashing worker would.
fn stuck_worker(d: &TestDaemon, agent: &str) -> std::process::Child {
    let script = format!(
        "{} task claim --agent {agent} -q && exec sleep 60",
        common::BIN
    );
    Command::new("sh")
        .args(["-c", &script])
        .env("VAPORA_SOCKET", &d.socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_killed_workers_task_comes_back_when_its_lease_runs_out() {
    let d = TestDaemon::start_with(&["--lease", "700ms", "--retry-backoff", "0s"]);
    d.run(&["agent", "register", "w1"]).ok();
    d.run(&["agent", "register", "w2"]).ok();
    let id = d.add(&["fragile"]);
    let mut worker = stuck_worker(&d, "w1");
    let running = wait_status(&d, id, "running");
    assert_eq!(running["agent"], "w1");
    assert!(running["lease_until"].is_string());
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();
    // w2 waits for work; the expired lease hands the task to it.
    let claimed = d
        .run(&["task", "claim", "--agent", "w2", "--wait", "10s", "--json"])
        .json();
    assert_eq!(claimed["id"], id);
    assert_eq!(claimed["attempts"], 2);
    assert_eq!(claimed["error"], "lease expired on agent w1");
    d.run(&["task", "done", &id.to_string(), "--agent", "w2"])
        .ok();
    assert_eq!(task(&d, id)["status"], "done");
}

#[test]
fn heartbeats_keep_a_lease_alive() {
    let d = TestDaemon::start_with(&["--lease", "600ms"]);
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["long job"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        d.run(&["agent", "heartbeat", "w1"]).ok();
        assert_eq!(
            task(&d, id)["status"],
            "running",
            "the lease expired despite heartbeats"
        );
        std::thread::sleep(Duration::from_millis(150)); // the worker's heartbeat interval
    }
    let back = wait_status(&d, id, "queued"); // no more heartbeats: the lease expires
    assert_eq!(back["error"], "lease expired on agent w1");
}

#[test]
fn running_out_of_attempts_fails_with_the_reason() {
    let d = TestDaemon::start_with(&["--lease", "300ms", "--retry-backoff", "0s"]);
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["doomed", "--max-attempts", "2"]);
    for _ in 0..2 {
        let claimed = d.run(&["task", "claim", "--agent", "w1", "--wait", "10s", "-q"]);
        assert_eq!(claimed.ok(), id.to_string());
        // w1 never reports back.
    }
    let failed = wait_status(&d, id, "failed");
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["error"], "lease expired on agent w1");
    let dead_letters = d.run(&["task", "list", "--status", "failed", "-q"]);
    assert_eq!(dead_letters.ok(), id.to_string());
    assert_eq!(
        d.run(&["task", "retry", &id.to_string(), "--json"]).json()["status"],
        "queued"
    );
}

#[test]
fn a_silent_agent_goes_offline_and_its_tasks_go_to_others() {
    let d = TestDaemon::start_with(&["--heartbeat-ttl", "800ms", "--retry-backoff", "0s"]);
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["t"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["agent", "register", "w2"]).ok();
    let claimed = d
        .run(&["task", "claim", "--agent", "w2", "--wait", "10s", "--json"])
        .json();
    assert_eq!(claimed["id"], id);
    assert!(
        claimed["error"]
            .as_str()
            .unwrap()
            .contains("w1 went silent"),
        "{claimed}"
    );
    assert_eq!(
        d.run(&["agent", "show", "w1", "--json"]).json()["status"],
        "offline"
    );
    // A sign of life brings it back.
    d.run(&["agent", "heartbeat", "w1"]).ok();
    assert_eq!(
        d.run(&["agent", "show", "w1", "--json"]).json()["status"],
        "idle"
    );
}

#[test]
fn failures_are_retried_after_a_backoff() {
    let d = TestDaemon::start_with(&["--retry-backoff", "400ms"]);
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["flaky"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    let failed = d
        .run(&[
            "task",
            "fail",
            &id.to_string(),
            "--reason",
            "try again",
            "--json",
        ])
        .json();
    assert_eq!(failed["status"], "scheduled");
    assert!(failed["run_at"].is_string());
    assert_eq!(
        d.run(&["task", "list", "--status", "scheduled", "-q"]).ok(),
        id.to_string()
    );
    // Not claimable right away; handed over once the backoff has passed.
    assert_eq!(d.run(&["task", "claim", "--agent", "w1"]).code, 5);
    let claimed = d
        .run(&["task", "claim", "--agent", "w1", "--wait", "10s", "--json"])
        .json();
    assert_eq!(
        (claimed["id"].as_u64(), claimed["attempts"].as_u64()),
        (Some(id), Some(2))
    );
}

#[test]
fn delayed_tasks_wait_for_their_time() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "5"]).ok();
    // Long enough that the checks below finish well before it is due, even under load.
    let later = d.add(&["later", "--delay", "3s"]);
    let at = d.add(&["at a time", "--at", "2099-01-01T00:00:00Z"]);
    assert_eq!(task(&d, later)["status"], "scheduled");
    assert_eq!(task(&d, at)["run_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(d.run(&["task", "claim", "--agent", "w1"]).code, 5);
    let started = Instant::now();
    let claimed = d.run(&["task", "claim", "--agent", "w1", "--wait", "10s", "-q"]);
    assert_eq!(claimed.ok(), later.to_string());
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "claimed too early"
    );
    assert_eq!(task(&d, at)["status"], "scheduled");
    let bad = d.run(&["task", "add", "x", "--at", "tomorrow"]);
    assert_eq!(bad.code, 2);
}

/// `--at` takes every RFC 3339 form: offsets (what `date -Iseconds` prints) move the time
/// to UTC; a time without a zone is refused in words, not taken as UTC.
#[test]
fn at_takes_rfc3339_offsets_and_refuses_a_time_without_a_zone() {
    let d = TestDaemon::start();
    for (given, stored) in [
        ("2030-01-01T00:00:00+01:00", "2029-12-31T23:00:00.000Z"),
        ("2030-06-01T12:30:00-04:30", "2030-06-01T17:00:00.000Z"),
        ("2030-01-01 08:00:00.5z", "2030-01-01T08:00:00.500Z"),
    ] {
        let id = d.add(&["t", "--at", given]);
        assert_eq!(task(&d, id)["run_at"], stored, "{given}");
    }
    let now = std::process::Command::new("date")
        .arg("-Iseconds")
        .output()
        .unwrap();
    let now = String::from_utf8(now.stdout).unwrap();
    let id = d.add(&["now", "--at", now.trim()]);
    assert_ne!(task(&d, id)["run_at"], serde_json::Value::Null);
    let no_zone = d.run(&["task", "add", "x", "--at", "2030-01-01T00:00:00"]);
    assert_eq!(no_zone.code, 2);
    assert!(no_zone.stderr.contains("no time zone"), "{no_zone:?}");
    assert!(!no_zone.stderr.contains("expected"), "{no_zone:?}");
}

#[test]
fn dependency_chains_run_in_order_and_failures_cancel_dependents() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "10"])
        .ok();
    let a = d.add(&["a"]);
    let b = d.add(&["b", "--after", &a.to_string()]);
    let c = d.add(&["c", "--after", &b.to_string(), "--after", &a.to_string()]);
    assert_eq!(
        d.run(&["task", "list", "--status", "blocked", "-q"]).ok(),
        format!("{b}\n{c}")
    );
    assert_eq!(task(&d, c)["after"], serde_json::json!([a, b]));
    for expected in [a, b, c] {
        let id = d
            .run(&["task", "claim", "--agent", "w1", "-q"])
            .ok()
            .to_string();
        assert_eq!(id, expected.to_string());
        assert_eq!(
            d.run(&["task", "claim", "--agent", "w1"]).code,
            5,
            "ran ahead of a dependency"
        );
        d.run(&["task", "done", &id]).ok();
    }

    let parent = d.add(&["parent", "--max-attempts", "1"]);
    let child = d.add(&["child", "--after", &parent.to_string()]);
    let grandchild = d.add(&["grandchild", "--after", &child.to_string()]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "fail", &parent.to_string()]).ok();
    assert_eq!(task(&d, child)["status"], "cancelled");
    assert_eq!(
        task(&d, child)["error"],
        format!("dependency {parent} failed")
    );
    assert_eq!(
        task(&d, grandchild)["error"],
        format!("dependency {child} cancelled")
    );
    assert_eq!(d.run(&["task", "wait", &grandchild.to_string()]).code, 1);

    let late = d.run(&["task", "add", "too late", "--after", &parent.to_string()]);
    assert!(late.ok().parse::<u64>().is_ok());
    assert!(late.stderr.contains("added cancelled"), "{late:?}");

    let unknown = d.run(&["task", "add", "orphan", "--after", "9999"]);
    assert_eq!(unknown.code, 4, "{unknown:?}");
}

#[test]
fn leases_schedules_and_dependencies_survive_a_restart() {
    let mut d = TestDaemon::start_with(&["--lease", "500ms", "--retry-backoff", "0s"]);
    d.run(&["agent", "register", "w1", "--max-tasks", "5"]).ok();
    let leased = d.add(&["leased"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    // Long enough to be still ahead after the restart and the lease's expiry on a loaded
    // machine (the restarted daemon gives the running task a whole lease first).
    let delayed = d.add(&["delayed", "--delay", "4s"]);
    let parent = d.add(&["parent"]);
    let child = d.add(&["child", "--after", &parent.to_string()]);
    d.kill9();
    // The lease runs out while the daemon is down.
    std::thread::sleep(Duration::from_millis(700)); // lets the lease pass; nothing to signal
    d.restart(&["--lease", "500ms", "--retry-backoff", "0s"]);
    assert_eq!(task(&d, delayed)["status"], "scheduled");
    assert_eq!(task(&d, child)["status"], "blocked");
    let back = wait_status(&d, leased, "queued");
    assert_eq!(back["error"], "lease expired on agent w1");
    wait_status(&d, delayed, "queued");
    // Claim the parent (first in line after the requeued one) and finish it.
    loop {
        let id: u64 = d
            .run(&["task", "claim", "--agent", "w1", "-q"])
            .ok()
            .parse()
            .unwrap();
        d.run(&["task", "done", &id.to_string()]).ok();
        if id == parent {
            break;
        }
    }
    assert_eq!(task(&d, child)["status"], "queued");
}

#[test]
fn scheduled_and_blocked_appear_in_metrics() {
    let d = TestDaemon::start();
    let a = d.add(&["a"]);
    d.add(&["b", "--after", &a.to_string()]);
    d.add(&["c", "--delay", "1h"]);
    let m = d.run(&["metrics", "--json"]).json();
    let statuses: Vec<&str> = m["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"blocked") && statuses.contains(&"scheduled"),
        "{statuses:?}"
    );
    let prom = d.run(&["metrics", "--format", "prometheus"]);
    assert!(prom.ok().contains("status=\"blocked\"} 1"));
    assert!(prom.stdout.contains("status=\"scheduled\"} 1"));
}

#[test]
fn agents_set_offline_or_paused_by_hand_stay_so() {
    let d = TestDaemon::start_with(&["--heartbeat-ttl", "500ms"]);
    d.run(&["agent", "register", "fenced"]).ok();
    d.run(&["agent", "register", "resting"]).ok();
    d.add(&["t"]);
    d.run(&["agent", "status", "fenced", "offline"]).ok();
    d.run(&["agent", "status", "resting", "paused"]).ok();
    // A request from an agent fenced off by hand does not bring it back.
    assert_eq!(d.run(&["task", "claim", "--agent", "fenced"]).code, 5);
    d.run(&["agent", "heartbeat", "fenced"]).ok();
    assert_eq!(
        d.run(&["agent", "show", "fenced", "--json"]).json()["status"],
        "offline"
    );
    // A paused agent is never declared silent, however long it says nothing.
    std::thread::sleep(Duration::from_millis(1200)); // longer than the TTL; nothing to signal
    assert_eq!(
        d.run(&["agent", "show", "resting", "--json"]).json()["status"],
        "paused"
    );
    d.run(&["agent", "status", "fenced", "idle"]).ok();
    assert_eq!(
        d.run(&["task", "claim", "--agent", "fenced", "-q"]).ok(),
        "1"
    );
}

#[test]
fn absurd_times_are_refused() {
    let d = TestDaemon::start();
    assert_eq!(
        d.run(&["task", "add", "x", "--delay", "10000years"]).code,
        2
    );
    assert_eq!(d.run(&["task", "add", "x", "--lease", "0s"]).code, 2);
    assert_eq!(d.run(&["task", "add", "x", "--lease", "2years"]).code, 2);
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "");
    let bad = std::process::Command::new(common::BIN)
        .args(["daemon", "--heartbeat-ttl", "0s"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
