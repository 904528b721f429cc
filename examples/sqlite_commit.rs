//! How long one group commit of N adds takes in SQLite alone (no daemon, no contention):
//! cargo run --release --example sqlite_commit -- DIR [ADDS_PER_COMMIT] [COMMITS]
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let per: usize = args.next().map_or(8, |a| a.parse().unwrap());
    let commits: usize = args.next().map_or(5000, |a| a.parse().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.db");
    let _ = std::fs::remove_file(&path);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT, payload TEXT, queue TEXT,
           priority INTEGER, status TEXT, requires TEXT, seq INTEGER);
         CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER);
         INSERT INTO meta VALUES ('next_task_id', 1), ('enqueued', 0);",
    )
    .unwrap();
    let started = Instant::now();
    let mut id = 0i64;
    for _ in 0..commits {
        let tx = conn.transaction().unwrap();
        for _ in 0..per {
            id += 1;
            tx.prepare_cached(
                "INSERT INTO tasks VALUES (?1, ?2, '', 'default', 0, 'queued', '[]', ?1)",
            )
            .unwrap()
            .execute(rusqlite::params![id, format!("task {id}")])
            .unwrap();
        }
        tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'next_task_id'")
            .unwrap()
            .execute([id + 1])
            .unwrap();
        tx.prepare_cached("UPDATE meta SET value = value + ?1 WHERE key = 'enqueued'")
            .unwrap()
            .execute([per as i64])
            .unwrap();
        tx.commit().unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{commits} commits of {per} adds: {:.1} us per commit, {:.0} adds/s",
        elapsed.as_secs_f64() * 1e6 / commits as f64,
        (commits * per) as f64 / elapsed.as_secs_f64()
    );
}
