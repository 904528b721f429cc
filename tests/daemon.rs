//! The daemon process: socket handling, signals, shutdown, autostart.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, Run, TestDaemon, signal};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn socket_is_private_and_ping_describes_the_daemon() {
    let d = TestDaemon::start();
    assert_eq!(mode(&d.socket), 0o600);
    let info = d.run(&["ping", "--json"]).json();
    assert_eq!(info["pid"], d.pid());
    assert_eq!(
        info["protocol"],
        vapora::protocol::handshake::PROTOCOL_VERSION
    );
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["socket"], d.socket.display().to_string());
    assert!(info["uptime_ms"].is_u64());
    let human = d.run(&["ping"]);
    assert!(
        human.ok().contains(&format!("pid {}", d.pid())),
        "{human:?}"
    );
}

#[test]
fn sigterm_and_sigint_stop_cleanly_and_remove_the_socket() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut d = TestDaemon::start();
        d.add(&["left behind"]);
        let child_pid = d.pid();
        signal(child_pid, sig);
        let status = d.wait_exit();
        assert_eq!(status.code(), Some(0), "signal {sig}: {}", d.log_text());
        assert!(!d.socket.exists(), "socket left behind after signal {sig}");
        assert_eq!(d.run(&["ping"]).code, 3);
    }
}

#[test]
fn sigterm_the_instant_the_daemon_is_ready_still_stops_it_cleanly() {
    // The signal handlers must be in place before readiness is announced: a service
    // manager or script may stop the daemon right away.
    for round in 0..20 {
        let mut d = TestDaemon::start();
        let status = d.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: {status:?}\n{}",
            d.log_text()
        );
    }
}

#[test]
fn shutdown_command_returns_once_the_socket_is_gone() {
    let mut d = TestDaemon::start();
    let run = d.run(&["shutdown"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!d.socket.exists());
    assert_eq!(d.wait_exit().code(), Some(0));
    // A new daemon can take the socket right away.
    let mut child = d.spawn_daemon(&[]).unwrap();
    d.run(&["ping"]).ok();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn shutdown_wakes_parked_clients_with_a_clear_error() {
    let mut d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["never finished"]);
    d.run(&["agent", "register", "w2"]).ok();
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    let claimer = d
        .command(&["task", "claim", "--agent", "w2", "--wait", "60s"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiter = d
        .command(&["task", "wait", &id.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_metrics(&d, "the claimer parked and the waiter connected", |m| {
        m["parked_claims"] == 1 && m["connections_open"].as_u64() >= Some(3)
    });
    assert_eq!(d.terminate().code(), Some(0));
    for child in [claimer, waiter] {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("shutting down"), "{stderr}");
    }
}

#[test]
fn stale_socket_of_a_killed_daemon_is_reclaimed() {
    let d = TestDaemon::start();
    let refused = d
        .spawn_daemon(&[])
        .expect_err("second daemon on the same data dir must fail");
    assert!(
        refused.contains(&format!(
            "in use by another vapora daemon (pid {})",
            d.pid()
        )),
        "{refused}"
    );

    signal(d.pid(), libc::SIGKILL);
    let mut d = d;
    d.wait_exit();
    assert!(d.socket.exists(), "SIGKILL leaves the socket file behind");
    let mut child = d.spawn_daemon(&[]).unwrap();
    d.run(&["ping"]).ok();
    assert!(d.log_text().contains("stale socket"), "{}", d.log_text());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn second_daemon_is_refused_and_the_first_keeps_serving() {
    let d = TestDaemon::start();
    let other_data = d.dir.path().join("other-data");
    let output = Command::new(BIN)
        .args(["daemon", "--socket"])
        .arg(&d.socket)
        .arg("--data-dir")
        .arg(&other_data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    d.run(&["ping"]).ok();
}

#[test]
fn a_non_socket_file_at_the_path_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sock");
    std::fs::write(&path, "precious").unwrap();
    let output = Command::new(BIN)
        .args(["daemon", "--socket"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

/// Runs the client with these environment changes. A daemon it autostarts keeps its data in
/// `scratch/data`, never in the home directory.
fn run_with_env(args: &[&str], scratch: &Path, env: &[(&str, &Path)], remove: &[&str]) -> Run {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("VAPORA_DATA_DIR", scratch.join("data"));
    for (key, value) in env {
        command.env(key, value);
    }
    for key in remove {
        command.env_remove(key);
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn no_autostart_exits_3_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let by_flag = run_with_env(
        &["--no-autostart", "task", "list"],
        dir.path(),
        &[("VAPORA_SOCKET", &socket)],
        &["VAPORA_NO_AUTOSTART"],
    );
    assert_eq!(by_flag.code, 3, "{by_flag:?}");
    assert!(by_flag.stderr.contains("vapora daemon"), "{by_flag:?}");
    let mut command = Command::new(BIN);
    let by_env = command
        .args(["ping"])
        .env("VAPORA_SOCKET", &socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(by_env.status.code(), Some(3));
    assert!(!socket.exists(), "no daemon may have been started");
}

/// Stops an autostarted daemon at the end of a test, whatever happens.
struct StopOnDrop(std::path::PathBuf);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .arg("shutdown")
            .env("VAPORA_SOCKET", &self.0)
            .output();
    }
}

#[test]
fn autostart_starts_a_daemon_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("auto.sock");
    let _stop = StopOnDrop(socket.clone());
    let run = run_with_env(
        &["task", "add", "first"],
        dir.path(),
        &[("VAPORA_SOCKET", &socket)],
        &["VAPORA_NO_AUTOSTART"],
    );
    assert_eq!(run.ok(), "1");
    // Which data dir it opened is said once, on stderr.
    let said = format!(
        "started a daemon at {} with its data in {}",
        socket.display(),
        dir.path().join("data").display()
    );
    assert!(run.stderr.contains(&said), "{run:?}");
    assert!(socket.exists());
    assert!(
        dir.path().join("auto.log").exists(),
        "autostarted daemon logs beside its socket"
    );
    // The daemon outlives the client that started it, and keeps state.
    let run = run_with_env(
        &["task", "list", "-q"],
        dir.path(),
        &[("VAPORA_SOCKET", &socket)],
        &["VAPORA_NO_AUTOSTART"],
    );
    assert_eq!(run.ok(), "1");
    assert!(!run.stderr.contains("started a daemon"), "{run:?}");
}

#[test]
fn default_socket_is_under_the_runtime_dir_or_a_private_temp_dir() {
    let runtime = tempfile::tempdir().unwrap();
    let socket = runtime.path().join("vapora").join("vapora.sock");
    let _stop = StopOnDrop(socket.clone());
    let run = run_with_env(
        &["ping", "--json"],
        runtime.path(),
        &[("XDG_RUNTIME_DIR", runtime.path())],
        &["VAPORA_SOCKET", "VAPORA_NO_AUTOSTART"],
    );
    assert_eq!(run.json()["socket"], socket.display().to_string());
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    drop(_stop);

    let tmp = tempfile::tempdir().unwrap();
    let uid = unsafe { libc::getuid() };
    let socket = tmp.path().join(format!("vapora-{uid}")).join("vapora.sock");
    let _stop = StopOnDrop(socket.clone());
    let run = run_with_env(
        &["ping", "--json"],
        tmp.path(),
        &[("TMPDIR", tmp.path())],
        &["VAPORA_SOCKET", "VAPORA_NO_AUTOSTART", "XDG_RUNTIME_DIR"],
    );
    assert_eq!(run.json()["socket"], socket.display().to_string());
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
}

#[test]
fn a_shared_default_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let uid = unsafe { libc::getuid() };
    let dir = tmp.path().join(format!("vapora-{uid}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = run_with_env(
        &["ping"],
        tmp.path(),
        &[("TMPDIR", tmp.path())],
        &["VAPORA_SOCKET", "VAPORA_NO_AUTOSTART", "XDG_RUNTIME_DIR"],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("mode 0700"), "{run:?}");
}

/// Twenty first commands at once against a fresh socket: one daemon is started, every
/// command reaches it and exits 0 (before, the clients whose daemon lost the data-dir lock
/// to another's exited 3 while a daemon was running). Repeated, since a race shows only
/// sometimes.
#[test]
fn twenty_concurrent_first_commands_all_reach_one_autostarted_daemon() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("race.sock");
        let _stop = StopOnDrop(socket.clone());
        let children: Vec<_> = (0..20)
            .map(|i| {
                Command::new(BIN)
                    .args(["task", "add", &format!("round {round} task {i}")])
                    .env("VAPORA_SOCKET", &socket)
                    .env("VAPORA_DATA_DIR", dir.path().join("data"))
                    .env_remove("VAPORA_NO_AUTOSTART")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut ids = Vec::new();
        for child in children {
            let run = Run::from_output(child.wait_with_output().unwrap());
            assert_eq!(run.code, 0, "round {round}: {run:?}");
            ids.push(run.stdout.trim().parse::<u64>().unwrap());
        }
        ids.sort_unstable();
        assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "round {round}");
        let log = std::fs::read_to_string(dir.path().join("race.log")).unwrap();
        assert_eq!(
            log.matches("listening").count(),
            1,
            "round {round}: one daemon started: {log}"
        );
        assert!(
            !log.contains("ERROR"),
            "round {round}: no daemon was started only to fail: {log}"
        );
    }
}
