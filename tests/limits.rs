//! Each input limit, exceeded: a clear error, nothing changed, the daemon healthy.

mod common;

use common::TestDaemon;
use vapora::client::connection::Client;
use vapora::protocol::limits::{MAX_BATCH, MAX_TEXT_BYTES, MAX_TITLE_BYTES};
use vapora::protocol::{ErrorKind, NewTask, Request};

#[test]
fn oversized_titles_and_payloads_are_refused() {
    let d = TestDaemon::start();
    let long_title = "t".repeat(MAX_TITLE_BYTES + 1);
    let run = d.run(&["task", "add", &long_title]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("title"), "{run:?}");
    let big_payload = "p".repeat(MAX_TEXT_BYTES + 1);
    let run = d.run_stdin(
        &["task", "add", "--stdin", "--jsonl"],
        &format!("{{\"title\":\"x\",\"payload\":\"{big_payload}\"}}\n"),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("payload"), "{run:?}");
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "");
}

#[test]
fn configured_limits_are_published_and_enforced() {
    let d = TestDaemon::start_with(&[
        "--max-title",
        "8",
        "--max-payload",
        "16",
        "--max-batch",
        "3",
    ]);
    let info = d.run(&["ping", "--json"]).json();
    assert_eq!(info["limits"]["max_title_bytes"], 8);
    assert_eq!(info["limits"]["max_payload_bytes"], 16);
    assert_eq!(info["limits"]["max_batch"], 3);

    let run = d.run(&["task", "add", "123456789"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("limit of 8"), "{run:?}");
    let run = d.run(&["task", "add", "ok", "--payload", &"p".repeat(17)]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("limit of 16"), "{run:?}");

    // --stdin checks every line against the daemon's limits before sending any.
    let run = d.run_stdin(&["task", "add", "--stdin"], "a\nb\nc\ntoo-long-title\ne\n");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("line 4") && run.stderr.contains("limit of 8"),
        "{run:?}"
    );
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "");
    // ... and sends batches the daemon takes.
    let run = d.run_stdin(&["task", "add", "--stdin"], "1\n2\n3\n4\n5\n6\n7\n");
    assert_eq!(run.ok().lines().count(), 7, "{run:?}");

    let mut client = Client::connect(&d.socket).unwrap();
    let answer = client
        .call(&Request::AddTasks {
            tasks: vec![NewTask::new("t"); 4],
        })
        .unwrap();
    let error = answer.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidArgument);
    assert!(error.message.contains("limit is 3"), "{error:?}");
    assert_eq!(d.run(&["task", "list", "-q"]).ok().lines().count(), 7);
}

#[test]
fn limits_that_do_not_fit_in_a_frame_are_refused_at_start() {
    let d = TestDaemon::start();
    let socket = d.dir.path().join("other.sock");
    let log = d.dir.path().join("other.log");
    let data = d.dir.path().join("other-data");
    let refused = common::spawn_ready(
        &socket,
        &log,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--max-frame",
            "4194304",
            "--max-payload",
            "2000000",
        ],
    )
    .expect_err("the daemon should refuse to start");
    assert!(refused.contains("would not fit"), "{refused}");
}

#[test]
fn an_oversized_batch_is_refused_whole() {
    let d = TestDaemon::start();
    let mut client = Client::connect(&d.socket).unwrap();
    let tasks = vec![NewTask::new("t"); MAX_BATCH + 1];
    let answer = client.call(&Request::AddTasks { tasks }).unwrap();
    let error = answer.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidArgument);
    assert!(error.message.contains("limit"), "{error:?}");
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "");
}

#[test]
fn a_list_larger_than_a_frame_is_refused() {
    let d = TestDaemon::start();
    // 20 tasks of 1 MiB: more than a 16 MiB answer.
    let payload = "x".repeat(MAX_TEXT_BYTES - 100);
    let mut client = Client::connect(&d.socket).unwrap();
    for i in 0..20 {
        let mut task = NewTask::new(format!("big {i}"));
        task.payload = payload.clone();
        client
            .call(&Request::AddTasks { tasks: vec![task] })
            .unwrap()
            .unwrap();
    }
    let run = d.run(&["task", "list", "--json"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--limit"), "{}", run.stderr);
    // Refused before any task was printed: no half JSON array on stdout.
    assert_eq!(run.stdout, "");
    let some = d.run(&["task", "list", "--limit", "5", "-q"]);
    assert_eq!(some.ok().lines().count(), 5);
    let next = d.run(&["task", "list", "--limit", "5", "--after", "5", "-q"]);
    assert_eq!(next.ok(), "6\n7\n8\n9\n10");
    // A wait over all of them still answers (payloads left out).
    let ids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let mut args = vec!["task", "wait", "--timeout", "10ms"];
    args.extend(ids.iter().map(String::as_str));
    assert_eq!(d.run(&args).code, 5);
}

#[test]
fn pipelined_full_batches_do_not_deadlock() {
    // 20 adds of 10,000 tasks pipelined: their answers (80 KB each) would overflow the
    // socket buffers if the client wrote a full window before reading.
    let d = TestDaemon::start();
    let socket = d.socket.clone();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut client = Client::connect(&socket).unwrap();
        let requests: Vec<Request> = (0..20)
            .map(|_| Request::AddTasks {
                tasks: vec![NewTask::new("t"); MAX_BATCH],
            })
            .collect();
        let mut answers = Vec::new();
        client.call_many(&requests, &mut answers).unwrap();
        let _ = done.send(answers.iter().filter(|a| a.is_ok()).count());
    });
    let answered = finished
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the pipelined adds never finished (deadlock)");
    assert_eq!(answered, 20);
    let metrics = d.run(&["metrics", "--json"]).json();
    assert_eq!(metrics["counters"]["enqueued"], 200_000, "{metrics}");
}

#[test]
fn stdin_reports_bad_lines_before_it_needs_a_daemon() {
    let mut d = TestDaemon::start();
    d.kill9();
    let run = d.run_stdin(
        &["task", "add", "--stdin", "--jsonl"],
        "{\"title\":\"ok\"}\nnot json\n",
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("line 2"), "{run:?}");
    // Good input still needs the daemon: unreachable, exit 3.
    let run = d.run_stdin(&["task", "add", "--stdin"], "fine\n");
    assert_eq!(run.code, 3, "{run:?}");
}

#[test]
fn a_stored_task_larger_than_a_smaller_frame_is_refused_at_start() {
    let mut d = TestDaemon::start_with(&["--max-payload", "5000000"]);
    let mut client = Client::connect(&d.socket).unwrap();
    let mut task = NewTask::new("big");
    task.payload = "x".repeat(4_500_000);
    let id = match client
        .call(&Request::AddTasks { tasks: vec![task] })
        .unwrap()
    {
        Ok(vapora::protocol::Response::Added(ids)) => ids[0],
        other => panic!("{other:?}"),
    };
    drop(client);
    assert_eq!(d.terminate().code(), Some(0));
    let refused = d
        .spawn_daemon(&["--max-frame", "4194304"])
        .expect_err("the daemon should refuse to start");
    assert!(
        refused.contains(&format!("task {id} is about")),
        "{refused}"
    );
    // With the frame it was stored under, it starts and serves the task.
    d.restart(&["--max-payload", "5000000"]);
    assert_eq!(d.status_of(id), "queued");
}
