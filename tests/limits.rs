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
    let some = d.run(&["task", "list", "--limit", "5", "-q"]);
    assert_eq!(some.ok().lines().count(), 5);
    // A wait over all of them still answers (payloads left out).
    let ids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let mut args = vec!["task", "wait", "--timeout", "10ms"];
    args.extend(ids.iter().map(String::as_str));
    assert_eq!(d.run(&args).code, 5);
}
