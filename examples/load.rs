//! A small load generator until the benchmark binary exists: N concurrent connections,
//! each adding tasks one request at a time (every add waits for its acknowledgement).
//!
//! cargo run --release --example load -- SOCKET [CLIENTS] [ADDS_PER_CLIENT]

use std::path::PathBuf;
use std::time::Instant;

use vapora::client::connection::Client;
use vapora::protocol::{NewTask, Request, Response};

fn main() {
    let mut args = std::env::args().skip(1);
    let socket = PathBuf::from(args.next().expect("usage: load SOCKET [CLIENTS] [ADDS]"));
    let clients: usize = args.next().map_or(32, |a| a.parse().expect("CLIENTS"));
    let adds: usize = args.next().map_or(2000, |a| a.parse().expect("ADDS"));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..clients {
            let socket = &socket;
            scope.spawn(move || {
                let mut client = Client::connect(socket).expect("connect");
                for i in 0..adds {
                    let request = Request::AddTasks {
                        tasks: vec![NewTask::new(format!("load {c}-{i}"))],
                    };
                    match client.call(&request).expect("call") {
                        Ok(Response::Added(_)) => {}
                        other => panic!("add failed: {other:?}"),
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let total = clients * adds;
    println!(
        "{clients} clients x {adds} adds = {total} in {:.3}s: {:.0} adds/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}
