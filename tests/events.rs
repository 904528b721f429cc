//! `vapora events`: what a watching script sees.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use common::TestDaemon;
use vapora::protocol::codec::{self, DEFAULT_MAX_FRAME};
use vapora::protocol::handshake::{Hello, Welcome};
use vapora::protocol::{Request, RequestFrame, Response, ResponseFrame};

#[test]
fn json_events_follow_a_task_through_add_claim_done() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let mut watcher = d
        .command(&["events", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut other_queue = d
        .command(&["events", "--json", "--queue", "other"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_subscribed(&d, 2);
    let id = d.add(&["watched"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "done", &id.to_string(), "--result", "fine"])
        .ok();
    let other = d.add(&["elsewhere", "--queue", "other"]);

    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let line = lines.next().unwrap().unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(event);
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["task_added", "task_claimed", "task_done", "task_added"]
    );
    assert_eq!(seen[0]["task"], id);
    assert_eq!(seen[0]["queue"], "default");
    assert_eq!(seen[1]["agent"], "w1");
    assert_eq!(seen[2]["detail"], "fine");
    assert!(seen[2]["at"].as_str().unwrap().ends_with('Z'));

    // The filtered watcher saw only the other queue.
    let mut filtered = BufReader::new(other_queue.stdout.take().unwrap()).lines();
    let first: serde_json::Value =
        serde_json::from_str(&filtered.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (first["event"].as_str(), first["task"].as_u64()),
        (Some("task_added"), Some(other))
    );

    // The stream ends, with exit 0, when the daemon stops.
    let mut d = d;
    assert_eq!(d.terminate().code(), Some(0));
    assert_eq!(watcher.wait().unwrap().code(), Some(0));
    assert_eq!(other_queue.wait().unwrap().code(), Some(0));
}

#[test]
fn a_stalled_reader_is_told_it_lagged_and_slows_nobody() {
    let d = TestDaemon::start();
    // A subscriber that stops reading.
    let mut stalled = UnixStream::connect(&d.socket).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    codec::encode_frame(&mut out, &Hello::current(), DEFAULT_MAX_FRAME).unwrap();
    let subscribe = RequestFrame {
        id: 1,
        request: Request::Subscribe {
            queue: None,
            agent: None,
        },
    };
    codec::encode_frame(&mut out, &subscribe, DEFAULT_MAX_FRAME).unwrap();
    stalled.write_all(&out).unwrap();
    let mut body = Vec::new();
    assert!(codec::read_frame(&mut stalled, &mut body, DEFAULT_MAX_FRAME).unwrap());
    let _: Welcome = codec::decode(&body).unwrap();
    assert!(codec::read_frame(&mut stalled, &mut body, DEFAULT_MAX_FRAME).unwrap());
    let subscribed: ResponseFrame = codec::decode(&body).unwrap();
    assert_eq!(subscribed.result, Ok(Response::Subscribed));

    // Far more events than the buffer holds, while nobody reads the stalled stream. If the
    // daemon waited for the reader, these adds would never finish.
    let input: String = (0..20_000).map(|i| format!("job {i}\n")).collect();
    let mut adder = d
        .command(&["task", "add", "--stdin", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    adder
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(adder.wait().unwrap().success());
    assert!(d.run(&["task", "add", "one more"]).code == 0);

    // Now read: somewhere in the stream is a `lagged` event counting what was dropped.
    let mut dropped = 0;
    let mut events = 0;
    while dropped == 0 {
        assert!(
            codec::read_frame(&mut stalled, &mut body, DEFAULT_MAX_FRAME).unwrap(),
            "stream ended"
        );
        let frame: ResponseFrame = codec::decode(&body).unwrap();
        match frame.result {
            Ok(Response::Event(event)) if event.kind == "lagged" => dropped = event.dropped,
            Ok(Response::Event(_)) => events += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        dropped > 0 && events + dropped as usize <= 20_001,
        "{events} + {dropped}"
    );
    let mut rest = Vec::new();
    stalled
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let _ = stalled.read_to_end(&mut rest);
}

#[test]
fn an_agent_filter_follows_that_agents_tasks_through_a_lease_expiry() {
    let d = TestDaemon::start_with(&["--lease", "400ms"]);
    d.run(&["agent", "register", "w1"]).ok();
    let mut watcher = d
        .command(&["events", "--json", "--agent", "w1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_subscribed(&d, 1);
    let id = d.add(&["dropped by w1"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    // w1 goes quiet; its lease runs out.
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let event: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(event["agent"], "w1", "{event}");
        assert_eq!(event["task"], id);
        kinds.push(event["event"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds, ["task_claimed", "lease_expired"]);
    watcher.kill().unwrap();
    watcher.wait().unwrap();
}
