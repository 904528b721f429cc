//! `vapora work`: a real worker process running real shell commands against a real daemon,
//! stopped with real signals.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Run, TestDaemon, signal};

fn task(d: &TestDaemon, id: u64) -> serde_json::Value {
    d.run(&["task", "show", &id.to_string(), "--json"]).json()
}

/// Starts `vapora work ARGS` against the daemon.
fn worker(d: &TestDaemon, args: &[&str]) -> Child {
    let mut all = vec!["work"];
    all.extend_from_slice(args);
    d.command(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) until `check` holds: for what has no signal of its own (a process
/// gone, a file written by a task).
fn until(what: &str, check: impl Fn() -> bool) {
    until_within(Duration::from_secs(15), what, check)
}

fn until_within(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has exited: only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A payload that creates `started`, waits until `go` exists, then prints `last`: a task
/// whose end the test decides.
fn gated_payload(dir: &Path, last: &str) -> (String, PathBuf, PathBuf) {
    let (started, go) = (dir.join("started"), dir.join("go"));
    let payload = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.05; done; echo {last}",
        started.display(),
        go.display()
    );
    (payload, started, go)
}

fn wait_status(d: &TestDaemon, id: u64, status: &str) {
    until(&format!("task {id} {status}"), || {
        task(d, id)["status"] == status
    });
}

#[test]
fn exit_codes_become_done_and_failures_with_reasons() {
    let d = TestDaemon::start();
    let ok = d.add(&[
        "ok",
        "--payload",
        "echo first; echo; echo last line; echo '  '",
    ]);
    let exit3 = d.add(&["exit 3", "--payload", "exit 3", "--max-attempts", "1"]);
    let killed = d.add(&[
        "killed",
        "--payload",
        "kill -TERM $$",
        "--max-attempts",
        "1",
    ]);
    let empty = d.add(&["nothing to run"]);
    let env = d.add(&[
        "env",
        "--payload",
        "echo $VAPORA_TASK_ID/$VAPORA_ATTEMPT/$VAPORA_AGENT",
    ]);
    let retried = d.add(&["fails once", "--payload", "exit 1", "--max-attempts", "2"]);
    let w = worker(&d, &["--agent", "w1", "-j", "2", "--exit-when-empty"]);
    let run = Run::from_output(w.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    let ok_id = ok;
    let ok = task(&d, ok);
    assert_eq!(ok["status"], "done");
    assert_eq!(ok["result"], "last line");
    // How long the attempt ran and how its command ended are kept with the task.
    assert_eq!(ok["exit_code"], 0, "{ok}");
    assert!(
        ok["started_at"].is_string() && ok["ended_at"].is_string(),
        "{ok}"
    );
    assert!(ok["run_ms"].as_u64().is_some_and(|ms| ms < 60_000), "{ok}");
    let shown = d.run(&["task", "show", &ok_id.to_string()]);
    assert!(shown.stdout.contains("exit code"), "{shown:?}");
    assert!(shown.stdout.contains("ran:"), "{shown:?}");
    let exit3 = task(&d, exit3);
    assert_eq!(exit3["status"], "failed");
    assert_eq!(exit3["error"], "exit 3");
    assert_eq!(exit3["exit_code"], 3);
    let killed = task(&d, killed);
    assert_eq!(killed["error"], "killed by signal TERM");
    assert_eq!(killed["exit_code"], 128 + 15);
    let empty = task(&d, empty);
    assert_eq!(empty["status"], "failed");
    assert_eq!(empty["error"], "no payload to run");
    assert_eq!(empty["exit_code"], serde_json::Value::Null, "nothing ran");
    assert_eq!(
        empty["attempts"], 1,
        "no retry for a task with nothing to run"
    );
    assert_eq!(task(&d, env)["result"], format!("{env}/1/w1"));
    // A failure with attempts left is retried (after the backoff), then fails for good.
    let retried = task(&d, retried);
    assert_eq!(retried["status"], "failed", "{retried}");
    assert_eq!(retried["attempts"], 2, "{retried}");

    // Every attempt that ended with a reported outcome is in the run-time histogram: ok,
    // exit 3, killed, nothing to run, env, and both attempts of the retried task.
    let metrics = d.run(&["metrics", "--json"]).json();
    assert_eq!(
        metrics["run_cumulative"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        7,
        "{metrics}"
    );
    let text = d.run(&["metrics", "--format", "prometheus"]).stdout;
    assert!(text.contains("vapora_task_run_seconds_count 7"), "{text}");
}

#[test]
fn a_task_past_its_timeout_is_stopped_and_failed_as_timed_out() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let payload = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let id = d.add(&["slow", "--payload", &payload, "--max-attempts", "1"]);
    let w = worker(
        &d,
        &[
            "--agent",
            "w1",
            "--timeout",
            "1s",
            "--grace",
            "1s",
            "--exit-when-empty",
        ],
    );
    let run = Run::from_output(w.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    let shown = task(&d, id);
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["error"], "timed out after 1s");
    assert_eq!(shown["exit_code"], 124, "timeout(1)'s code");
    assert!(
        shown["run_ms"].as_u64().is_some_and(|ms| ms >= 1000),
        "{shown}"
    );
    let sleeper = read_pid(&pid_file).unwrap();
    until("the task's sleep is gone", || !alive(sleeper));
}

/// A daemon that hangs (here: SIGSTOP) does not freeze the worker: its calls give up
/// after a bound, so the task's timeout is still enforced, and once the daemon answers
/// again the outcome is reported.
#[test]
fn a_hung_daemon_does_not_stop_the_worker_from_enforcing_a_timeout() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let payload = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let id = d.add(&["slow", "--payload", &payload, "--max-attempts", "1"]);
    let mut w = worker(&d, &["--agent", "w1", "--timeout", "2s", "--grace", "1s"]);
    until("the task's sleep started", || read_pid(&pid_file).is_some());
    let sleeper = read_pid(&pid_file).unwrap();
    signal(d.pid(), libc::SIGSTOP);
    // The worker is inside a call to the stopped daemon when the timeout comes due.
    until_within(Duration::from_secs(30), "the task stopped", || {
        !alive(sleeper)
    });
    signal(d.pid(), libc::SIGCONT);
    wait_status(&d, id, "failed");
    assert_eq!(task(&d, id)["error"], "timed out after 2s");
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
}

#[test]
fn cancelling_a_running_task_stops_its_processes() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let payload = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let id = d.add(&["long", "--payload", &payload]);
    let mut w = worker(&d, &["--agent", "w1"]);
    until("the task's sleep started", || read_pid(&pid_file).is_some());
    let sleeper = read_pid(&pid_file).unwrap();
    assert!(alive(sleeper));
    let started = Instant::now();
    d.run(&["task", "cancel", &id.to_string()]).ok();
    until("the cancelled task's sleep is gone", || !alive(sleeper));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
    assert_eq!(task(&d, id)["status"], "cancelled");
    // The worker carries on: it runs the next task.
    let next = d.add(&["next", "--payload", "echo next"]);
    wait_status(&d, next, "done");
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
}

#[test]
fn sigterm_lets_running_tasks_finish_and_a_second_signal_gives_them_back() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let payload = format!("touch {}; sleep 1; echo finished", started.display());
    let id = d.add(&["drained", "--payload", &payload]);
    let waiting = d.add(&["never claimed", "--payload", "echo no"]);
    let mut w = worker(&d, &["--agent", "w1"]);
    until("the task started", || started.exists());
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
    let drained = task(&d, id);
    assert_eq!(drained["status"], "done", "{drained}");
    assert_eq!(drained["result"], "finished");
    assert_eq!(
        task(&d, waiting)["status"],
        "queued",
        "nothing more was claimed"
    );

    // A second signal stops the running task: it goes back to the queue.
    std::fs::remove_file(&started).unwrap();
    d.run(&["task", "cancel", &waiting.to_string()]).ok();
    let pid_file = dir.path().join("pid");
    let payload = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let stopped = d.add(&["stopped", "--payload", &payload]);
    let mut w = worker(&d, &["--agent", "w1", "--grace", "30s"]);
    until("the task's sleep started", || read_pid(&pid_file).is_some());
    let sleeper = read_pid(&pid_file).unwrap();
    signal(w.id(), libc::SIGTERM);
    signal(w.id(), libc::SIGINT);
    assert_eq!(w.wait().unwrap().code(), Some(0));
    assert!(!alive(sleeper), "the task's processes were stopped");
    let back = task(&d, stopped);
    assert_eq!(back["status"], "queued", "{back}");
    assert_eq!(back["attempts"], 0, "the attempt is refunded: {back}");
}

/// Two workers under one name would each put the other's tasks back in the queue with
/// every heartbeat; the second is refused while the first is connected, and the name is
/// free again the moment the first dies.
#[test]
fn a_second_worker_under_the_same_name_is_refused_and_disturbs_nothing() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let (payload, started, go) = gated_payload(dir.path(), "first");
    let id = d.add(&["held", "--payload", &payload]);
    let mut first = worker(&d, &["--agent", "w1"]);
    until("the task started", || started.exists());

    let second = worker(&d, &["--agent", "w1", "--exit-when-empty"]);
    let refused = Run::from_output(second.wait_with_output().unwrap());
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("agent w1 is in use by another worker"),
        "{refused:?}"
    );
    // Nor may a hand-made heartbeat release the tasks the owning worker runs.
    let release = d.run(&["agent", "heartbeat", "w1", "--release-others"]);
    assert_eq!(release.code, 1, "{release:?}");
    assert!(
        release.stderr.contains("owned by a running worker"),
        "{release:?}"
    );
    let held = task(&d, id);
    assert_eq!(
        (&held["status"], &held["attempts"]),
        (&"running".into(), &1.into()),
        "{held}"
    );

    std::fs::write(&go, "").unwrap();
    wait_status(&d, id, "done");
    first.kill().unwrap();
    first.wait().unwrap();
    // The first worker's connection closed with it: the name is free.
    let third = worker(&d, &["--agent", "w1", "--exit-when-empty"]);
    let run = Run::from_output(third.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn a_sigkilled_worker_leaves_no_process_and_its_task_runs_again_once() {
    let d = TestDaemon::start_with(&["--lease", "2s", "--retry-backoff", "0s"]);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let pid_file = dir.path().join("pid");
    // Each run appends a line; the first one stays long, the second ends at once.
    let payload = format!(
        "echo run >> {runs}; if [ ! -e {pid} ]; then sleep 60 & echo $! > {pid}; wait; fi",
        runs = runs.display(),
        pid = pid_file.display()
    );
    let id = d.add(&["twice?", "--payload", &payload]);
    // In a process group of its own, which is killed whole (`kill -9 %1` in a shell).
    let mut w = d
        .command(&["work", "--agent", "w1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    until("the task's sleep started", || read_pid(&pid_file).is_some());
    let sleeper = read_pid(&pid_file).unwrap();
    common::signal_group(w.id(), libc::SIGKILL);
    let _ = w.wait();
    until("the killed worker's task processes are gone", || {
        !alive(sleeper)
    });
    // Another worker runs it again once its lease has run out.
    let w2 = worker(&d, &["--agent", "w2"]);
    wait_status(&d, id, "done");
    signal(w2.id(), libc::SIGTERM);
    let run = Run::from_output(w2.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    let lines = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(lines.lines().count(), 2, "ran twice in all: {lines}");
    assert_eq!(task(&d, id)["agent"], "w2");
}

#[test]
fn outcomes_reached_while_the_daemon_restarts_are_reported_after() {
    let mut d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let (gated, started, go) = gated_payload(dir.path(), "survived");
    let shell_pid = dir.path().join("shell");
    let payload = format!("echo $$ > {}; {gated}", shell_pid.display());
    let id = d.add(&["across a restart", "--payload", &payload]);
    let w = worker(&d, &["--agent", "w1"]);
    until("the task started", || started.exists());
    let shell = read_pid(&shell_pid).unwrap();
    d.kill9();
    // The task ends while no daemon answers.
    std::fs::write(&go, "").unwrap();
    until("the task's shell exited", || !alive(shell));
    d.restart(&[]);
    wait_status(&d, id, "done");
    assert_eq!(task(&d, id)["result"], "survived");
    signal(w.id(), libc::SIGTERM);
    let run = Run::from_output(w.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("trying again"), "{run:?}");
}

#[test]
fn as_root_a_worker_refuses_a_daemon_others_may_reach() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let d = TestDaemon::start_with(&["--socket-mode", "660"]);
    let id = d.add(&["as root", "--payload", "id -u"]);
    let refused = Run::from_output(
        worker(&d, &["--agent", "w1", "--exit-when-empty"])
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--allow-root"), "{refused:?}");
    assert_eq!(task(&d, id)["status"], "queued");
    let allowed = Run::from_output(
        worker(&d, &["--agent", "w1", "--exit-when-empty", "--allow-root"])
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(allowed.code, 0, "{allowed:?}");
    assert_eq!(task(&d, id)["result"], "0");
}

#[test]
fn a_task_runs_in_its_directory_with_its_variables_and_exact_words() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_str().unwrap();
    let env = d.add(&[
        "--cwd",
        dir_text,
        "--env",
        "GREETING=hi there",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING|$(pwd)\"",
    ]);
    let words = d.add(&["--", "printf", "%s|", "a b", "it's", "$HOME", "back\\slash"]);
    let timed = d.add(&[
        "--timeout",
        "1s",
        "--max-attempts",
        "1",
        "--",
        "sleep",
        "30",
    ]);
    let nowhere = d.add(&[
        "--cwd",
        "/nonexistent/dir",
        "--max-attempts",
        "1",
        "--",
        "true",
    ]);
    let w = worker(&d, &["--agent", "w1", "-j", "4", "--exit-when-empty"]);
    let run = Run::from_output(w.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(task(&d, env)["result"], format!("hi there|{dir_text}"));
    assert_eq!(task(&d, words)["result"], "a b|it's|$HOME|back\\slash|");
    assert_eq!(task(&d, timed)["error"], "timed out after 1s");
    let nowhere = task(&d, nowhere);
    assert_eq!(nowhere["status"], "failed");
    assert!(
        nowhere["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot enter its directory /nonexistent/dir"),
        "{nowhere}"
    );
}

/// A task's shell starts the way a shell started from a terminal would: the worker's
/// environment (with the task's variables over it), stdin `/dev/null`, no signal blocked
/// and none ignored, SIGPIPE included (the worker itself ignores it, so a pipeline such as
/// `yes | head` would otherwise see write errors instead of ending quietly).
#[test]
fn a_task_starts_with_the_workers_environment_and_default_signals() {
    let d = TestDaemon::start();
    let signals = d.add(&[
        "--",
        "awk",
        "/^Sig(Blk|Ign)/ { printf \"%s%s \", $1, $2 }",
        "/proc/self/status",
    ]);
    let environment = d.add(&[
        "--env",
        "FROM_TASK=task",
        "--env",
        "OVERRIDDEN=by the task",
        "--",
        "sh",
        "-c",
        "echo \"$FROM_WORKER|$FROM_TASK|$OVERRIDDEN|$(readlink /proc/self/fd/0)\"",
    ]);
    let w = d
        .command(&["work", "--agent", "w1", "--exit-when-empty"])
        .env("FROM_WORKER", "worker")
        .env("OVERRIDDEN", "by the worker")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = Run::from_output(w.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    let signals = task(&d, signals);
    let masks: Vec<u64> = signals["result"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|field| u64::from_str_radix(field.split(':').nth(1).unwrap(), 16).unwrap())
        .collect();
    // Signals 1 to 31; glibc's `posix_spawn` leaves its two internal ones (32, 33)
    // ignored, which the C library of any program run resets for itself.
    assert_eq!(masks, [0, masks[1] & !0x7fff_ffff], "{signals}");
    assert_eq!(
        task(&d, environment)["result"],
        "worker|task|by the task|/dev/null"
    );
}

/// `vapora run`: adds the task, prints its output as the worker runs it, and exits with
/// the command's own status; without a worker it says so instead of waiting silently.
/// `vapora run` (and `task logs --follow`) ride over a daemon restart: the output from
/// before and after arrives, and the exit status is still the command's.
#[test]
fn run_follows_its_task_across_a_daemon_restart() {
    let mut d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let (gated, started, go) = gated_payload(dir.path(), "after");
    let payload = format!("echo before; {gated}; exit 7");
    let mut w = worker(&d, &["--agent", "w1"]);
    let following = d
        .command(&["run", "--max-attempts", "1", "--", "sh", "-c", &payload])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until("the task started", || started.exists());
    d.kill9();
    d.restart(&[]);
    std::fs::write(&go, "").unwrap();
    let run = Run::from_output(following.wait_with_output().unwrap());
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(run.stdout, "before\nafter\n", "{run:?}");
    assert!(
        run.stderr.contains("waiting for the daemon to come back"),
        "{run:?}"
    );
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
}

#[test]
fn run_prints_the_output_and_exits_with_the_commands_status() {
    let d = TestDaemon::start();
    let waiting = d
        .command(&[
            "run",
            "--max-attempts",
            "1",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says there is no worker (and waits): start one.
    common::wait_for_metrics(&d, "the run's task is queued", |m| {
        m["counters"]["enqueued"] == 1
    });
    let mut w = worker(&d, &["--agent", "w1", "-j", "2"]);
    let run = Run::from_output(waiting.wait_with_output().unwrap());
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(run.stdout, "out\nerr\n");
    assert!(run.stderr.contains("no worker is running"), "{run:?}");

    let ok = d.run(&["run", "--", "printf", "%s\\n", "a b", "$HOME"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.stdout, "a b\n$HOME\n");
    assert!(!ok.stderr.contains("no worker"), "{ok:?}");
    let killed = d.run(&[
        "run",
        "--max-attempts",
        "1",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(killed.code, 128 + libc::SIGTERM, "{killed:?}");
    let usage = d.run(&["run", "--stdin"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
}

/// A task's end is its shell's exit: a background job that keeps the output open does
/// not keep the task running (it is stopped with the task).
#[test]
fn a_background_job_holding_the_output_does_not_keep_the_task_running() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let payload = format!("sleep 60 & echo $! > {}; echo started", pid_file.display());
    let id = d.add(&["background", "--payload", &payload, "--max-attempts", "1"]);
    let started = Instant::now();
    let w = worker(&d, &["--agent", "w1", "--exit-when-empty"]);
    let run = Run::from_output(w.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let shown = task(&d, id);
    assert_eq!(shown["status"], "done", "{shown}");
    assert_eq!(shown["result"], "started");
    let sleeper = read_pid(&pid_file).unwrap();
    until("the background job is gone", || !alive(sleeper));
}

/// A daemon stopped gracefully (`systemctl restart`) and started again: the worker waits
/// for it, its running task carries on, and the outcome arrives afterwards.
#[test]
fn a_graceful_daemon_restart_leaves_running_tasks_alone() {
    let mut d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let (payload, started, go) = gated_payload(dir.path(), "carried on");
    let id = d.add(&["long", "--payload", &payload]);
    // Two slots: one runs the task, the other waits in a parked claim, which the
    // daemon's shutdown answers with an error.
    let mut w = worker(&d, &["--agent", "w1", "-j", "2"]);
    until("the task started", || started.exists());
    assert_eq!(d.terminate().code(), Some(0));
    d.restart(&[]);
    std::fs::write(&go, "").unwrap();
    wait_status(&d, id, "done");
    assert_eq!(task(&d, id)["result"], "carried on");
    assert!(
        w.try_wait().unwrap().is_none(),
        "the worker is still running"
    );
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
}

/// `vapora run ... | head`: once nobody reads its output, it still exits with the
/// command's own status when the command ends (before, the closed pipe made it exit 0 at
/// once).
#[test]
fn run_into_a_closed_pipe_still_exits_with_the_commands_status() {
    let d = TestDaemon::start();
    let mut w = worker(&d, &["--agent", "w1"]);
    let script = format!(
        "{} run --max-attempts 1 -- sh -c 'yes | head -100000; sleep 0.5; exit 9' | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        common::BIN
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("VAPORA_SOCKET", &d.socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9", "{out:?}");
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
}

/// A task that writes 50 MB as fast as it can: the worker's memory stays small (the task
/// waits on its pipe while its output reaches the daemon) and the daemon keeps the newest
/// output within its --max-log.
#[test]
fn a_chatty_task_keeps_the_worker_small() {
    let d = TestDaemon::start_with(&["--max-log", "1048576"]);
    let id = d.add(&[
        "chatty",
        "--payload",
        "yes 0123456789abcdef | head -c 50000000; echo; echo end",
    ]);
    let mut w = worker(&d, &["--agent", "w1"]);
    // Half a second in a release build; the debug build that `cargo test` makes takes
    // about 12 s on two cores, so the bound is generous.
    until_within(Duration::from_secs(120), "the chatty task done", || {
        task(&d, id)["status"] == "done"
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.id())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kb < 32 * 1024, "the worker peaked at {peak_kb} kB");
    let logs = d.run(&["task", "logs", &id.to_string()]);
    assert!(
        logs.stdout.len() <= 1_100_000,
        "{} bytes kept",
        logs.stdout.len()
    );
    assert!(logs.stdout.ends_with("end\n"), "the newest output is kept");
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
}

/// `VAPORA_SHELL` runs payloads under another shell; a shell that cannot be started is the
/// worker's fault, so the task goes back with its attempt refunded instead of failing.
#[test]
fn vapora_shell_chooses_the_shell_and_a_missing_one_burns_no_attempt() {
    let d = TestDaemon::start();
    let id = d.add(&["bashism", "--payload", "[[ 1 == 1 ]] && echo bash"]);
    let mut w = d
        .command(&["work", "--agent", "w1"])
        .env("VAPORA_SHELL", "/nonexistent/shell")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_metrics(&d, "the task given back", |m| {
        m["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "give_back" && r["count"].as_u64().unwrap() >= 1)
    });
    signal(w.id(), libc::SIGTERM);
    assert_eq!(w.wait().unwrap().code(), Some(0));
    let shown = task(&d, id);
    assert_eq!(shown["status"], "queued", "{shown}");
    assert_eq!(shown["attempts"], 0, "{shown}");
    let with_bash = d
        .command(&["work", "--agent", "w2", "--exit-when-empty"])
        .env("VAPORA_SHELL", "bash")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(with_bash.status.code(), Some(0), "{with_bash:?}");
    let shown = task(&d, id);
    assert_eq!(shown["result"], "bash", "{shown}");
}
