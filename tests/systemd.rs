//! Socket activation, readiness, status, watchdog and stopping notifications, without
//! systemd: the test plays its part (a listening socket on fd 3, `LISTEN_PID`, and a
//! `NOTIFY_SOCKET` datagram socket it reads).

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::BIN;

/// Reads notifications until one contains `wanted`; returns it.
fn expect(notify: &UnixDatagram, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buffer = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no {wanted} notification");
        let Ok(n) = notify.recv(&mut buffer) else {
            continue;
        };
        let message = String::from_utf8_lossy(&buffer[..n]).to_string();
        if message
            .lines()
            .any(|line| line == wanted || line.starts_with(wanted))
        {
            return message;
        }
    }
}

#[test]
fn socket_activation_readiness_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();

    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    // LISTEN_PID and WATCHDOG_PID must name the daemon: `exec` keeps the shell's pid.
    command
        .args(["-c", "LISTEN_PID=$$ WATCHDOG_PID=$$ exec \"$0\" daemon --socket /nonexistent/ignored.sock --data-dir \"$1\""])
        .arg(BIN)
        .arg(dir.path().join("data"))
        .env("LISTEN_FDS", "1")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    // systemd passes listening sockets from fd 3 on.
    vapora::client::autostart::pass_as_fd(&mut command, fd, 3);
    let mut daemon = command.spawn().unwrap();

    let ready = expect(&notify, "READY=1");
    assert!(
        ready.contains("STATUS=serving 0 queued tasks, 0 agents"),
        "{ready}"
    );
    // Ready means answering, on the socket it was handed.
    let vapora = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("VAPORA_SOCKET", &socket)
            .env("VAPORA_NO_AUTOSTART", "1")
            .output()
            .unwrap()
    };
    let ping = vapora(&["ping", "--json"]);
    assert!(ping.status.success(), "{ping:?}");
    let info: serde_json::Value = serde_json::from_slice(&ping.stdout).unwrap();
    assert_eq!(info["socket"], socket.display().to_string());
    assert!(vapora(&["task", "add", "via activation"]).status.success());

    // The watchdog is petted every 100 ms, with a fresh status.
    for _ in 0..3 {
        let pet = expect(&notify, "WATCHDOG=1");
        assert!(pet.contains("STATUS=serving"), "{pet}");
    }
    let pet = expect(&notify, "WATCHDOG=1");
    assert!(pet.contains("serving 1 queued tasks"), "{pet}");

    // SIGTERM: STOPPING=1, exit 0, and the socket (systemd's) stays.
    common::signal(daemon.id(), libc::SIGTERM);
    expect(&notify, "STOPPING=1");
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
    assert!(
        socket.exists(),
        "an activated socket belongs to systemd and stays"
    );
    drop(listener);
}

#[test]
fn json_logs_for_log_shippers() {
    let d = common::TestDaemon::start_with(&["--log-format", "json"]);
    d.run(&["ping"]).ok();
    let log = d.log_text();
    let first = log.lines().next().expect("the daemon logged nothing");
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(line["level"], "INFO");
    assert!(line["fields"]["message"].is_string(), "{line}");
}
