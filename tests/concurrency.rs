//! Many clients at once against one daemon: nothing lost, nothing claimed twice.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::TestDaemon;
use vapora::client::connection::Client;
use vapora::protocol::{NewTask, Request, Response};

const ADDERS: usize = 64;
const CLAIMERS: usize = 64;
const TASKS_PER_ADDER: usize = 40;

fn client(d: &TestDaemon) -> Client {
    Client::connect(&d.socket).expect("connect")
}

#[test]
fn concurrent_adders_and_claimers_lose_and_duplicate_nothing() {
    let d = TestDaemon::start();
    let total = ADDERS * TASKS_PER_ADDER;
    for i in 0..CLAIMERS {
        d.run(&[
            "agent",
            "register",
            &format!("w{i}"),
            "--max-tasks",
            "100000",
        ])
        .ok();
    }
    let added = Arc::new(Mutex::new(Vec::new()));
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let claimed_count = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for a in 0..ADDERS {
            let added = Arc::clone(&added);
            let d = &d;
            scope.spawn(move || {
                let mut client = client(d);
                for t in 0..TASKS_PER_ADDER {
                    let request = Request::AddTasks {
                        tasks: vec![NewTask::new(format!("a{a}-t{t}"))],
                    };
                    match client.call(&request).unwrap() {
                        Ok(Response::Added(ids)) => added.lock().unwrap().extend(ids),
                        other => panic!("add failed: {other:?}"),
                    }
                }
            });
        }
        for c in 0..CLAIMERS {
            let claimed = Arc::clone(&claimed);
            let claimed_count = Arc::clone(&claimed_count);
            let d = &d;
            scope.spawn(move || {
                let mut client = client(d);
                while claimed_count.load(Ordering::SeqCst) < total {
                    let request = Request::Claim {
                        agent: format!("w{c}"),
                        queues: vec![],
                        wait_ms: 100,
                        done: None,
                    };
                    match client.call(&request).unwrap() {
                        Ok(Response::Claimed(Some(task))) => {
                            claimed_count.fetch_add(1, Ordering::SeqCst);
                            claimed.lock().unwrap().push(task.id);
                            let done = client
                                .call(&Request::Complete {
                                    id: task.id,
                                    result: None,
                                    agent: Some(format!("w{c}")),
                                    run: None,
                                })
                                .unwrap();
                            assert!(done.is_ok(), "{done:?}");
                        }
                        Ok(Response::Claimed(None)) => {}
                        other => panic!("claim failed: {other:?}"),
                    }
                }
            });
        }
    });

    let added = added.lock().unwrap();
    let claimed = claimed.lock().unwrap();
    assert_eq!(added.len(), total);
    let unique_added: HashSet<_> = added.iter().collect();
    assert_eq!(unique_added.len(), total, "an id was handed out twice");
    assert_eq!(claimed.len(), total, "claims: {}", claimed.len());
    let unique_claimed: HashSet<_> = claimed.iter().collect();
    assert_eq!(
        unique_claimed, unique_added,
        "a task was claimed twice or never"
    );

    let metrics = d.run(&["metrics", "--json"]).json();
    assert_eq!(metrics["counters"]["enqueued"], total);
    assert_eq!(metrics["counters"]["claimed"], total);
    assert_eq!(metrics["counters"]["done"], total);
    let done = d.run(&["task", "list", "--status", "done", "-q"]);
    assert_eq!(done.ok().lines().count(), total);
}
