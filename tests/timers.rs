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
use vapora::protocol::{NewTask, TaskStatus};

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
        d.state.heartbeat("w1".into()).await.unwrap();
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
    d.state.heartbeat("w1".into()).await.unwrap();
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
        .fail(id, Some("boom".into()), true, None)
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
