//! ADR-026 "verification": the five checks of the shared state (`AppState`, shared through
//! an `Arc`: the agent registry behind a read-write lock, the task queue behind a mutex,
//! lock order registry then queue).
//!
//! In-process tests build an `AppState` around a real store in a temp dir (as
//! tests/timers.rs does); the integration test runs the real daemon binary with several
//! client connections. Ordering comes from channels and barriers; the only timeouts are
//! the short "did not complete" checks of a blocked writer and generous watchdogs that turn
//! a deadlock into a failure instead of a hang.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{TestDaemon, XorShift};
use vapora::client::connection::Client;
use vapora::daemon::clock::Clock;
use vapora::daemon::queue::Policy;
use vapora::daemon::state::{AppState, ClaimOutcome, Lifecycle};
use vapora::daemon::store::{Recovery, Store, SyncMode};
use vapora::protocol::limits::Limits;
use vapora::protocol::{
    AgentStatus, DoneFirst, ErrorBody, ErrorKind, MetricsSnapshot, NewTask, Renew, Request,
    Response, Task, TaskFilter, TaskId, TaskStatus,
};

/// How long a writer that must be blocked gets to (wrongly) complete.
const BLOCKED: Duration = Duration::from_millis(200);
/// How long something that must complete gets before the test gives up on it.
const GENEROUS: Duration = Duration::from_secs(30);
/// The deadlock watchdog of the stress test.
const WATCHDOG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An `AppState` around a real store (journaled, as the daemon runs by default) in a temp
/// dir, with its store writer thread running. Keep the `TempDir` alive as long as the state.
fn in_process_state() -> (Arc<AppState>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (store, snapshot, writer) =
        Store::open(&dir.path().join("vapora.db"), SyncMode::Normal).unwrap();
    let lifecycle = Lifecycle {
        policy: Policy::default(),
        heartbeat_ttl: Duration::from_secs(600),
        clock: Clock::System,
    };
    let state = AppState::new(
        "shared-state-test".into(),
        snapshot,
        store,
        Duration::from_secs(3600),
        lifecycle,
        Limits::default(),
    );
    let recovery: std::sync::Weak<dyn Recovery> = {
        let weak: std::sync::Weak<AppState> = Arc::downgrade(&state);
        weak
    };
    writer.spawn(&state.store, recovery).unwrap();
    (state, dir)
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on its own thread and returns its value; fails the test (instead of hanging
/// it) if `f` has not finished within `bound`. A panic inside `f` is re-raised here.
fn within<T: Send + 'static>(
    bound: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let value = f();
        let _ = done_tx.send(value);
    });
    match done_rx.recv_timeout(bound) {
        Ok(value) => {
            handle.join().unwrap();
            value
        }
        Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("{what}: the thread ended without a result"),
        },
        Err(RecvTimeoutError::Timeout) => panic!(
            "{what} did not finish within {bound:?}: a deadlock (lock-order inversion) or a \
             lost wake-up"
        ),
    }
}

/// Holds a lock (through one of `AppState`'s ADR-026 test hooks) on its own thread until
/// released. `hold` must call `on_held` while holding the lock and return only after it
/// returns.
struct HeldLock {
    release: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HeldLock {
    fn new(hold: impl FnOnce(&mut dyn FnMut()) + Send + 'static) -> HeldLock {
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            hold(&mut || {
                held_tx.send(()).unwrap();
                // Released by a message or by the sender's drop (a failing test unwinding).
                let _ = release_rx.recv();
            });
        });
        held_rx
            .recv_timeout(GENEROUS)
            .expect("the test hook never took the lock");
        HeldLock {
            release: Some(release_tx),
            thread: Some(thread),
        }
    }

    fn release(mut self) {
        self.release.take();
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.release.take();
    }
}

/// Runs `f` on a new thread with its own runtime; its result arrives on the returned
/// channel (which disconnects without a value if `f` panics).
fn spawn_call<T: Send + 'static>(
    f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let runtime = current_thread_runtime();
        let _ = tx.send(f(&runtime));
    });
    rx
}

/// Tasks per status.
fn by_status(tasks: &[Task]) -> BTreeMap<TaskStatus, u64> {
    let mut counts = BTreeMap::new();
    for task in tasks {
        *counts.entry(task.status).or_insert(0) += 1;
    }
    counts
}

/// Tasks per status as the metrics report them (summed over queues).
fn metrics_by_status(metrics: &MetricsSnapshot) -> BTreeMap<TaskStatus, u64> {
    let mut counts = BTreeMap::new();
    for (_, status, count) in &metrics.tasks {
        *counts.entry(*status).or_insert(0) += count;
    }
    counts.retain(|_, count| *count > 0);
    counts
}

fn all_tasks(state: &AppState) -> Vec<Task> {
    state.list_tasks(&TaskFilter::default()).unwrap()
}

/// An error a racing request may legitimately get (the task moved on meanwhile).
fn is_race_loss(error: &ErrorBody) -> bool {
    matches!(error.kind, ErrorKind::Conflict | ErrorKind::NotFound)
}

// ---------------------------------------------------------------------------------------
// 1. Concurrent access
// ---------------------------------------------------------------------------------------

const PRODUCERS: usize = 8;
const TASKS_PER_PRODUCER: usize = 30;
const CONSUMERS: usize = 6;
const READERS: usize = 3;
const READS_PER_READER: usize = 40;

/// Many tokio tasks on a multi-threaded runtime add, register, claim (blocking claims),
/// finish and read at once through one `Arc<AppState>`: ids are unique, every task is
/// claimed exactly once, and the counters add up.
#[test]
fn concurrent_state_access() {
    let (state, _dir) = in_process_state();
    let total = PRODUCERS * TASKS_PER_PRODUCER;
    assert_eq!(total % CONSUMERS, 0);
    let shared = Arc::clone(&state);
    let (added, claimed) = within(GENEROUS, "concurrent_state_access", move || {
        let state = shared;
        multi_thread_runtime().block_on(async move {
            let mut producers = Vec::new();
            for p in 0..PRODUCERS {
                let state = Arc::clone(&state);
                producers.push(tokio::spawn(async move {
                    let mut ids = Vec::new();
                    let mut t = 0;
                    while t < TASKS_PER_PRODUCER {
                        // Batches of 1 to 3 tasks.
                        let n = (1 + (p + t) % 3).min(TASKS_PER_PRODUCER - t);
                        let batch = (t..t + n)
                            .map(|i| NewTask::new(format!("p{p}-t{i}")))
                            .collect();
                        let got = state.add_tasks(batch).await.unwrap();
                        assert_eq!(got.len(), n);
                        ids.extend(got);
                        t += n;
                    }
                    ids
                }));
            }
            let mut consumers = Vec::new();
            for c in 0..CONSUMERS {
                let state = Arc::clone(&state);
                consumers.push(tokio::spawn(async move {
                    let agent = format!("c{c}");
                    let registered = state
                        .register_agent(agent.clone(), vec![], 1)
                        .await
                        .unwrap();
                    assert_eq!(registered.name, agent);
                    let mut mine = Vec::new();
                    for _ in 0..total / CONSUMERS {
                        let task = match state.claim(agent.clone(), vec![], true, None).await {
                            Ok(ClaimOutcome::Claimed(task)) => task,
                            Ok(ClaimOutcome::Parked(mut ticket)) => ticket.recv().await.unwrap(),
                            Ok(ClaimOutcome::Empty) => panic!("a blocking claim came back empty"),
                            Ok(ClaimOutcome::AtLimit { running, .. }) => {
                                panic!("{agent} at its limit, holding {running:?}")
                            }
                            Ok(ClaimOutcome::Unavailable(status)) => {
                                panic!("{agent} may not claim: {status}")
                            }
                            Err(e) => panic!("claim by {agent} refused: {e}"),
                        };
                        assert_eq!(task.status, TaskStatus::Running);
                        assert_eq!(task.agent.as_deref(), Some(agent.as_str()));
                        let done = state
                            .complete(
                                task.id,
                                Some(format!("by {agent}")),
                                Some(agent.clone()),
                                None,
                            )
                            .await
                            .unwrap();
                        assert_eq!(done.status, TaskStatus::Done);
                        mine.push((task.id, agent.clone()));
                    }
                    mine
                }));
            }
            let mut readers = Vec::new();
            for _ in 0..READERS {
                let state = Arc::clone(&state);
                readers.push(tokio::spawn(async move {
                    let mut seen = 0;
                    for _ in 0..READS_PER_READER {
                        let tasks = all_tasks(&state);
                        let ids: HashSet<TaskId> = tasks.iter().map(|t| t.id).collect();
                        assert_eq!(ids.len(), tasks.len(), "a list showed an id twice");
                        assert!(tasks.len() >= seen, "an added task disappeared");
                        seen = tasks.len();
                        for task in &tasks {
                            if task.status == TaskStatus::Running {
                                assert!(task.agent.is_some(), "running without an agent");
                            }
                        }
                        for agent in state.list_agents(&[]) {
                            assert!(agent.running <= agent.max_tasks, "{agent:?}");
                        }
                        let metrics = state.metrics_snapshot();
                        let counted: u64 = metrics.tasks.iter().map(|(_, _, n)| n).sum();
                        assert!(counted as usize >= seen);
                        tokio::task::yield_now().await;
                    }
                }));
            }
            let mut added = Vec::new();
            for producer in producers {
                added.extend(producer.await.unwrap());
            }
            let mut claimed = Vec::new();
            for consumer in consumers {
                claimed.extend(consumer.await.unwrap());
            }
            for reader in readers {
                reader.await.unwrap();
            }
            (added, claimed)
        })
    });

    let unique: HashSet<TaskId> = added.iter().copied().collect();
    assert_eq!(added.len(), total);
    assert_eq!(unique.len(), total, "an id was handed out twice");
    let claimed_ids: HashSet<TaskId> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(claimed.len(), total);
    assert_eq!(claimed_ids.len(), total, "a task was claimed twice");
    assert_eq!(claimed_ids, unique, "claimed tasks are not the added ones");

    let tasks = all_tasks(&state);
    assert_eq!(tasks.len(), total);
    let by_id: HashMap<TaskId, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
    for (id, agent) in &claimed {
        let task = by_id[id];
        assert_eq!(task.status, TaskStatus::Done, "{task:?}");
        assert_eq!(task.attempts, 1, "claimed more than once: {task:?}");
        assert_eq!(task.agent.as_deref(), Some(agent.as_str()));
        assert_eq!(task.result, Some(format!("by {agent}")));
    }
    let counters = state.metrics.counters();
    assert_eq!(counters.enqueued, total as u64, "{counters:?}");
    assert_eq!(counters.claimed, total as u64, "{counters:?}");
    assert_eq!(counters.done, total as u64, "{counters:?}");
    assert_eq!(
        (counters.failed, counters.requeued, counters.cancelled),
        (0, 0, 0)
    );
    let agents = state.list_agents(&[]);
    assert_eq!(agents.len(), CONSUMERS);
    assert!(
        agents
            .iter()
            .all(|a| a.status == AgentStatus::Idle && a.running == 0),
        "{agents:?}"
    );
    let metrics = state.metrics_snapshot();
    assert_eq!(
        metrics_by_status(&metrics),
        BTreeMap::from([(TaskStatus::Done, total as u64)])
    );
    assert_eq!(metrics.parked_claims, 0);
}

// ---------------------------------------------------------------------------------------
// 2. RwLock: readers together, writers alone
// ---------------------------------------------------------------------------------------

/// While one thread holds a read guard of the registry, other readers (and a queue change
/// that only reads the registry) complete; a registry writer waits until the guard goes.
#[test]
fn rwlock_concurrent_reads() {
    const PARALLEL_READERS: usize = 4;
    let (state, _dir) = in_process_state();
    let runtime = current_thread_runtime();
    runtime
        .block_on(state.register_agent("a1".into(), vec!["gpu".into()], 2))
        .unwrap();

    let holder = Arc::clone(&state);
    let guard = HeldLock::new(move |on_held| holder.with_registry_read(on_held));

    // Readers, started together, all finish while the read guard is still held.
    let start = Arc::new(Barrier::new(PARALLEL_READERS));
    let (read_tx, read_rx) = mpsc::channel();
    for _ in 0..PARALLEL_READERS {
        let state = Arc::clone(&state);
        let start = Arc::clone(&start);
        let read_tx = read_tx.clone();
        thread::spawn(move || {
            start.wait();
            let agents = state.list_agents(&[]);
            let a1 = state.get_agent("a1");
            let _ = read_tx.send((agents, a1));
        });
    }
    drop(read_tx);
    for _ in 0..PARALLEL_READERS {
        let (agents, a1) = read_rx
            .recv_timeout(GENEROUS)
            .expect("a reader was blocked by another reader's guard");
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].name, "a1");
        let a1 = a1.unwrap();
        assert_eq!(a1.capabilities, vec!["gpu".to_string()]);
        assert_eq!(a1.status, AgentStatus::Idle);
    }
    // A queue change reads the registry too: it proceeds beside the held read guard.
    let state_for_add = Arc::clone(&state);
    let added = spawn_call(move |rt| {
        rt.block_on(state_for_add.add_tasks(vec![NewTask::new("beside a reader")]))
    })
    .recv_timeout(GENEROUS)
    .expect("a queue change was blocked by a registry read guard")
    .unwrap();
    assert_eq!(added.len(), 1);

    // A registry writer must wait for the read guard.
    let state_for_write = Arc::clone(&state);
    let registered =
        spawn_call(move |rt| rt.block_on(state_for_write.register_agent("a2".into(), vec![], 1)));
    match registered.recv_timeout(BLOCKED) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(result) => panic!("register_agent completed while a read guard was held: {result:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("register_agent panicked"),
    }
    // (No reader here: std's RwLock queues new readers behind a waiting writer.)
    guard.release();
    let a2 = registered
        .recv_timeout(GENEROUS)
        .expect("the writer did not complete once the read guard was released")
        .unwrap();
    assert_eq!(a2.name, "a2");
    let names: Vec<String> = state.list_agents(&[]).into_iter().map(|a| a.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"a1".to_string()) && names.contains(&"a2".to_string()));
}

// ---------------------------------------------------------------------------------------
// 3. Mutex: no write lost or torn
// ---------------------------------------------------------------------------------------

const WRITERS: usize = 4;
const ADDS_PER_WRITER: usize = 60;
const CLAIMS_PER_WRITER: usize = 30;

/// Threads adding, claiming, finishing and failing at once lose and tear nothing: ids are
/// unique and contiguous, every id carries the title its adder sent, and the counters and
/// per-status counts equal the operations made. Holding the queue mutex blocks a writer.
#[test]
fn mutex_exclusive_writes() {
    let (state, _dir) = in_process_state();
    let shared = Arc::clone(&state);
    let results = within(GENEROUS, "mutex_exclusive_writes", move || {
        let start = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let state = Arc::clone(&shared);
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    let runtime = current_thread_runtime();
                    let agent = format!("m{w}");
                    runtime
                        .block_on(state.register_agent(agent.clone(), vec![], 1))
                        .unwrap();
                    start.wait();
                    let mut titles = Vec::new();
                    let mut claimed = Vec::new();
                    let (mut done, mut failed) = (0u64, 0u64);
                    // Two adds per claim: every claim finds a queued task (claims made so
                    // far never outnumber the tasks added so far).
                    for i in 0..ADDS_PER_WRITER {
                        let title = format!("m{w}-t{i}");
                        let ids = runtime
                            .block_on(state.add_tasks(vec![NewTask::new(title.clone())]))
                            .unwrap();
                        assert_eq!(ids.len(), 1);
                        titles.push((ids[0], title));
                        if i % 2 == 1 {
                            let outcome = runtime
                                .block_on(state.claim(agent.clone(), vec![], false, None))
                                .unwrap();
                            let ClaimOutcome::Claimed(task) = outcome else {
                                panic!("nothing to claim with tasks queued");
                            };
                            let finished = if claimed.len() % 2 == 0 {
                                done += 1;
                                runtime.block_on(state.complete(
                                    task.id,
                                    Some(agent.clone()),
                                    Some(agent.clone()),
                                    None,
                                ))
                            } else {
                                failed += 1;
                                runtime.block_on(state.fail(
                                    task.id,
                                    Some(agent.clone()),
                                    false,
                                    Some(agent.clone()),
                                    None,
                                ))
                            };
                            finished.unwrap();
                            claimed.push(task.id);
                        }
                    }
                    (titles, claimed, done, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });

    let total = WRITERS * ADDS_PER_WRITER;
    let claims = WRITERS * CLAIMS_PER_WRITER;
    let mut titles = HashMap::new();
    let mut claimed = HashSet::new();
    let (mut done, mut failed) = (0, 0);
    for (writer_titles, writer_claims, writer_done, writer_failed) in results {
        for (id, title) in writer_titles {
            assert!(
                titles.insert(id, title).is_none(),
                "id {id} handed out twice"
            );
        }
        for id in writer_claims {
            assert!(claimed.insert(id), "task {id} claimed twice");
        }
        done += writer_done;
        failed += writer_failed;
    }
    assert_eq!(titles.len(), total);
    assert_eq!(claimed.len(), claims);
    let first = *titles.keys().min().unwrap();
    let last = *titles.keys().max().unwrap();
    assert_eq!(
        (last - first + 1) as usize,
        total,
        "ids are not contiguous: an id allocation was lost"
    );

    let tasks = all_tasks(&state);
    assert_eq!(tasks.len(), total);
    for task in &tasks {
        assert_eq!(
            Some(&task.title),
            titles.get(&task.id),
            "torn task {task:?}"
        );
        if claimed.contains(&task.id) {
            let holder = task.agent.clone().unwrap();
            match task.status {
                TaskStatus::Done => assert_eq!(task.result.as_ref(), Some(&holder)),
                TaskStatus::Failed => assert_eq!(task.error.as_ref(), Some(&holder)),
                other => panic!("claimed task {} is {other:?}", task.id),
            }
        } else {
            assert_eq!(task.status, TaskStatus::Queued);
        }
    }
    let counts = by_status(&tasks);
    let expected = BTreeMap::from([
        (TaskStatus::Queued, (total - claims) as u64),
        (TaskStatus::Done, done),
        (TaskStatus::Failed, failed),
    ]);
    assert_eq!(counts, expected);
    assert_eq!(done + failed, claims as u64);
    assert_eq!(metrics_by_status(&state.metrics_snapshot()), expected);
    let counters = state.metrics.counters();
    assert_eq!(counters.enqueued, total as u64, "{counters:?}");
    assert_eq!(counters.claimed, claims as u64, "{counters:?}");
    assert_eq!(counters.done, done, "{counters:?}");
    assert_eq!(counters.failed, failed, "{counters:?}");
    assert_eq!((counters.requeued, counters.cancelled), (0, 0));

    // Holding the queue mutex blocks a writer until it is released.
    let holder = Arc::clone(&state);
    let guard = HeldLock::new(move |on_held| holder.with_queue_lock(on_held));
    let state_for_add = Arc::clone(&state);
    let added = spawn_call(move |rt| {
        rt.block_on(state_for_add.add_tasks(vec![NewTask::new("after the guard")]))
    });
    match added.recv_timeout(BLOCKED) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(result) => panic!("add_tasks completed while the queue lock was held: {result:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("add_tasks panicked"),
    }
    guard.release();
    let id = added
        .recv_timeout(GENEROUS)
        .expect("the writer did not complete once the queue lock was released")
        .unwrap()[0];
    assert_eq!(id, last + 1);
    assert_eq!(state.get_task(id).unwrap().title, "after the guard");
    assert_eq!(state.metrics.counters().enqueued, total as u64 + 1);
}

// ---------------------------------------------------------------------------------------
// 4. Handlers sharing the state: a real daemon, several connections
// ---------------------------------------------------------------------------------------

fn connect(d: &TestDaemon) -> Client {
    Client::connect(&d.socket).unwrap_or_else(|e| panic!("cannot connect: {e:?}"))
}

#[track_caller]
fn call(client: &mut Client, request: Request) -> Response {
    match client.call(&request) {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => panic!("{request:?} refused: {error}"),
        Err(e) => panic!("{request:?} failed: {e:?}"),
    }
}

#[track_caller]
fn get_task(client: &mut Client, id: TaskId) -> Task {
    match call(client, Request::GetTask { id }) {
        Response::Task(task) => task,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[track_caller]
fn list(client: &mut Client) -> Vec<Task> {
    match call(client, Request::ListTasks(TaskFilter::default())) {
        Response::Tasks(tasks) => tasks,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[track_caller]
fn metrics(client: &mut Client) -> MetricsSnapshot {
    match call(client, Request::Metrics) {
        Response::Metrics(metrics) => metrics,
        other => panic!("unexpected answer {other:?}"),
    }
}

fn add_request(titles: impl IntoIterator<Item = String>) -> Request {
    Request::AddTasks {
        tasks: titles.into_iter().map(NewTask::new).collect(),
    }
}

const MIXERS: usize = 4;
const MIX_ROUNDS: usize = 15;
const MIX_CLAIMS: usize = 5;
const PING_PONGS: usize = 20;

/// Connections to one daemon share its state: what one writes, every other sees in its
/// next answer (and its own pipelined requests see it too), and metrics agree with lists.
#[test]
fn shared_state_integration() {
    let d = TestDaemon::start();
    let mut a = connect(&d);
    let mut b = connect(&d);
    let mut c = connect(&d);
    let mut m = connect(&d);

    // An agent registered on one connection is visible on another.
    let registered = call(
        &mut a,
        Request::RegisterAgent {
            name: "w1".into(),
            capabilities: vec![],
            max_tasks: 1,
        },
    );
    assert!(matches!(registered, Response::Agent(ref agent) if agent.name == "w1"));
    match call(&mut b, Request::GetAgent { name: "w1".into() }) {
        Response::Agent(agent) => assert_eq!(agent.status, AgentStatus::Idle),
        other => panic!("unexpected answer {other:?}"),
    }

    // Pipelined on one connection: the later requests see the earlier writes.
    let mut answers: Vec<Result<Response, ErrorBody>> = Vec::new();
    a.call_many(
        &[
            add_request((0..3).map(|i| format!("first-{i}"))),
            add_request(["first-3".to_string()]),
            Request::ListTasks(TaskFilter::default()),
            Request::Metrics,
        ],
        &mut answers,
    )
    .unwrap();
    let answers: Vec<Response> = answers.into_iter().map(Result::unwrap).collect();
    let mut first_ids: Vec<TaskId> = Vec::new();
    for answer in &answers[..2] {
        let Response::Added(ids) = answer else {
            panic!("unexpected answer {answer:?}")
        };
        first_ids.extend(ids);
    }
    assert_eq!(first_ids.len(), 4);
    let Response::Tasks(listed) = &answers[2] else {
        panic!("unexpected answer {:?}", answers[2])
    };
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), first_ids);
    let Response::Metrics(snapshot) = &answers[3] else {
        panic!("unexpected answer {:?}", answers[3])
    };
    assert_eq!(snapshot.counters.enqueued, 4);

    // ...and so does every other connection.
    let seen_by_b = list(&mut b);
    assert_eq!(
        seen_by_b.iter().map(|t| t.id).collect::<Vec<_>>(),
        first_ids
    );
    assert!(seen_by_b.iter().all(|t| t.status == TaskStatus::Queued));

    // A claim on one connection shows on the others at once.
    let claimed = match call(
        &mut c,
        Request::Claim {
            agent: "w1".into(),
            queues: vec![],
            wait_ms: 0,
            done: None,
        },
    ) {
        Response::Claimed(Some(task)) => task,
        other => panic!("unexpected answer {other:?}"),
    };
    assert_eq!(claimed.id, first_ids[0], "not FIFO");
    let seen_by_a = get_task(&mut a, claimed.id);
    assert_eq!(seen_by_a.status, TaskStatus::Running);
    assert_eq!(seen_by_a.agent.as_deref(), Some("w1"));
    match call(&mut m, Request::GetAgent { name: "w1".into() }) {
        Response::Agent(agent) => {
            assert_eq!((agent.status, agent.running), (AgentStatus::Busy, 1))
        }
        other => panic!("unexpected answer {other:?}"),
    }

    // A wait on one connection ends with a completion made on another.
    thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            call(
                &mut a,
                Request::Wait {
                    ids: vec![claimed.id],
                    timeout_ms: Some(GENEROUS.as_millis() as u64),
                },
            )
        });
        let completed = call(
            &mut b,
            Request::Complete {
                id: claimed.id,
                result: Some("r".into()),
                agent: Some("w1".into()),
                run: None,
            },
        );
        assert!(matches!(completed, Response::Task(ref t) if t.status == TaskStatus::Done));
        match waiter.join().unwrap() {
            Response::Waited { tasks, timed_out } => {
                assert!(!timed_out);
                assert_eq!(
                    (tasks[0].id, tasks[0].status),
                    (claimed.id, TaskStatus::Done)
                );
            }
            other => panic!("unexpected answer {other:?}"),
        }
    });

    // Ping-pong between two connections on two threads: each sees the other's last write.
    thread::scope(|scope| {
        let (to_b, from_a) = mpsc::channel::<TaskId>();
        let (to_a, from_b) = mpsc::channel::<TaskId>();
        let a = &mut a;
        let b = &mut b;
        scope.spawn(move || {
            for i in 0..PING_PONGS {
                let Response::Added(ids) = call(a, add_request([format!("pp-{i}")])) else {
                    panic!("add refused")
                };
                to_b.send(ids[0]).unwrap();
                let id = from_b.recv_timeout(GENEROUS).unwrap();
                assert_eq!(get_task(a, id).status, TaskStatus::Cancelled);
            }
        });
        scope.spawn(move || {
            for _ in 0..PING_PONGS {
                let id = from_a.recv_timeout(GENEROUS).unwrap();
                assert_eq!(get_task(b, id).status, TaskStatus::Queued);
                let cancelled = call(b, Request::Cancel { id });
                assert!(matches!(cancelled, Response::Cancelled { ref task, .. } if task.id == id));
                to_a.send(id).unwrap();
            }
        });
    });

    // Several connections pipelining mixed requests at once, then claiming concurrently.
    let mixed: Vec<(Vec<TaskId>, Vec<TaskId>)> = thread::scope(|scope| {
        let start = Arc::new(Barrier::new(MIXERS));
        let handles: Vec<_> = (0..MIXERS)
            .map(|k| {
                let d = &d;
                let start = Arc::clone(&start);
                scope.spawn(move || {
                    let mut client = connect(d);
                    let agent = format!("p{k}");
                    let mut requests = vec![Request::RegisterAgent {
                        name: agent.clone(),
                        capabilities: vec![],
                        max_tasks: 1,
                    }];
                    for r in 0..MIX_ROUNDS {
                        requests.push(add_request([format!("p{k}-{r}a"), format!("p{k}-{r}b")]));
                        requests.push(Request::Heartbeat {
                            name: agent.clone(),
                            tasks: vec![],
                            renew: Renew::AllHeld,
                        });
                        requests.push(Request::ListTasks(TaskFilter {
                            limit: Some(5),
                            ..TaskFilter::default()
                        }));
                        requests.push(Request::Metrics);
                    }
                    requests.push(Request::ListTasks(TaskFilter::default()));
                    start.wait();
                    let mut answers = Vec::new();
                    client.call_many(&requests, &mut answers).unwrap();
                    assert_eq!(answers.len(), requests.len());
                    let mut added = Vec::new();
                    for answer in &answers {
                        match answer {
                            Ok(Response::Added(ids)) => added.extend(ids),
                            Ok(_) => {}
                            Err(e) => panic!("pipelined request refused: {e}"),
                        }
                    }
                    assert_eq!(added.len(), 2 * MIX_ROUNDS);
                    let Some(Ok(Response::Tasks(listed))) = answers.last() else {
                        panic!("no final list")
                    };
                    let listed: HashSet<TaskId> = listed.iter().map(|t| t.id).collect();
                    assert!(
                        added.iter().all(|id| listed.contains(id)),
                        "a pipelined list missed this connection's own adds"
                    );
                    // Claim, finishing the previous task in the same request.
                    let mut claimed: Vec<TaskId> = Vec::new();
                    for _ in 0..MIX_CLAIMS {
                        let done = claimed.last().map(|&id| DoneFirst {
                            id,
                            result: Some(agent.clone()),
                            run: None,
                        });
                        let answer = call(
                            &mut client,
                            Request::Claim {
                                agent: agent.clone(),
                                queues: vec![],
                                wait_ms: 0,
                                done,
                            },
                        );
                        let Response::Claimed(Some(task)) = answer else {
                            panic!("nothing claimed: {answer:?}")
                        };
                        claimed.push(task.id);
                    }
                    let last = *claimed.last().unwrap();
                    call(
                        &mut client,
                        Request::Complete {
                            id: last,
                            result: Some(agent.clone()),
                            agent: Some(agent.clone()),
                            run: None,
                        },
                    );
                    (added, claimed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut all_claimed = HashSet::new();
    let mut mixed_added = 0;
    for (added, claimed) in &mixed {
        mixed_added += added.len();
        for id in claimed {
            assert!(all_claimed.insert(*id), "task {id} claimed twice");
        }
    }

    // Every connection sees the same tasks, and the metrics agree with them.
    let reference = list(&mut m);
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(list(client), reference);
    }
    let expected_total = first_ids.len() + PING_PONGS + mixed_added;
    assert_eq!(reference.len(), expected_total);
    let counts = by_status(&reference);
    let claims = 1 + MIXERS * MIX_CLAIMS;
    assert_eq!(counts.get(&TaskStatus::Done).copied(), Some(claims as u64));
    assert_eq!(
        counts.get(&TaskStatus::Cancelled).copied(),
        Some(PING_PONGS as u64)
    );
    assert_eq!(
        counts.get(&TaskStatus::Queued).copied(),
        Some((expected_total - claims - PING_PONGS) as u64)
    );
    for task in &reference {
        if all_claimed.contains(&task.id) {
            assert_eq!(task.status, TaskStatus::Done);
            assert_eq!(
                task.result, task.agent,
                "finished by the agent that claimed it"
            );
        }
    }
    let snapshot = metrics(&mut m);
    assert_eq!(metrics_by_status(&snapshot), counts);
    assert_eq!(snapshot.counters.enqueued, expected_total as u64);
    assert_eq!(snapshot.counters.claimed, claims as u64);
    assert_eq!(snapshot.counters.done, claims as u64);
    assert_eq!(snapshot.counters.cancelled, PING_PONGS as u64);
    assert_eq!(
        reference.iter().filter(|t| t.attempts > 0).count(),
        claims,
        "attempts disagree with the claimed counter"
    );
    let idle = snapshot
        .agents
        .iter()
        .find(|(status, _)| *status == AgentStatus::Idle)
        .map(|(_, n)| *n);
    assert_eq!(idle, Some(1 + MIXERS as u64), "{:?}", snapshot.agents);
    let agents = match call(&mut c, Request::ListAgents { statuses: vec![] }) {
        Response::Agents(agents) => agents,
        other => panic!("unexpected answer {other:?}"),
    };
    assert_eq!(agents.len(), 1 + MIXERS);
    assert!(agents.iter().all(|a| a.running == 0), "{agents:?}");
}

// ---------------------------------------------------------------------------------------
// 5. Stress with a deadlock watchdog
// ---------------------------------------------------------------------------------------

const STRESS_WORKERS: usize = 16;
const STRESS_OPS: usize = 300;
const PROBE_ROUNDS: usize = 2_000;

#[derive(Debug, Default)]
struct Tally {
    added: u64,
    done: u64,
    cancelled: u64,
    claimed: u64,
}

/// One stress worker: a deterministic mix of every kind of request, as agent `s{w}`.
async fn stress_worker(state: Arc<AppState>, w: usize) -> Tally {
    let agent = format!("s{w}");
    state
        .register_agent(agent.clone(), vec![], 1)
        .await
        .unwrap();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1000_0001));
    let mut tally = Tally::default();
    let mut mine: Vec<TaskId> = Vec::new();
    let mut current: Option<TaskId> = None;
    let mut paused = false;
    for op in 0..STRESS_OPS {
        match rng.next() % 14 {
            0..=2 => {
                let n = 1 + rng.next() % 3;
                let batch = (0..n)
                    .map(|i| {
                        let mut task = NewTask::new(format!("s{w}-{op}-{i}"));
                        task.priority = (rng.next() % 3) as i32;
                        task
                    })
                    .collect();
                let ids = state.add_tasks(batch).await.unwrap();
                assert_eq!(ids.len() as u64, n);
                tally.added += n;
                mine.extend(ids);
            }
            3..=5 => {
                // Claim, finishing the current task in the same request.
                let done = current.map(|id| DoneFirst {
                    id,
                    result: Some(agent.clone()),
                    run: None,
                });
                match state.claim(agent.clone(), vec![], false, done).await {
                    Ok(outcome) => {
                        if current.take().is_some() {
                            tally.done += 1;
                        }
                        match outcome {
                            ClaimOutcome::Claimed(task) => {
                                assert!(!paused, "a paused agent claimed {task:?}");
                                tally.claimed += 1;
                                current = Some(task.id);
                            }
                            ClaimOutcome::Empty => {}
                            ClaimOutcome::Unavailable(status) => {
                                assert!(paused, "{agent} not paused, yet {status}");
                                assert_eq!(status, AgentStatus::Paused);
                            }
                            ClaimOutcome::Parked(_) => panic!("a non-blocking claim parked"),
                            ClaimOutcome::AtLimit { running, .. } => {
                                panic!("{agent} at its limit, holding {running:?}: a lost task")
                            }
                        }
                    }
                    // The current task was cancelled by someone: nothing changed.
                    Err(e) if is_race_loss(&e) && current.is_some() => current = None,
                    Err(e) => panic!("claim by {agent} refused: {e}"),
                }
            }
            6 => {
                let view = state
                    .heartbeat(agent.clone(), vec![], Renew::AllHeld)
                    .await
                    .unwrap()
                    .agent;
                // Someone may have cancelled the current task meanwhile, never the reverse.
                assert!(view.running <= u32::from(current.is_some()), "{view:?}");
            }
            7 => {
                paused = !paused;
                let status = if paused {
                    AgentStatus::Paused
                } else {
                    AgentStatus::Idle
                };
                let view = state.set_agent_status(agent.clone(), status).await.unwrap();
                assert_eq!(view.status == AgentStatus::Paused, paused);
            }
            8 => {
                let filter = TaskFilter {
                    limit: Some(50),
                    after: mine.first().map(|id| id.saturating_sub(1)),
                    ..TaskFilter::default()
                };
                let tasks = state.list_tasks(&filter).unwrap();
                assert!(tasks.windows(2).all(|p| p[0].id < p[1].id), "list order");
                if let Some(&first) = mine.first() {
                    assert_eq!(tasks.first().map(|t| t.id), Some(first), "own add missing");
                }
            }
            9 => {
                // Only this worker changes its own status: it reads its own writes.
                let me = state.get_agent(&agent).unwrap();
                assert_eq!(me.status == AgentStatus::Paused, paused, "{me:?}");
                assert!(state.list_agents(&[]).iter().any(|a| a.name == agent));
                let metrics = state.metrics_snapshot();
                let counted: u64 = metrics.tasks.iter().map(|(_, _, n)| n).sum();
                assert!(
                    counted >= mine.len() as u64,
                    "own adds missing from metrics"
                );
            }
            10 if !mine.is_empty() => {
                let id = mine[(rng.next() % mine.len() as u64) as usize];
                match state.cancel(id).await {
                    Ok((task, _dependents)) => {
                        assert_eq!(task.status, TaskStatus::Cancelled);
                        tally.cancelled += 1;
                    }
                    Err(e) if e.kind == ErrorKind::Conflict => {} // already ended
                    Err(e) => panic!("cancel {id}: {e}"),
                }
            }
            11 if !mine.is_empty() => {
                let id = mine[(rng.next() % mine.len() as u64) as usize];
                let (tasks, timed_out) = state.wait(vec![id], Some(Duration::ZERO)).await.unwrap();
                assert_eq!(tasks.len(), 1);
                if !timed_out {
                    assert!(tasks[0].status.is_finished(), "{:?}", tasks[0]);
                }
            }
            12 if current.is_none() => {
                // A blocking claim given up at once: a hand-off that lands meanwhile must
                // go back to the queue, not be lost.
                match state
                    .claim(agent.clone(), vec![], true, None)
                    .await
                    .unwrap()
                {
                    ClaimOutcome::Claimed(task) => {
                        tally.claimed += 1;
                        current = Some(task.id);
                    }
                    ClaimOutcome::Parked(mut ticket) => {
                        let got =
                            tokio::time::timeout(Duration::from_millis(1), ticket.recv()).await;
                        if let Ok(task) = got {
                            let task = task.unwrap();
                            tally.claimed += 1;
                            current = Some(task.id);
                        }
                    }
                    ClaimOutcome::Empty => panic!("a blocking claim came back empty"),
                    ClaimOutcome::Unavailable(status) => {
                        panic!("a blocking claim by {agent} came back {status}")
                    }
                    ClaimOutcome::AtLimit { running, .. } => {
                        panic!("{agent} at its limit, holding {running:?}: a lost task")
                    }
                }
            }
            _ => {
                state.fire_due().await.unwrap();
                state.arm_timer();
            }
        }
        if op % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    if let Some(id) = current {
        match state.complete(id, None, Some(agent.clone()), None).await {
            Ok(_) => tally.done += 1,
            Err(e) if is_race_loss(&e) => {}
            Err(e) => panic!("final done of {id}: {e}"),
        }
    }
    tally
}

/// A mixed stress from many tasks (plus a thread taking both locks in the documented
/// order through the test hooks) finishes: a lock-order inversion anywhere would deadlock
/// against it and trip the watchdog. Afterwards, the counts still add up.
#[test]
fn shared_state_stress() {
    let (state, _dir) = in_process_state();
    let shared = Arc::clone(&state);
    let tally = within(WATCHDOG, "the shared-state stress", move || {
        let state = shared;
        let probes = Arc::new(AtomicUsize::new(0));
        let probe = {
            let state = Arc::clone(&state);
            let probes = Arc::clone(&probes);
            thread::spawn(move || {
                for _ in 0..PROBE_ROUNDS {
                    // Registry, then queue: the documented order.
                    state.with_registry_read(|| {
                        state.with_queue_lock(|| {
                            probes.fetch_add(1, Ordering::Relaxed);
                        })
                    });
                    thread::yield_now();
                }
            })
        };
        let tallies = multi_thread_runtime().block_on(async {
            let workers: Vec<_> = (0..STRESS_WORKERS)
                .map(|w| tokio::spawn(stress_worker(Arc::clone(&state), w)))
                .collect();
            let mut tallies = Vec::new();
            for worker in workers {
                tallies.push(worker.await.unwrap());
            }
            tallies
        });
        probe.join().unwrap();
        assert_eq!(probes.load(Ordering::Relaxed), PROBE_ROUNDS);
        let mut total = Tally::default();
        for t in tallies {
            total.added += t.added;
            total.done += t.done;
            total.cancelled += t.cancelled;
            total.claimed += t.claimed;
        }
        total
    });

    assert!(
        tally.added > 0 && tally.claimed > 0 && tally.done > 0,
        "{tally:?}"
    );
    let tasks = all_tasks(&state);
    assert_eq!(tasks.len() as u64, tally.added);
    let ids: HashSet<TaskId> = tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), tasks.len());
    let counts = by_status(&tasks);
    let count = |status| counts.get(&status).copied().unwrap_or(0);
    assert_eq!(count(TaskStatus::Done), tally.done, "{counts:?} {tally:?}");
    assert_eq!(count(TaskStatus::Cancelled), tally.cancelled);
    assert_eq!(
        count(TaskStatus::Running),
        0,
        "a task stayed running: {counts:?}"
    );
    assert_eq!(
        count(TaskStatus::Queued),
        tally.added - tally.done - tally.cancelled
    );
    let snapshot = state.metrics_snapshot();
    assert_eq!(metrics_by_status(&snapshot), counts);
    let counters = snapshot.counters;
    assert_eq!(counters.enqueued, tally.added, "{counters:?}");
    assert_eq!(counters.done, tally.done, "{counters:?}");
    assert_eq!(counters.cancelled, tally.cancelled, "{counters:?}");
    assert_eq!(counters.failed, 0, "{counters:?}");
    // Hand-offs to claims given up at once were counted and then put back.
    assert!(counters.claimed >= tally.claimed, "{counters:?} {tally:?}");
    let agents = state.list_agents(&[]);
    assert_eq!(agents.len(), STRESS_WORKERS);
    assert!(agents.iter().all(|a| a.running == 0), "{agents:?}");
}
