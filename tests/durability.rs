//! Acknowledged means durable: real daemons killed with SIGKILL, restarted on the same data
//! dir, and checked against what their clients were told.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, TestDaemon, XorShift};
use vapora::client::connection::Client;
use vapora::protocol::{NewTask, Request, Response, RunEnd};

fn all_tasks(d: &TestDaemon) -> Vec<serde_json::Value> {
    d.run(&["task", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn acknowledged_adds_survive_sigkill_at_random_moments() {
    let mut d = TestDaemon::start();
    let mut rng = XorShift(0x00c0ffee);
    // (id, title, priority) of every add a client got an answer for, over all rounds.
    let acked: Arc<Mutex<Vec<(u64, String, i64)>>> = Arc::default();
    for round in 0..5 {
        let kill_after = Duration::from_millis(50 + rng.next() % 250);
        std::thread::scope(|scope| {
            for client in 0..32 {
                let acked = Arc::clone(&acked);
                let socket = d.socket.clone();
                scope.spawn(move || {
                    let Ok(mut connection) = Client::connect(&socket) else {
                        return;
                    };
                    for n in 0.. {
                        let title = format!("r{round}-c{client}-n{n}");
                        let mut task = NewTask::new(&title);
                        task.priority = n % 5;
                        task.payload = format!("payload of {title}");
                        match connection.call(&Request::AddTasks { tasks: vec![task] }) {
                            Ok(Ok(Response::Added(ids))) => {
                                acked.lock().unwrap().push((ids[0], title, (n % 5) as i64));
                            }
                            // The daemon died: stop, as a real client would.
                            _ => return,
                        }
                    }
                });
            }
            // This sleep picks the moment of the crash; it synchronizes nothing.
            std::thread::sleep(kill_after);
            d.kill9();
        });
        d.restart(&[]);

        let tasks = all_tasks(&d);
        let mut by_title: HashMap<&str, Vec<&serde_json::Value>> = HashMap::new();
        for task in &tasks {
            by_title
                .entry(task["title"].as_str().unwrap())
                .or_default()
                .push(task);
        }
        let ids: HashSet<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
        assert_eq!(ids.len(), tasks.len(), "duplicate ids after restart");
        let acked = acked.lock().unwrap();
        assert!(
            !acked.is_empty(),
            "round {round}: no add was acknowledged before the kill"
        );
        for (id, title, priority) in acked.iter() {
            let found = by_title
                .get(title.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert_eq!(
                found.len(),
                1,
                "round {round}: acknowledged task {title} present {} times",
                found.len()
            );
            let task = found[0];
            assert_eq!(task["id"].as_u64(), Some(*id), "{title}");
            assert_eq!(task["priority"].as_i64(), Some(*priority), "{title}");
            assert_eq!(task["payload"], format!("payload of {title}"));
            assert_eq!(task["status"], "queued");
        }
    }
    // Ids go on after the highest one ever handed out.
    let highest = all_tasks(&d)
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(d.add(&["after the crashes"]), highest + 1);
}

#[test]
fn acknowledged_claims_and_finishes_survive_sigkill() {
    let mut d = TestDaemon::start();
    let input: String = (0..3000).map(|i| format!("job {i}\n")).collect();
    d.run_stdin(&["task", "add", "--stdin", "--max-attempts", "5"], &input)
        .ok();
    for w in 0..8 {
        d.run(&["agent", "register", &format!("w{w}"), "--max-tasks", "1000"])
            .ok();
    }
    // Per task: the last state a worker was told it reached.
    let acked: Arc<Mutex<HashMap<u64, (&'static str, String)>>> = Arc::default();
    std::thread::scope(|scope| {
        for w in 0..8 {
            let acked = Arc::clone(&acked);
            let socket = d.socket.clone();
            scope.spawn(move || {
                let agent = format!("w{w}");
                let Ok(mut client) = Client::connect(&socket) else {
                    return;
                };
                loop {
                    let claim = Request::Claim {
                        agent: agent.clone(),
                        queues: vec![],
                        wait_ms: 0,
                        done: None,
                    };
                    let task = match client.call(&claim) {
                        Ok(Ok(Response::Claimed(Some(task)))) => task,
                        _ => return,
                    };
                    acked
                        .lock()
                        .unwrap()
                        .insert(task.id, ("running", agent.clone()));
                    let (request, state) = if task.id % 3 == 0 {
                        let fail = Request::Fail {
                            id: task.id,
                            reason: Some("no".into()),
                            retry: false,
                            agent: Some(agent.clone()),
                            run: Some(RunEnd {
                                attempt: task.attempts,
                                exit_code: Some(1),
                            }),
                        };
                        (fail, "failed")
                    } else {
                        (
                            Request::Complete {
                                id: task.id,
                                result: Some("ok".into()),
                                agent: Some(agent.clone()),
                                run: Some(RunEnd {
                                    attempt: task.attempts,
                                    exit_code: Some(0),
                                }),
                            },
                            "done",
                        )
                    };
                    match client.call(&request) {
                        Ok(Ok(Response::Task(_))) => {
                            acked
                                .lock()
                                .unwrap()
                                .insert(task.id, (state, agent.clone()));
                        }
                        _ => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300)); // the moment of the crash
        d.kill9();
    });
    d.restart(&[]);
    let tasks = all_tasks(&d);
    let by_id: HashMap<u64, &serde_json::Value> = tasks
        .iter()
        .map(|t| (t["id"].as_u64().unwrap(), t))
        .collect();
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 10,
        "too little happened before the kill: {}",
        acked.len()
    );
    for (id, (state, agent)) in acked.iter() {
        let task = by_id[id];
        let status = task["status"].as_str().unwrap();
        match *state {
            // The finish may have been committed without its answer arriving.
            "running" => assert!(
                ["running", "done", "failed"].contains(&status),
                "task {id}: {status}"
            ),
            finished => assert_eq!(status, finished, "task {id}"),
        }
        assert_eq!(task["agent"].as_str(), Some(agent.as_str()), "task {id}");
        assert_eq!(task["attempts"], 1, "task {id}");
    }
    // Running tasks stay with their agents, and count against their limits.
    let w0 = d.run(&["agent", "show", "w0", "--json"]).json();
    let running_w0 = tasks
        .iter()
        .filter(|t| t["status"] == "running" && t["agent"] == "w0")
        .count();
    assert_eq!(w0["running"].as_u64(), Some(running_w0 as u64));
}

#[test]
fn restart_keeps_agents_tasks_order_counters_and_ids() {
    let mut d = TestDaemon::start_with(&["--retry-backoff", "0s"]);
    d.run(&[
        "agent",
        "register",
        "gpu",
        "--capability",
        "cuda",
        "--max-tasks",
        "3",
    ])
    .ok();
    d.run(&["agent", "register", "idle-one"]).ok();
    d.run(&["agent", "register", "sleepy"]).ok();
    d.run(&["agent", "status", "sleepy", "paused"]).ok();
    for (title, priority) in [("a", "0"), ("b", "5"), ("c", "0"), ("d", "5"), ("e", "-1")] {
        d.add(&[title, "--priority", priority, "--require", "cuda"]);
    }
    let flaky = d.add(&["flaky", "--max-attempts", "3", "--queue", "other"]);
    d.run(&["task", "claim", "--agent", "idle-one", "--queue", "other"])
        .ok();
    d.run(&["task", "fail", &flaky.to_string(), "--reason", "first try"])
        .ok();
    let doomed = d.add(&["doomed", "--queue", "other"]);
    d.run(&["task", "claim", "--agent", "idle-one", "--queue", "other"])
        .ok(); // claims flaky again
    d.run(&["task", "cancel", &doomed.to_string()]).ok();
    let top = d.add(&["top", "--queue", "other", "--priority", "9"]);
    assert_eq!(d.run(&["task", "done", &top.to_string()]).code, 1); // a conflict changes nothing
    let before_tasks = all_tasks(&d);
    let before_agents = d.run(&["agent", "list", "--json"]).json();
    let before_counters = d.run(&["metrics", "--json"]).json()["counters"].clone();

    for stop in ["SIGTERM", "SIGKILL"] {
        if stop == "SIGTERM" {
            assert_eq!(d.terminate().code(), Some(0));
        } else {
            d.kill9();
        }
        d.restart(&[]);
        // A running task's lease starts again at the restart (nobody could renew it
        // meanwhile): it only moves later; and how long it has run grows with the clock.
        // Everything else is as it was.
        let without_leases = |tasks: &[serde_json::Value]| -> Vec<serde_json::Value> {
            let mut tasks = tasks.to_vec();
            for task in &mut tasks {
                task["lease_until"] = serde_json::Value::Null;
                task["run_ms"] = serde_json::Value::Null;
            }
            tasks
        };
        let after_tasks = all_tasks(&d);
        assert_eq!(
            without_leases(&after_tasks),
            without_leases(&before_tasks),
            "tasks changed across a {stop} restart"
        );
        for (after, before) in after_tasks.iter().zip(&before_tasks) {
            let lease = |t: &serde_json::Value| t["lease_until"].as_str().map(str::to_string);
            assert!(lease(after) >= lease(before), "{after} / {before}");
        }
        let agents = d.run(&["agent", "list", "--json"]).json();
        assert_eq!(
            agents, before_agents,
            "agents changed across a {stop} restart"
        );
        assert_eq!(
            d.run(&["metrics", "--json"]).json()["counters"],
            before_counters
        );
    }
    let flaky_now = d
        .run(&["task", "show", &flaky.to_string(), "--json"])
        .json();
    assert_eq!(
        (flaky_now["status"].as_str(), flaky_now["attempts"].as_u64()),
        (Some("running"), Some(2))
    );
    assert_eq!(flaky_now["error"], "first try");

    // Queue order survives: priority, then first in first out.
    let mut order = Vec::new();
    while let Ok(id) = d
        .run(&[
            "task", "claim", "--agent", "gpu", "--queue", "default", "-q",
        ])
        .ok()
        .parse::<u64>()
    {
        order.push(
            d.run(&["task", "show", &id.to_string(), "--json"]).json()["title"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        d.run(&["task", "done", &id.to_string()]).ok();
        if order.len() == 5 {
            break;
        }
    }
    assert_eq!(order, vec!["b", "d", "a", "c", "e"]);
    assert_eq!(d.add(&["next"]), top + 1);
}

#[test]
fn database_is_plain_sqlite_with_the_documented_schema() {
    let mut d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--capability", "x"])
        .ok();
    let id = d.add(&["inspect me", "--require", "x"]);
    assert_eq!(d.terminate().code(), Some(0));
    let db = rusqlite::Connection::open(d.data_dir.join("vapora.db")).unwrap();
    let version: i64 = db
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    let (title, status, requires): (String, String, String) = db
        .query_row(
            "SELECT title, status, requires FROM tasks WHERE id = ?1",
            [id as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (title.as_str(), status.as_str(), requires.as_str()),
        ("inspect me", "queued", "[\"x\"]")
    );
    let availability: String = db
        .query_row(
            "SELECT availability FROM agents WHERE name = 'w1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(availability, "active");
    // The constraints still hold for anyone writing to the file.
    for (sql, what) in [
        ("UPDATE tasks SET status = 'bogus'", "a task status"),
        (
            "UPDATE agents SET availability = 'bogus'",
            "an availability",
        ),
    ] {
        let refused = db.execute(sql, []).unwrap_err().to_string();
        assert!(
            refused.contains("CHECK constraint failed"),
            "{what}: {refused}"
        );
    }
    let journal: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn second_daemon_on_the_same_data_dir_is_refused_naming_the_pid() {
    let d = TestDaemon::start();
    let output = Command::new(BIN)
        .args(["daemon", "--socket"])
        .arg(d.dir.path().join("other.sock"))
        .arg("--data-dir")
        .arg(&d.data_dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("pid {}", d.pid())), "{stderr}");
    assert!(!d.dir.path().join("other.sock").exists());
    d.run(&["ping"]).ok();
}

fn start_on(data_dir: &Path) -> std::process::Output {
    let socket = data_dir.parent().unwrap().join("refused.sock");
    Command::new(BIN)
        .args(["daemon", "--socket"])
        .arg(&socket)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

#[test]
fn garbage_or_newer_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(data.join("vapora.db"), &garbage).unwrap();
    let output = start_on(&data);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("vapora.db"), "{stderr}");
    assert_eq!(
        std::fs::read(data.join("vapora.db")).unwrap(),
        garbage,
        "the file was modified"
    );

    // A database from a newer vapora, and one with a nonsense version.
    for (name, version, message) in [
        ("newer", 99, "newer vapora"),
        ("broken", -1, "invalid schema version"),
    ] {
        let data = dir.path().join(name);
        std::fs::create_dir(&data).unwrap();
        {
            let db = rusqlite::Connection::open(data.join("vapora.db")).unwrap();
            let sql = format!(
                "CREATE TABLE schema_version (version INTEGER);
                 INSERT INTO schema_version VALUES ({version});"
            );
            db.execute_batch(&sql).unwrap();
        }
        let before = std::fs::read(data.join("vapora.db")).unwrap();
        let output = start_on(&data);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert_eq!(std::fs::read(data.join("vapora.db")).unwrap(), before);
    }
}

#[test]
fn prune_and_retention_delete_finished_tasks_only() {
    let d = TestDaemon::start_with(&["--retain", "1s"]);
    d.run(&["agent", "register", "w1", "--max-tasks", "10"])
        .ok();
    let done = d.add(&["done soon"]);
    let cancelled = d.add(&["cancelled"]);
    let waiting = d.add(&["still queued"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "done", &done.to_string()]).ok();
    d.run(&["task", "cancel", &cancelled.to_string()]).ok();
    // Retention deletes them about a second after they finished, by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.run(&["task", "show", &done.to_string()]).code != 4 {
        assert!(
            Instant::now() < deadline,
            "retention never deleted task {done}"
        );
        std::thread::yield_now();
    }
    assert_eq!(d.run(&["task", "show", &cancelled.to_string()]).code, 4);
    assert_eq!(d.status_of(waiting), "queued");

    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "10"])
        .ok();
    for _ in 0..3 {
        let id = d.add(&["t"]);
        d.run(&["task", "cancel", &id.to_string()]).ok();
    }
    d.add(&["queued"]);
    // Nothing is older than the default 7 days yet.
    assert_eq!(d.run(&["task", "prune"]).ok(), "0");
    assert_eq!(d.run(&["task", "prune", "--older-than", "0s"]).ok(), "3");
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "4");
    // Pruned ids are never handed out again.
    assert_eq!(d.add(&["new"]), 5);
}

#[test]
fn a_version_1_database_is_migrated_and_keeps_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    {
        // The schema as the first release wrote it.
        let db = rusqlite::Connection::open(data.join("vapora.db")).unwrap();
        db.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (1);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO meta (key, value) VALUES
                 ('next_task_id', 3), ('enqueued', 2), ('claimed', 1), ('done', 0),
                 ('failed', 0), ('requeued', 0), ('cancelled', 0);
             CREATE TABLE tasks (
                 id INTEGER PRIMARY KEY, title TEXT NOT NULL, payload TEXT NOT NULL,
                 queue TEXT NOT NULL, priority INTEGER NOT NULL,
                 status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
                 requires TEXT NOT NULL, agent TEXT, attempts INTEGER NOT NULL,
                 max_attempts INTEGER NOT NULL, created_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL, result TEXT, error TEXT, seq INTEGER NOT NULL);
             CREATE TABLE agents (
                 name TEXT PRIMARY KEY, capabilities TEXT NOT NULL, max_tasks INTEGER NOT NULL,
                 availability TEXT NOT NULL CHECK (availability IN ('active', 'paused', 'offline')),
                 registered_at INTEGER NOT NULL, last_heartbeat INTEGER NOT NULL);
             INSERT INTO tasks VALUES
                 (1, 'old queued', '', 'default', 0, 'queued', '[]', NULL, 0, 3, 1000, 1000, NULL, NULL, 1),
                 (2, 'old running', 'p', 'default', 0, 'running', '[]', 'w1', 1, 3, 1000, 2000, NULL, NULL, 2);
             INSERT INTO agents VALUES ('w1', '[]', 2, 'active', 1000, 2000);",
        )
        .unwrap();
    }
    let d = TestDaemon::start_in(Some(data.clone()), &[]);
    let tasks = all_tasks(&d);
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["title"], "old queued");
    assert_eq!(tasks[0]["after"], serde_json::json!([]));
    assert_eq!(tasks[0]["cwd"], serde_json::Value::Null);
    assert_eq!(tasks[0]["env"], serde_json::json!({}));
    assert_eq!(tasks[0]["timeout_ms"], serde_json::Value::Null);
    assert_eq!(tasks[1]["status"], "running");
    assert_eq!(tasks[1]["agent"], "w1");
    assert_eq!(d.add(&["new"]), 3);
    assert_eq!(d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(), "1");
    let db = rusqlite::Connection::open(data.join("vapora.db")).unwrap();
    let version: i64 = db
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
}

/// The task as `task show --json` prints it.
fn shown(d: &TestDaemon, id: u64) -> serde_json::Value {
    d.run(&["task", "show", &id.to_string(), "--json"]).json()
}

/// How to run a task (working directory, variables, timeout) survives SIGKILL (the journal)
/// and a clean restart (the database).
#[test]
fn cwd_env_and_timeout_survive_restarts() {
    let mut d = TestDaemon::start();
    let id = d.add(&[
        "--cwd",
        "/srv/app dir",
        "--env",
        "A=1",
        "--env",
        "QUOTED=it's $x\\n",
        "--timeout",
        "2m",
        "--",
        "sh",
        "-c",
        "echo \"$A\"",
    ]);
    let plain = d.add(&["plain"]);
    let before = (shown(&d, id), shown(&d, plain));
    assert_eq!(before.0["env"]["QUOTED"], "it's $x\\n");
    assert_eq!(before.0["timeout_ms"], 120_000);
    d.kill9();
    d.restart(&[]);
    assert_eq!((shown(&d, id), shown(&d, plain)), before);
    assert_eq!(d.terminate().code(), Some(0));
    d.restart(&[]);
    assert_eq!((shown(&d, id), shown(&d, plain)), before);
}

/// A database from before schema 5 (no cwd, env or timeout_ms columns) gains them and keeps
/// its tasks.
#[test]
fn a_version_4_database_gains_the_columns_of_how_to_run() {
    let mut d = TestDaemon::start();
    let old = d.add(&["old", "--payload", "make", "--require", "x"]);
    assert_eq!(d.terminate().code(), Some(0));
    {
        let db = rusqlite::Connection::open(d.data_dir.join("vapora.db")).unwrap();
        db.execute_batch(
            "ALTER TABLE tasks DROP COLUMN cwd;
             ALTER TABLE tasks DROP COLUMN env;
             ALTER TABLE tasks DROP COLUMN timeout_ms;
             ALTER TABLE tasks DROP COLUMN started_at;
             ALTER TABLE tasks DROP COLUMN ended_at;
             ALTER TABLE tasks DROP COLUMN exit_code;
             UPDATE schema_version SET version = 4;",
        )
        .unwrap();
    }
    d.restart(&[]);
    let task = shown(&d, old);
    assert_eq!(
        (&task["title"], &task["payload"]),
        (&"old".into(), &"make".into())
    );
    assert_eq!(task["requires"], serde_json::json!(["x"]));
    assert_eq!(task["cwd"], serde_json::Value::Null);
    assert_eq!(task["env"], serde_json::json!({}));
    assert_eq!(task["timeout_ms"], serde_json::Value::Null);
    let new = d.add(&[
        "new",
        "--cwd",
        "/w",
        "--env",
        "K=v",
        "--timeout",
        "5s",
        "--",
        "true",
    ]);
    assert_eq!(d.terminate().code(), Some(0));
    d.restart(&[]);
    let task = shown(&d, new);
    assert_eq!(
        (&task["cwd"], &task["env"], &task["timeout_ms"]),
        (&"/w".into(), &serde_json::json!({"K": "v"}), &5000.into())
    );
    let db = rusqlite::Connection::open(d.data_dir.join("vapora.db")).unwrap();
    let version: i64 = db
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
}
