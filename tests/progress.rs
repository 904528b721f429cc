//! Progress lines: on a terminal's stderr only, for `task add --stdin` over many lines and
//! `task wait` on several tasks. The terminal is a real pseudo-terminal; stdout, a pipe,
//! must carry exactly what it carries without one.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::thread::JoinHandle;

use common::TestDaemon;

/// A pseudo-terminal: the side a program writes to, and a thread collecting everything it
/// writes until the last writer is gone.
struct Terminal {
    side: OwnedFd,
    screen: JoinHandle<String>,
}

fn terminal() -> Terminal {
    let (mut main, mut side) = (-1, -1);
    // SAFETY: openpty writes two descriptors into our integers.
    let made = unsafe {
        libc::openpty(
            &mut main,
            &mut side,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(made, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors we own from here on.
    let (main, side) = unsafe { (File::from_raw_fd(main), OwnedFd::from_raw_fd(side)) };
    let screen = std::thread::spawn(move || {
        let mut main = main;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Ends with EIO once no process holds the other side.
        while let Ok(n) = main.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    Terminal { side, screen }
}

/// Runs `vapora ARGS` with `input` on stdin and stderr on a terminal; returns its exit
/// code, its stdout and what the terminal showed.
fn on_terminal(d: &TestDaemon, args: &[&str], input: &str) -> (i32, String, String) {
    let terminal = terminal();
    let child = spawn_on(d, args, &terminal);
    finish(child, input, terminal)
}

fn spawn_on(d: &TestDaemon, args: &[&str], terminal: &Terminal) -> Child {
    d.command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(terminal.side.try_clone().unwrap()))
        .spawn()
        .unwrap()
}

fn finish(mut child: Child, input: &str, terminal: Terminal) -> (i32, String, String) {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    drop(terminal.side);
    let screen = terminal.screen.join().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        screen,
    )
}

fn lines(count: usize) -> String {
    (1..=count).map(|i| format!("job {i}\n")).collect()
}

#[test]
fn a_long_stdin_add_shows_its_progress_on_a_terminal_only() {
    let d = TestDaemon::start();
    let (code, stdout, screen) = on_terminal(&d, &["task", "add", "--stdin"], &lines(3000));
    assert_eq!(code, 0, "{screen}");
    assert_eq!(stdout.lines().count(), 3000);
    assert_eq!(stdout.lines().last(), Some("3000"));
    assert!(screen.contains("3000/3000 added"), "{screen:?}");

    // Not in a pipe, not with -q or --json, not for a short input.
    let piped = d.run_stdin(&["task", "add", "--stdin"], &lines(3000));
    assert_eq!((piped.code, piped.stderr.as_str()), (0, ""));
    for quiet in [
        &["task", "add", "--stdin", "-q"][..],
        &["--json", "task", "add", "--stdin"],
    ] {
        let (code, _, screen) = on_terminal(&d, quiet, &lines(3000));
        assert_eq!((code, screen.as_str()), (0, ""), "{quiet:?}");
    }
    let (code, _, screen) = on_terminal(&d, &["task", "add", "--stdin"], &lines(100));
    assert_eq!((code, screen.as_str()), (0, ""));
}

#[test]
fn a_wait_on_several_tasks_shows_how_they_end_as_they_end() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1", "--max-tasks", "3"]).ok();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            d.add(&[&format!("t{i}"), "--max-attempts", "1"])
                .to_string()
        })
        .collect();
    for _ in &ids {
        d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    }
    let terminal = terminal();
    let mut args = vec!["task", "wait"];
    args.extend(ids.iter().map(String::as_str));
    let wait = spawn_on(&d, &args, &terminal);
    d.run(&["task", "done", &ids[0]]).ok();
    d.run(&["task", "fail", &ids[1], "--reason", "no"]).ok();
    d.run(&["task", "cancel", &ids[2]]).ok();
    let (code, stdout, screen) = finish(wait, "", terminal);
    // As without a terminal: every task with its status on stdout, exit 1 (not all done).
    assert_eq!(code, 1, "{screen:?}");
    assert_eq!(
        stdout,
        format!("{} done\n{} failed\n{} cancelled\n", ids[0], ids[1], ids[2])
    );
    assert!(
        screen.contains("3/3 ended (1 done, 1 failed, 1 cancelled)"),
        "{screen:?}"
    );
}
