//! `vapora top` as a person sees it: run in a real terminal (tmux), against a real daemon,
//! driven by keys (`send-keys`) and checked by the text on the screen (`capture-pane`).
//! Every check polls the screen until the text shows or a deadline passes.
//!
//! tmux must be installed in CI (`.ci/run` does it); elsewhere, without it, these tests
//! print SKIPPED.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, TestDaemon};

/// How long the screen may take to show what a check waits for (a debug build on a busy
/// machine).
const DEADLINE: Duration = Duration::from_secs(30);
/// Between two looks at the screen.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// A tmux server of our own (its socket in the daemon's temporary directory, removed with
/// it) with one pane running `vapora top`; killed on drop, whatever happened.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    /// Runs `vapora top` against `daemon` in a `width`×`height` terminal; after it exits,
    /// the pane prints `TOP-EXITED <status>` and stays. `None` (the test skips) when tmux
    /// is not installed, except in CI.
    fn start(daemon: &TestDaemon, width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux must be installed in CI (.ci/run does it)"
            );
            eprintln!("SKIPPED: tmux is not installed (apt-get install tmux)");
            return None;
        }
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let socket = daemon
            .dir
            .path()
            .join(format!("tmux-{}", COUNT.fetch_add(1, Ordering::SeqCst)));
        let tmux = Tmux { socket };
        let script = format!(
            "env VAPORA_SOCKET={} VAPORA_NO_AUTOSTART=1 {} top; echo TOP-EXITED $?; sleep 600",
            quoted(daemon.socket.to_str().unwrap()),
            quoted(BIN)
        );
        let started = tmux.command(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &script,
        ]);
        assert!(started.status.success(), "tmux did not start: {started:?}");
        Some(tmux)
    }

    fn command(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    }

    /// The text on the screen now.
    fn screen(&self) -> String {
        let output = self.command(&["capture-pane", "-p"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        assert!(self.command(&args).status.success());
    }

    /// Waits until the screen satisfies `ready`, and returns it; fails with the last
    /// screen seen after [`DEADLINE`].
    #[track_caller]
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}; it shows:\n{screen}"
            );
            std::thread::sleep(LOOK_AGAIN);
        }
    }

    /// The process id of the command the pane runs (the shell around `vapora top`).
    fn pane_pid(&self) -> u32 {
        let output = self.command(&["display-message", "-p", "#{pane_pid}"]);
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]);
    }
}

/// `text` quoted for `sh`.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The counts on the queue table's row for `queue`: queued, running, scheduled, blocked,
/// done, failed, cancelled.
fn queue_row(screen: &str, queue: &str) -> Option<Vec<u64>> {
    screen.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some(queue) {
            return None;
        }
        let counts: Vec<u64> = words.map(|w| w.parse().ok()).collect::<Option<_>>()?;
        (counts.len() == 7).then_some(counts)
    })
}

/// The line of the running-task table for task `id`.
fn running_line(screen: &str, id: u64) -> Option<&str> {
    screen
        .lines()
        .find(|line| line.split_whitespace().next() == Some(&id.to_string()))
}

const DASHBOARD_TEXTS: [&str; 5] = ["vapora top", "Throughput", "Queues", "Agents", "Running"];

#[test]
fn top_shows_counts_new_tasks_and_a_cancel_by_keypress_then_leaves_a_clean_terminal() {
    let mut d = TestDaemon::start();
    let running = d.add(&["long job", "--queue", "alpha", "--priority", "9"]);
    for title in ["a1", "a2"] {
        d.add(&[title, "--queue", "alpha"]);
    }
    d.add(&["b1", "--queue", "beta"]);
    let gone = d.add(&["b2", "--queue", "beta"]);
    d.run(&["task", "cancel", &gone.to_string()]).ok();
    d.run(&["agent", "register", "w1", "--max-tasks", "2"]).ok();
    let claimed = d.run(&["task", "claim", "--agent", "w1", "-q"]);
    assert_eq!(claimed.ok(), running.to_string());

    let Some(tmux) = Tmux::start(&d, 100, 30) else {
        return;
    };
    // Queue counts: queued, running, scheduled, blocked, done, failed, cancelled.
    let screen = tmux.wait_for("the queue counts", |s| {
        queue_row(s, "alpha") == Some(vec![2, 1, 0, 0, 0, 0, 0])
            && queue_row(s, "beta") == Some(vec![1, 0, 0, 0, 0, 0, 1])
    });
    for text in DASHBOARD_TEXTS {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
    // The agent, and the task it runs.
    let screen = tmux.wait_for("the running task", |s| {
        running_line(s, running)
            .is_some_and(|line| line.contains("w1") && line.contains("long job"))
    });
    assert!(
        screen
            .lines()
            .any(|line| line.starts_with("w1") && line.contains("busy") && line.contains("1/2")),
        "{screen}"
    );

    // A task added now shows in the counts and among the events.
    let added = d.add(&["added after top started", "--queue", "alpha"]);
    tmux.wait_for("the added task", |s| {
        queue_row(s, "alpha") == Some(vec![3, 1, 0, 0, 0, 0, 0])
            && s.lines()
                .any(|line| line.contains("task_added") && line.contains(&format!("#{added}")))
    });

    // The running task is selected (the only one): c asks, y cancels.
    tmux.keys(&["c"]);
    tmux.wait_for("the question", |s| {
        s.contains(&format!("Cancel task {running} (long job)? y/n"))
    });
    assert_eq!(d.status_of(running), "running", "nothing before the answer");
    tmux.keys(&["y"]);
    tmux.wait_for("the cancel", |s| {
        s.lines()
            .any(|line| line.contains("task_cancelled") && line.contains(&format!("#{running}")))
            && queue_row(s, "alpha") == Some(vec![3, 0, 0, 0, 0, 0, 1])
            && running_line(s, running).is_none()
    });
    assert_eq!(d.status_of(running), "cancelled");

    // The daemon stops: shown, not a crash; back when it is.
    d.kill9();
    tmux.wait_for("the daemon gone", |s| {
        s.contains("daemon not answering, retrying")
    });
    d.restart(&[]);
    tmux.wait_for("the daemon back", |s| {
        s.contains("daemon up") && !s.contains("not answering") && !s.contains("stream lost")
    });
    let again = d.add(&["after the restart", "--queue", "gamma"]);
    tmux.wait_for("events again after the restart", |s| {
        queue_row(s, "gamma") == Some(vec![1, 0, 0, 0, 0, 0, 0])
            && s.lines()
                .any(|line| line.contains("task_added") && line.contains(&format!("#{again}")))
    });

    // q: top exits 0 and its screen is gone.
    tmux.keys(&["q"]);
    assert_exited_cleanly(&tmux);
}

#[test]
fn the_task_view_shows_the_tail_of_its_output() {
    let d = TestDaemon::start();
    let id = d.add(&["noisy", "--", "sh", "-c", "seq 1 500; sleep 600"]);
    let worker = d
        .command(&["work", "--agent", "w1", "-q"])
        .current_dir(d.dir.path())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            common::signal(self.0.id(), libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
    let _worker = Stop(worker);
    let Some(tmux) = Tmux::start(&d, 80, 24) else {
        return;
    };
    tmux.wait_for("the running task", |s| running_line(s, id).is_some());
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the task and its last lines", |s| {
        s.contains(&format!("Task {id}")) && s.lines().any(|line| line.trim() == "500")
    });
    assert!(
        screen
            .lines()
            .any(|line| line.starts_with("status:") && line.ends_with("running")),
        "{screen}"
    );
    assert!(!screen.lines().any(|line| line.trim() == "1"), "{screen}");
    // Esc goes back, p pauses the task's agent.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the dashboard", |s| s.contains("Queues"));
    tmux.keys(&["p"]);
    tmux.wait_for("the agent paused", |s| {
        s.lines()
            .any(|line| line.starts_with("w1") && line.contains("paused"))
    });
    let agent = d.run(&["agent", "show", "w1", "--json"]).json();
    assert_eq!(agent["status"], "paused");
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("top's exit", |s| s.contains("TOP-EXITED"));
    assert!(screen.contains("TOP-EXITED 0"), "{screen}");
}

#[test]
fn sigterm_puts_the_terminal_back() {
    let d = TestDaemon::start();
    let Some(tmux) = Tmux::start(&d, 80, 24) else {
        return;
    };
    tmux.wait_for("the dashboard", |s| s.contains("daemon up"));
    let shell = tmux.pane_pid();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    let top: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    common::signal(top, libc::SIGTERM);
    assert_exited_cleanly(&tmux);
}

#[test]
fn top_without_a_terminal_says_so() {
    let d = TestDaemon::start();
    // Its output is a pipe, as in `vapora top | cat`.
    let run = d.run(&["top"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.is_empty(), "nothing on the pipe: {run:?}");
    assert!(run.stderr.contains("needs a terminal"), "{run:?}");
    // Through a real pipe, from a shell.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{} top | cat", quoted(BIN)))
        .env("VAPORA_SOCKET", &d.socket)
        .env("VAPORA_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("vapora: top draws a live dashboard"),
        "{output:?}"
    );
}

/// top exited 0 and left none of its screen behind.
fn assert_exited_cleanly(tmux: &Tmux) {
    let screen = tmux.wait_for("top's exit", |s| s.contains("TOP-EXITED"));
    assert!(screen.contains("TOP-EXITED 0"), "{screen}");
    for text in DASHBOARD_TEXTS {
        assert!(
            !screen.contains(text),
            "{text} left on the screen:\n{screen}"
        );
    }
}
