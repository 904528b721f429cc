//! The requests connection: a thread that asks the daemon, once a second, for its metrics,
//! its agents and the tasks running now (never the whole task list: listing running tasks
//! reads the agents' sets of them, so a million queued tasks cost nothing here), and does
//! what the keys ask (cancel a task, pause or resume an agent, show a task and the tail of
//! its output). Its answers go to the UI loop, which never waits for the daemon: a daemon
//! that hangs cannot freeze the screen or the keys.
//!
//! It never starts a daemon. When none answers, it says so and tries again at the next
//! refresh; the first refresh that succeeds means the daemon is back.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use super::Msg;
use crate::client::Connector;
use crate::client::connection::Client;
use crate::protocol::{
    Agent, AgentStatus, ErrorBody, MetricsSnapshot, Request, Response, Task, TaskFilter, TaskId,
    TaskStatus,
};

/// How often the dashboard's figures are asked for, at most.
pub const REFRESH: Duration = Duration::from_secs(1);
/// The most running tasks asked for: more than any screen shows.
pub const RUNNING_MOST: u32 = 1000;
/// How much of the end of a task's output its view asks for.
const TAIL_BYTES: u64 = 16 * 1024;

/// What the loop asks of the requests thread.
#[derive(Debug)]
pub enum Ask {
    Cancel(TaskId),
    SetAgent {
        name: String,
        status: AgentStatus,
    },
    /// The task whose view is open, refreshed with the rest; `None` once it is closed.
    Show(Option<TaskId>),
}

/// What the requests thread tells the loop.
#[derive(Debug)]
pub enum Report {
    Snapshot(Box<Snapshot>),
    /// No daemon answers (or it refused to serve), and why.
    NotAnswering(String),
    /// How an action went, for the status line.
    Note(String),
    Detail(Box<Detail>),
}

/// The figures of one refresh.
#[derive(Debug)]
pub struct Snapshot {
    pub at: Instant,
    pub metrics: MetricsSnapshot,
    pub agents: Vec<Agent>,
    pub running: Vec<Task>,
}

/// A task's view: the task and the end of its latest attempt's output.
#[derive(Debug)]
pub struct Detail {
    pub id: TaskId,
    pub task: Result<Task, String>,
    pub output: Vec<u8>,
}

/// Starts the thread; it ends when the loop is gone.
pub fn start(connector: Connector, to_loop: SyncSender<Msg>) -> std::io::Result<Sender<Ask>> {
    let (asks, asked) = mpsc::channel();
    let fetcher = Fetcher {
        connector,
        client: None,
        to_loop,
        shown: None,
    };
    std::thread::Builder::new()
        .name("top-requests".into())
        .spawn(move || fetcher.run(&asked))?;
    Ok(asks)
}

struct Fetcher {
    connector: Connector,
    client: Option<Client>,
    to_loop: SyncSender<Msg>,
    shown: Option<TaskId>,
}

/// The loop is gone: time to stop.
struct LoopGone;

impl Fetcher {
    fn run(mut self, asked: &Receiver<Ask>) {
        let mut next = Instant::now();
        loop {
            let served = match asked.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(ask) => self.serve(ask),
                Err(RecvTimeoutError::Timeout) => {
                    next = Instant::now() + REFRESH;
                    self.refresh()
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if served.is_err() {
                return;
            }
        }
    }

    fn tell(&self, report: Report) -> Result<(), LoopGone> {
        self.to_loop.send(Msg::Fetch(report)).map_err(|_| LoopGone)
    }

    fn serve(&mut self, ask: Ask) -> Result<(), LoopGone> {
        match ask {
            Ask::Cancel(id) => {
                let Some(answer) = self.call(Request::Cancel { id })? else {
                    return Ok(());
                };
                self.tell(Report::Note(match answer {
                    Ok(Response::Cancelled { dependents, .. }) if dependents.is_empty() => {
                        format!("task {id} cancelled")
                    }
                    Ok(Response::Cancelled { dependents, .. }) => format!(
                        "task {id} cancelled, and {} task(s) that waited on it",
                        dependents.len()
                    ),
                    Ok(other) => format!("unexpected answer from the daemon: {other:?}"),
                    Err(refused) => format!("task {id} not cancelled: {}", refused.message),
                }))
            }
            Ask::SetAgent { name, status } => {
                let request = Request::SetAgentStatus {
                    name: name.clone(),
                    status,
                };
                let Some(answer) = self.call(request)? else {
                    return Ok(());
                };
                self.tell(Report::Note(match answer {
                    Ok(Response::Agent(agent)) if agent.status == AgentStatus::Paused => {
                        format!("agent {name} paused: it claims nothing until resumed (p)")
                    }
                    Ok(Response::Agent(agent)) => {
                        format!("agent {name} resumed ({})", agent.status)
                    }
                    Ok(other) => format!("unexpected answer from the daemon: {other:?}"),
                    Err(refused) => format!("agent {name} unchanged: {}", refused.message),
                }))
            }
            Ask::Show(id) => {
                self.shown = id;
                match id {
                    Some(id) => self.detail(id),
                    None => Ok(()),
                }
            }
        }
    }

    /// One request; `None` (said to the loop) when no daemon answers.
    fn call(&mut self, request: Request) -> Result<Option<Result<Response, ErrorBody>>, LoopGone> {
        Ok(self
            .call_many(&[request])?
            .and_then(|mut answers| answers.pop()))
    }

    /// Requests pipelined on the connection, made first if need be; `None` (said to the
    /// loop) when no daemon answers. The connection is dropped after a failure and made
    /// again at the next call.
    fn call_many(
        &mut self,
        requests: &[Request],
    ) -> Result<Option<Vec<Result<Response, ErrorBody>>>, LoopGone> {
        if self.client.is_none() {
            match self.connector.connect() {
                Ok(client) => self.client = Some(client),
                Err(error) => {
                    self.tell(Report::NotAnswering(error.message))?;
                    return Ok(None);
                }
            }
        }
        let Some(client) = self.client.as_mut() else {
            return Ok(None);
        };
        let mut answers = Vec::with_capacity(requests.len());
        match client.call_many(requests, &mut answers) {
            Ok(()) => Ok(Some(answers)),
            Err(error) => {
                self.client = None;
                self.tell(Report::NotAnswering(error.message))?;
                Ok(None)
            }
        }
    }

    fn refresh(&mut self) -> Result<(), LoopGone> {
        let requests = [
            Request::Metrics,
            Request::ListAgents {
                statuses: Vec::new(),
            },
            Request::ListTasks(TaskFilter {
                statuses: vec![TaskStatus::Running],
                limit: Some(RUNNING_MOST),
                ..TaskFilter::default()
            }),
        ];
        let Some(answers) = self.call_many(&requests)? else {
            return Ok(());
        };
        let mut answers = answers.into_iter();
        let snapshot = match (answers.next(), answers.next(), answers.next()) {
            (
                Some(Ok(Response::Metrics(metrics))),
                Some(Ok(Response::Agents(agents))),
                Some(Ok(Response::Tasks(running))),
            ) => Snapshot {
                at: Instant::now(),
                metrics,
                agents,
                running,
            },
            answers => {
                // Refused (the daemon is shutting down) or garbled: as good as gone.
                self.client = None;
                let reason = [answers.0, answers.1, answers.2]
                    .into_iter()
                    .find_map(|answer| answer.and_then(Result::err))
                    .map_or_else(
                        || "unexpected answer from the daemon".to_string(),
                        |refused| refused.message,
                    );
                return self.tell(Report::NotAnswering(reason));
            }
        };
        self.tell(Report::Snapshot(Box::new(snapshot)))?;
        match self.shown {
            Some(id) => self.detail(id),
            None => Ok(()),
        }
    }

    /// The task and the end of its output: where the output ends first, then the bytes
    /// before that end.
    fn detail(&mut self, id: TaskId) -> Result<(), LoopGone> {
        let requests = [
            Request::GetTask { id },
            Request::ReadOutput {
                id,
                attempt: None,
                from: u64::MAX,
                follow: false,
            },
        ];
        let Some(answers) = self.call_many(&requests)? else {
            return Ok(());
        };
        let mut answers = answers.into_iter();
        let task = match answers.next() {
            Some(Ok(Response::Task(task))) => Ok(task),
            Some(Err(refused)) => Err(refused.message),
            _ => Err("unexpected answer from the daemon".into()),
        };
        let mut output = Vec::new();
        if let Some(Ok(Response::Output { attempt, next, .. })) = answers.next()
            && next > 0
        {
            let request = Request::ReadOutput {
                id,
                attempt: Some(attempt),
                from: next.saturating_sub(TAIL_BYTES),
                follow: false,
            };
            if let Some(Ok(Response::Output { data, .. })) = self.call(request)? {
                output = data;
            }
        }
        self.tell(Report::Detail(Box::new(Detail { id, task, output })))
    }
}
