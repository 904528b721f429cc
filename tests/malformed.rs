//! Bad input on the raw socket costs only that connection: the daemon answers or closes it
//! and keeps serving everybody else.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{TestDaemon, XorShift};
use vapora::client::connection::Client;
use vapora::protocol::codec::{self, DEFAULT_MAX_FRAME};
use vapora::protocol::handshake::{Hello, MAGIC, Welcome};
use vapora::protocol::{ErrorKind, Request, RequestFrame, Response, ResponseFrame};

fn connect(d: &TestDaemon) -> UnixStream {
    let stream = UnixStream::connect(&d.socket).unwrap();
    // A guard against a hanging test, not a synchronization device.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

fn send<T: serde::Serialize>(stream: &mut UnixStream, value: &T) {
    let mut out = Vec::new();
    codec::encode_frame(&mut out, value, DEFAULT_MAX_FRAME).unwrap();
    stream.write_all(&out).unwrap();
}

fn receive<T: serde::de::DeserializeOwned>(stream: &mut UnixStream) -> T {
    let mut body = Vec::new();
    assert!(
        codec::read_frame(stream, &mut body, DEFAULT_MAX_FRAME).unwrap(),
        "connection closed"
    );
    codec::decode(&body).unwrap()
}

fn handshake(stream: &mut UnixStream) {
    send(stream, &Hello::current());
    let welcome: Welcome = receive(stream);
    assert_eq!(welcome.refusal, None);
}

/// Reads until the daemon closes the connection; fails if it does not within the guard.
fn assert_closed(stream: &mut UnixStream) {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connection was not closed: {e}"),
        }
    }
}

/// Another client, connected before the abuse, still gets answers after it.
fn assert_serving(d: &TestDaemon, bystander: &mut Client) {
    match bystander.call(&Request::Ping).unwrap() {
        Ok(Response::Pong(_)) => {}
        other => panic!("bystander got {other:?}"),
    }
    d.run(&["ping"]).ok();
}

#[test]
fn random_bytes_instead_of_a_handshake() {
    let d = TestDaemon::start();
    let mut bystander = Client::connect(&d.socket).unwrap();
    let mut rng = XorShift(0x5eed);
    for _ in 0..20 {
        let mut stream = connect(&d);
        let bytes: Vec<u8> = (0..(rng.next() % 2000 + 1))
            .map(|_| rng.next() as u8)
            .collect();
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        assert_closed(&mut stream);
    }
    assert_serving(&d, &mut bystander);
}

#[test]
fn random_frames_after_a_valid_handshake() {
    let d = TestDaemon::start();
    let mut bystander = Client::connect(&d.socket).unwrap();
    let mut rng = XorShift(42);
    for _ in 0..50 {
        let mut stream = connect(&d);
        handshake(&mut stream);
        let len = (rng.next() % 300) as usize;
        let mut frame = (len as u32).to_be_bytes().to_vec();
        frame.extend((0..len).map(|_| rng.next() as u8));
        stream.write_all(&frame).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        // Either an answer (typically an invalid_argument error) or nothing, then closed.
        assert_closed(&mut stream);
    }
    assert_serving(&d, &mut bystander);
}

#[test]
fn truncated_frame_is_dropped() {
    let d = TestDaemon::start();
    let mut bystander = Client::connect(&d.socket).unwrap();
    let mut stream = connect(&d);
    handshake(&mut stream);
    stream.write_all(&100u32.to_be_bytes()).unwrap();
    stream.write_all(&[1, 2, 3]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed(&mut stream);
    assert_serving(&d, &mut bystander);
}

#[test]
fn four_gib_length_prefix_is_answered_and_closed_without_allocating() {
    let d = TestDaemon::start();
    let mut bystander = Client::connect(&d.socket).unwrap();
    let mut stream = connect(&d);
    handshake(&mut stream);
    stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let answer: ResponseFrame = receive(&mut stream);
    let error = answer.result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidArgument);
    assert!(error.message.contains("larger than the limit"), "{error:?}");
    assert_closed(&mut stream);

    // The same as the very first frame.
    let mut stream = connect(&d);
    stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let welcome: Welcome = receive(&mut stream);
    assert!(welcome.refusal.is_some());
    assert_closed(&mut stream);
    assert_serving(&d, &mut bystander);
}

#[test]
fn wrong_magic_and_wrong_version_are_refused_with_both_versions_named() {
    let d = TestDaemon::start();
    let mut bystander = Client::connect(&d.socket).unwrap();

    let mut stream = connect(&d);
    send(
        &mut stream,
        &Hello {
            magic: *b"NOTVAPOR",
            protocol: 1,
            client_version: "x".into(),
        },
    );
    let welcome: Welcome = receive(&mut stream);
    assert_eq!(welcome.magic, MAGIC);
    assert!(welcome.refusal.unwrap().contains("not a vapora client"));
    assert_closed(&mut stream);

    let mut stream = connect(&d);
    send(
        &mut stream,
        &Hello {
            magic: MAGIC,
            protocol: 999,
            client_version: "9.9.9".into(),
        },
    );
    let welcome: Welcome = receive(&mut stream);
    let refusal = welcome.refusal.unwrap();
    assert!(refusal.contains("incompatible protocol"), "{refusal}");
    assert!(
        refusal.contains("protocol 999")
            && refusal.contains(&format!(
                "protocol {}",
                vapora::protocol::handshake::PROTOCOL_VERSION
            )),
        "{refusal}"
    );
    assert!(
        refusal.contains("9.9.9") && refusal.contains(env!("CARGO_PKG_VERSION")),
        "{refusal}"
    );
    assert_closed(&mut stream);
    assert_serving(&d, &mut bystander);
}

#[test]
fn unknown_request_is_answered_with_its_id_and_the_connection_goes_on() {
    let d = TestDaemon::start();
    let mut stream = connect(&d);
    handshake(&mut stream);
    // id 5 (varint), then a variant index no request has.
    let body = [5u8, 250, 1];
    stream
        .write_all(&(body.len() as u32).to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
    let answer: ResponseFrame = receive(&mut stream);
    assert_eq!(answer.id, 5);
    let error = answer.result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidArgument);
    assert!(
        error.message.contains("unknown or malformed request"),
        "{error:?}"
    );

    send(
        &mut stream,
        &RequestFrame {
            id: 6,
            request: Request::Ping,
        },
    );
    let answer: ResponseFrame = receive(&mut stream);
    assert_eq!(answer.id, 6);
    assert!(matches!(answer.result, Ok(Response::Pong(_))));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let d = TestDaemon::start();
    let mut stream = connect(&d);
    handshake(&mut stream);
    let mut out = Vec::new();
    for id in 1..=200u64 {
        let request = if id % 2 == 0 {
            Request::Ping
        } else {
            Request::AddTasks {
                tasks: vec![vapora::protocol::NewTask::new(format!("t{id}"))],
            }
        };
        codec::encode_frame(&mut out, &RequestFrame { id, request }, DEFAULT_MAX_FRAME).unwrap();
    }
    stream.write_all(&out).unwrap();
    let mut next_task = 1;
    for id in 1..=200u64 {
        let answer: ResponseFrame = receive(&mut stream);
        assert_eq!(answer.id, id);
        match answer.result.unwrap() {
            Response::Added(ids) => {
                assert_eq!(ids, vec![next_task]);
                next_task += 1;
            }
            Response::Pong(_) => assert_eq!(id % 2, 0),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn silent_client_is_dropped_after_the_handshake_timeout() {
    let d = TestDaemon::start_with(&["--handshake-timeout", "1s"]);
    let mut stream = connect(&d);
    let started = std::time::Instant::now();
    assert_closed(&mut stream);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
    d.run(&["ping"]).ok();
}

#[test]
fn a_half_closed_client_still_gets_its_parked_claim() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let mut stream = connect(&d);
    handshake(&mut stream);
    let claim = Request::Claim {
        agent: "w1".into(),
        queues: vec![],
        wait_ms: 30_000,
        done: None,
    };
    send(
        &mut stream,
        &RequestFrame {
            id: 9,
            request: claim,
        },
    );
    // Done writing, still reading: like `printf ... | nc -N`.
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    common::wait_for_metrics(&d, "the parked claim", |m| m["parked_claims"] == 1);
    let id = d.add(&["for the half-closed claimer"]);
    let answer: ResponseFrame = receive(&mut stream);
    assert_eq!(answer.id, 9);
    match answer.result {
        Ok(Response::Claimed(Some(task))) => assert_eq!(task.id, id),
        other => panic!("unexpected {other:?}"),
    }
}

/// The Welcome to a Hello sent together with a claim that parks arrives while the claim
/// waits, not when it ends: a client may wait for its Welcome with a timeout.
#[test]
fn the_welcome_arrives_while_a_pipelined_claim_is_parked() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let mut stream = connect(&d);
    let mut out = Vec::new();
    codec::encode_frame(&mut out, &Hello::current(), DEFAULT_MAX_FRAME).unwrap();
    let claim = Request::Claim {
        agent: "w1".into(),
        queues: vec![],
        wait_ms: 60_000,
        done: None,
    };
    codec::encode_frame(
        &mut out,
        &RequestFrame {
            id: 3,
            request: claim,
        },
        DEFAULT_MAX_FRAME,
    )
    .unwrap();
    stream.write_all(&out).unwrap();
    // Within the 20 s guard, well before the claim's 60 s wait could end.
    let welcome: Welcome = receive(&mut stream);
    assert_eq!(welcome.refusal, None);
    common::wait_for_metrics(&d, "the parked claim", |m| m["parked_claims"] == 1);
    let id = d.add(&["for the parked claimer"]);
    let answer: ResponseFrame = receive(&mut stream);
    assert_eq!(answer.id, 3);
    match answer.result {
        Ok(Response::Claimed(Some(task))) => assert_eq!(task.id, id),
        other => panic!("unexpected {other:?}"),
    }
}
