//! What the dashboard knows: the latest figures from the requests thread, the latest
//! events from the stream, what is selected and which view is open. The UI loop owns it
//! alone; the threads send it messages, and [`super::view`] draws it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::fetch::{Ask, Detail, Report, Snapshot};
use super::keys::Action;
use super::stream::Update;
use super::throughput::Throughput;
use crate::protocol::{Agent, AgentStatus, Event, Millis, Task, TaskId, TaskStatus};

/// Events kept for the screen: more than the tallest one shows.
const EVENTS_KEPT: usize = 500;
/// How long what an event said about a task outweighs a refresh: longer than a refresh's
/// round trip, so that a refresh asked for before the event cannot undo it.
const EVENTS_OUTWEIGH: Duration = Duration::from_secs(3);

/// Is the daemon answering?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not yet known: the first refresh is on its way.
    Connecting,
    Up,
    /// Not answering since then, and why.
    Down {
        reason: String,
        since: Millis,
    },
}

/// Which view is on the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Main,
    /// Cancel this task? (y/n) Asked from the task's view, or from the main one.
    Confirm {
        id: TaskId,
        title: String,
        in_detail: bool,
    },
    /// One task, with the tail of its output.
    Detail(TaskId),
}

/// Which list the arrows move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Tasks,
    Agents,
}

/// One queue's task counts, by status (in [`TaskStatus::ALL`] order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub name: String,
    pub counts: [u64; TaskStatus::ALL.len()],
}

/// A running task as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    pub id: TaskId,
    pub agent: Option<String>,
    pub queue: String,
    /// Unknown for a task seen claimed in the event stream, until the next refresh.
    pub title: Option<String>,
    pub started_at: Option<Millis>,
}

impl From<Task> for RunningTask {
    fn from(task: Task) -> RunningTask {
        RunningTask {
            id: task.id,
            agent: task.agent,
            queue: task.queue,
            title: Some(task.title),
            started_at: task.started_at,
        }
    }
}

/// A selection that follows its item when the list changes: the same task or agent while
/// it is listed, else whatever took its place.
#[derive(Debug, Clone, Default)]
pub struct Selection<K> {
    pub key: Option<K>,
    pub index: usize,
}

impl<K: PartialEq + Clone> Selection<K> {
    /// After the list changed to `keys`.
    fn settle(&mut self, keys: &[K]) {
        if let Some(key) = &self.key
            && let Some(index) = keys.iter().position(|k| k == key)
        {
            self.index = index;
            return;
        }
        self.index = self.index.min(keys.len().saturating_sub(1));
        self.key = keys.get(self.index).cloned();
    }

    fn go(&mut self, keys: &[K], index: usize) {
        self.index = index.min(keys.len().saturating_sub(1));
        self.key = keys.get(self.index).cloned();
    }

    /// A move (up, down, first, last) in `keys`.
    fn apply(&mut self, keys: &[K], action: Action) {
        match action {
            Action::Move(by) => self.go(keys, self.index.saturating_add_signed(by)),
            Action::First => self.go(keys, 0),
            Action::Last => self.go(keys, usize::MAX),
            _ => {}
        }
    }
}

/// What a message or a key did, for the loop.
#[derive(Debug, Default)]
pub struct Outcome {
    pub quit: bool,
    /// A request for the requests thread.
    pub ask: Option<Ask>,
}

#[derive(Debug)]
pub struct Dashboard {
    /// Where the daemon is: its socket, or the `ssh://` address of `--host`.
    pub socket: String,
    pub link: Link,
    /// Why the event stream is down, while it is.
    pub stream_down: Option<String>,
    /// The daemon's uptime at the last refresh, and when that was.
    pub uptime: Option<(u64, Instant)>,
    pub queues: Vec<QueueRow>,
    /// Running tasks, from the counts at the last refresh.
    pub running_total: u64,
    /// The last refresh listed as many running tasks as it asks for: there may be more.
    pub running_cut: bool,
    /// What the event stream said lately about tasks: when, and whether running.
    recent: HashMap<TaskId, (Instant, bool)>,
    pub throughput: Throughput,
    pub agents: Vec<Agent>,
    /// In id order.
    pub running: Vec<RunningTask>,
    /// Newest first.
    pub events: VecDeque<Event>,
    /// Events the daemon dropped for us (`lagged`) since top started.
    pub missed: u64,
    pub focus: Focus,
    pub task_selection: Selection<TaskId>,
    pub agent_selection: Selection<String>,
    pub mode: Mode,
    pub detail: Option<Detail>,
    /// What the last action did (or why nothing happened), and when.
    pub note: Option<(String, Instant)>,
}

impl Dashboard {
    pub fn new(socket: String) -> Dashboard {
        Dashboard {
            socket,
            link: Link::Connecting,
            stream_down: None,
            uptime: None,
            queues: Vec::new(),
            running_total: 0,
            running_cut: false,
            recent: HashMap::new(),
            throughput: Throughput::default(),
            agents: Vec::new(),
            running: Vec::new(),
            events: VecDeque::new(),
            missed: 0,
            focus: Focus::Tasks,
            task_selection: Selection::default(),
            agent_selection: Selection::default(),
            mode: Mode::Main,
            detail: None,
            note: None,
        }
    }

    pub fn selected_task(&self) -> Option<&RunningTask> {
        let id = self.task_selection.key?;
        self.running.iter().find(|task| task.id == id)
    }

    pub fn selected_agent(&self) -> Option<&Agent> {
        let name = self.agent_selection.key.as_deref()?;
        self.agents.iter().find(|agent| agent.name == name)
    }

    fn note(&mut self, text: impl Into<String>) {
        self.note = Some((text.into(), Instant::now()));
    }

    pub fn on_report(&mut self, report: Report) {
        match report {
            Report::Snapshot(snapshot) => self.on_snapshot(*snapshot),
            Report::NotAnswering(reason) => {
                if !matches!(self.link, Link::Down { .. }) {
                    self.link = Link::Down {
                        reason,
                        since: crate::protocol::types::now_millis(),
                    };
                } else if let Link::Down { reason: old, .. } = &mut self.link {
                    *old = reason;
                }
            }
            Report::Note(text) => self.note(text),
            Report::Detail(detail) => {
                if self.mode == Mode::Detail(detail.id) {
                    self.detail = Some(*detail);
                }
            }
        }
    }

    fn on_snapshot(&mut self, snapshot: Snapshot) {
        self.link = Link::Up;
        let metrics = snapshot.metrics;
        self.uptime = Some((metrics.uptime_ms, snapshot.at));
        self.throughput.record(snapshot.at, &metrics.counters);
        let mut queues: Vec<QueueRow> = Vec::new();
        self.running_total = 0;
        // Sorted by queue name (the daemon's order), every non-zero count.
        for (name, status, count) in metrics.tasks {
            if status == TaskStatus::Running {
                self.running_total += count;
            }
            match queues.last_mut() {
                Some(row) if row.name == name => row.counts[status.index()] = count,
                _ => {
                    let mut row = QueueRow {
                        name,
                        counts: [0; TaskStatus::ALL.len()],
                    };
                    row.counts[status.index()] = count;
                    queues.push(row);
                }
            }
        }
        self.queues = queues;
        let mut agents = snapshot.agents;
        // Those that may work first, offline ones last; by name within.
        agents.sort_by(|a, b| {
            (a.status == AgentStatus::Offline, &a.name)
                .cmp(&(b.status == AgentStatus::Offline, &b.name))
        });
        self.agents = agents;
        self.running_cut = snapshot.running.len() >= super::fetch::RUNNING_MOST as usize;
        self.recent
            .retain(|_, (at, _)| at.elapsed() < EVENTS_OUTWEIGH);
        let mut running: Vec<RunningTask> = snapshot
            .running
            .into_iter()
            .filter(|task| !matches!(self.recent.get(&task.id), Some((_, false))))
            .map(RunningTask::from)
            .collect();
        for (id, _) in self.recent.iter().filter(|(_, (_, running))| *running) {
            if running.iter().all(|task| task.id != *id)
                && let Some(seen) = self.running.iter().find(|task| task.id == *id)
            {
                running.push(seen.clone());
            }
        }
        running.sort_by_key(|task| task.id);
        self.running = running;
        self.settle();
    }

    fn settle(&mut self) {
        let ids: Vec<TaskId> = self.running.iter().map(|task| task.id).collect();
        self.task_selection.settle(&ids);
        let names: Vec<String> = self.agents.iter().map(|a| a.name.clone()).collect();
        self.agent_selection.settle(&names);
    }

    pub fn on_stream(&mut self, update: &Update) {
        match update {
            Update::Up => self.stream_down = None,
            Update::Down(reason) => self.stream_down = Some(reason.clone()),
            // Taken from the inbox before the next draw.
            Update::Events => {}
        }
    }

    /// Events from the stream, oldest first. The running list follows them: a task
    /// claimed joins it at once (its title comes with the next refresh), one that ended or
    /// went back leaves it.
    pub fn on_events(&mut self, events: impl IntoIterator<Item = Event>) {
        let now = Instant::now();
        let mut left: HashSet<TaskId> = HashSet::new();
        let mut changed = false;
        for event in events {
            if event.kind == "lagged" {
                self.missed += event.dropped;
            }
            if let Some(id) = event.task {
                let running = event.status.as_deref() == Some(TaskStatus::Running.as_str());
                self.recent.insert(id, (now, running));
                if running {
                    left.remove(&id);
                    if let Err(at) = self.running.binary_search_by_key(&id, |task| task.id) {
                        self.running.insert(
                            at,
                            RunningTask {
                                id,
                                agent: event.agent.clone(),
                                queue: event.queue.clone().unwrap_or_default(),
                                title: None,
                                started_at: Some(event.at),
                            },
                        );
                        changed = true;
                    }
                } else {
                    left.insert(id);
                }
            }
            self.events.push_front(event);
        }
        self.events.truncate(EVENTS_KEPT);
        if !left.is_empty() {
            let before = self.running.len();
            self.running.retain(|task| !left.contains(&task.id));
            changed |= self.running.len() < before;
        }
        if changed {
            self.settle();
        }
    }

    /// Applies what a key asks.
    pub fn apply(&mut self, action: Action) -> Outcome {
        let mut outcome = Outcome::default();
        match action {
            Action::Quit => outcome.quit = true,
            Action::Move(_) | Action::First | Action::Last => self.move_selection(action),
            Action::SwitchFocus => {
                self.focus = match self.focus {
                    Focus::Tasks => Focus::Agents,
                    Focus::Agents => Focus::Tasks,
                };
            }
            Action::Show => match self.selected_task() {
                Some(task) if self.focus == Focus::Tasks => {
                    let id = task.id;
                    self.mode = Mode::Detail(id);
                    self.detail = None;
                    outcome.ask = Some(Ask::Show(Some(id)));
                }
                _ if self.focus == Focus::Agents => {
                    self.note("Enter shows a running task: Tab goes back to them")
                }
                _ => self.note("no running task selected"),
            },
            Action::Back => {
                self.mode = Mode::Main;
                self.detail = None;
                outcome.ask = Some(Ask::Show(None));
            }
            Action::AskCancel => {
                let in_detail = matches!(self.mode, Mode::Detail(_));
                let target = match &self.mode {
                    Mode::Detail(id) => Some((*id, self.detail_title())),
                    _ => self
                        .selected_task()
                        .map(|task| (task.id, task.title.clone().unwrap_or_default())),
                };
                match target {
                    Some((id, title)) => {
                        self.mode = Mode::Confirm {
                            id,
                            title,
                            in_detail,
                        }
                    }
                    None => self.note("no running task selected"),
                }
            }
            Action::Confirm => {
                if let Mode::Confirm { id, .. } = self.mode {
                    outcome.ask = Some(Ask::Cancel(id));
                    self.note(format!("cancelling task {id}…"));
                }
                self.close_confirm();
            }
            Action::Deny => {
                if let Mode::Confirm { id, .. } = self.mode {
                    self.note(format!("task {id} not cancelled"));
                }
                self.close_confirm();
            }
            Action::TogglePause => outcome.ask = self.toggle_pause(),
        }
        outcome
    }

    /// After a y/n: back to the view the question was asked from.
    fn close_confirm(&mut self) {
        self.mode = match self.mode {
            Mode::Confirm {
                id,
                in_detail: true,
                ..
            } => Mode::Detail(id),
            _ => Mode::Main,
        };
    }

    fn detail_title(&self) -> String {
        self.detail
            .as_ref()
            .and_then(|detail| detail.task.as_ref().ok())
            .map(|task| task.title.clone())
            .unwrap_or_default()
    }

    fn move_selection(&mut self, action: Action) {
        match self.focus {
            Focus::Tasks => {
                let ids: Vec<TaskId> = self.running.iter().map(|task| task.id).collect();
                self.task_selection.apply(&ids, action);
            }
            Focus::Agents => {
                let names: Vec<String> = self.agents.iter().map(|a| a.name.clone()).collect();
                self.agent_selection.apply(&names, action);
            }
        }
    }

    /// The agent `p` acts on: the selected agent when the agents have the focus, else the
    /// agent of the selected (or shown) task.
    fn toggle_pause(&mut self) -> Option<Ask> {
        let name = match (&self.mode, self.focus) {
            (Mode::Main, Focus::Agents) => self.selected_agent().map(|a| a.name.clone()),
            (Mode::Detail(_), _) => self
                .detail
                .as_ref()
                .and_then(|detail| detail.task.as_ref().ok())
                .filter(|task| task.status == TaskStatus::Running)
                .and_then(|task| task.agent.clone()),
            _ => self.selected_task().and_then(|task| task.agent.clone()),
        };
        let Some(name) = name else {
            self.note("no agent selected (Tab selects among the agents)");
            return None;
        };
        let paused = self
            .agents
            .iter()
            .find(|agent| agent.name == name)
            .is_some_and(|agent| {
                matches!(agent.status, AgentStatus::Paused | AgentStatus::Offline)
            });
        let status = if paused {
            AgentStatus::Idle
        } else {
            AgentStatus::Paused
        };
        self.note(format!(
            "{} agent {name}…",
            if paused { "resuming" } else { "pausing" }
        ));
        Some(Ask::SetAgent { name, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MetricsSnapshot;
    use crate::protocol::response::TaskCounters;

    fn task(id: TaskId, agent: &str) -> Task {
        Task {
            id,
            title: format!("t{id}"),
            payload: String::new(),
            queue: "default".into(),
            priority: 0,
            status: TaskStatus::Running,
            requires: Vec::new(),
            agent: Some(agent.into()),
            attempts: 1,
            max_attempts: 3,
            created_at: 0,
            updated_at: 0,
            result: None,
            error: None,
            run_at: None,
            lease_until: None,
            lease_ms: None,
            after: Vec::new(),
            cwd: None,
            env: Vec::new(),
            timeout_ms: None,
            started_at: Some(0),
            ended_at: None,
            exit_code: None,
        }
    }

    fn agent(name: &str, status: AgentStatus) -> Agent {
        Agent {
            name: name.into(),
            status,
            capabilities: Vec::new(),
            max_tasks: 1,
            running: 0,
            registered_at: 0,
            last_heartbeat: 0,
        }
    }

    fn snapshot(running: Vec<Task>, agents: Vec<Agent>) -> Report {
        Report::Snapshot(Box::new(Snapshot {
            at: Instant::now(),
            metrics: MetricsSnapshot {
                uptime_ms: 1000,
                tasks: vec![
                    ("a".into(), TaskStatus::Queued, 5),
                    ("a".into(), TaskStatus::Running, running.len() as u64),
                    ("b".into(), TaskStatus::Done, 2),
                ],
                agents: Vec::new(),
                counters: TaskCounters::default(),
                latency_buckets_us: Vec::new(),
                requests: Vec::new(),
                connections_open: 1,
                connections_total: 1,
                parked_claims: 0,
                store_backlog_bytes: 0,
                background_lock_hold_max_us: 0,
                waits_in_progress: 0,
                run_buckets_ms: Vec::new(),
                run_cumulative: Vec::new(),
                run_sum_ms: 0,
            },
            agents,
            running,
        }))
    }

    #[test]
    fn counts_are_grouped_by_queue() {
        let mut dashboard = Dashboard::new("s".into());
        dashboard.on_report(snapshot(vec![task(1, "w")], Vec::new()));
        assert_eq!(dashboard.link, Link::Up);
        assert_eq!(dashboard.queues.len(), 2);
        assert_eq!(dashboard.queues[0].counts[TaskStatus::Queued.index()], 5);
        assert_eq!(dashboard.queues[0].counts[TaskStatus::Running.index()], 1);
        assert_eq!(dashboard.queues[1].counts[TaskStatus::Done.index()], 2);
        assert_eq!(dashboard.running_total, 1);
    }

    #[test]
    fn the_selection_follows_its_task_and_cancel_asks_first() {
        let mut dashboard = Dashboard::new("s".into());
        dashboard.on_report(snapshot(vec![task(3, "w"), task(7, "w")], Vec::new()));
        assert_eq!(dashboard.task_selection.key, Some(3));
        dashboard.apply(Action::Move(1));
        assert_eq!(dashboard.task_selection.key, Some(7));
        // Task 3 ended: 7 is still the one selected.
        dashboard.on_report(snapshot(vec![task(7, "w"), task(9, "w")], Vec::new()));
        assert_eq!(dashboard.task_selection.key, Some(7));
        assert!(dashboard.apply(Action::AskCancel).ask.is_none());
        assert!(matches!(dashboard.mode, Mode::Confirm { id: 7, .. }));
        let confirmed = dashboard.apply(Action::Confirm);
        assert!(matches!(confirmed.ask, Some(Ask::Cancel(7))));
        assert_eq!(dashboard.mode, Mode::Main);
        dashboard.apply(Action::AskCancel);
        assert!(dashboard.apply(Action::Deny).ask.is_none());
    }

    #[test]
    fn p_pauses_an_active_agent_and_resumes_a_paused_one() {
        let mut dashboard = Dashboard::new("s".into());
        let agents = vec![
            agent("w1", AgentStatus::Busy),
            agent("w2", AgentStatus::Paused),
        ];
        dashboard.on_report(snapshot(vec![task(1, "w1")], agents));
        let pause = dashboard.apply(Action::TogglePause).ask;
        assert!(matches!(
            pause,
            Some(Ask::SetAgent { ref name, status: AgentStatus::Paused }) if name == "w1"
        ));
        dashboard.apply(Action::SwitchFocus);
        dashboard.apply(Action::Last);
        let resume = dashboard.apply(Action::TogglePause).ask;
        assert!(matches!(
            resume,
            Some(Ask::SetAgent { ref name, status: AgentStatus::Idle }) if name == "w2"
        ));
    }

    #[test]
    fn the_running_list_follows_the_events() {
        let mut dashboard = Dashboard::new("s".into());
        dashboard.on_report(snapshot(vec![task(1, "w"), task(2, "w")], Vec::new()));
        let event = |kind: &str, task: TaskId, status: &str| Event {
            at: 0,
            kind: kind.into(),
            task: Some(task),
            queue: Some("a".into()),
            agent: Some("w".into()),
            status: Some(status.into()),
            detail: None,
            dropped: 0,
        };
        dashboard.on_events([
            event("task_done", 1, "done"),
            // Failed and claimed again at once: still running.
            event("task_failed", 2, "queued"),
            event("task_claimed", 2, "running"),
            // Claimed now: listed at once, its title to come.
            event("task_claimed", 5, "running"),
            // Claimed and done between two draws: never listed.
            event("task_claimed", 4, "running"),
            event("task_done", 4, "done"),
        ]);
        let ids: Vec<TaskId> = dashboard.running.iter().map(|task| task.id).collect();
        assert_eq!(ids, vec![2, 5]);
        assert_eq!(dashboard.running[1].title, None);
        // A refresh asked for before those events does not undo them.
        dashboard.on_report(snapshot(vec![task(1, "w"), task(2, "w")], Vec::new()));
        let ids: Vec<TaskId> = dashboard.running.iter().map(|task| task.id).collect();
        assert_eq!(ids, vec![2, 5]);
        assert_eq!(dashboard.task_selection.key, Some(2));
        assert_eq!(dashboard.events.len(), 6);
        assert_eq!(dashboard.events[0].kind, "task_done", "newest first");
        let mut lagged = event("lagged", 0, "");
        (lagged.task, lagged.status, lagged.dropped) = (None, None, 41);
        dashboard.on_events([lagged]);
        assert_eq!(dashboard.missed, 41);
    }
}
