//! The task commands as a shell user or a script uses them.

mod common;

use common::TestDaemon;

#[test]
fn add_prints_a_bare_id_and_show_returns_every_field() {
    let d = TestDaemon::start();
    let run = d.run(&[
        "task",
        "add",
        "build docs",
        "--payload",
        "make docs",
        "--priority",
        "3",
        "--queue",
        "ci",
        "--require",
        "linux",
        "--require",
        "docker",
        "--max-attempts",
        "5",
    ]);
    assert_eq!(run.ok(), "1");
    assert_eq!(run.stderr, "");

    let task = d.run(&["task", "show", "1", "--json"]).json();
    assert_eq!(task["id"], 1);
    assert_eq!(task["title"], "build docs");
    assert_eq!(task["payload"], "make docs");
    assert_eq!(task["queue"], "ci");
    assert_eq!(task["priority"], 3);
    assert_eq!(task["status"], "queued");
    assert_eq!(task["requires"], serde_json::json!(["docker", "linux"]));
    assert_eq!(task["agent"], serde_json::Value::Null);
    assert_eq!(task["attempts"], 0);
    assert_eq!(task["max_attempts"], 5);
    assert!(task["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(task["updated_at"].as_str().unwrap().contains('T'));
    assert_eq!(task["result"], serde_json::Value::Null);
    assert_eq!(task["error"], serde_json::Value::Null);

    let human = d.run(&["task", "show", "1"]);
    assert!(human.ok().contains("title:"), "{human:?}");
    assert!(human.stdout.contains("build docs"));
}

#[test]
fn show_payload_prints_the_raw_payload_only() {
    let d = TestDaemon::start();
    let id = d.add(&["echo", "--payload", "echo 'hi there'\nexit 3"]);
    let run = d.run(&["task", "show", &id.to_string(), "--payload"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "echo 'hi there'\nexit 3");
}

#[test]
fn defaults_are_priority_zero_queue_default_three_attempts() {
    let d = TestDaemon::start();
    let id = d.add(&["plain"]);
    let task = d.run(&["task", "show", &id.to_string(), "--json"]).json();
    assert_eq!(task["priority"], 0);
    assert_eq!(task["queue"], "default");
    assert_eq!(task["max_attempts"], 3);
}

#[test]
fn claims_follow_priority_then_fifo() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "100"])
        .ok();
    let low = d.add(&["low", "--priority", "-5"]);
    let a = d.add(&["a"]);
    let urgent = d.add(&["urgent", "--priority", "10"]);
    let b = d.add(&["b"]);
    let c = d.add(&["c"]);
    let mut order = Vec::new();
    for _ in 0..5 {
        let id: u64 = d
            .run(&["task", "claim", "--agent", "w1", "-q"])
            .ok()
            .parse()
            .unwrap();
        order.push(id);
    }
    assert_eq!(order, vec![urgent, a, b, c, low]);
    let empty = d.run(&["task", "claim", "--agent", "w1"]);
    assert_eq!(empty.code, 5, "{empty:?}");
    assert_eq!(empty.stdout, "");
    let empty = d.run(&["task", "claim", "--agent", "w1", "--json"]);
    assert_eq!((empty.code, empty.stdout.trim()), (5, "null"));
}

#[test]
fn only_the_holding_agent_may_finish_a_task_when_it_names_itself() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    d.run(&["agent", "register", "w2"]).ok();
    let id = d.add(&["contested"]).to_string();
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    // w1 is declared offline; its task goes to w2; w1's late answer must not count.
    d.run(&["agent", "status", "w1", "offline"]).ok();
    d.run(&["task", "claim", "--agent", "w2"]).ok();
    let late = d.run(&["task", "done", &id, "--agent", "w1"]);
    assert_eq!(late.code, 1, "{late:?}");
    assert!(late.stderr.contains("does not hold"), "{late:?}");
    assert_eq!(d.run(&["task", "fail", &id, "--agent", "w1"]).code, 1);
    assert_eq!(d.status_of(id.parse().unwrap()), "running");
    d.run(&["task", "done", &id, "--agent", "w2"]).ok();
    assert_eq!(d.status_of(id.parse().unwrap()), "done");
}

#[test]
fn claim_output_forms() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "3"]).ok();
    for title in ["one", "two", "three"] {
        d.add(&[title]);
    }
    let human = d.run(&["task", "claim", "--agent", "w1"]);
    assert!(human.ok().contains("one"));
    assert!(human.stdout.contains("running"));
    assert_eq!(d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(), "2");
    let json = d.run(&["task", "claim", "--agent", "w1", "--json"]).json();
    assert_eq!(json["id"], 3);
    assert_eq!(json["status"], "running");
    assert_eq!(json["agent"], "w1");
    assert_eq!(json["attempts"], 1);
}

#[test]
fn claim_with_done_finishes_the_held_task_and_takes_the_next() {
    let mut d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    d.run(&["agent", "register", "w2"]).ok();
    let (a, b) = (d.add(&["a"]), d.add(&["b"]));
    assert_eq!(
        d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(),
        a.to_string()
    );

    // Another agent cannot finish w1's task this way, and takes nothing either.
    let refused = d.run(&["task", "claim", "--agent", "w2", "--done", &a.to_string()]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("does not hold"), "{refused:?}");
    assert_eq!(d.status_of(a), "running");
    assert_eq!(d.status_of(b), "queued");

    let a_text = a.to_string();
    let args = [
        "task", "claim", "--agent", "w1", "--done", &a_text, "--result", "ok", "-q",
    ];
    assert_eq!(d.run(&args).ok(), b.to_string());
    let done = d.run(&["task", "show", &a_text, "--json"]).json();
    assert_eq!(
        (done["status"].as_str(), done["result"].as_str()),
        (Some("done"), Some("ok"))
    );
    assert_eq!(d.status_of(b), "running");

    // Nothing left: the done still counts, and the claim exits 5.
    let b_text = b.to_string();
    let last = d.run(&["task", "claim", "--agent", "w1", "--done", &b_text]);
    assert_eq!(last.code, 5, "{last:?}");
    assert_eq!(d.status_of(b), "done");
    // Both commits are durable.
    d.kill9();
    d.restart(&[]);
    assert_eq!(
        (d.status_of(a), d.status_of(b)),
        ("done".into(), "done".into())
    );
}

/// A worker reports a run done and claims its next task in one request: the attempt it
/// names is checked first, so a late report of an attempt that is over finishes nothing and
/// claims nothing; the current one records its exit code and run time, and takes the next.
#[test]
fn claim_with_a_run_end_refuses_an_attempt_that_is_over() {
    use vapora::client::connection::Client;
    use vapora::protocol::{DoneFirst, ErrorKind, Request, Response, RunEnd};

    let d = TestDaemon::start_with(&["--retry-backoff", "0s"]);
    d.run(&["agent", "register", "w1"]).ok();
    let a = d.add(&["a", "--max-attempts", "3"]);
    let mut client = Client::connect(&d.socket).unwrap();
    let claim = |done: Option<DoneFirst>| Request::Claim {
        agent: "w1".into(),
        queues: vec![],
        wait_ms: 0,
        done,
    };
    let claimed = |answer| match answer {
        Ok(Response::Claimed(task)) => task.map(|task| (task.id, task.attempts)),
        other => panic!("{other:?}"),
    };
    assert_eq!(claimed(client.call(&claim(None)).unwrap()), Some((a, 1)));
    let fail = Request::Fail {
        id: a,
        reason: None,
        retry: true,
        agent: Some("w1".into()),
        run: Some(RunEnd {
            attempt: 1,
            exit_code: Some(1),
        }),
    };
    client.call(&fail).unwrap().unwrap();
    assert_eq!(claimed(client.call(&claim(None)).unwrap()), Some((a, 2)));
    let b = d.add(&["b"]);

    let done_by = |attempt| DoneFirst {
        id: a,
        result: Some("ok".into()),
        run: Some(RunEnd {
            attempt,
            exit_code: Some(0),
        }),
    };
    let late = client.call(&claim(Some(done_by(1)))).unwrap().unwrap_err();
    assert_eq!(late.kind, ErrorKind::Conflict, "{late:?}");
    assert!(late.message.contains("attempt 1 of task"), "{late:?}");
    assert_eq!(
        (d.status_of(a), d.status_of(b)),
        ("running".into(), "queued".into())
    );

    assert_eq!(
        claimed(client.call(&claim(Some(done_by(2)))).unwrap()),
        Some((b, 1))
    );
    let shown = d.run(&["task", "show", &a.to_string(), "--json"]).json();
    assert_eq!(shown["status"], "done");
    assert_eq!(shown["exit_code"], 0);
    assert!(shown["run_ms"].is_u64(), "{shown}");
}

#[test]
fn claim_by_unregistered_agent_names_the_register_command() {
    let d = TestDaemon::start();
    d.add(&["t"]);
    let run = d.run(&["task", "claim", "--agent", "ghost"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr.contains("vapora agent register ghost"),
        "{run:?}"
    );
}

#[test]
fn done_fail_cancel_retry_lifecycle() {
    let d = TestDaemon::start_with(&["--retry-backoff", "0s"]);
    d.run(&["agent", "register", "w1", "--max-tasks", "10"])
        .ok();
    let ok = d.add(&["ok"]);
    let flaky = d.add(&["flaky", "--max-attempts", "2"]);
    let doomed = d.add(&["doomed"]);

    for _ in 0..3 {
        d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    }
    let done = d
        .run(&["task", "done", &ok.to_string(), "--result", "42", "--json"])
        .json();
    assert_eq!(done["status"], "done");
    assert_eq!(done["result"], "42");

    // With attempts left (and no backoff), a failure goes straight back to the queue.
    let again = d
        .run(&[
            "task",
            "fail",
            &flaky.to_string(),
            "--reason",
            "flake",
            "--json",
        ])
        .json();
    assert_eq!(again["status"], "queued");
    assert_eq!(again["error"], "flake");
    assert_eq!(
        d.run(&["task", "claim", "--agent", "w1", "-q"]).ok(),
        flaky.to_string()
    );
    let failed = d
        .run(&[
            "task",
            "fail",
            &flaky.to_string(),
            "--reason",
            "again",
            "--json",
        ])
        .json();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 2);

    // --no-retry fails for good even with attempts left.
    let failed = d
        .run(&["task", "fail", &doomed.to_string(), "--no-retry", "--json"])
        .json();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 1);

    // Retry revives a failed task with a fresh attempt count.
    let revived = d
        .run(&["task", "retry", &flaky.to_string(), "--json"])
        .json();
    assert_eq!(revived["status"], "queued");
    assert_eq!(revived["attempts"], 0);

    let cancelled = d
        .run(&["task", "cancel", &flaky.to_string(), "--json"])
        .json();
    assert_eq!(cancelled["status"], "cancelled");
    let list = d
        .run(&["task", "list", "--status", "failed", "--json"])
        .json();
    let ids: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![doomed]);
}

#[test]
fn illegal_transitions_are_conflicts_with_exit_1() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let queued = d.add(&["queued"]);
    let finished = d.add(&["finished"]);
    d.run(&["task", "cancel", &finished.to_string()]).ok();

    let cases: Vec<Vec<String>> = vec![
        vec!["done".into(), queued.to_string()],
        vec!["fail".into(), queued.to_string()],
        vec!["retry".into(), queued.to_string()],
        vec!["cancel".into(), finished.to_string()],
        vec!["done".into(), finished.to_string()],
    ];
    for case in cases {
        let mut args = vec!["task"];
        args.extend(case.iter().map(String::as_str));
        let run = d.run(&args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains("cannot"), "{args:?}: {run:?}");
        assert_eq!(run.stdout, "");
    }
    // Nothing changed.
    assert_eq!(d.status_of(queued), "queued");
    assert_eq!(d.status_of(finished), "cancelled");
}

#[test]
fn unknown_ids_exit_4() {
    let d = TestDaemon::start();
    for args in [
        vec!["task", "show", "77"],
        vec!["task", "done", "77"],
        vec!["task", "cancel", "77"],
        vec!["task", "wait", "77"],
        vec!["agent", "show", "nobody"],
    ] {
        let run = d.run(&args);
        assert_eq!(run.code, 4, "{args:?}: {run:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let d = TestDaemon::start();
    for args in [
        vec!["task", "add"],
        vec!["task", "add", "t", "--priority", "high"],
        vec!["task", "list", "--status", "sleeping"],
        vec!["task", "claim", "--agent", "w", "--wait", "soon"],
        vec!["task", "add", "t", "--queue", "bad queue"],
        vec!["task", "add", "t", "--max-attempts", "0"],
        vec!["frobnicate"],
    ] {
        let run = d.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "", "{args:?}");
    }
}

#[test]
fn list_filters_and_limits() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "5"]).ok();
    d.add(&["a", "--queue", "q1"]);
    d.add(&["b", "--queue", "q2"]);
    d.add(&["c", "--queue", "q1"]);
    d.run(&["task", "claim", "--agent", "w1", "--queue", "q2"])
        .ok();

    let ids = |args: &[&str]| -> Vec<u64> {
        let mut full = vec!["task", "list", "--json"];
        full.extend_from_slice(args);
        d.run(&full)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&[]), vec![1, 2, 3]);
    assert_eq!(ids(&["--queue", "q1"]), vec![1, 3]);
    assert_eq!(ids(&["--status", "running"]), vec![2]);
    assert_eq!(
        ids(&["--status", "running", "--status", "queued"]),
        vec![1, 2, 3]
    );
    assert_eq!(ids(&["--agent", "w1"]), vec![2]);
    assert_eq!(ids(&["--limit", "2"]), vec![1, 2]);
    // Paging: each page starts after the last id of the one before.
    assert_eq!(ids(&["--limit", "2", "--after", "2"]), vec![3]);
    assert_eq!(ids(&["--queue", "q1", "--after", "1"]), vec![3]);
    assert!(ids(&["--after", "3"]).is_empty());
    assert!(ids(&["--after", &u64::MAX.to_string()]).is_empty());

    let table = d.run(&["task", "list"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert!(lines[0].starts_with("ID"), "{table:?}");
    assert_eq!(lines.len(), 4);
    // Columns are aligned: every row has its status where the header has STATUS.
    let status_col = lines[0].find("STATUS").unwrap();
    assert!(lines[1][status_col..].starts_with("queued"), "{table:?}");
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "1\n2\n3");
}

#[test]
fn wait_reports_the_outcome_in_its_exit_code() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "5"]).ok();
    let good = d.add(&["good"]);
    let bad = d.add(&["bad", "--max-attempts", "1"]);
    let pending = d.add(&["pending"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "done", &good.to_string()]).ok();
    d.run(&["task", "fail", &bad.to_string()]).ok();

    let done = d.run(&["task", "wait", &good.to_string()]);
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout.trim(), format!("{good} done"));
    assert_eq!(d.run(&["task", "wait", &bad.to_string()]).code, 1);
    assert_eq!(
        d.run(&["task", "wait", &good.to_string(), &bad.to_string()])
            .code,
        1
    );
    let timeout = d.run(&["task", "wait", &pending.to_string(), "--timeout", "200ms"]);
    assert_eq!(timeout.code, 5, "{timeout:?}");
    d.run(&["task", "cancel", &pending.to_string()]).ok();
    assert_eq!(d.run(&["task", "wait", &pending.to_string()]).code, 1);
}

#[test]
fn wait_is_woken_when_the_task_finishes() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["slow"]).to_string();
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    let waiter = d
        .command(&["task", "wait", &id, "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Whether the waiter's request arrives before or after `done`, it must end with the
    // finished task; when it is first, the daemon wakes it (it does not poll).
    wait_for_metric(&d, "connections_open", 2);
    d.run(&["task", "done", &id, "--result", "finished"]).ok();
    let output = waiter.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let task: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (task["id"].to_string(), &task["status"]),
        (id, &serde_json::json!("done"))
    );
}

/// Blocks until the daemon's metric `name` reaches at least `value`.
fn wait_for_metric(d: &TestDaemon, name: &str, value: u64) {
    common::wait_for_metrics(d, name, |m| m[name].as_u64().unwrap() >= value);
}

#[test]
fn stdin_adds_one_task_per_line_in_order() {
    let d = TestDaemon::start();
    let input: String = (1..=10_000).map(|i| format!("job {i}\n")).collect();
    let run = d.run_stdin(&["task", "add", "--stdin", "--queue", "bulk"], &input);
    let ids: Vec<u64> = run.ok().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids, (1..=10_000).collect::<Vec<_>>());
    let last = d.run(&["task", "show", "10000", "--json"]).json();
    assert_eq!(last["title"], "job 10000");
    assert_eq!(last["queue"], "bulk");
    // One connection for the whole input, not one per line.
    let metrics = d.run(&["metrics", "--json"]).json();
    assert!(
        metrics["connections_total"].as_u64().unwrap() <= 4,
        "{metrics}"
    );
}

#[test]
fn stdin_jsonl_takes_fields_and_refuses_bad_lines_atomically() {
    let d = TestDaemon::start();
    let good = "{\"title\":\"a\",\"priority\":7,\"requires\":[\"gpu\"],\"payload\":\"p\"}\n{\"title\":\"b\"}\n";
    let run = d.run_stdin(&["task", "add", "--stdin", "--jsonl", "--json"], good);
    assert_eq!(run.json(), serde_json::json!([{"id": 1}, {"id": 2}]));
    let a = d.run(&["task", "show", "1", "--json"]).json();
    assert_eq!(
        (a["priority"].as_i64(), a["payload"].as_str()),
        (Some(7), Some("p"))
    );
    assert_eq!(a["requires"], serde_json::json!(["gpu"]));

    let bad =
        "{\"title\":\"c\"}\nnot json\n{\"title\":\"\"}\n{\"title\":\"d\",\"queue\":\"no way\"}\n";
    let run = d.run_stdin(&["task", "add", "--stdin", "--jsonl"], bad);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("line 2:"), "{run:?}");
    assert!(run.stderr.contains("line 3:"), "{run:?}");
    assert!(run.stderr.contains("line 4:"), "{run:?}");
    assert!(!run.stderr.contains("line 1:"), "{run:?}");
    assert_eq!(run.stdout, "");
    // Nothing from the bad input was added, not even its good first line.
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "1\n2");
}

#[test]
fn parked_claim_is_woken_by_a_later_add() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let claimer = d
        .command(&["task", "claim", "--agent", "w1", "--wait", "30s", "-q"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metric(&d, "parked_claims", 1);
    let id = d.add(&["arrives later"]);
    let output = claimer.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        id.to_string()
    );
    assert_eq!(d.status_of(id), "running");
}

#[test]
fn parked_claim_times_out_with_exit_5() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let run = d.run(&["task", "claim", "--agent", "w1", "--wait", "300ms"]);
    assert_eq!(run.code, 5, "{run:?}");
}

#[test]
fn killed_parked_claimer_does_not_take_the_task() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let mut claimer = d
        .command(&["task", "claim", "--agent", "w1", "--wait", "60s"])
        .spawn()
        .unwrap();
    wait_for_metric(&d, "parked_claims", 1);
    claimer.kill().unwrap();
    claimer.wait().unwrap();
    // Once the daemon has seen the disconnect, only our own metrics connection is open.
    wait_for_connections_at_most(&d, 1);
    let id = d.add(&["nobody is waiting"]);
    assert_eq!(d.status_of(id), "queued");
    let task = d.run(&["task", "show", &id.to_string(), "--json"]).json();
    assert_eq!(task["attempts"], 0);
}

fn wait_for_connections_at_most(d: &TestDaemon, open: u64) {
    common::wait_for_metrics(d, "the connection closing", |m| {
        m["connections_open"].as_u64().unwrap() <= open
    });
}

#[test]
fn parked_claimers_are_served_in_arrival_order() {
    let d = TestDaemon::start();
    for name in ["first", "second"] {
        d.run(&["agent", "register", name]).ok();
    }
    let first = d
        .command(&["task", "claim", "--agent", "first", "--wait", "30s", "-q"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metric(&d, "parked_claims", 1);
    let second = d
        .command(&["task", "claim", "--agent", "second", "--wait", "30s", "-q"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metric(&d, "parked_claims", 2);
    let a = d.add(&["a"]);
    let b = d.add(&["b"]);
    let got_first = first.wait_with_output().unwrap();
    let got_second = second.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got_first.stdout).trim(),
        a.to_string()
    );
    assert_eq!(
        String::from_utf8_lossy(&got_second.stdout).trim(),
        b.to_string()
    );
}

/// A list larger than a page (256 KiB) comes in several frames; the library hands it over
/// page by page, `call` assembles it, and the CLI prints every task once, in order, as
/// one JSON array or one id per line.
#[test]
fn a_long_list_arrives_in_pages_and_prints_whole() {
    use vapora::client::connection::Client;
    use vapora::protocol::{Request, Response, TaskFilter};
    let d = TestDaemon::start();
    const N: usize = 4000;
    // Titles long enough that the list is several 256 KiB pages.
    let title = |i: usize| format!("task {i} {}", "t".repeat(200));
    let input: String = (0..N).map(|i| title(i) + "\n").collect();
    d.run_stdin(&["task", "add", "--stdin"], &input).ok();

    let request = Request::ListTasks(TaskFilter::default());
    let mut client = Client::connect(&d.socket).expect("connect");
    let mut pages = 0;
    let mut ids = Vec::new();
    client
        .list_tasks(&request, &mut |page| {
            pages += 1;
            ids.extend(page.iter().map(|task| task.id));
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert!(pages > 1, "{N} tasks of 200+ bytes came in {pages} page(s)");
    assert_eq!(ids, (1..=N as u64).collect::<Vec<_>>());
    match client.call(&request).unwrap().unwrap() {
        Response::Tasks(tasks) => assert_eq!(tasks.len(), N),
        other => panic!("unexpected {other:?}"),
    }
    // A reader that gives up at the first page gets its error, and the connection is
    // still in step: the next request gets its own answer.
    let stopped = client.list_tasks(&request, &mut |_| {
        Err(vapora::client::exit::CliError::new(1, "stop here"))
    });
    assert_eq!(stopped.unwrap_err().message, "stop here");
    assert!(matches!(
        client.call(&Request::Ping).unwrap().unwrap(),
        Response::Pong(_)
    ));

    let listed = d.run(&["task", "list", "--json"]).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), N);
    assert_eq!(listed[0]["title"], title(0));
    assert_eq!(listed[N - 1]["title"], title(N - 1));
    let quiet = d.run(&["task", "list", "-q"]);
    assert_eq!(quiet.ok().lines().count(), N);
    assert_eq!(quiet.ok().lines().last(), Some(N.to_string().as_str()));
}

/// A payload too long for the command line (200 KB: `Argument list too long` as an
/// argument) comes from a file or from standard input, byte for byte.
#[test]
fn payload_file_gives_a_payload_too_long_for_the_command_line() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let payload: String = (0..200_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .chain("\nlast line\n".chars())
        .collect();
    let file = dir.path().join("payload.txt");
    std::fs::write(&file, &payload).unwrap();
    let from_file = d.add(&["big", "--payload-file", file.to_str().unwrap()]);
    let shown = d.run(&["task", "show", &from_file.to_string(), "--payload"]);
    assert_eq!(shown.stdout, payload);

    let from_stdin = d.run_stdin(&["task", "add", "piped", "--payload-file", "-"], &payload);
    let id = from_stdin.ok().to_string();
    assert_eq!(d.run(&["task", "show", &id, "--payload"]).stdout, payload);

    // With --stdin, the file's payload is every line's default.
    let file_for_lines = dir.path().join("cmd");
    std::fs::write(&file_for_lines, "echo hi").unwrap();
    let lines = d.run_stdin(
        &[
            "task",
            "add",
            "--stdin",
            "--payload-file",
            file_for_lines.to_str().unwrap(),
        ],
        "one\ntwo\n",
    );
    for id in lines.ok().lines() {
        assert_eq!(d.run(&["task", "show", id, "--payload"]).stdout, "echo hi");
    }

    // What cannot be a payload is refused in words, and nothing is added.
    let before = d.run(&["task", "list", "-q"]).ok().lines().count();
    std::fs::write(&file, [b'o', b'k', 0xff, 0xfe]).unwrap();
    let binary = d.run(&["task", "add", "x", "--payload-file", file.to_str().unwrap()]);
    assert_eq!(binary.code, 2, "{binary:?}");
    assert!(binary.stderr.contains("not UTF-8 text"), "{binary:?}");
    let missing = d.run(&["task", "add", "x", "--payload-file", "/nonexistent/p"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing.stderr.contains("cannot read the payload"),
        "{missing:?}"
    );
    let both = d.run_stdin(&["task", "add", "--stdin", "--payload-file", "-"], "a\n");
    assert_eq!(both.code, 2, "{both:?}");
    assert!(both.stderr.contains("--stdin reads tasks"), "{both:?}");
    let twice = d.run(&["task", "add", "x", "--payload", "p", "--payload-file", "-"]);
    assert_eq!(twice.code, 2, "{twice:?}");
    assert_eq!(d.run(&["task", "list", "-q"]).ok().lines().count(), before);
}

/// `task add -- CMD [ARG]...`: the payload is the command quoted for `sh`, the title the
/// command line, and the working directory the one `task add` ran in.
#[test]
fn a_command_after_the_double_dash_becomes_the_payload_and_title() {
    let d = TestDaemon::start();
    let here = tempfile::tempdir().unwrap();
    let words = [
        "printf",
        "%s|",
        "a b",
        "it's",
        "$HOME",
        r"back\slash",
        "",
        "é",
    ];
    let mut args = vec!["task", "add", "--"];
    args.extend(words);
    let run = common::Run::from_output(d.command(&args).current_dir(here.path()).output().unwrap());
    let id = run.ok().to_string();
    let task = d.run(&["task", "show", &id, "--json"]).json();
    let payload = task["payload"].as_str().unwrap();
    assert_eq!(
        payload,
        r#"printf '%s|' 'a b' 'it'\''s' '$HOME' 'back\slash' '' 'é'"#
    );
    assert_eq!(task["title"], words.join(" "));
    let expected_dir = here.path().canonicalize().unwrap();
    assert_eq!(task["cwd"], expected_dir.to_str().unwrap());
    assert_eq!(task["env"], serde_json::json!({}));
    assert_eq!(task["timeout_ms"], serde_json::Value::Null);
    // sh hands the program exactly the words again.
    let ran = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(payload)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(ran.stdout).unwrap(),
        "a b|it's|$HOME|back\\slash||é|"
    );

    // A title of its own; a long command line is cut to the title limit.
    let titled = d.add(&["list files", "--", "ls", "-la"]);
    let task = d
        .run(&["task", "show", &titled.to_string(), "--json"])
        .json();
    assert_eq!(
        (&task["title"], &task["payload"]),
        (&"list files".into(), &"ls -la".into())
    );
    let long = "é".repeat(600);
    let cut = d.add(&["--", "echo", &long]);
    let task = d.run(&["task", "show", &cut.to_string(), "--json"]).json();
    let title = task["title"].as_str().unwrap();
    assert!(title.len() <= 1024 && title.len() > 1000, "{}", title.len());
    assert!(title.starts_with("echo éé"));

    // No payload, no working directory recorded.
    let plain = d.add(&["just a title"]);
    let task = d
        .run(&["task", "show", &plain.to_string(), "--json"])
        .json();
    assert_eq!(task["cwd"], serde_json::Value::Null);
}

#[test]
fn cwd_env_and_timeout_are_stored_and_shown() {
    let d = TestDaemon::start();
    let here = tempfile::tempdir().unwrap();
    let run = common::Run::from_output(
        d.command(&[
            "task",
            "add",
            "--cwd",
            "sub/./dir",
            "--env",
            "A=1",
            "--env",
            "B=x y='z'",
            "--env",
            "EMPTY=",
            "--timeout",
            "90s",
            "--",
            "make",
            "test",
        ])
        .current_dir(here.path())
        .output()
        .unwrap(),
    );
    let id = run.ok().to_string();
    let task = d.run(&["task", "show", &id, "--json"]).json();
    let base = here.path().canonicalize().unwrap();
    assert_eq!(task["cwd"], format!("{}/sub/dir", base.display()));
    assert_eq!(
        task["env"],
        serde_json::json!({"A": "1", "B": "x y='z'", "EMPTY": ""})
    );
    assert_eq!(task["timeout_ms"], 90_000);
    let human = d.run(&["task", "show", &id]);
    let text = human.ok();
    assert!(text.contains("timeout:  1m 30s"), "{text}");
    assert!(
        text.contains(&format!("cwd:      {}/sub/dir", base.display())),
        "{text}"
    );
    assert!(
        text.contains(r"env:      A=1 B='x y='\\''z'\\''' EMPTY=''"),
        "{text}"
    );

    // An absolute --cwd is kept as given; without a payload it is still recorded.
    let id = d.add(&["no payload", "--cwd", "/srv/data"]);
    let task = d.run(&["task", "show", &id.to_string(), "--json"]).json();
    assert_eq!(task["cwd"], "/srv/data");

    // --jsonl lines may set them; a relative cwd is made absolute the same way.
    let lines = "{\"title\": \"j\", \"payload\": \"p\", \"cwd\": \"rel\", \"env\": {\"X\": \"1\"}, \"timeout_ms\": 5000}\n\
                 {\"title\": \"flags\"}\n";
    let mut child = d
        .command(&[
            "task",
            "add",
            "--stdin",
            "--jsonl",
            "--env",
            "F=1",
            "--timeout",
            "1m",
        ])
        .current_dir(here.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let run = common::Run::from_output(child.wait_with_output().unwrap());
    let ids: Vec<String> = run.ok().lines().map(String::from).collect();
    let first = d.run(&["task", "show", &ids[0], "--json"]).json();
    assert_eq!(first["cwd"], format!("{}/rel", base.display()));
    assert_eq!(first["env"], serde_json::json!({"X": "1"}));
    assert_eq!(first["timeout_ms"], 5000);
    let second = d.run(&["task", "show", &ids[1], "--json"]).json();
    assert_eq!(second["cwd"], serde_json::Value::Null);
    assert_eq!(second["env"], serde_json::json!({"F": "1"}));
    assert_eq!(second["timeout_ms"], 60_000);
}

#[test]
fn bad_commands_and_fields_are_usage_errors_in_words() {
    let d = TestDaemon::start();
    let long_dir = format!("/{}", "d".repeat(4096));
    for (args, words) in [
        (vec!["--"], "required"),
        (vec!["t", "--payload", "p", "--", "ls"], "cannot be used"),
        (
            vec!["--payload-file", "/etc/hostname", "--", "ls"],
            "cannot be used",
        ),
        (vec!["--stdin", "--", "ls"], "cannot be used"),
        (vec!["t", "--env", "NOEQUALS"], "not KEY=VALUE"),
        (vec!["t", "--env", "1A=b"], "invalid variable name '1A'"),
        (vec!["t", "--env", "A-B=b"], "invalid variable name 'A-B'"),
        (vec!["t", "--env", "A=1", "--env", "A=2"], "A is set twice"),
        (
            vec!["t", "--timeout", "0s"],
            "timeout must be longer than zero",
        ),
        (vec!["t", "--timeout", "400days"], "at most a year"),
        (
            vec!["t", "--timeout", "soon"],
            "expected a number and a unit",
        ),
        (vec!["t", "--cwd", &long_dir], "more than the limit of 4096"),
        (vec!["t", "--cwd", ""], "a value is required"),
    ] {
        let mut full = vec!["task", "add"];
        full.extend(args.iter().copied());
        let run = d.run(&full);
        assert_eq!(run.code, 2, "{full:?}: {run:?}");
        assert_eq!(run.stdout, "", "{full:?}");
        assert!(run.stderr.contains(words), "{full:?}: {run:?}");
    }
    let run = d.run_stdin(
        &["task", "add", "--stdin", "--jsonl"],
        "{\"title\": \"a\", \"env\": {\"B C\": \"x\"}}\n{\"title\": \"b\", \"timeout_ms\": 0}\n",
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("line 1: invalid variable name 'B C'"),
        "{run:?}"
    );
    assert!(run.stderr.contains("line 2: the timeout"), "{run:?}");
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "");
}
