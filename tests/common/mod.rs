//! A real daemon on a temporary socket, and the real `vapora` binary run against it the way
//! a script would run it.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use std::time::Duration;

use tempfile::TempDir;
use vapora::client::autostart::NotReady;

pub const BIN: &str = env!("CARGO_BIN_EXE_vapora");

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout without the trailing newline.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self.stdout.trim_end()
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

pub struct TestDaemon {
    pub dir: TempDir,
    pub socket: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl TestDaemon {
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(&[])
    }

    /// Starts `vapora daemon` with `args` and returns once it accepts connections.
    pub fn start_with(args: &[&str]) -> TestDaemon {
        TestDaemon::start_in(None, args)
    }

    /// Starts a daemon whose data dir is `data_dir` (default: inside its temp dir).
    pub fn start_in(data_dir: Option<PathBuf>, args: &[&str]) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("vapora-test")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("v.sock");
        let mut daemon = TestDaemon {
            log: dir.path().join("daemon.log"),
            data_dir: data_dir.unwrap_or_else(|| dir.path().join("data")),
            socket,
            dir,
            child: None,
        };
        let child = daemon
            .spawn_daemon(args)
            .unwrap_or_else(|log| panic!("daemon did not start:\n{log}"));
        daemon.child = Some(child);
        daemon
    }

    /// Spawns a daemon on this socket and waits for its ready signal; on failure returns
    /// its log.
    pub fn spawn_daemon(&self, args: &[&str]) -> Result<Child, String> {
        let mut full = vec!["--data-dir", self.data_dir.to_str().unwrap()];
        full.extend_from_slice(args);
        spawn_ready(&self.socket, &self.log, &full)
    }

    /// Starts the daemon again on the same socket and data dir (after it stopped or was
    /// killed).
    pub fn restart(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "stop the daemon first");
        let child = self
            .spawn_daemon(args)
            .unwrap_or_else(|log| panic!("daemon did not restart:\n{log}"));
        self.child = Some(child);
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("daemon already stopped");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("VAPORA_SOCKET", &self.socket)
            .env("VAPORA_NO_AUTOSTART", "1")
            .env("VAPORA_DATA_DIR", &self.data_dir)
            .stdin(Stdio::null());
        command
    }

    /// Runs `vapora ARGS` against this daemon.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().unwrap())
    }

    /// Runs `vapora ARGS` with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run::from_output(output)
    }

    /// Adds a task and returns its id.
    pub fn add(&self, args: &[&str]) -> u64 {
        let mut full = vec!["task", "add"];
        full.extend_from_slice(args);
        self.run(&full).ok().parse().unwrap()
    }

    pub fn status_of(&self, id: u64) -> String {
        let task = self
            .run(&["task", "show", &id.to_string(), "--json"])
            .json();
        task["status"].as_str().unwrap().to_string()
    }

    /// Sends SIGTERM and waits for the daemon to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        signal(child.id(), libc::SIGTERM);
        child.wait().unwrap()
    }

    /// Waits for a daemon stopped by other means (e.g. `vapora shutdown`).
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.child
            .take()
            .expect("daemon already stopped")
            .wait()
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Sends `signal` to every process in group `pgid` (a child spawned with
/// `process_group(0)`, with whatever it started).
pub fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(pgid as i32, signal);
    }
}

/// Starts `vapora daemon --socket SOCKET ARGS`, logging to `log`, and waits (without
/// polling) for the ready line it writes on the pipe named by VAPORA_READY_FD.
pub fn spawn_ready(socket: &Path, log: &Path, args: &[&str]) -> Result<Child, String> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = Command::new(BIN);
    command
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("VAPORA_SOCKET")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    match vapora::client::autostart::spawn_until_ready(&mut command, Duration::from_secs(60)) {
        Ok(child) => Ok(child),
        Err(not_ready) => {
            if let NotReady::Timeout(mut child) = not_ready {
                let _ = child.kill();
                let _ = child.wait();
            }
            Err(std::fs::read_to_string(log).unwrap_or_default())
        }
    }
}

/// A small deterministic generator: test inputs and "random" moments that repeat run to run.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Blocks (at most 10 s) until the daemon's metrics satisfy `ready`: how a test knows that a
/// blocking client has connected, parked, subscribed or left before it acts.
pub fn wait_for_metrics(d: &TestDaemon, what: &str, ready: impl Fn(&serde_json::Value) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready(&d.run(&["metrics", "--json"]).json()) {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::yield_now();
    }
}

/// Blocks until `count` subscriptions (`vapora events`) have been accepted by the daemon.
pub fn wait_subscribed(d: &TestDaemon, count: u64) {
    wait_for_metrics(d, "the subscription", |m| {
        let requests = m["requests"].as_array().unwrap();
        let subscribe = requests.iter().find(|r| r["kind"] == "subscribe");
        subscribe.is_some_and(|r| r["count"].as_u64().unwrap() >= count)
    });
}

/// Runs `promtool check metrics` on `text`; skipped where promtool is missing, except in CI
/// (`.ci/run` installs it).
pub fn promtool_check(text: &str) {
    let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool must be installed in CI (.ci/run does it)"
        );
        eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
        return;
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A process as `/proc/PID/stat` describes it.
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub parent: u32,
    pub group: u32,
}

/// Every process on the machine (those gone while being read left out).
pub fn processes() -> Vec<ProcessInfo> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u32>().ok());
        let (Some(parent), Some(group)) = (number(1), number(2)) else {
            continue;
        };
        found.push(ProcessInfo {
            pid,
            name: stat[open + 1..close].to_string(),
            parent,
            group,
        });
    }
    found
}
