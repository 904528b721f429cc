//! A deterministic storm of random and mutated frames at a live daemon: afterwards it must
//! still answer correctly, and its memory must have stayed bounded.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{TestDaemon, XorShift};
use vapora::protocol::codec::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use vapora::protocol::handshake::Hello;
use vapora::protocol::{NewTask, Request, RequestFrame, TaskFilter};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

/// Valid requests to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut task = NewTask::new("seed task");
    task.payload = "payload".into();
    task.requires = vec!["gpu".into()];
    task.after = vec![1];
    let requests = [
        Request::Ping,
        Request::AddTasks { tasks: vec![task] },
        Request::ListTasks(TaskFilter {
            limit: Some(3),
            ..TaskFilter::default()
        }),
        Request::Claim {
            agent: "w".into(),
            queues: vec!["q".into()],
            wait_ms: 0,
            done: None,
        },
        Request::RegisterAgent {
            name: "w".into(),
            capabilities: vec!["gpu".into()],
            max_tasks: 2,
        },
        Request::Wait {
            ids: vec![1, 2],
            timeout_ms: Some(1),
        },
        Request::Metrics,
    ];
    requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let mut out = Vec::new();
            codec::encode_frame(
                &mut out,
                &RequestFrame {
                    id: i as u64,
                    request,
                },
                DEFAULT_MAX_FRAME,
            )
            .unwrap();
            out
        })
        .collect()
}

/// Whether a frame would ask the daemon to stop or to wait (which the storm must not do:
/// it tests robustness, not shutdown).
fn harmful(frame: &[u8]) -> bool {
    match codec::complete_frame(frame, DEFAULT_MAX_FRAME) {
        Ok(Some(len)) => {
            match codec::decode::<RequestFrame>(&frame[HEADER_LEN..HEADER_LEN + len]) {
                Ok(decoded) => matches!(
                    decoded.request,
                    Request::Shutdown
                        | Request::Subscribe { .. }
                        | Request::Claim { .. }
                        | Request::Wait { .. }
                ),
                Err(_) => false,
            }
        }
        _ => false,
    }
}

fn storm_frame(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
    loop {
        let frame = match rng.next() % 3 {
            // A mutated valid request: flipped, inserted or removed bytes.
            0 | 1 => {
                let mut frame = seeds[(rng.next() % seeds.len() as u64) as usize].clone();
                for _ in 0..=(rng.next() % 4) {
                    let at = HEADER_LEN + (rng.next() as usize) % (frame.len() - HEADER_LEN).max(1);
                    let last = frame.len() - 1;
                    match rng.next() % 3 {
                        0 => frame[at.min(last)] ^= 1 << (rng.next() % 8),
                        1 => frame.insert(at.min(frame.len()), rng.next() as u8),
                        _ if frame.len() > HEADER_LEN + 1 => {
                            frame.remove(at.min(last));
                        }
                        _ => {}
                    }
                }
                let len = (frame.len() - HEADER_LEN) as u32;
                frame[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                frame
            }
            // Random bytes in a well-formed frame.
            _ => {
                let len = (rng.next() % 512) as usize;
                let mut frame = (len as u32).to_be_bytes().to_vec();
                frame.extend((0..len).map(|_| rng.next() as u8));
                frame
            }
        };
        if !harmful(&frame) {
            return frame;
        }
    }
}

/// How many complete frames `bytes` holds.
fn count_frames(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while let Ok(Some(len)) = codec::complete_frame(bytes, DEFAULT_MAX_FRAME) {
        bytes = &bytes[HEADER_LEN + len..];
        count += 1;
    }
    count
}

#[test]
fn ten_thousand_bad_frames_leave_the_daemon_healthy_and_bounded() {
    let d = TestDaemon::start();
    let before = rss_kib(d.pid());
    let seeds = seeds();
    let mut rng = XorShift(0xdead_beef_1234);
    let mut hello = Vec::new();
    codec::encode_frame(&mut hello, &Hello::current(), DEFAULT_MAX_FRAME).unwrap();
    let (mut sent, mut answered) = (0, 0);
    let mut oversized = 0;
    for connection in 0.. {
        if sent >= 10_000 {
            break;
        }
        let mut stream = UnixStream::connect(&d.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut out = hello.clone();
        for _ in 0..100 {
            out.extend(storm_frame(&mut rng, &seeds));
            sent += 1;
        }
        if connection % 5 == 0 {
            // A length prefix beyond the cap: answered, and the connection is closed.
            out.extend((DEFAULT_MAX_FRAME as u32 + 1 + (rng.next() as u32 % 1000)).to_be_bytes());
            oversized += 1;
        }
        let _ = stream.write_all(&out);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
        answered += count_frames(&sink).saturating_sub(1); // minus the handshake's answer
    }
    // Every frame was read and answered, pipelined behind a half-closed connection, and so
    // was each oversized prefix.
    assert_eq!(answered, sent + oversized);
    // Still correct for everybody.
    d.run(&["ping"]).ok();
    let id = d.add(&["after the storm"]);
    assert_eq!(
        d.run(&["task", "show", &id.to_string(), "--json"]).json()["title"],
        "after the storm"
    );
    let after = rss_kib(d.pid());
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB over the storm"
    );
}
