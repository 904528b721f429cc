//! Who may connect: peer credentials and the connection limit. Running a client as another
//! user needs root and `setpriv` (as in CI); elsewhere these tests say so and skip.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;

use common::{BIN, Run, TestDaemon};

fn can_switch_users() -> bool {
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    root && Command::new("setpriv").arg("--version").output().is_ok()
}

/// Runs `vapora ARGS` as user `nobody` (uid 65534) with the given extra groups.
fn as_nobody(d: &TestDaemon, groups: &str, args: &[&str]) -> Run {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        command.arg(format!("--groups={groups}"));
    }
    let output = command
        .arg(BIN)
        .args(args)
        .env("VAPORA_SOCKET", &d.socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A daemon whose socket other users can reach, so that the daemon itself decides.
fn open_daemon(extra: &[&str]) -> TestDaemon {
    let mut args = vec!["--socket-mode", "666"];
    args.extend_from_slice(extra);
    let d = TestDaemon::start_with(&args);
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[test]
fn other_users_are_refused_before_any_request_is_read() {
    if !can_switch_users() {
        return eprintln!("SKIPPED: needs root and setpriv");
    }
    let d = open_daemon(&[]);
    assert_eq!(
        std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777,
        0o666
    );
    let id = d.add(&["private"]);
    let refused = as_nobody(&d, "", &["task", "cancel", &id.to_string()]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("permission denied"), "{refused:?}");
    assert_eq!(
        d.status_of(id),
        "queued",
        "the refused request must not run"
    );
    assert!(
        d.log_text().contains("uid=65534"),
        "refusals are logged with the uid"
    );
    d.run(&["ping"]).ok();
}

#[test]
fn members_of_the_allowed_group_are_accepted() {
    if !can_switch_users() {
        return eprintln!("SKIPPED: needs root and setpriv");
    }
    let d = open_daemon(&["--allow-group", "users"]);
    // As a supplementary group.
    let member = as_nobody(&d, "100", &["ping"]);
    assert_eq!(member.code, 0, "{member:?}");
    // Not a member.
    let stranger = as_nobody(&d, "", &["ping"]);
    assert_eq!(stranger.code, 1, "{stranger:?}");
    // As the primary group.
    let d = open_daemon(&["--allow-group", "nogroup"]);
    assert_eq!(as_nobody(&d, "", &["ping"]).code, 0);
}

#[test]
fn connections_beyond_the_limit_are_told_so_and_the_others_keep_working() {
    let d = TestDaemon::start_with(&["--max-connections", "2"]);
    let first = served_connection(&d);
    let second = served_connection(&d);
    let third = d.run(&["ping"]);
    assert_eq!(third.code, 1, "{third:?}");
    assert!(third.stderr.contains("too many connections"), "{third:?}");
    drop(first);
    drop(second);
    // The slots free up as soon as those clients leave.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while d.run(&["ping"]).code != 0 {
        assert!(std::time::Instant::now() < deadline, "never accepted again");
        std::thread::yield_now();
    }
}

/// A raw connection the daemon has accepted and answered.
fn served_connection(d: &TestDaemon) -> UnixStream {
    use vapora::protocol::codec::{self, DEFAULT_MAX_FRAME};
    use vapora::protocol::handshake::{Hello, Welcome};
    let mut stream = UnixStream::connect(&d.socket).unwrap();
    let mut out = Vec::new();
    codec::encode_frame(&mut out, &Hello::current(), DEFAULT_MAX_FRAME).unwrap();
    std::io::Write::write_all(&mut stream, &out).unwrap();
    let mut body = Vec::new();
    assert!(codec::read_frame(&mut stream, &mut body, DEFAULT_MAX_FRAME).unwrap());
    let welcome: Welcome = codec::decode(&body).unwrap();
    assert_eq!(welcome.refusal, None);
    stream
}

#[test]
fn a_bad_socket_mode_or_group_is_a_usage_error() {
    for args in [
        vec!["daemon", "--socket-mode", "999"],
        vec!["daemon", "--socket-mode", "066"],
    ] {
        let output = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args([
            "daemon",
            "--allow-group",
            "no-such-group-anywhere",
            "--socket",
        ])
        .arg(dir.path().join("s.sock"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no group named"));
}
