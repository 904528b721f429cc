//! Leases, silent agents, backoff and delays under tokio's paused time: the daemon's state
//! (with its real SQLite store) follows tokio's clock, and `tokio::time::advance` moves it
//! exactly, with no sleeping.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::advance;
use vapora::daemon::clock::Clock;
use vapora::daemon::queue::Policy;
use vapora::daemon::state::{AppState, ClaimOutcome, Lifecycle};
use vapora::daemon::store::{Recovery, Store, SyncMode};
use vapora::protocol::{NewTask, Renew, TaskStatus};

const LEASE: Duration = Duration::from_secs(300);
const TTL: Duration = Duration::from_secs(60);
const BACKOFF: Duration = Duration::from_secs(10);

struct Daemon {
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

async fn daemon() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let (store, snapshot, writer) =
        Store::open(&dir.path().join("vapora.db"), SyncMode::Normal).unwrap();
    let lifecycle = Lifecycle {
        policy: Policy {
            lease_ms: LEASE.as_millis() as u64,
            retry_backoff_ms: BACKOFF.as_millis() as u64,
        },
        heartbeat_ttl: TTL,
        clock: Clock::following_tokio(),
    };
    let state = AppState::new(
        "test".into(),
        snapshot,
        store,
        Duration::from_secs(3600),
        lifecycle,
        vapora::protocol::limits::Limits::default(),
    );
    let recovery: std::sync::Weak<dyn Recovery> = {
        let weak: std::sync::Weak<AppState> = Arc::downgrade(&state);
        weak
    };
    writer.spawn(&state.store, recovery).unwrap();
    Daemon { state, _dir: dir }
}

impl Daemon {
    async fn add(&self, task: NewTask) -> u64 {
        self.state.add_tasks(vec![task]).await.unwrap()[0]
    }

    async fn claim(&self, agent: &str) -> u64 {
        match self
            .state
            .claim(agent.into(), vec![], false, None)
            .await
            .unwrap()
        {
            ClaimOutcome::Claimed(task) => task.id,
            _ => panic!("nothing claimed"),
        }
    }

    /// Registers agent w1 and has it claim a new task.
    async fn running_on_w1(&self) -> u64 {
        self.state
            .register_agent("w1".into(), vec![], 1)
            .await
            .unwrap();
        let id = self.add(NewTask::new("t")).await;
        assert_eq!(self.claim("w1").await, id);
        id
    }

    async fn after(&self, elapsed: Duration) {
        advance(elapsed).await;
        self.state.fire_due().await.unwrap();
    }

    fn status(&self, id: u64) -> TaskStatus {
        self.state.get_task(id).unwrap().status
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_runs_out_exactly_at_its_end() {
    let d = daemon().await;
    let id = d.running_on_w1().await;
    // Keep the agent itself alive; only the lease is tested here.
    for _ in 0..9 {
        d.after(Duration::from_secs(30) - Duration::from_millis(1))
            .await;
        if d.status(id) != TaskStatus::Running {
            break;
        }
        d.state
            .register_agent("w1".into(), vec![], 1)
            .await
            .unwrap(); // not a lease renewal
    }
    let task = d.state.get_task(id).unwrap();
    assert_eq!(
        task.status,
        TaskStatus::Running,
        "expired before its lease ran out"
    );
    d.after(Duration::from_secs(31)).await;
    let task = d.state.get_task(id).unwrap();
    assert_eq!((task.status, task.attempts), (TaskStatus::Queued, 1));
    assert_eq!(task.error.as_deref(), Some("lease expired on agent w1"));
}

#[tokio::test(start_paused = true)]
async fn heartbeats_renew_leases() {
    let d = daemon().await;
    let id = d.running_on_w1().await;
    for _ in 0..20 {
        d.after(Duration::from_secs(50)).await;
        d.state
            .heartbeat("w1".into(), vec![], Renew::AllHeld)
            .await
            .unwrap();
    }
    assert_eq!(
        d.status(id),
        TaskStatus::Running,
        "1000 s of heartbeats kept it"
    );
    d.after(LEASE.min(TTL) + Duration::from_millis(1)).await;
    assert_eq!(d.status(id), TaskStatus::Queued);
}

#[tokio::test(start_paused = true)]
async fn a_silent_agent_goes_offline_after_its_ttl() {
    let d = daemon().await;
    let id = d.running_on_w1().await;
    d.after(TTL - Duration::from_millis(1)).await;
    assert_eq!(d.status(id), TaskStatus::Running);
    d.after(Duration::from_millis(1)).await;
    let task = d.state.get_task(id).unwrap();
    assert_eq!((task.status, task.attempts), (TaskStatus::Queued, 1));
    let agent = d.state.get_agent("w1").unwrap();
    assert_eq!(agent.status, vapora::protocol::AgentStatus::Offline);
    // Its next request brings it back.
    d.state
        .heartbeat("w1".into(), vec![], Renew::AllHeld)
        .await
        .unwrap();
    assert_eq!(
        d.state.get_agent("w1").unwrap().status,
        vapora::protocol::AgentStatus::Idle
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_waits_out_its_backoff() {
    let d = daemon().await;
    let id = d.running_on_w1().await;
    let failed = d
        .state
        .fail(id, Some("boom".into()), true, None, None)
        .await
        .unwrap();
    assert_eq!(failed.status, TaskStatus::Scheduled);
    // The first backoff is 10 s with ±25 % jitter.
    d.after(BACKOFF * 3 / 4 - Duration::from_millis(1)).await;
    assert_eq!(d.status(id), TaskStatus::Scheduled);
    d.after(BACKOFF / 2 + Duration::from_millis(2)).await;
    assert_eq!(d.status(id), TaskStatus::Queued);
}

#[tokio::test(start_paused = true)]
async fn a_delayed_task_becomes_claimable_when_due() {
    let d = daemon().await;
    let mut task = NewTask::new("later");
    task.run_at = Some(d.state.clock.now() + 90_000);
    let id = d.add(task).await;
    assert_eq!(d.state.arm_timer(), Some(d.state.clock.now() + 90_000));
    d.after(Duration::from_secs(89)).await;
    assert_eq!(d.status(id), TaskStatus::Scheduled);
    d.after(Duration::from_secs(1)).await;
    assert_eq!(d.status(id), TaskStatus::Queued);
}

/// The lost-claim case: the agent holds a task nobody runs, and goes on claiming. Claims keep
/// the agent alive but renew no lease, so the task comes back after one lease with its
/// attempt counted, and the agent's next claim gets work.
#[tokio::test(start_paused = true)]
async fn claims_keep_the_agent_alive_but_renew_no_lease() {
    let d = daemon().await;
    let lost = d.running_on_w1().await;
    let next = d.add(NewTask::new("next")).await;
    for _ in 0..9 {
        d.after(Duration::from_secs(30)).await;
        match d.state.claim("w1".into(), vec![], false, None).await {
            Ok(ClaimOutcome::AtLimit { max_tasks, running }) => {
                assert_eq!((max_tasks, running), (1, vec![lost]));
            }
            other => panic!("a claim at the limit must say so: {:?}", other.is_ok()),
        }
    }
    assert_eq!(d.state.get_agent("w1").unwrap().status.as_str(), "busy");
    d.after(Duration::from_secs(31)).await;
    let task = d.state.get_task(lost).unwrap();
    assert_eq!((task.status, task.attempts), (TaskStatus::Queued, 1));
    // Back at the end of the queue, as after any expired lease: the next claim gets work.
    assert_eq!(d.claim("w1").await, next);
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_naming_tasks_renews_those_only() {
    let d = daemon().await;
    d.state
        .register_agent("w1".into(), vec![], 2)
        .await
        .unwrap();
    let ran = d.add(NewTask::new("ran")).await;
    let lost = d.add(NewTask::new("lost")).await;
    assert_eq!(d.claim("w1").await, ran);
    assert_eq!(d.claim("w1").await, lost);
    for _ in 0..12 {
        d.after(Duration::from_secs(50)).await;
        if d.status(lost) != TaskStatus::Running {
            break;
        }
        let report = d
            .state
            .heartbeat("w1".into(), vec![ran], Renew::Named)
            .await
            .unwrap();
        assert_eq!(report.renewed, vec![ran]);
        assert!(report.not_held.is_empty() && report.released.is_empty());
    }
    assert_eq!(d.status(ran), TaskStatus::Running, "renewed by name");
    let task = d.state.get_task(lost).unwrap();
    assert_eq!((task.status, task.attempts), (TaskStatus::Queued, 1));
    assert_eq!(task.error.as_deref(), Some("lease expired on agent w1"));
    // Named again, the lost task is reported: the worker must stop running it.
    let report = d
        .state
        .heartbeat("w1".into(), vec![ran, lost, 999], Renew::Named)
        .await
        .unwrap();
    assert_eq!(report.renewed, vec![ran]);
    let not_held: Vec<_> = report
        .not_held
        .iter()
        .map(|n| (n.id, n.status, n.agent.clone()))
        .collect();
    assert_eq!(
        not_held,
        vec![(lost, Some(TaskStatus::Queued), None), (999, None, None)]
    );
}

/// The owner of an agent name recovers orphans within one heartbeat.
#[tokio::test(start_paused = true)]
async fn release_others_gives_back_what_the_owner_does_not_run() {
    let d = daemon().await;
    d.state
        .register_agent("w1".into(), vec![], 3)
        .await
        .unwrap();
    let ids = [
        d.add(NewTask::new("a")).await,
        d.add(NewTask::new("b")).await,
        d.add(NewTask::new("c")).await,
    ];
    for &id in &ids {
        assert_eq!(d.claim("w1").await, id);
    }
    let report = d
        .state
        .heartbeat("w1".into(), vec![ids[1]], Renew::NamedOnly)
        .await
        .unwrap();
    assert_eq!(report.renewed, vec![ids[1]]);
    assert_eq!(report.released, vec![ids[0], ids[2]]);
    assert_eq!(report.agent.running, 1);
    for id in [ids[0], ids[2]] {
        let task = d.state.get_task(id).unwrap();
        assert_eq!((task.status, task.attempts), (TaskStatus::Queued, 1));
    }
    assert_eq!(d.status(ids[1]), TaskStatus::Running);
    // Naming nothing: it runs nothing.
    let report = d
        .state
        .heartbeat("w1".into(), vec![], Renew::NamedOnly)
        .await
        .unwrap();
    assert_eq!(report.released, vec![ids[1]]);
    assert_eq!(report.agent.status.as_str(), "idle");
    // A heartbeat that renews everything names nothing.
    assert!(
        d.state
            .heartbeat("w1".into(), vec![ids[0]], Renew::AllHeld)
            .await
            .is_err()
    );
}

/// Finishing one task is a sign of life from the agent, not from its other tasks.
#[tokio::test(start_paused = true)]
async fn finishing_a_task_does_not_renew_the_others() {
    let d = daemon().await;
    d.state
        .register_agent("w1".into(), vec![], 2)
        .await
        .unwrap();
    let first = d.add(NewTask::new("first")).await;
    let lost = d.add(NewTask::new("lost")).await;
    assert_eq!(d.claim("w1").await, first);
    assert_eq!(d.claim("w1").await, lost);
    d.after(Duration::from_secs(50)).await;
    d.state
        .complete(first, None, Some("w1".into()), None)
        .await
        .unwrap();
    // The agent stays alive (a heartbeat naming no task renews nothing).
    for _ in 0..4 {
        d.after(Duration::from_secs(50)).await;
        d.state
            .heartbeat("w1".into(), vec![], Renew::Named)
            .await
            .unwrap();
    }
    assert_eq!(d.status(lost), TaskStatus::Running);
    d.after(LEASE - Duration::from_secs(250)).await;
    assert_eq!(d.status(lost), TaskStatus::Queued, "its lease ran out");
}
