//! The node_exporter textfile recipe (contrib/node_exporter/vapora-textfile): the script run
//! as its timer runs it, against a real daemon, into a directory a reader watches.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{BIN, Run, TestDaemon};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/node_exporter/vapora-textfile"
);

/// Runs the script into `dir` with the `vapora` under test first on the PATH.
fn write_textfile(d: &TestDaemon, dir: &Path) -> Run {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Run::from_output(
        Command::new("sh")
            .arg(SCRIPT)
            .arg(dir)
            .env("PATH", path)
            .env("VAPORA_SOCKET", &d.socket)
            .output()
            .unwrap(),
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_script_writes_the_exposition_atomically() {
    let d = TestDaemon::start();
    d.add(&["t", "--queue", "mail"]);
    let dir = tempfile::tempdir().unwrap();
    let written = write_textfile(&d, dir.path());
    assert_eq!(written.code, 0, "{written:?}");
    assert_eq!(files_in(dir.path()), ["vapora.prom"]);
    let file = dir.path().join("vapora.prom");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("vapora_tasks{queue=\"mail\",status=\"queued\"} 1\n"),
        "{text}"
    );
    // The same families, in the same order, as `vapora metrics --format prometheus`.
    let comments = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let printed = d.run(&["metrics", "--format", "prometheus"]);
    assert_eq!(comments(&text), comments(printed.ok()));
    // node_exporter runs as another user: the file must be readable by all.
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);

    // A reader never sees a half-written file while the script rewrites it again and again.
    let done = AtomicBool::new(false);
    let last_line = text.lines().last().unwrap().split(' ').next().unwrap();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                let now = std::fs::read_to_string(&file).unwrap();
                assert!(now.ends_with('\n'), "a partial file: {now:?}");
                assert!(now.contains(&format!("\n{last_line} ")), "a partial file");
                reads += 1;
            }
            reads
        });
        for _ in 0..30 {
            let run = write_textfile(&d, dir.path());
            assert_eq!(run.code, 0, "{run:?}");
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(files_in(dir.path()), ["vapora.prom"]);
}

/// With no daemon answering, stale figures are removed (so an `absent()` alert fires) and
/// the script fails with vapora's exit code; it never starts a daemon.
#[test]
fn without_a_daemon_the_file_goes_and_the_script_fails() {
    let mut d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(write_textfile(&d, dir.path()).code, 0);
    d.kill9();
    let failed = write_textfile(&d, dir.path());
    assert_eq!(failed.code, 3, "{failed:?}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
    assert!(
        d.run(&["ping", "-q"]).code == 3,
        "the script started a daemon"
    );
}
