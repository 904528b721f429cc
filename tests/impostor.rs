//! The client checks who answers before it sends anything. Without `XDG_RUNTIME_DIR` the
//! default socket is `$TMPDIR/vapora-$UID/vapora.sock`, in a shared directory where another
//! user can create `vapora-$UID` first and serve a daemon of their own in it. These tests
//! play that other user (`nobody`, through `setpriv`), so they need root; elsewhere they
//! print SKIPPED.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{BIN, Run};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn skip_unless_root() -> bool {
    if is_root() && Path::new("/usr/bin/setpriv").exists() {
        return false;
    }
    eprintln!("SKIPPED: these tests need root and setpriv to run a daemon as another user");
    true
}

/// A directory `nobody` may use, and `root` may look into.
fn nobodys_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// A daemon run by `nobody` on `socket`, with a data dir of its own; killed when dropped.
struct Impostor {
    child: Child,
    socket: PathBuf,
}

impl Impostor {
    fn start(socket: &Path, data_dir: &Path) -> Impostor {
        let log = socket.with_extension("log");
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                BIN,
                "daemon",
                "--socket",
            ])
            .arg(socket)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("VAPORA_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = vapora::client::autostart::spawn_until_ready(
            &mut command,
            std::time::Duration::from_secs(30),
        )
        .unwrap_or_else(|_| {
            panic!(
                "the impostor did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Impostor {
            child,
            socket: socket.to_path_buf(),
        }
    }

    /// How many tasks the impostor received, asked as `nobody`.
    fn tasks_received(&self) -> usize {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                BIN,
            ])
            .arg("--socket")
            .arg(&self.socket)
            .args(["task", "list", "-q"])
            .env("VAPORA_NO_AUTOSTART", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vapora ARGS` as root without `XDG_RUNTIME_DIR`, so the default socket is in `tmp`.
fn as_root_in(tmp: &Path, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("VAPORA_SOCKET")
        .env("TMPDIR", tmp)
        .env("VAPORA_DATA_DIR", tmp.join("root-data"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from_output(out)
}

fn shared_tmp() -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("vapora-shared-tmp")
        .tempdir()
        .unwrap();
    // Like /tmp: anyone may create entries in it.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    tmp
}

/// The reproduction: nobody creates root's default socket directory first and runs
/// a daemon in it. Root's add is refused (exit 3) before anything is sent or any daemon is
/// started, and nobody's daemon received nothing.
#[test]
fn a_socket_dir_made_by_another_user_is_refused_before_anything_is_sent() {
    if skip_unless_root() {
        return;
    }
    let tmp = shared_tmp();
    let dir = nobodys_dir(tmp.path(), "vapora-0");
    let data = nobodys_dir(tmp.path(), "evil");
    let impostor = Impostor::start(&dir.join("vapora.sock"), &data);
    let add = as_root_in(
        tmp.path(),
        &[
            "task",
            "add",
            "root's secret",
            "--payload",
            "password=hunter2",
        ],
    );
    assert_eq!(add.code, 3, "{add:?}");
    assert!(add.stdout.is_empty(), "{add:?}");
    assert!(add.stderr.contains(&dir.display().to_string()), "{add:?}");
    assert!(add.stderr.contains("nothing was sent"), "{add:?}");
    assert_eq!(impostor.tasks_received(), 0);
    assert!(
        !tmp.path().join("root-data").exists(),
        "no daemon was started for root"
    );
}

/// The peer-credential check itself: a socket whose directory passes (ours, 0700) but whose
/// daemon runs as someone else. Root moves nobody's socket into its own directory: the
/// client must look at who answers, not only at the path.
#[test]
fn a_daemon_of_another_uid_on_the_default_socket_is_refused() {
    if skip_unless_root() {
        return;
    }
    let tmp = shared_tmp();
    let staging = nobodys_dir(tmp.path(), "staging");
    let data = nobodys_dir(tmp.path(), "evil");
    let impostor = Impostor::start(&staging.join("vapora.sock"), &data);
    let dir = tmp.path().join("vapora-0");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), 0);
    std::fs::rename(staging.join("vapora.sock"), dir.join("vapora.sock")).unwrap();
    let add = as_root_in(tmp.path(), &["task", "add", "secret"]);
    assert_eq!(add.code, 3, "{add:?}");
    assert!(
        add.stderr
            .contains("runs as uid 65534 (nobody), not uid 0 (root)"),
        "{add:?}"
    );
    assert!(add.stderr.contains("nothing was sent"), "{add:?}");
    // Back where nobody can reach it, to ask what it received.
    std::fs::rename(dir.join("vapora.sock"), staging.join("vapora.sock")).unwrap();
    assert_eq!(impostor.tasks_received(), 0);
}

/// An explicit socket is trusted as given; `--expect-uid` pins who must answer.
#[test]
fn expect_uid_pins_who_answers_on_an_explicit_socket() {
    if skip_unless_root() {
        return;
    }
    let tmp = shared_tmp();
    let dir = nobodys_dir(tmp.path(), "run");
    let data = nobodys_dir(tmp.path(), "data");
    let impostor = Impostor::start(&dir.join("vapora.sock"), &data);
    let socket = impostor.socket.display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["--socket", &socket];
        args.extend_from_slice(extra);
        as_root_in(tmp.path(), &args)
    };
    // Chosen by hand: trusted.
    assert_eq!(run(&["task", "add", "one"]).ok(), "1");
    // Pinned to the right user, by uid or by name: accepted.
    assert_eq!(
        run(&["--expect-uid", "65534", "task", "add", "two"]).ok(),
        "2"
    );
    assert_eq!(
        run(&["--expect-uid", "nobody", "task", "add", "three"]).ok(),
        "3"
    );
    // Pinned to another: refused, nothing sent.
    let refused = run(&["--expect-uid", "root", "task", "add", "four"]);
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("--expect-uid"), "{refused:?}");
    assert_eq!(impostor.tasks_received(), 3);
    // An unknown user is a usage error.
    assert_eq!(run(&["--expect-uid", "no-such-user-x", "ping"]).code, 2);
}

/// The right user's daemon on the default socket is accepted: autostarted, then reused.
#[test]
fn the_users_own_daemon_on_the_default_socket_is_accepted() {
    if skip_unless_root() {
        return;
    }
    let tmp = shared_tmp();
    assert_eq!(as_root_in(tmp.path(), &["task", "add", "mine"]).ok(), "1");
    assert_eq!(
        as_root_in(tmp.path(), &["task", "add", "mine too"]).ok(),
        "2"
    );
    assert_eq!(as_root_in(tmp.path(), &["shutdown"]).code, 0);
}
