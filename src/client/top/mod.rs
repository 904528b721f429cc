//! `vapora top`: a live, full-screen view of one daemon (ratatui on crossterm).
//!
//! One loop owns the dashboard and the screen, and sleeps on one channel that small
//! threads feed:
//! - [`stream`]: the event stream, on a connection of its own (its events wait in an
//!   inbox the loop empties before each draw);
//! - [`fetch`]: the requests connection: metrics, agents and running tasks once a second,
//!   and what the keys ask for;
//! - the terminal's input (crossterm's blocking read: keys, resizes);
//! - signals (SIGTERM, SIGHUP, SIGINT): a quit, so that the terminal is put back.
//!
//! Nothing polls: the loop wakes for a message, or once a second to move the clocks on,
//! and draws at most every [`FRAME`] however fast events come. It never starts a daemon
//! (a daemon stopped on purpose stays stopped): while none answers, the screen says so and
//! both connections are made again once one does.
//!
//! [`model`]: what the dashboard knows; [`view`]: drawing it; [`keys`]: what keys mean;
//! [`throughput`]: rates from the counters; [`screen`]: the terminal and its restoration.

mod fetch;
mod keys;
mod model;
mod screen;
mod stream;
mod throughput;
mod view;

use std::io::IsTerminal;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event as TermEvent, KeyEvent};

use super::Session;
use super::exit::{CliError, FAILURE, OK};
use super::signals;
use model::Dashboard;
use screen::Screen;

/// The shortest time between two draws (but for a key's answer): a flood of events costs
/// ten frames a second.
const FRAME: Duration = Duration::from_millis(100);
/// How long the loop sleeps with nothing to show: the clocks and ages move on.
const TICK: Duration = Duration::from_secs(1);
/// Messages waiting for the loop before their senders wait (see [`stream`]).
const CHANNEL_BOUND: usize = 1024;
/// How long a request may go unanswered before the daemon counts as not answering (a
/// stopped or stuck daemon); the stream has no such bound, since it may be quiet for hours.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A message for the loop.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    /// The terminal's input failed; nothing more can be read from it.
    InputLost(String),
    /// A signal: quit.
    Signal,
    Stream(stream::Update),
    Fetch(fetch::Report),
}

pub fn run(session: &Session) -> Result<i32, CliError> {
    // Before anything touches the terminal.
    if !std::io::stdout().is_terminal() {
        return Err(CliError::usage(
            "top draws a live dashboard and needs a terminal, but its output is not one; in \
             scripts, use `vapora metrics`, `vapora events` or `vapora task list`",
        ));
    }
    if session.json {
        return Err(CliError::usage(
            "vapora top has no --json output; use `vapora metrics --json` or `vapora events \
             --json`",
        ));
    }
    let failed = |what: &str, e: std::io::Error| CliError::new(FAILURE, format!("{what}: {e}"));
    let signal_pipe = signals::install(&[libc::SIGTERM, libc::SIGHUP, libc::SIGINT])
        .map_err(|e| failed("cannot handle signals", e))?;
    let (to_loop, messages) = mpsc::sync_channel(CHANNEL_BOUND);
    let connector = session.connector().without_autostart();
    let inbox = stream::Inbox::default();
    stream::start(connector.clone(), inbox.clone(), to_loop.clone())
        .map_err(|e| failed("cannot start the event reader", e))?;
    let asks = fetch::start(
        connector.with_answer_timeout(ANSWER_TIMEOUT),
        to_loop.clone(),
    )
    .map_err(|e| failed("cannot start the requests thread", e))?;
    spawn("top-signals", {
        let to_loop = to_loop.clone();
        let mut pipe = signal_pipe;
        move || {
            if signals::next(&mut pipe).is_ok() {
                let _ = to_loop.send(Msg::Signal);
            }
        }
    })
    .map_err(|e| failed("cannot start the signal thread", e))?;
    let mut screen = Screen::enter().map_err(|e| failed("cannot set up the terminal", e))?;
    // Once the terminal is in raw mode: keys come one by one.
    spawn("top-input", move || read_input(&to_loop))
        .map_err(|e| failed("cannot read the terminal", e))?;
    let mut dashboard = Dashboard::new(session.location());
    let outcome = show(&mut screen, &mut dashboard, &messages, &inbox, &asks);
    drop(screen);
    outcome.map(|()| OK)
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map(drop)
}

/// The terminal's keys and resizes, as messages, until the loop is gone.
fn read_input(to_loop: &SyncSender<Msg>) {
    loop {
        let message = match event::read() {
            Ok(TermEvent::Key(key)) => Msg::Key(key),
            Ok(TermEvent::Resize(..)) => Msg::Resize,
            Ok(_) => continue,
            Err(error) => {
                let _ = to_loop.send(Msg::InputLost(error.to_string()));
                return;
            }
        };
        if to_loop.send(message).is_err() {
            return;
        }
    }
}

/// The loop: a message in, the dashboard changed, a frame drawn when one is due.
fn show(
    screen: &mut Screen,
    dashboard: &mut Dashboard,
    messages: &Receiver<Msg>,
    inbox: &stream::Inbox,
    asks: &Sender<fetch::Ask>,
) -> Result<(), CliError> {
    let draw_failed =
        |e: std::io::Error| CliError::new(FAILURE, format!("cannot draw on the terminal: {e}"));
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    loop {
        let due = last_draw.map_or(Instant::now(), |at| at + FRAME);
        if dirty && Instant::now() >= due {
            dashboard.on_events(inbox.take());
            screen
                .terminal
                .draw(|frame| view::draw(frame, dashboard))
                .map_err(draw_failed)?;
            dirty = false;
            last_draw = Some(Instant::now());
            continue;
        }
        let wait = if dirty {
            due.saturating_duration_since(Instant::now())
        } else {
            TICK
        };
        let message = match messages.recv_timeout(wait) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => {
                dirty = true;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        dirty = true;
        match message {
            Msg::Key(key) => {
                let Some(action) = keys::action(&dashboard.mode, key) else {
                    continue;
                };
                let outcome = dashboard.apply(action);
                if outcome.quit {
                    return Ok(());
                }
                if let Some(ask) = outcome.ask
                    && asks.send(ask).is_err()
                {
                    return Err(CliError::new(FAILURE, "the requests thread stopped"));
                }
                // A key is answered on the screen at once.
                last_draw = None;
            }
            Msg::Resize => {
                screen.terminal.autoresize().map_err(draw_failed)?;
                last_draw = None;
            }
            Msg::InputLost(reason) => {
                return Err(CliError::new(
                    FAILURE,
                    format!("cannot read the terminal any more: {reason}"),
                ));
            }
            Msg::Signal => return Ok(()),
            Msg::Stream(update) => dashboard.on_stream(&update),
            Msg::Fetch(report) => dashboard.on_report(report),
        }
    }
}
