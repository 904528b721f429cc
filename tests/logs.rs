//! Task output: a real `vapora work` runs real shell commands, the daemon keeps what they
//! write, and `vapora task logs` prints it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};

use common::TestDaemon;
use vapora::client::connection::Client;
use vapora::protocol::{ErrorKind, Request};

/// Runs `vapora work --exit-when-empty` until every queued task has run.
fn work_until_empty(d: &TestDaemon) {
    let run = d.run(&["work", "--agent", "w1", "--exit-when-empty"]);
    assert_eq!(run.code, 0, "{run:?}");
}

fn worker(d: &TestDaemon) -> Child {
    d.command(&["work", "--agent", "w1", "--exit-when-empty"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn log_files(d: &TestDaemon, id: u64) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(d.data_dir.join("logs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{id}.")))
        .collect();
    names.sort();
    names
}

#[test]
fn stdout_and_stderr_are_kept_in_the_order_written() {
    let d = TestDaemon::start();
    let id = d.add(&[
        "both",
        "--payload",
        "echo out 1; echo err 1 >&2; echo out 2; echo err 2 >&2; printf 'no newline'",
    ]);
    work_until_empty(&d);
    assert_eq!(
        d.run(&["task", "logs", &id.to_string()]).stdout,
        "out 1\nerr 1\nout 2\nerr 2\nno newline"
    );
    let mode = |path: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions())
            & 0o777
    };
    let logs = d.data_dir.join("logs");
    assert_eq!(mode(&logs), 0o700);
    assert_eq!(log_files(&d, id), vec![format!("{id}.1.log")]);
    assert_eq!(mode(&logs.join(format!("{id}.1.log"))), 0o600);
}

#[test]
fn output_beyond_max_log_drops_the_oldest_with_a_marker() {
    let d = TestDaemon::start_with(&["--max-log", "4096"]);
    let id = d.add(&["many lines", "--payload", "seq 1 20000"]);
    work_until_empty(&d);
    let text = d.run(&["task", "logs", &id.to_string()]).stdout;
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("[vapora: ") && first.contains("bytes of earlier output dropped"),
        "{first}"
    );
    assert!(text.ends_with("19999\n20000\n"), "{text}");
    // Kept lines are whole, and in order.
    let numbers: Vec<u64> = text.lines().skip(1).map(|l| l.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    let size = std::fs::metadata(d.data_dir.join("logs").join(format!("{id}.1.log")))
        .unwrap()
        .len();
    assert!(size <= 4096 + 100, "{size} bytes kept");
    let dropped: u64 = first
        .trim_start_matches("[vapora: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let total: u64 = (1..=20000u64).map(|n| n.to_string().len() as u64 + 1).sum();
    assert_eq!(dropped + (text.len() - first.len() - 1) as u64, total);
}

#[test]
fn tail_prints_the_last_lines() {
    let d = TestDaemon::start();
    let id = d.add(&["ten", "--payload", "seq 1 10"]);
    work_until_empty(&d);
    let id = id.to_string();
    assert_eq!(
        d.run(&["task", "logs", &id, "--tail", "3"]).stdout,
        "8\n9\n10\n"
    );
    assert_eq!(
        d.run(&["task", "logs", &id, "--tail", "50"])
            .stdout
            .lines()
            .count(),
        10
    );
    assert_eq!(d.run(&["task", "logs", &id, "--tail", "0"]).stdout, "");
}

#[test]
fn each_attempt_has_its_own_output() {
    let d = TestDaemon::start_with(&["--retry-backoff", "0s"]);
    let id = d.add(&[
        "second time lucky",
        "--max-attempts",
        "2",
        "--payload",
        "echo attempt $VAPORA_ATTEMPT; [ $VAPORA_ATTEMPT -ge 2 ]",
    ]);
    work_until_empty(&d);
    assert_eq!(d.status_of(id), "done");
    let id = id.to_string();
    assert_eq!(d.run(&["task", "logs", &id]).stdout, "attempt 2\n");
    assert_eq!(
        d.run(&["task", "logs", &id, "--attempt", "1"]).stdout,
        "attempt 1\n"
    );
    let none = d.run(&["task", "logs", &id, "--attempt", "3"]);
    assert_eq!(none.code, 4, "{none:?}");
    assert!(none.stderr.contains("no attempt 3"), "{none:?}");
}

/// A task that writes a line, waits for the test to let it go (a fifo), and writes
/// another: `--follow` prints the first while the task still runs, then the second, and
/// exits with `task wait`'s code once the task ends.
fn follow_case(exit: i32, expected_code: i32) {
    let d = TestDaemon::start();
    let fifo = d.dir.path().join("go");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let payload = format!(
        "echo one; read line < '{}'; echo two >&2; exit {exit}",
        fifo.display()
    );
    let id = d.add(&["waits", "--max-attempts", "1", "--payload", &payload]);
    let mut work = worker(&d);
    let mut follow = d
        .command(&["task", "logs", &id.to_string(), "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line, "one\n", "streamed while the task runs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    line.clear();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line, "two\n");
    line.clear();
    assert_eq!(
        lines.read_line(&mut line).unwrap(),
        0,
        "then the end: {line}"
    );
    let status = follow.wait().unwrap();
    assert_eq!(status.code(), Some(expected_code));
    assert!(work.wait().unwrap().success());
}

#[test]
fn follow_streams_output_and_exits_0_when_the_task_is_done() {
    follow_case(0, 0);
}

#[test]
fn follow_exits_1_when_the_task_failed() {
    follow_case(3, 1);
}

#[test]
fn follow_of_a_finished_task_prints_it_and_exits_at_once() {
    let d = TestDaemon::start();
    let id = d.add(&["done", "--payload", "echo hi"]);
    work_until_empty(&d);
    let run = d.run(&["task", "logs", &id.to_string(), "--follow"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "hi\n"), "{run:?}");
}

#[test]
fn logs_are_deleted_when_their_task_is_pruned() {
    let d = TestDaemon::start();
    let id = d.add(&["short lived", "--payload", "echo bye"]);
    let kept = d.add(&["still queued"]);
    d.run(&["task", "cancel", &kept.to_string()]).ok();
    // Only the first runs: the second is cancelled (and has no output).
    work_until_empty(&d);
    assert_eq!(log_files(&d, id).len(), 1);
    d.run(&["task", "prune", "--older-than", "0s"]).ok();
    assert!(log_files(&d, id).is_empty());
    let gone = d.run(&["task", "logs", &id.to_string()]);
    assert_eq!(gone.code, 4, "{gone:?}");
}

#[test]
fn only_the_agent_running_a_task_may_append_to_its_output() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    d.run(&["agent", "register", "w2"]).ok();
    let id = d.add(&["t"]);
    d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    let mut client = Client::connect(&d.socket).unwrap();
    let append = |client: &mut Client, agent: &str, attempt: u32| {
        client
            .call(&Request::AppendOutput {
                id,
                attempt,
                agent: agent.into(),
                data: b"hello\n".to_vec(),
            })
            .unwrap()
    };
    let refused = append(&mut client, "w2", 1).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict);
    assert!(
        refused.message.contains("agent w2 does not hold task"),
        "{refused:?}"
    );
    let stale = append(&mut client, "w1", 2).unwrap_err();
    assert_eq!(stale.kind, ErrorKind::Conflict);
    append(&mut client, "w1", 1).unwrap();
    d.run(&["task", "done", &id.to_string()]).ok();
    let late = append(&mut client, "w1", 1).unwrap_err();
    assert_eq!(late.kind, ErrorKind::Conflict);
    assert_eq!(d.run(&["task", "logs", &id.to_string()]).stdout, "hello\n");
}
