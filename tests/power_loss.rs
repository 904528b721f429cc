//! Power cuts, on LazyFS: a FUSE file system that keeps its own page cache and, on
//! command, drops every write that was not fsynced. The daemon's data dir lives on it;
//! tasks are added, the daemon is SIGKILLed, the power is cut, and the daemon restarts on
//! what survived.
//!
//! - `--sync full` keeps every acknowledged task;
//! - `--sync normal` comes back on a consistent prefix of what was sent, and keeps every
//!   task acknowledged more than 1.5 s before the cut (the journal is fsynced in the
//!   background twice a second), under bulk adds and under one add every 50 ms.
//!
//! LazyFS is built by `.ci/run` with `../shared/tools/lazyfs-build.sh`; the test finds it
//! through `VAPORA_LAZYFS` (or at `target/lazyfs/lazyfs/build/lazyfs`). Without it the tests
//! print SKIPPED, except in CI, where they fail. They need root and /dev/fuse.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{TestDaemon, XorShift};
use vapora::client::connection::Client;
use vapora::protocol::{NewTask, Request, Response, TaskFilter};

/// One power cut at a time: a cut drops the whole mount's cache, and CPU contention between
/// tests would blur the timing the bounds are about.
static SERIAL: Mutex<()> = Mutex::new(());

/// A task acknowledged this long before the cut must survive `--sync normal`.
const NORMAL_BOUND: Duration = Duration::from_millis(1500);

fn lazyfs_binary() -> Option<PathBuf> {
    let path = std::env::var_os("VAPORA_LAZYFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lazyfs/lazyfs/build/lazyfs")
        });
    if path.is_file() && Path::new("/dev/fuse").exists() {
        return Some(path);
    }
    let why = format!(
        "LazyFS is not built at {} (or /dev/fuse is missing): build it with \
         ../shared/tools/lazyfs-build.sh target/lazyfs, as .ci/run does",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// A mounted LazyFS, unmounted when dropped.
struct LazyFs {
    dir: tempfile::TempDir,
    mount: PathBuf,
    process: Child,
}

impl LazyFs {
    fn mount(binary: &Path) -> LazyFs {
        let dir = tempfile::Builder::new()
            .prefix("vapora-lazyfs")
            .tempdir()
            .unwrap();
        let (root, mount) = (dir.path().join("root"), dir.path().join("mnt"));
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&mount).unwrap();
        let config = dir.path().join("lazyfs.toml");
        std::fs::write(
            &config,
            format!(
                "[faults]\nfifo_path=\"{0}/faults.fifo\"\nfifo_path_completed=\"{0}/done.fifo\"\n\
                 [cache]\napply_eviction=false\n[cache.simple]\ncustom_size=\"1gb\"\n\
                 blocks_per_page=1\n[filesystem]\nlog_all_operations=false\n\
                 logfile=\"{0}/lazyfs.log\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("lazyfs.out")).unwrap();
        let process = Command::new(binary)
            .arg(&mount)
            .arg("--config-path")
            .arg(&config)
            .args(["-o", "allow_other", "-o", "modules=subdir", "-o"])
            .arg(format!("subdir={}", root.display()))
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("lazyfs");
        let lazyfs = LazyFs {
            dir,
            mount,
            process,
        };
        // LazyFS allocates its cache before it mounts; nothing signals the mount but the
        // mount table itself.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !lazyfs.mounted() {
            assert!(
                Instant::now() < deadline,
                "LazyFS did not mount: {}",
                lazyfs.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        lazyfs
    }

    fn mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mount = self.mount.display().to_string();
        mounts
            .lines()
            .any(|line| line.split(' ').nth(1) == Some(&mount))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lazyfs.out")).unwrap_or_default()
    }

    /// The power cut: every write not fsynced is gone. Returns once LazyFS says so.
    fn cut_power(&self) {
        // The answer's FIFO is open before the command goes: LazyFS writes it without
        // waiting for a reader. Read and write, so opening does not block and reading waits
        // for the line instead of seeing the end of a writer-less FIFO.
        let done = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.path().join("done.fifo"))
            .unwrap();
        let mut faults = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.path().join("faults.fifo"))
            .unwrap();
        faults.write_all(b"lazyfs::clear-cache\n").unwrap();
        drop(faults);
        let mut line = String::new();
        BufReader::new(done).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "finished::clear-cache", "{}", self.log());
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mount)
            .status();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// How the producer adds.
#[derive(Clone, Copy)]
enum Load {
    /// Batches of 200 tasks, back to back.
    Bulk,
    /// One task every 50 ms, as a script would.
    Trickle,
}

/// What one producer sent, in order, and when each was acknowledged.
#[derive(Default)]
struct Sent {
    titles: Vec<String>,
    acknowledged: Vec<(String, Instant)>,
}

/// Adds tasks titled `c{cycle}-{n}` until the daemon goes away.
fn produce(socket: &Path, cycle: usize, load: Load) -> Sent {
    let mut sent = Sent::default();
    let Ok(mut client) = Client::connect(socket) else {
        return sent;
    };
    let batch = match load {
        Load::Bulk => 200,
        Load::Trickle => 1,
    };
    loop {
        let first = sent.titles.len();
        let titles: Vec<String> = (first..first + batch)
            .map(|n| format!("c{cycle}-{n}"))
            .collect();
        sent.titles.extend(titles.iter().cloned());
        let tasks = titles.iter().map(|t| NewTask::new(t.clone())).collect();
        match client.call(&Request::AddTasks { tasks }) {
            Ok(Ok(Response::Added(_))) => {
                let at = Instant::now();
                sent.acknowledged
                    .extend(titles.into_iter().map(|title| (title, at)));
            }
            Ok(other) => panic!("add refused: {other:?}"),
            // Killed: the daemon is gone.
            Err(_) => return sent,
        }
        if let Load::Trickle = load {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Every task's title, a page at a time.
fn titles_in(d: &TestDaemon) -> HashSet<String> {
    let mut client = Client::connect(&d.socket).expect("connect");
    let mut titles = HashSet::new();
    let mut after = None;
    loop {
        let filter = TaskFilter {
            limit: Some(50_000),
            after,
            ..TaskFilter::default()
        };
        let page = match client.call(&Request::ListTasks(filter)) {
            Ok(Ok(Response::Tasks(tasks))) => tasks,
            other => panic!("list failed: {other:?}"),
        };
        let Some(last) = page.last() else {
            return titles;
        };
        after = Some(last.id);
        titles.extend(page.into_iter().map(|t| t.title));
    }
}

/// Runs `cuts` power cuts in a row on one data dir on LazyFS, checking after each restart
/// that what survived is a prefix of what was sent, that nothing that had survived an
/// earlier cut is gone, and that `must_keep` holds for every acknowledged task.
fn power_cuts(sync: &str, load: Load, cuts: usize, run_for: Duration) {
    let Some(binary) = lazyfs_binary() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lazyfs = LazyFs::mount(&binary);
    let args = ["--sync", sync];
    let mut d = TestDaemon::start_in(Some(lazyfs.mount.join("data")), &args);
    let mut rng = XorShift(0x00c0_ffee ^ cuts as u64);
    let mut survived: HashSet<String> = HashSet::new();
    let (mut acknowledged, mut lost) = (0, 0);
    let mut oldest_lost = Duration::ZERO;
    for cycle in 0..cuts {
        let socket = d.socket.clone();
        let producer = std::thread::spawn(move || produce(&socket, cycle, load));
        // A varied moment, at least `run_for` in.
        std::thread::sleep(run_for + Duration::from_millis(rng.next() % 700));
        let cut_at = Instant::now();
        d.kill9();
        lazyfs.cut_power();
        let sent = producer.join().unwrap();
        d.restart(&args);

        let present = titles_in(&d);
        let kept = sent
            .titles
            .iter()
            .take_while(|title| present.contains(*title))
            .count();
        if let Some(hole) = sent.titles[kept..].iter().find(|t| present.contains(*t)) {
            panic!(
                "cut {cycle}: not a prefix: {} is gone but {hole} survived",
                sent.titles[kept]
            );
        }
        for (title, at) in &sent.acknowledged {
            acknowledged += 1;
            if present.contains(title) {
                continue;
            }
            lost += 1;
            let before_cut = cut_at.duration_since(*at);
            oldest_lost = oldest_lost.max(before_cut);
            assert!(
                sync == "normal" && before_cut <= NORMAL_BOUND,
                "cut {cycle} (--sync {sync}): {title}, acknowledged {before_cut:?} before the \
                 cut, is lost"
            );
        }
        if let Some(gone) = survived.iter().find(|title| !present.contains(*title)) {
            panic!("cut {cycle}: {gone} had survived an earlier cut and is gone");
        }
        survived = present;
    }
    eprintln!(
        "--sync {sync}: {cuts} cuts, {acknowledged} tasks acknowledged, {lost} lost, the \
         oldest of them acknowledged {oldest_lost:?} before its cut"
    );
}

#[test]
fn sync_full_keeps_every_acknowledged_task_over_ten_cuts() {
    power_cuts("full", Load::Bulk, 10, Duration::from_millis(500));
}

#[test]
fn sync_normal_loses_at_most_about_a_second_under_bulk_adds() {
    power_cuts("normal", Load::Bulk, 5, Duration::from_millis(2000));
}

#[test]
fn sync_normal_loses_at_most_about_a_second_of_a_script_adding_every_50ms() {
    power_cuts("normal", Load::Trickle, 5, Duration::from_millis(2000));
}
