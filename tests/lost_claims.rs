//! A claim whose answer is lost must not strand its task or its worker, and the agent gauges
//! must agree with `agent list` and `task list`: the reproduction from the issue, the
//! heartbeat that names what a worker runs, and a kill test in which the README's own worker
//! loop runs against a daemon that is SIGKILLed and restarted again and again.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{BIN, Run, TestDaemon, XorShift};

/// Short leases and TTLs so that what the daemon recovers by itself happens within a test.
const DAEMON_ARGS: &[&str] = &[
    "--lease",
    "2s",
    "--heartbeat-ttl",
    "3s",
    "--retry-backoff",
    "0s",
];

fn claim_wait_1s(d: &TestDaemon) -> Run {
    d.run(&["task", "claim", "--agent", "w1", "--wait", "1s", "--json"])
}

/// The issue's reproduction: w1 claims task 1 and never hears the answer, then goes on
/// claiming. Before, every claim renewed task 1's lease and w1 got "nothing to claim"
/// forever; now the claims say w1 is at its limit, task 1 comes back when its lease runs
/// out (attempt counted), and w1 gets work again.
#[test]
fn a_task_whose_claim_answer_was_lost_comes_back_and_its_agent_gets_work() {
    let d = TestDaemon::start_with(&["--lease", "2s", "--heartbeat-ttl", "3s"]);
    d.run(&["agent", "register", "w1"]).ok();
    let a = d.add(&["a"]);
    let b = d.add(&["b"]);
    assert_eq!(
        d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(),
        a.to_string()
    );
    // That answer never reached the worker, which asks again.
    let mut given = None;
    let mut refusals = 0;
    for _ in 0..6 {
        let claim = claim_wait_1s(&d);
        match claim.code {
            0 => {
                given = claim.json()["id"].as_u64();
                break;
            }
            6 => {
                refusals += 1;
                assert!(
                    claim.stderr.contains(&format!(
                        "agent w1 is at its limit (1 of 1): running task {a}"
                    )),
                    "{claim:?}"
                );
            }
            _ => panic!("unexpected answer: {claim:?}"),
        }
    }
    assert!(
        refusals >= 1,
        "the first claim after the lost one is at the limit"
    );
    assert_eq!(given, Some(b), "w1 never got work again");
    let lost = d.run(&["task", "show", &a.to_string(), "--json"]).json();
    assert_eq!(lost["status"], "queued");
    assert_eq!(lost["attempts"], 1);
    assert_eq!(lost["error"], "lease expired on agent w1");
}

/// The owner of an agent name gets back, in one heartbeat, what it holds but does not run;
/// a heartbeat naming a task the agent no longer holds says to stop running it.
#[test]
fn a_heartbeat_names_what_its_worker_runs() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "2"]).ok();
    let run = d.add(&["run"]);
    let lost = d.add(&["lost"]);
    d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    let beat = d.run(&[
        "agent",
        "heartbeat",
        "w1",
        "--task",
        &run.to_string(),
        "--release-others",
    ]);
    assert_eq!(beat.code, 0, "{beat:?}");
    assert!(
        beat.stderr.contains(&format!(
            "agent w1 held task {lost} but does not run it: back in the queue"
        )),
        "{beat:?}"
    );
    let back = d.run(&["task", "show", &lost.to_string(), "--json"]).json();
    assert_eq!(
        (back["status"].as_str(), back["attempts"].as_u64()),
        (Some("queued"), Some(1))
    );
    assert_eq!(d.status_of(run), "running");
    // Named again, the task it gave back is reported: exit 1, and the JSON says why.
    let beat = d.run(&[
        "agent",
        "heartbeat",
        "w1",
        "--task",
        &run.to_string(),
        "--task",
        &lost.to_string(),
        "--json",
    ]);
    assert_eq!(beat.code, 1, "{beat:?}");
    assert!(
        beat.stderr.contains(&format!(
            "agent w1 does not hold task {lost} (it is queued): stop running it"
        )),
        "{beat:?}"
    );
    let report: serde_json::Value = serde_json::from_str(&beat.stdout).unwrap();
    assert_eq!(report["name"], "w1");
    assert_eq!(report["running"], 1);
    assert_eq!(report["renewed"], serde_json::json!([run]));
    assert_eq!(
        report["not_held"],
        serde_json::json!([{"id": lost, "status": "queued", "agent": null}])
    );
    assert_eq!(report["released"], serde_json::json!([]));
}

/// The README's worker loop, as printed there, for agent `name`.
fn readme_worker_loop(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("## A worker in a few lines of shell")
        .nth(1)
        .expect("the README's worker section");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the worker loop's code block");
    assert!(
        script.starts_with("agent=w1\n"),
        "the loop names its agent first"
    );
    script.replacen("agent=w1\n", &format!("agent={name}\n"), 1)
}

/// A worker: the README loop under `sh`, in its own process group (so that the loop and
/// everything it started, heartbeats included, can be killed together), with `vapora` on its
/// PATH being a wrapper that logs every call's exit code and arguments to `calls`.
fn spawn_worker(d: &TestDaemon, bin_dir: &Path, name: &str, calls: &Path) -> Child {
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-c")
        .arg(readme_worker_loop(name))
        .env("PATH", path)
        .env("VAPORA_REAL", BIN)
        .env("VAPORA_CALLS", calls)
        .env("VAPORA_SOCKET", &d.socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("sh")
}

fn write_logging_wrapper(bin_dir: &Path) {
    std::fs::create_dir_all(bin_dir).unwrap();
    let wrapper = bin_dir.join("vapora");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\n\"$VAPORA_REAL\" \"$@\"; rc=$?\necho \"$rc $*\" >> \"$VAPORA_CALLS\"\nexit $rc\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `vapora ARGS` against the daemon at `socket`, from any thread.
fn cli(socket: &Path, args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .env("VAPORA_SOCKET", socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from_output(output)
}

/// Counts by status, as a list command (`list`, with `--json`) shows them and as the
/// metrics count them (`key`: `agents` or `tasks`).
fn by_status(
    d: &TestDaemon,
    list: &[&str],
    key: &str,
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let status = |item: &serde_json::Value| item["status"].as_str().unwrap().to_string();
    let mut listed = BTreeMap::new();
    for item in d.run(list).json().as_array().unwrap() {
        *listed.entry(status(item)).or_insert(0) += 1;
    }
    let mut metered = BTreeMap::new();
    for entry in d.run(&["metrics", "--json"]).json()[key]
        .as_array()
        .unwrap()
    {
        let count = entry["count"].as_u64().unwrap();
        if count > 0 {
            *metered.entry(status(entry)).or_insert(0) += count;
        }
    }
    (listed, metered)
}

fn agent_views(d: &TestDaemon) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    by_status(d, &["agent", "list", "--json"], "agents")
}

fn task_views(d: &TestDaemon) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    by_status(d, &["task", "list", "--json"], "tasks")
}

/// The metrics agree with the lists. Agents change by themselves (one going silent goes
/// offline), so the metrics are compared with two lists taken around them that agree.
#[track_caller]
fn assert_gauges_agree(d: &TestDaemon) {
    for _ in 0..20 {
        let (before, _) = agent_views(d);
        let (_, metered) = agent_views(d);
        let (after, _) = agent_views(d);
        if before == after {
            assert_eq!(before, metered, "agent gauges disagree with `agent list`");
            let (listed, metered) = task_views(d);
            assert_eq!(listed, metered, "task gauges disagree with `task list`");
            return;
        }
    }
    panic!("the agents never held still");
}

const WORKERS: usize = 4;
const PRODUCERS: usize = 2;
const TASKS_PER_PRODUCER: usize = 300;
const KILLS: usize = 8;

/// Producers and four README worker loops run while the daemon is SIGKILLed and restarted
/// on the same data dir eight times. Afterwards every task reaches `done` without anyone
/// stepping in, no acknowledged add is lost or duplicated, no acknowledged `done` is undone
/// (a task done twice would show as two acknowledged `done`s), and the gauges agree with
/// the lists, also after one more restart with two agents busy.
#[test]
fn workers_and_producers_ride_over_repeated_daemon_kills() {
    let mut d = TestDaemon::start_with(DAEMON_ARGS);
    let bin_dir = d.dir.path().join("bin");
    write_logging_wrapper(&bin_dir);
    let calls: Vec<PathBuf> = (0..WORKERS)
        .map(|i| d.dir.path().join(format!("calls-w{i}.log")))
        .collect();
    // A lost claim answer from before the workers start: w0's loop gives it back when it
    // starts (its lease, an hour, would not).
    d.run(&["agent", "register", "w0"]).ok();
    let orphan = d.add(&["orphan", "--payload", "true", "--lease", "1h"]);
    d.run(&["task", "claim", "--agent", "w0", "-q"]).ok();
    let workers = Workers(
        (0..WORKERS)
            .map(|i| spawn_worker(&d, &bin_dir, &format!("w{i}"), &calls[i]))
            .collect(),
    );

    let socket = d.socket.clone();
    let stop = AtomicBool::new(false);
    let acknowledged: Vec<(u64, String)> = std::thread::scope(|scope| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (socket, stop) = (&socket, &stop);
                scope.spawn(move || {
                    let mut added = Vec::new();
                    for i in 0..TASKS_PER_PRODUCER {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let title = format!("job {p}-{i}");
                        let args = ["task", "add", &title, "--payload", "true"];
                        let add = cli(socket, &[&args[..], &["--max-attempts", "10"]].concat());
                        match add.code {
                            0 => added.push((add.stdout.trim().parse().unwrap(), title)),
                            // No daemon, or killed before the answer: not acknowledged.
                            3 => {}
                            1 if add.stderr.contains("shutting down") => {}
                            _ => panic!("add failed: {add:?}"),
                        }
                    }
                    added
                })
            })
            .collect();
        let mut rng = XorShift(0x5eed_cafe);
        for round in 0..KILLS {
            // How long the daemon runs and how long it stays down: varied, repeatable.
            std::thread::sleep(Duration::from_millis(300 + rng.next() % 500));
            if round % 4 == 3 {
                // A `systemctl restart`: parked claims hear "shutting down".
                assert!(d.terminate().success());
            } else {
                d.kill9();
            }
            std::thread::sleep(Duration::from_millis(rng.next() % 300));
            d.restart(DAEMON_ARGS);
        }
        stop.store(true, Ordering::Relaxed);
        producers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect()
    });
    assert!(
        acknowledged.len() > 50,
        "too few adds got through: {}",
        acknowledged.len()
    );

    // Every task, acknowledged or not, gets done by the workers alone.
    let all = d.run(&["task", "list", "--json"]).json();
    let all = all.as_array().unwrap();
    let ids: Vec<String> = all.iter().map(|t| t["id"].to_string()).collect();
    let mut wait = vec!["task", "wait", "--timeout", "90s", "-q"];
    wait.extend(ids.iter().map(String::as_str));
    let waited = d.run(&wait);
    assert_eq!(waited.code, 0, "not every task got done: {waited:?}");

    let tasks = d.run(&["task", "list", "--json"]).json();
    let by_id: HashMap<u64, &serde_json::Value> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_u64().unwrap(), t))
        .collect();
    for (id, title) in &acknowledged {
        let task = by_id
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged task {id} is lost"));
        assert_eq!(task["title"].as_str(), Some(title.as_str()), "task {id}");
        assert_eq!(task["status"], "done", "task {id}");
    }
    let mut titles: HashMap<&str, u64> = HashMap::new();
    for task in by_id.values() {
        let title = task["title"].as_str().unwrap();
        if let Some(other) = titles.insert(title, task["id"].as_u64().unwrap()) {
            panic!(
                "'{title}' was added twice: tasks {other} and {}",
                task["id"]
            );
        }
    }
    let mut dones: HashMap<u64, usize> = HashMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for log in &calls {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            *outcomes
                .entry(format!("{} {} {}", words[1], words[2], words[0]))
                .or_insert(0) += 1;
            if words.get(..3) == Some(&["0", "task", "done"]) {
                *dones.entry(words[3].parse().unwrap()).or_insert(0) += 1;
            }
        }
    }
    // What the workers went through (shown with --nocapture): exit 3 is a kill, exit 6 a
    // lost claim answer noticed.
    let mut attempts: BTreeMap<u64, usize> = BTreeMap::new();
    for task in by_id.values() {
        *attempts
            .entry(task["attempts"].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    eprintln!("worker calls by outcome: {outcomes:?}; tasks by attempts: {attempts:?}");
    assert!(!dones.is_empty(), "the workers acknowledged no done");
    for (id, count) in &dones {
        assert_eq!(
            *count, 1,
            "task {id} was acknowledged done {count} times: a done was undone"
        );
        assert_eq!(by_id[id]["status"], "done", "task {id}");
    }

    let orphan = &by_id[&orphan];
    assert_eq!(
        orphan["status"], "done",
        "the orphan was given back and run"
    );
    assert_eq!(
        orphan["attempts"], 2,
        "given back with its attempt counted, then run"
    );

    drop(workers);
    assert_gauges_agree(&d);
    // Two agents busy, across one more restart (agents and leases that outlast the test):
    // the gauges count what the lists show.
    let lasting = ["--lease", "1h", "--heartbeat-ttl", "1h"];
    d.terminate();
    d.restart(&lasting);
    for agent in ["w0", "w1"] {
        d.add(&["held"]);
        d.run(&["task", "claim", "--agent", agent, "-q"]).ok();
    }
    d.kill9();
    d.restart(&lasting);
    assert_gauges_agree(&d);
    let (listed, _) = agent_views(&d);
    assert_eq!(listed.get("busy"), Some(&2), "{listed:?}");
}

/// The worker loops, each a process group, killed with everything they started when
/// dropped (also when an assertion fails).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            common::signal_group(worker.id(), libc::SIGKILL);
            let _ = worker.wait();
        }
    }
}

/// A `systemctl restart`: the daemon stops gracefully, so the loop's parked claim hears
/// "shutting down" (exit 1) rather than losing its connection; it asks again, and runs
/// what is added once the daemon is back.
#[test]
fn the_readme_loop_rides_over_a_graceful_restart() {
    let mut d = TestDaemon::start();
    let bin_dir = d.dir.path().join("bin");
    write_logging_wrapper(&bin_dir);
    let calls = d.dir.path().join("calls.log");
    let _workers = Workers(vec![spawn_worker(&d, &bin_dir, "w0", &calls)]);
    common::wait_for_metrics(&d, "the loop parked its claim", |m| m["parked_claims"] == 1);
    assert!(d.terminate().success());
    d.restart(&[]);
    let id = d.add(&["after the restart", "--payload", "true"]);
    let waited = d.run(&["task", "wait", &id.to_string(), "--timeout", "30s"]);
    assert_eq!(waited.code, 0, "{waited:?}");
    let log = std::fs::read_to_string(&calls).unwrap();
    assert!(log.contains("1 task claim --agent w0"), "{log}");
}

/// The processes in process group `pgid`, as (pid, command name).
fn processes_in_group(pgid: u32) -> Vec<(u32, String)> {
    common::processes()
        .into_iter()
        .filter(|process| process.group == pgid)
        .map(|process| (process.pid, process.name))
        .collect()
}

/// The README loop leaves nothing behind per task: after 50 quick tasks, its process
/// group holds the loop and its parked claim, nothing else. (Its heartbeat used to be a
/// subshell whose `sleep 20` outlived it: one orphaned `sleep` per task.)
#[test]
fn the_readme_loop_leaves_no_process_behind_per_task() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, dir.path().join("vapora")).unwrap();
    for i in 0..50 {
        d.add(&[&format!("quick {i}"), "--payload", "true"]);
    }
    // The real binary on PATH, not the logging wrapper: nothing stands between the loop
    // and the processes it starts.
    let mut worker = spawn_worker(&d, dir.path(), "tidy", &dir.path().join("calls"));
    common::wait_for_metrics(&d, "50 tasks done and the loop parked", |m| {
        m["counters"]["done"] == 50 && m["parked_claims"] == 1
    });
    let group = processes_in_group(worker.id());
    common::signal_group(worker.id(), libc::SIGKILL);
    let _ = worker.wait();
    let names: Vec<&str> = group.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names.len(), 2, "the loop and its claim only: {group:?}");
    assert!(
        names.contains(&"sh") && names.contains(&"vapora"),
        "{group:?}"
    );
}

/// `agent heartbeat --every`: one process that renews the named task's lease until killed,
/// rides over a daemon restart (saying so once), and exits 1 once the task is no longer
/// the agent's.
#[test]
fn heartbeat_every_goes_on_across_a_restart_and_stops_when_the_task_is_gone() {
    let mut d = TestDaemon::start_with(&["--lease", "2s"]);
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["long"]).to_string();
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    let mut beat = d
        .command(&[
            "agent",
            "heartbeat",
            "w1",
            "--task",
            &id,
            "--every",
            "300ms",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stderr, line by line, as it comes.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = beat.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let beats = |d: &TestDaemon| -> u64 {
        let m = d.run(&["metrics", "--json"]).json();
        m["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "heartbeat")
            .map_or(0, |r| r["count"].as_u64().unwrap())
    };
    common::wait_for_metrics(&d, "two heartbeats", |_| beats(&d) >= 2);
    d.kill9();
    let said = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(said.contains("trying again"), "{said}");
    d.restart(&["--lease", "2s"]);
    // The lease (2 s) is renewed past its length by the beats after the restart.
    common::wait_for_metrics(&d, "beats after the restart", |_| beats(&d) >= 8);
    let shown = d.run(&["task", "show", &id, "--json"]).json();
    assert_eq!(shown["status"], "running", "{shown}");
    d.run(&["task", "cancel", &id]).ok();
    let status = beat.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("stop running it")),
        "{rest:?}"
    );
    assert!(
        !rest.iter().any(|l| l.contains("trying again")),
        "said once: {rest:?}"
    );
}
