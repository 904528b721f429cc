//! `--host ssh://...`: every command through a real OpenSSH server on loopback (a throwaway
//! `sshd` with its own host key, the client's key authorized, run as the user the tests run
//! as), to `vapora proxy` and a real daemon on "the other host" (this one, through sshd).
//!
//! Without `/usr/sbin/sshd` (Debian's openssh-server) the tests say so and pass locally;
//! in CI (`CI` set, `.ci/run` installs it) they fail.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Run, TestDaemon, signal};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd on a loopback port, and the ssh command line that reaches it.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    /// `None` (with a message) when sshd is not installed outside CI.
    fn start() -> Option<Sshd> {
        Sshd::start_with_path(true)
    }

    /// Starts sshd; with `vapora_on_path`, sessions find the binary under test as `vapora`.
    fn start_with_path(vapora_on_path: bool) -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{SSHD} is missing: .ci/run installs openssh-server"
            );
            eprintln!("skipped: {SSHD} is not installed (Debian package openssh-server)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("vapora-sshd")
            .tempdir()
            .unwrap();
        let path = dir.path();
        for key in ["host_key", "client_key"] {
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(path.join(key))
                .status()
                .unwrap();
            assert!(made.success(), "ssh-keygen failed");
        }
        std::fs::copy(path.join("client_key.pub"), path.join("authorized_keys")).unwrap();
        // Readable by any user sshd logs in (it reads the keys as that user).
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let keys = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(path.join("authorized_keys"), keys).unwrap();
        let bin_dir = path.join("bin");
        std::fs::create_dir(&bin_dir).unwrap();
        if vapora_on_path {
            std::os::unix::fs::symlink(BIN, bin_dir.join("vapora")).unwrap();
        }
        // Privilege separation needs this directory when sshd runs as root.
        if unsafe { libc::geteuid() } == 0 {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n\
             AuthorizedKeysFile {keys}\nPidFile {pid}\nStrictModes no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nSetEnv PATH={bin}:/usr/bin:/bin\n\
             LogLevel ERROR\n",
            host_key = path.join("host_key").display(),
            keys = path.join("authorized_keys").display(),
            pid = path.join("sshd.pid").display(),
            bin = bin_dir.display(),
        );
        std::fs::write(path.join("sshd_config"), config).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(path.join("sshd_config"))
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(path.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let sshd = Sshd { dir, port, child };
        until("sshd accepts connections", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(sshd)
    }

    /// `VAPORA_SSH`: ssh with the client key, this server's throwaway host key accepted.
    fn ssh_command(&self) -> String {
        format!(
            "ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10",
            self.dir.path().join("client_key").display()
        )
    }

    /// The address of `socket` on "the other host", as `user`.
    fn url(&self, user: &str, socket: &Path) -> String {
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, socket.display())
    }

    /// Ends every SSH connection (sshd's per-connection processes), keeping sshd itself.
    fn drop_connections(&self) -> usize {
        let children = children_of(self.child.id());
        for pid in &children {
            signal(*pid, libc::SIGKILL);
        }
        children.len()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn children_of(parent: u32) -> Vec<u32> {
    common::processes()
        .into_iter()
        .filter(|process| process.parent == parent)
        .map(|process| process.pid)
        .collect()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `vapora ARGS` run as on another host: through `--host`, with no local socket at all.
fn remote(sshd: &Sshd, url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--host")
        .arg(url)
        .args(args)
        .env("VAPORA_SSH", sshd.ssh_command())
        .env_remove("VAPORA_SOCKET")
        .env("VAPORA_NO_AUTOSTART", "1")
        .stdin(Stdio::null());
    command
}

fn run_remote(sshd: &Sshd, url: &str, args: &[&str]) -> Run {
    Run::from_output(remote(sshd, url, args).output().unwrap())
}

#[test]
fn the_task_commands_work_through_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let d = TestDaemon::start();
    let url = sshd.url(&current_user(), &d.socket);

    let added = run_remote(&sshd, &url, &["task", "add", "built remotely"]);
    let id = added.ok().to_string();
    assert_eq!(d.status_of(id.parse().unwrap()), "queued");
    let list = run_remote(&sshd, &url, &["task", "list", "--json"]).json();
    assert_eq!(list[0]["title"], "built remotely");

    run_remote(&sshd, &url, &["agent", "register", "far"]).ok();
    let claimed = run_remote(&sshd, &url, &["task", "claim", "--agent", "far", "-q"]);
    assert_eq!(claimed.ok(), id);
    run_remote(&sshd, &url, &["task", "done", &id, "--result", "ok"]).ok();
    assert_eq!(d.status_of(id.parse().unwrap()), "done");

    // A bulk add goes through the same frames, pipelined.
    let lines: String = (0..3000).map(|i| format!("bulk {i}\n")).collect();
    let mut bulk = remote(&sshd, &url, &["task", "add", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = bulk.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        input.write_all(lines.as_bytes()).unwrap();
    });
    let bulk = Run::from_output(bulk.wait_with_output().unwrap());
    writer.join().unwrap();
    assert_eq!(bulk.ok().lines().count(), 3000);
    let counts = d.run(&["metrics", "--json"]).json();
    assert_eq!(counts["counters"]["enqueued"], 3001, "{counts}");

    // `task wait` parks until the task ends, finished here while it waits there.
    let last = d.add(&["waited for"]);
    let wait = remote(&sshd, &url, &["task", "wait", &last.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    d.run(&["task", "cancel", &last.to_string()]).ok();
    let wait = Run::from_output(wait.wait_with_output().unwrap());
    assert_eq!(
        (wait.code, wait.stdout.trim()),
        (1, format!("{last} cancelled").as_str())
    );
}

#[test]
fn events_stream_through_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let d = TestDaemon::start();
    let url = sshd.url(&current_user(), &d.socket);
    let mut events = remote(&sshd, &url, &["events", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    // The stream is open once an event added after its start arrives: add until one does
    // (the first may come before the subscription reached the daemon).
    let adder = {
        let socket = d.socket.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                let added = Command::new(BIN)
                    .args(["task", "add", "seen from afar", "-q"])
                    .env("VAPORA_SOCKET", &socket)
                    .env("VAPORA_NO_AUTOSTART", "1")
                    .output()
                    .unwrap();
                assert!(added.status.success());
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let line = lines.next().unwrap().unwrap();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event"], "task_added", "{line}");
    let _ = events.kill();
    let _ = events.wait();
    drop(adder);
}

#[test]
fn a_worker_on_another_host_runs_local_tasks_and_survives_a_dropped_connection() {
    let Some(sshd) = Sshd::start() else { return };
    let d = TestDaemon::start();
    let url = sshd.url(&current_user(), &d.socket);
    let gate = tempfile::tempdir().unwrap();
    let (started, go) = (gate.path().join("started"), gate.path().join("go"));
    let first = d.add(&["--", "sh", "-c", "echo first output"]);
    let gated = d.add(&[
        "--",
        "sh",
        "-c",
        &format!(
            "touch {}; while [ ! -e {} ]; do sleep 0.05; done; echo after the drop",
            started.display(),
            go.display()
        ),
    ]);
    let worker = remote(
        &sshd,
        &url,
        &["work", "--agent", "far", "--exit-when-empty"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    until("the gated task started", || started.exists());
    assert_eq!(d.status_of(first), "done");
    assert_eq!(
        d.run(&["task", "logs", &first.to_string()]).ok(),
        "first output"
    );

    // Every SSH connection of the worker is cut while its task runs.
    assert!(sshd.drop_connections() > 0);
    std::fs::write(&go, "").unwrap();
    let run = Run::from_output(worker.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(d.status_of(gated), "done", "{run:?}");
    let task = d
        .run(&["task", "show", &gated.to_string(), "--json"])
        .json();
    assert_eq!(task["attempts"], 1, "it ran once, through the drop: {task}");
    assert_eq!(task["result"], "after the drop");
}

#[test]
fn failures_through_ssh_say_why_in_ssh_words() {
    let Some(sshd) = Sshd::start() else { return };
    let d = TestDaemon::start();
    let user = current_user();

    // Nothing listens on that port.
    let closed = format!(
        "ssh://{user}@127.0.0.1:{}{}",
        free_port(),
        d.socket.display()
    );
    let refused = run_remote(&sshd, &closed, &["ping"]);
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(
        refused.stderr.contains("ssh could not connect"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("Connection refused"), "{refused:?}");

    // A key the server does not know.
    let mut stranger = remote(&sshd, &sshd.url(&user, &d.socket), &["ping"]);
    let other_key = sshd.dir.path().join("host_key");
    stranger.env(
        "VAPORA_SSH",
        format!(
            "ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o IdentitiesOnly=yes",
            other_key.display()
        ),
    );
    let denied = Run::from_output(stranger.output().unwrap());
    assert_eq!(denied.code, 3, "{denied:?}");
    assert!(denied.stderr.contains("Permission denied"), "{denied:?}");

    // No daemon at that remote socket: the remote proxy's exit 3 and its words.
    let nowhere = sshd.url(&user, &d.dir.path().join("none.sock"));
    let absent = run_remote(&sshd, &nowhere, &["ping"]);
    assert_eq!(absent.code, 3, "{absent:?}");
    assert!(absent.stderr.contains("none.sock"), "{absent:?}");
    assert!(
        absent.stderr.contains("no vapora daemon answers"),
        "{absent:?}"
    );

    // A host without vapora.
    drop(sshd);
    let Some(bare) = Sshd::start_with_path(false) else {
        return;
    };
    let missing = run_remote(&bare, &bare.url(&user, &d.socket), &["ping"]);
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(
        missing.stderr.contains("has no `vapora` command"),
        "{missing:?}"
    );
}

/// The handshake is the client's and the daemon's own, end to end: a daemon on the other
/// host that speaks another protocol version is refused with both versions named. (A stand-
/// in daemon answers the handshake with protocol 999.)
#[test]
fn a_remote_daemon_of_another_protocol_version_is_refused_with_both_versions() {
    use vapora::protocol::codec::{self, DEFAULT_MAX_FRAME};
    use vapora::protocol::handshake::{Hello, MAGIC, PROTOCOL_VERSION, Welcome};

    let Some(sshd) = Sshd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("future.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let future = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut body = Vec::new();
        assert!(codec::read_frame(&mut stream, &mut body, DEFAULT_MAX_FRAME).unwrap());
        let hello: Hello = codec::decode(&body).unwrap();
        let mut out = Vec::new();
        let welcome = Welcome {
            magic: MAGIC,
            protocol: 999,
            daemon_version: "9.9.9".into(),
            refusal: None,
        };
        codec::encode_frame(&mut out, &welcome, DEFAULT_MAX_FRAME).unwrap();
        std::io::Write::write_all(&mut stream, &out).unwrap();
        hello.protocol
    });
    let run = run_remote(&sshd, &sshd.url(&current_user(), &socket), &["ping"]);
    assert_eq!(
        future.join().unwrap(),
        PROTOCOL_VERSION,
        "the client's hello arrived"
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("protocol 999")
            && run.stderr.contains(&format!("protocol {PROTOCOL_VERSION}")),
        "{run:?}"
    );
}

/// The daemon decides who may use it by the peer credentials of `vapora proxy`, i.e. the
/// SSH user: one it does not admit is refused as a local user would be. Needs a second
/// user, so runs as root only (as in CI), creating a throwaway one.
#[test]
fn a_user_the_daemon_does_not_admit_is_refused_through_ssh() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to create a second user");
        return;
    }
    let Some(sshd) = Sshd::start() else { return };
    let stranger = ThrowawayUser::create();
    let d = TestDaemon::start_with(&["--socket-mode", "0666"]);
    // The stranger may reach the socket file: only the daemon's check stands in the way.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = run_remote(
        &sshd,
        &sshd.url(&stranger.name, &d.socket),
        &["task", "add", "x"],
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("the daemon refused the connection"),
        "{refused:?}"
    );
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "", "nothing was added");
}

struct ThrowawayUser {
    name: String,
}

impl ThrowawayUser {
    fn create() -> ThrowawayUser {
        let name = format!("vapora-ssh-{}", std::process::id());
        let made = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh"])
            .arg(&name)
            .status()
            .unwrap();
        assert!(made.success(), "useradd {name} failed");
        let user = ThrowawayUser { name };
        // No password, but not a locked account either: sshd (without PAM) refuses even
        // key logins to a locked one.
        let unlocked = Command::new("usermod")
            .args(["-p", "*", &user.name])
            .status()
            .unwrap();
        assert!(unlocked.success(), "usermod -p failed");
        user
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
