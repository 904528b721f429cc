//! The journal (`--sync normal`): acknowledged changes live there until SQLite holds them,
//! a restart after SIGKILL replays them, and a clean stop leaves none behind.

mod common;

use std::path::Path;

use common::TestDaemon;

/// The journal segments in a data dir.
fn segments(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("journal")) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect()
}

fn journal_seq(data_dir: &Path) -> i64 {
    let db = rusqlite::Connection::open(data_dir.join("vapora.db")).unwrap();
    db.query_row(
        "SELECT value FROM meta WHERE key = 'journal_seq'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Adds `count` tasks titled "`prefix` N" in one `task add --stdin`; returns their ids.
fn add_lines(d: &TestDaemon, prefix: &str, count: usize) -> Vec<u64> {
    let input: String = (0..count).map(|i| format!("{prefix} {i}\n")).collect();
    d.run_stdin(&["task", "add", "--stdin"], &input)
        .ok()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect()
}

/// Adds, claims and finishes, in the order a worker would; returns the ids added.
fn work(d: &TestDaemon) -> Vec<u64> {
    let ids = add_lines(d, "job", 500);
    d.run(&["agent", "register", "w1"]).ok();
    let claimed = d.run(&["task", "claim", "--agent", "w1", "-q"]);
    assert_eq!(claimed.ok(), ids[0].to_string());
    d.run(&["task", "done", &ids[0].to_string(), "--result", "ok"])
        .ok();
    let next = d.run(&["task", "claim", "--agent", "w1", "-q"]);
    assert_eq!(next.ok(), ids[1].to_string());
    ids
}

fn check_after_work(d: &TestDaemon, ids: &[u64]) {
    let tasks = d.run(&["task", "list", "--json"]).json();
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), ids.len());
    let status = |id: u64| {
        tasks
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| t["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status(ids[0]), "done");
    assert_eq!(status(ids[1]), "running");
    assert!(ids[2..].iter().all(|&id| status(id) == "queued"));
    let done = tasks.iter().find(|t| t["id"] == ids[0]).unwrap();
    assert_eq!(done["result"], "ok");
    let metrics = d.run(&["metrics", "--json"]).json();
    assert_eq!(
        metrics["counters"]["enqueued"],
        ids.len() as u64,
        "{metrics}"
    );
    assert_eq!(metrics["counters"]["done"], 1, "{metrics}");
}

#[test]
fn sigkill_then_restart_replays_the_journal_and_a_clean_stop_empties_it() {
    let mut d = TestDaemon::start();
    let ids = work(&d);
    // The answers above came from the journal: it holds them whether or not SQLite has
    // caught up yet.
    d.kill9();
    let left = segments(&d.data_dir);
    assert!(
        !left.is_empty(),
        "no journal segment after acknowledged changes"
    );
    assert!(left.iter().any(|p| std::fs::metadata(p).unwrap().len() > 0));

    d.restart(&[]);
    check_after_work(&d, &ids);
    // Start-up committed the records into the database and deleted the segments it read.
    assert!(segments(&d.data_dir).iter().all(|p| !left.contains(p)));
    let replayed_to = journal_seq(&d.data_dir);
    assert!(replayed_to >= 4, "journal_seq {replayed_to}");

    // More changes after the replay continue the numbering; a clean stop folds them into
    // the database and leaves no segment behind.
    let id = d.add(&["after the replay"]);
    assert_eq!(id, ids.last().unwrap() + 1);
    assert_eq!(d.terminate().code(), Some(0));
    assert_eq!(segments(&d.data_dir), Vec::<std::path::PathBuf>::new());
    assert!(journal_seq(&d.data_dir) > replayed_to);
    d.restart(&[]);
    assert_eq!(d.status_of(id), "queued");
    check_after_work(&d, &[ids.as_slice(), &[id]].concat());
    d.kill9();
}

#[test]
fn sync_full_commits_before_answering_and_writes_no_journal() {
    let mut d = TestDaemon::start_with(&["--sync", "full"]);
    let ids = work(&d);
    d.kill9();
    assert!(segments(&d.data_dir).is_empty());
    d.restart(&["--sync", "full"]);
    check_after_work(&d, &ids);
    d.kill9();
}

#[test]
fn a_journal_left_by_sync_normal_is_replayed_by_a_sync_full_start() {
    let mut d = TestDaemon::start();
    let ids = work(&d);
    d.kill9();
    assert!(!segments(&d.data_dir).is_empty());
    d.restart(&["--sync", "full"]);
    check_after_work(&d, &ids);
    assert!(segments(&d.data_dir).is_empty());
    d.kill9();
}

#[test]
fn a_segment_of_another_format_is_refused_and_left_untouched() {
    let mut d = TestDaemon::start();
    d.add(&["kept"]);
    d.kill9();
    let foreign = d.data_dir.join("journal").join("9999999999.log");
    std::fs::write(&foreign, b"NOTVAPORA and then some").unwrap();
    let log = d
        .spawn_daemon(&[])
        .expect_err("started on a foreign journal");
    assert!(
        log.contains("9999999999.log") && log.contains("magic"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        b"NOTVAPORA and then some".to_vec()
    );
    std::fs::remove_file(&foreign).unwrap();
    d.restart(&[]);
    assert_eq!(d.run(&["task", "list", "-q"]).ok(), "1");
    d.kill9();
}

/// With the writer thread never started, SQLite receives nothing: every acknowledged
/// change is in the journal alone, and opening the store again must bring all of them back.
#[tokio::test]
async fn acknowledged_changes_that_never_reached_sqlite_come_back_from_the_journal() {
    use std::sync::Arc;
    use std::time::Duration;
    use vapora::daemon::clock::Clock;
    use vapora::daemon::queue::Policy;
    use vapora::daemon::state::{AppState, ClaimOutcome, Lifecycle};
    use vapora::daemon::store::{Store, SyncMode};
    use vapora::protocol::{NewTask, TaskFilter, TaskStatus};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vapora.db");
    let lifecycle = Lifecycle {
        policy: Policy {
            lease_ms: 60_000,
            retry_backoff_ms: 1_000,
        },
        heartbeat_ttl: Duration::from_secs(60),
        clock: Clock::System,
    };
    let open = || {
        let (store, snapshot, writer) = Store::open(&db, SyncMode::Normal).unwrap();
        let state = AppState::new(
            "test".into(),
            snapshot,
            store,
            Duration::from_secs(3600),
            lifecycle,
            vapora::protocol::limits::Limits::default(),
        );
        (state, writer)
    };
    let (state, unstarted_writer) = open();
    let ids = state
        .add_tasks((0..100).map(|i| NewTask::new(format!("t{i}"))).collect())
        .await
        .unwrap();
    state.register_agent("w1".into(), vec![], 10).await.unwrap();
    let claimed = match state.claim("w1".into(), vec![], false, None).await.unwrap() {
        ClaimOutcome::Claimed(task) => task.id,
        _ => panic!("nothing claimed"),
    };
    assert_eq!(claimed, ids[0]);
    drop(unstarted_writer);
    drop(state);
    assert!(
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM tasks", [], |r| r.get::<_, i64>(0))
            .unwrap()
            == 0,
        "SQLite was written without a writer"
    );

    let (state, _writer) = open();
    let tasks = state.list_tasks(&TaskFilter::default()).unwrap();
    assert_eq!(tasks.len(), 100);
    assert_eq!(tasks.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
    let running: Vec<_> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Running)
        .map(|t| (t.id, t.agent.clone()))
        .collect();
    assert_eq!(running, vec![(ids[0], Some("w1".to_string()))]);
    assert_eq!(Arc::strong_count(&state), 1);
}

#[test]
fn a_bulk_add_killed_right_after_its_answer_is_all_there_after_a_restart() {
    let mut d = TestDaemon::start();
    let ids = add_lines(&d, "bulk", 30_000);
    assert_eq!(ids.len(), 30_000);
    // SQLite is likely still behind the answers here; the journal is not.
    d.kill9();
    d.restart(&[]);
    let listed = d.run(&["task", "list", "--json"]).json();
    let titles: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.len(), 30_000);
    assert!(
        titles
            .iter()
            .enumerate()
            .all(|(i, t)| *t == format!("bulk {i}"))
    );
    let metrics = d.run(&["metrics", "--json"]).json();
    assert_eq!(metrics["counters"]["enqueued"], 30_000, "{metrics}");
    d.kill9();
}

#[test]
fn a_zero_store_backlog_means_sqlite_holds_every_answered_change() {
    let mut d = TestDaemon::start();
    add_lines(&d, "t", 5000);
    let metrics = d.run(&["metrics", "--json"]).json();
    assert!(metrics["store_backlog_bytes"].is_u64(), "{metrics}");
    common::wait_for_metrics(&d, "the store to catch up", |m| {
        m["store_backlog_bytes"] == 0
    });
    let in_sqlite: i64 = rusqlite::Connection::open(d.data_dir.join("vapora.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(in_sqlite, 5000);
    let prometheus = d.run(&["metrics", "--format", "prometheus"]);
    assert!(prometheus.ok().contains("vapora_store_backlog_bytes 0"));
    d.kill9();
}
