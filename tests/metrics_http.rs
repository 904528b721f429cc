//! The Prometheus scrape endpoint (`vapora daemon --metrics-listen`): a real daemon, real
//! TCP, requests written byte by byte as a scraper (or an attacker) would send them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, TestDaemon};

/// The endpoint's connection bound (`metrics_http::MAX_CONNECTIONS`).
const MAX_CONNECTIONS: usize = 64;

/// A daemon serving metrics on a port of its own choosing (`127.0.0.1:0`).
fn daemon_with_endpoint() -> (TestDaemon, SocketAddr) {
    let d = TestDaemon::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let addr = endpoint(&d);
    (d, addr)
}

/// The address the daemon logged before it said it was ready (so it is in the log now).
fn endpoint(d: &TestDaemon) -> SocketAddr {
    let log = d.log_text();
    let url = log
        .split_whitespace()
        .find_map(|word| word.strip_prefix("url=http://"))
        .unwrap_or_else(|| panic!("no metrics url in the log:\n{log}"));
    url.trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// An HTTP answer, as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header names in lowercase.
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `raw` on a new connection and reads the answer until the server closes.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let received = read_until_closed(&mut stream);
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Everything the server sends until it closes. A server that closes with request bytes
/// still unread resets the connection; what it sent before that is still read first.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return received,
            Err(e) => panic!("reading the answer: {e} (after {} bytes)", received.len()),
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n").as_bytes(),
    )
}

/// A sample's series (name and labels) and its value.
fn sample(line: &str) -> Option<(&str, &str)> {
    if line.starts_with('#') {
        return None;
    }
    line.rsplit_once(' ')
}

/// Series whose values move between two reads of an idle daemon: the clock, the
/// connections the reads themselves make, the reads themselves (`metrics` requests), and
/// the journal's background commit.
fn moves_by_itself(series: &str) -> bool {
    [
        "vapora_uptime_seconds",
        "vapora_connections",
        "vapora_connections_total",
        "vapora_store_backlog_bytes",
    ]
    .iter()
    .any(|name| series.split('{').next() == Some(name))
        || series.contains("kind=\"metrics\"")
        || series.contains("kind=\"background\"")
}

/// Tasks in three queues and states, two agents, an error: an exposition with every kind
/// of line in it.
fn make_busy(d: &TestDaemon) {
    d.run(&["agent", "register", "w1", "--max-tasks", "5"]).ok();
    d.run(&["agent", "register", "w2"]).ok();
    d.run(&["agent", "status", "w2", "paused"]).ok();
    for queue in ["default", "mail", "mail", "images"] {
        d.add(&["t", "--queue", queue]);
    }
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "done", "1", "--result", "ok"]).ok();
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "cancel", "3"]).ok();
    assert_eq!(d.run(&["task", "show", "999"]).code, 4);
}

#[test]
fn a_scrape_serves_what_vapora_metrics_prints() {
    let (d, addr) = daemon_with_endpoint();
    make_busy(&d);
    let scraped = get(addr, "/metrics");
    let printed = d.run(&["metrics", "--format", "prometheus"]);
    assert_eq!(printed.code, 0, "{printed:?}");

    assert_eq!(scraped.status, 200, "{scraped:?}");
    assert_eq!(
        scraped.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        scraped.headers["content-length"],
        scraped.body.len().to_string()
    );
    assert!(
        scraped
            .body
            .contains("vapora_tasks{queue=\"mail\",status=\"running\"} 1\n"),
        "{}",
        scraped.body
    );
    // Line for line the same text: the same comments, the same series in the same order,
    // and the same values but for those that move between two reads.
    let scraped_lines: Vec<&str> = scraped.body.lines().collect();
    let printed_lines: Vec<&str> = printed.stdout.lines().collect();
    assert_eq!(scraped_lines.len(), printed_lines.len());
    for (scraped, printed) in scraped_lines.iter().zip(&printed_lines) {
        match (sample(scraped), sample(printed)) {
            (Some((series, value)), Some((printed_series, printed_value))) => {
                assert_eq!(series, printed_series);
                if !moves_by_itself(series) {
                    assert_eq!(value, printed_value, "{series}");
                }
            }
            _ => assert_eq!(scraped, printed),
        }
    }
    assert!(scraped.body.ends_with('\n') && printed.stdout.ends_with('\n'));
    common::promtool_check(&scraped.body);

    // A scrape counts as a metrics request.
    let metrics = |m: &serde_json::Value| {
        m["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "metrics")
            .map_or(0, |r| r["count"].as_u64().unwrap())
    };
    let before = metrics(&d.run(&["metrics", "--json"]).json());
    assert_eq!(get(addr, "/metrics?ignored=1").status, 200);
    assert_eq!(metrics(&d.run(&["metrics", "--json"]).json()), before + 2);
}

#[test]
fn head_answers_the_headers_and_other_methods_and_paths_are_refused() {
    let (_d, addr) = daemon_with_endpoint();
    let full = get(addr, "/metrics");
    let head = exchange(
        addr,
        format!("HEAD /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    );
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.body, "");
    assert_eq!(head.headers["content-type"], full.headers["content-type"]);
    assert!(head.headers["content-length"].parse::<usize>().unwrap() > 1000);

    for path in ["/", "/metric", "/metrics/", "/METRICS", "/favicon.ico"] {
        let answer = get(addr, path);
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(answer.body.contains("/metrics"), "{answer:?}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let answer = exchange(
            addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(answer.status, 405, "{method}: {answer:?}");
        assert_eq!(answer.headers["allow"], "GET, HEAD", "{method}");
        assert!(!answer.body.contains("vapora_"), "{answer:?}");
    }
    // Not HTTP at all.
    let garbage = exchange(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    assert_eq!(garbage.status, 400, "{garbage:?}");
}

#[test]
fn oversized_requests_are_refused_and_bodies_never_read() {
    let (d, addr) = daemon_with_endpoint();
    // Headers beyond 8 KiB: 431, and the connection closed.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let answer = exchange(addr, big.as_bytes());
    assert_eq!(answer.status, 431, "{answer:?}");
    assert!(!answer.body.contains("vapora_"));
    // So are too many header fields.
    let many: String = (0..200).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let answer = exchange(
        addr,
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(answer.status, 431, "{answer:?}");
    // A body announced as a gigabyte is never waited for: the answer comes at once, with
    // only the headers sent.
    for method in ["GET", "POST"] {
        let answer = exchange(
            addr,
            format!(
                "{method} /metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000000000\r\n\r\n"
            )
            .as_bytes(),
        );
        let expected = if method == "GET" { 200 } else { 405 };
        assert_eq!(answer.status, expected, "{method}: {answer:?}");
    }
    // And the daemon serves on, both doors.
    assert_eq!(get(addr, "/metrics").status, 200);
    d.add(&["still here"]);
}

/// A client that trickles its request (slowloris) is dropped once the header read timeout
/// (5 s) has passed, without an answer.
#[test]
fn a_client_that_never_finishes_its_request_is_dropped() {
    let (_d, addr) = daemon_with_endpoint();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let received = read_until_closed(&mut stream);
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text:?}"
    );
}

/// Connections the daemon has accepted on `port` and holds open (the kernel's queue of
/// connections not yet accepted has no socket inode).
fn accepted_on(port: u16) -> usize {
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields[1].rsplit(':').next().unwrap();
            let established = fields[3] == "01";
            let inode = fields[9];
            if u16::from_str_radix(local_port, 16) == Ok(port) && established && inode != "0" {
                count += 1;
            }
        }
    }
    count
}

#[test]
fn many_connections_at_once_are_bounded_and_never_stop_the_daemon() {
    let (d, addr) = daemon_with_endpoint();
    // 200 clients connect and send nothing.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted_on(addr.port()) < MAX_CONNECTIONS {
        assert!(
            Instant::now() < deadline,
            "only {} accepted",
            accepted_on(addr.port())
        );
        std::thread::yield_now();
    }
    // The daemon holds no more than its bound; the rest wait in the kernel's queue.
    assert_eq!(accepted_on(addr.port()), MAX_CONNECTIONS);
    // Its socket serves as before.
    let id = d.add(&["added while the endpoint is full"]);
    assert_eq!(d.status_of(id), "queued");
    assert!(accepted_on(addr.port()) <= MAX_CONNECTIONS);
    drop(idle);

    // 100 scrapes at once: all answered, the ones beyond the bound after a wait.
    let scrapers: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || get(addr, "/metrics").status))
        .collect();
    for scraper in scrapers {
        assert_eq!(scraper.join().unwrap(), 200);
    }
    d.add(&["and after"]);
}

#[test]
fn a_non_loopback_address_needs_metrics_listen_any() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let daemon = |extra: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .arg("daemon")
            .arg("--socket")
            .arg(dir.path().join("v.sock"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .env_remove("VAPORA_SOCKET")
            .stdin(Stdio::null());
        common::Run::from_output(command.output().unwrap())
    };
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:9187"] {
        let refused = daemon(&["--metrics-listen", addr]);
        assert_eq!(refused.code, 1, "{addr}: {refused:?}");
        assert!(
            refused.stderr.contains("not a loopback address")
                && refused.stderr.contains("--metrics-listen-any")
                && refused.stderr.contains("SECURITY.md"),
            "{refused:?}"
        );
        // Refused before anything was touched.
        assert!(!data_dir.exists());
    }
    // Not an address: a usage error.
    let usage = daemon(&["--metrics-listen", "localhost:9187"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    assert!(usage.stderr.contains("is not IP:PORT"), "{usage:?}");
    let usage = daemon(&["--metrics-listen-any"]);
    assert_eq!(usage.code, 2, "{usage:?}");

    // Asked for, it serves on every address, loopback included.
    let d = TestDaemon::start_with(&["--metrics-listen", "0.0.0.0:0", "--metrics-listen-any"]);
    let any = endpoint(&d);
    assert!(any.ip().is_unspecified(), "{any}");
    let local = SocketAddr::from(([127, 0, 0, 1], any.port()));
    assert_eq!(get(local, "/metrics").status, 200);
}

#[test]
fn a_port_in_use_stops_the_start_and_a_shutdown_closes_the_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("v.sock");
    let refused = common::Run::from_output(
        Command::new(BIN)
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--metrics-listen", &port])
            .env_remove("VAPORA_SOCKET")
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains(&format!("--metrics-listen {port}: cannot listen there: ")),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("in use"), "{refused:?}");
    assert!(!socket.exists(), "the refused daemon left its socket");

    let (mut d, addr) = daemon_with_endpoint();
    assert_eq!(get(addr, "/metrics").status, 200);
    d.run(&["shutdown"]).ok();
    assert!(d.wait_exit().success());
    let closed = TcpStream::connect(addr);
    assert_eq!(
        closed.map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused)
    );
}

/// Every `vapora_*` name the Grafana dashboard queries is one the endpoint serves (a
/// histogram by its `_bucket`, `_sum` and `_count` series), and every expression parses as
/// PromQL (`promtool check rules`, with Grafana's variables filled in).
#[test]
fn the_grafana_dashboard_queries_only_served_metrics() {
    let (d, addr) = daemon_with_endpoint();
    make_busy(&d);
    let exposition = get(addr, "/metrics").body;
    // Metric families (from their TYPE lines) and the series names they serve.
    let mut families = BTreeSet::new();
    let mut served = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        families.insert(name.to_string());
        served.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                served.insert(format!("{name}{suffix}"));
            }
        }
    }
    assert!(families.len() > 15, "{families:?}");

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/vapora.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut expressions = Vec::new();
    collect_queries(&dashboard, &mut expressions);
    expressions.retain(|expression| expression.contains("vapora_"));
    assert!(expressions.len() >= 10, "{expressions:?}");
    let mut used = BTreeSet::new();
    for expression in &expressions {
        let mut rest = expression.as_str();
        while let Some(at) = rest.find("vapora_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            used.insert(name);
        }
    }
    let unknown: Vec<_> = used.difference(&served).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries {unknown:?}, which the endpoint does not serve"
    );
    // And it shows everything served: a metric added to the exposition is added to the
    // dashboard too.
    let not_shown: Vec<_> = families
        .iter()
        .filter(|name| {
            !used.contains(name.as_str())
                && !["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| used.contains(&format!("{name}{s}")))
        })
        .collect();
    assert!(
        not_shown.is_empty(),
        "contrib/grafana/vapora.json does not show {not_shown:?}"
    );

    check_promql(&expressions);
}

/// Every query string of the dashboard: panel targets' `expr` and the variables' `query`
/// (`label_values(...)` is Grafana's, not PromQL, and is kept out of the PromQL check).
fn collect_queries(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query", serde_json::Value::String(text)) => found.push(text.clone()),
                    ("query", serde_json::Value::Object(query)) => {
                        if let Some(serde_json::Value::String(text)) = query.get("query") {
                            found.push(text.clone());
                        }
                    }
                    _ => collect_queries(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_queries(v, found)),
        _ => {}
    }
}

fn check_promql(expressions: &[String]) {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, expression) in expressions.iter().enumerate() {
        if expression.starts_with("label_values(") {
            continue;
        }
        let promql = expression
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$instance", ".*")
            .replace("$queue", ".*")
            .replace("$kind", ".*");
        assert!(!promql.contains('$'), "an unknown variable in {expression}");
        rules.push_str(&format!(
            "      - record: dashboard:expr_{n}\n        expr: {}\n",
            serde_json::Value::String(promql)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let Ok(output) = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool must be installed in CI (.ci/run does it)"
        );
        return eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
    };
    assert!(
        output.status.success(),
        "promtool check rules:\n{rules}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
