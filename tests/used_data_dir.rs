//! A data dir that was used is never silently re-initialized: a missing or zero-length
//! database, or a journal with a gap, is refused at start with what to do, and the data
//! dir is left byte for byte as it was. A new data dir still starts with no setup.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::TestDaemon;

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// A daemon that ran with 100 tasks and stopped cleanly.
fn used_data_dir() -> TestDaemon {
    let mut d = TestDaemon::start();
    let lines: String = (1..=100).map(|i| format!("task {i}\n")).collect();
    d.run_stdin(&["task", "add", "--stdin", "-q"], &lines).ok();
    assert!(d.terminate().success());
    assert!(
        d.data_dir.join("vapora.used").exists(),
        "the data dir is marked"
    );
    d
}

/// Starts a daemon on `d`'s data dir, expecting a refusal; returns its log and checks the
/// data dir did not change.
fn refused(d: &TestDaemon) -> String {
    let before = contents(&d.data_dir);
    let log = match d.spawn_daemon(&[]) {
        Ok(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started on a data dir it should refuse")
        }
        Err(log) => log,
    };
    assert_eq!(
        contents(&d.data_dir),
        before,
        "the refused start changed the data dir"
    );
    log
}

#[test]
fn a_zero_length_database_in_a_used_data_dir_is_refused() {
    let d = used_data_dir();
    fs::write(d.data_dir.join("vapora.db"), b"").unwrap();
    let log = refused(&d);
    assert!(log.contains("was used before"), "{log}");
    assert!(log.contains("vapora.db is empty (zero bytes)"), "{log}");
    assert!(log.contains("nothing was changed"), "{log}");
}

#[test]
fn a_missing_database_in_a_used_data_dir_is_refused() {
    let d = used_data_dir();
    fs::remove_file(d.data_dir.join("vapora.db")).unwrap();
    let log = refused(&d);
    assert!(log.contains("vapora.db is missing"), "{log}");
}

/// A database restored from an older copy, behind a journal that goes on from later
/// records: the records between them are gone, and starting would drop what follows.
#[test]
fn a_journal_with_a_gap_is_refused() {
    let mut d = used_data_dir();
    let backup = fs::read(d.data_dir.join("vapora.db")).unwrap();
    d.restart(&[]);
    let lines: String = (1..=10).map(|i| format!("more {i}\n")).collect();
    d.run_stdin(&["task", "add", "--stdin", "-q"], &lines).ok();
    assert!(d.terminate().success());
    d.restart(&[]);
    d.run_stdin(&["task", "add", "--stdin", "-q"], &lines).ok();
    d.kill9(); // the journal keeps its last segment
    for leftover in ["vapora.db-wal", "vapora.db-shm"] {
        let _ = fs::remove_file(d.data_dir.join(leftover));
    }
    fs::write(d.data_dir.join("vapora.db"), backup).unwrap();
    let log = refused(&d);
    assert!(log.contains("the journal has a gap"), "{log}");
    assert!(log.contains("move"), "says what to do: {log}");
}

#[test]
fn a_data_dir_from_before_the_marker_is_marked_and_starts() {
    let mut d = used_data_dir();
    fs::remove_file(d.data_dir.join("vapora.used")).unwrap();
    d.restart(&[]);
    assert_eq!(d.run(&["task", "list", "-q"]).ok().lines().count(), 100);
    assert!(d.data_dir.join("vapora.used").exists());
}

#[test]
fn a_new_data_dir_starts_with_no_setup() {
    let d = TestDaemon::start();
    assert_eq!(d.add(&["first"]), 1);
    assert!(d.data_dir.join("vapora.used").exists());
}
