//! Storage that fails under the daemon: a full disk (a small tmpfs) and a read-only data
//! dir. These need root to mount a tmpfs; elsewhere they say so and skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, TestDaemon};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(path.to_path_buf()))
    }

    fn remount(&self, options: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Retries an add until the daemon accepts writes again (it probes storage once a second
/// by itself); returns the new task's id.
fn add_once_writes_resume(d: &TestDaemon) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = d.run(&["task", "add", "after recovery"]);
        if run.code == 0 {
            return run.stdout.trim().parse::<u64>().unwrap();
        }
        assert!(Instant::now() < deadline, "writes never resumed: {run:?}");
        // Polling what a user would see; there is no event to wait for.
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn skip(reason: &str) {
    eprintln!("SKIPPED: {reason} (these tests need root, as in CI)");
}

fn ids(d: &TestDaemon) -> Vec<u64> {
    let out = d.run(&["task", "list", "-q"]);
    out.ok()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn full_disk_refuses_writes_keeps_reads_and_loses_nothing_acknowledged() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&scratch.path().join("mnt"), "1m") else {
        return skip("cannot mount a tmpfs");
    };
    let mut d = TestDaemon::start_in(Some(fs.0.join("data")), &[]);
    let payload = "x".repeat(50_000);
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..100 {
        let run = d.run(&["task", "add", &format!("big {i}"), "--payload", &payload]);
        if run.code == 0 {
            acked.push(run.stdout.trim().parse::<u64>().unwrap());
        } else {
            refusal = Some(run);
            break;
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    assert_eq!(refusal.code, 1, "{refusal:?}");
    assert!(refusal.stderr.contains("storage"), "{refusal:?}");
    assert!(!acked.is_empty());

    // Reads are still served, and memory holds what was acknowledged. If SQLite could not
    // take the acknowledged changes either, the refused one stays visible until storage
    // works again (its roll-back needs them committed first); writes are refused meanwhile.
    let now = ids(&d);
    assert!(
        now == acked || (now.len() == acked.len() + 1 && now[..acked.len()] == acked[..]),
        "{now:?} vs acknowledged {acked:?}"
    );
    d.run(&["ping"]).ok();

    // More space: the daemon notices by itself and accepts writes again.
    assert!(fs.remount("size=64m"));
    let recovered = add_once_writes_resume(&d);
    acked.push(recovered);
    // Memory holds exactly what was acknowledged.
    assert_eq!(ids(&d), acked);

    // Nothing unacknowledged reached the disk either.
    d.kill9();
    d.restart(&[]);
    assert_eq!(ids(&d), acked);
    d.kill9();
}

#[test]
fn read_only_data_dir_is_refused_at_start_with_a_clear_error() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&scratch.path().join("mnt"), "8m") else {
        return skip("cannot mount a tmpfs");
    };
    let data = fs.0.join("data");
    {
        let mut d = TestDaemon::start_in(Some(data.clone()), &[]);
        d.add(&["kept"]);
        assert_eq!(d.terminate().code(), Some(0));
    }
    assert!(fs.remount("ro"));
    let db_before = std::fs::read(data.join("vapora.db")).unwrap();
    let output = Command::new(BIN)
        .args(["daemon", "--socket"])
        .arg(scratch.path().join("ro.sock"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not writable"), "{stderr}");
    assert_eq!(std::fs::read(data.join("vapora.db")).unwrap(), db_before);
}

/// Fills the file system under `dir` to the last byte; the file goes when the test ends.
fn fill_up(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut size = block.len();
    while size > 0 {
        if file.write_all(&block[..size]).is_err() {
            size /= 2;
        }
    }
    path
}

#[test]
fn a_journal_append_that_finds_the_disk_full_is_refused_and_rolled_back() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&scratch.path().join("mnt"), "8m") else {
        return skip("cannot mount a tmpfs");
    };
    let mut d = TestDaemon::start_in(Some(fs.0.join("data")), &[]);
    let kept = d.add(&["kept"]);
    // Once SQLite holds it too, only the journal has anything left to write.
    common::wait_for_metrics(&d, "the store to catch up", |m| {
        m["store_backlog_bytes"] == 0
    });
    let filler = fill_up(&fs.0);
    // Larger than what the journal reserved ahead (256 KiB): its append must reserve more,
    // finds no space, and writes nothing.
    let line = format!(
        "{{\"title\": \"no room for this\", \"payload\": \"{}\"}}\n",
        "x".repeat(300_000)
    );
    let refused = d.run_stdin(&["task", "add", "--stdin", "--jsonl"], &line);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("rolled back"), "{refused:?}");
    // Memory comes back to exactly what was acknowledged, and reads are served meanwhile.
    // The refusal is answered at once (it must not wait behind a disk that may hang), and
    // the writer puts memory back right after, so a read may see the refused task briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = ids(&d);
        if now == vec![kept] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused add stayed in memory: {now:?}"
        );
        // Polling what a user would see; the roll-back announces itself nowhere else.
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused_again = d.run(&["task", "add", "while full"]);
    assert_eq!(refused_again.code, 1, "{refused_again:?}");

    std::fs::remove_file(&filler).unwrap();
    let after = add_once_writes_resume(&d);
    // The refused add left nothing behind, in memory or in the journal.
    d.kill9();
    d.restart(&[]);
    assert_eq!(ids(&d), vec![kept, after]);
    d.kill9();
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the struct we pass; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) }, 0);
    stat.f_bavail * stat.f_frsize
}

/// A task payload such that five tasks nearly fill the journal's first reservation
/// (256 KiB at a time): the sixth needs another.
const FIFTY_KB: usize = 50_000;

/// Adds five tasks of [`FIFTY_KB`]; returns the last id.
fn nearly_fill_the_journal_reservation(d: &TestDaemon) -> u64 {
    let payload = "x".repeat(FIFTY_KB);
    let mut last = 0;
    for i in 0..5 {
        last = d.add(&[&format!("t{i}"), "--payload", &payload]);
    }
    last
}

/// A file taking all but 160 KiB of the file system at `mount`: less than a journal
/// reservation, more than SQLite needs for a few pages. Remove it to give the room back.
fn fill_leaving_160k(mount: &Path) -> PathBuf {
    use std::os::fd::AsRawFd;
    let path = mount.join("filler");
    let filler = std::fs::File::create(&path).unwrap();
    let fill = free_bytes(mount).saturating_sub(160 * 1024);
    // SAFETY: fallocate on a descriptor we own.
    assert_eq!(
        unsafe { libc::fallocate(filler.as_raw_fd(), 0, 0, fill as libc::off_t) },
        0
    );
    path
}

/// An id a client may have seen (a task whose journal append failed, rolled back) is not
/// handed out again after a restart either: once storage works again the daemon stores how
/// far ids went, before any new task does it for it.
#[test]
fn ids_rolled_back_are_not_handed_out_again_after_a_restart() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&scratch.path().join("mnt"), "8m") else {
        return skip("cannot mount a tmpfs");
    };
    let mut d = TestDaemon::start_in(Some(fs.0.join("data")), &[]);
    let highest_acked = nearly_fill_the_journal_reservation(&d);
    // The journal's next reservation fails while SQLite still commits.
    let filler = fill_leaving_160k(&fs.0);
    let payload = "x".repeat(FIFTY_KB);
    let refused = d.run(&["task", "add", "t5", "--payload", &payload]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("rolled back"), "{refused:?}");
    // The refused add had taken the next id, which a `task list` could have shown.
    let rolled_back = highest_acked + 1;
    std::fs::remove_file(filler).unwrap();
    // A write that adds no task, to see storage work again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.run(&["agent", "register", "probe"]).code != 0 {
        assert!(Instant::now() < deadline, "writes never resumed");
        std::thread::sleep(Duration::from_millis(100));
    }
    d.kill9();
    d.restart(&[]);
    let next = d.add(&["after the restart"]);
    assert!(
        next > rolled_back,
        "id {next} handed out again (id {rolled_back} was rolled back)\n{}",
        d.log_text()
    );
    d.kill9();
}

/// A commit that keeps failing (another process holds the database's write lock) and then
/// a full disk: a request whose journal append fails is refused at once, not when storage
/// comes back (it used to wait behind the writer's retries until then).
#[test]
fn a_failed_append_behind_a_failing_commit_is_refused_at_once() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&scratch.path().join("mnt"), "8m") else {
        return skip("cannot mount a tmpfs");
    };
    let mut d = TestDaemon::start_in(Some(fs.0.join("data")), &[]);
    nearly_fill_the_journal_reservation(&d);
    let locker = rusqlite::Connection::open(fs.0.join("data/vapora.db")).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Journaled and acknowledged at once; its commit now waits on the lock, then fails.
    let kept = d.add(&["kept"]);
    let filler = fill_leaving_160k(&fs.0);
    let payload = "x".repeat(FIFTY_KB);
    let mut refused = d
        .command(&["task", "add", "refused", "--payload", &payload])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Answered while storage is still failing (the lock held, the disk full).
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the refused add is still waiting for storage to come back"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    // Storage comes back: what was acknowledged is kept, the refused add is not.
    locker.execute_batch("ROLLBACK").unwrap();
    std::fs::remove_file(filler).unwrap();
    add_once_writes_resume(&d);
    d.kill9();
    d.restart(&[]);
    let titles = d.run(&["task", "list", "--json"]).json();
    let titles: Vec<&str> = titles
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"kept"), "{titles:?}");
    assert!(!titles.contains(&"refused"), "{titles:?}");
    assert_eq!(d.status_of(kept), "queued");
    d.kill9();
}
