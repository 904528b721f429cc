//! What vapora says when something goes wrong or nothing happens: the reason, in the
//! user's words (never Rust's), once, and help that tells the whole story.

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Run, TestDaemon};

/// `vapora ARGS` with no daemon and nothing from the environment.
fn run_alone(args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("VAPORA_SOCKET")
        .env_remove("VAPORA_EXPECT_UID")
        .env("VAPORA_NO_AUTOSTART", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from_output(output)
}

#[track_caller]
fn assert_says(run: &Run, code: i32, words: &str) {
    assert_eq!(run.code, code, "{run:?}");
    assert!(run.stderr.contains(words), "expected {words:?} in {run:?}");
}

#[track_caller]
fn assert_never_says(run: &Run, words: &[&str]) {
    for w in words {
        assert!(!run.stderr.contains(w), "{w:?} in {run:?}");
    }
}

#[test]
fn usage_lines_show_no_option_taken_from_the_environment() {
    let d = TestDaemon::start();
    // The helper sets VAPORA_SOCKET and VAPORA_NO_AUTOSTART.
    let run = d.run(&["task", "wait"]);
    assert_says(&run, 2, "Usage: vapora task wait <ID>...");
    assert_never_says(&run, &["--socket", "--no-autostart"]);
    let run = d.run(&["task", "add"]);
    assert_says(&run, 2, "Usage: vapora task add");
    assert_never_says(&run, &["--socket"]);
}

#[test]
fn jsonl_without_stdin_says_to_add_stdin() {
    let d = TestDaemon::start();
    let run = d.run(&["task", "add", "--jsonl"]);
    assert_says(
        &run,
        2,
        "--jsonl says how to read standard input: add --stdin",
    );
    assert_never_says(&run, &["<TITLE>"]);
    let run = d.run(&["task", "add", "a title", "--jsonl"]);
    assert_says(&run, 2, "cannot be used with '--jsonl'");
}

#[test]
fn a_claim_by_a_paused_or_offline_agent_says_so() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    d.add(&["queued work"]);
    d.run(&["agent", "status", "w1", "paused"]).ok();
    let run = d.run(&["task", "claim", "--agent", "w1"]);
    assert_says(&run, 5, "nothing claimed: agent w1 is paused");
    assert_says(&run, 5, "vapora agent status w1 idle");
    let json = d.run(&["task", "claim", "--agent", "w1", "--json"]);
    assert_eq!((json.code, json.stdout.trim()), (5, "null"));
    // At the end of a wait, too.
    let run = d.run(&["task", "claim", "--agent", "w1", "--wait", "50ms"]);
    assert_says(&run, 5, "agent w1 is paused");

    d.run(&["agent", "status", "w1", "offline"]).ok();
    let run = d.run(&["task", "claim", "--agent", "w1"]);
    assert_says(&run, 5, "nothing claimed: agent w1 is offline");

    d.run(&["agent", "status", "w1", "idle"]).ok();
    d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    let run = d.run(&["task", "claim", "--agent", "w1"]);
    assert_says(&run, 6, "agent w1 is at its limit (1 of 1)");
    d.run(&["agent", "register", "w2"]).ok();
    let run = d.run(&["task", "claim", "--agent", "w2"]);
    assert_says(&run, 5, "nothing to claim");
}

#[test]
fn agent_status_says_what_happened_and_refuses_busy() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let run = d.run(&["agent", "status", "w1", "busy"]);
    assert_says(&run, 2, "busy cannot be set");
    assert_says(&run, 2, "use idle to resume");
    let run = d.run(&["agent", "status", "w1", "paused"]);
    assert_says(&run, 0, "agent w1 is paused: it claims nothing more");
    let run = d.run(&["agent", "status", "w1", "idle"]);
    assert_says(&run, 0, "agent w1 is active (idle: it runs no task)");
    assert_never_says(&run, &["updated"]);
    let help = run_alone(&["agent", "status", "--help"]);
    assert!(
        help.stdout
            .contains("[possible values: idle, paused, offline]"),
        "{help:?}"
    );
}

#[test]
fn shutdown_without_a_daemon_says_none_is_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let run = run_alone(&["shutdown", "--socket", socket.to_str().unwrap()]);
    assert_says(&run, 3, "no vapora daemon is running at");
    assert_says(&run, 3, "nothing to stop");
    assert_never_says(&run, &["start it"]);
}

#[test]
fn removing_an_unknown_agent_says_there_is_none() {
    let d = TestDaemon::start();
    let run = d.run(&["agent", "remove", "w9"]);
    assert_says(&run, 4, "no agent named 'w9'");
    assert_never_says(&run, &["register"]);
    let run = d.run(&["agent", "show", "w9"]);
    assert_says(&run, 4, "no agent named 'w9'");
    assert_never_says(&run, &["register"]);
}

#[test]
fn cancel_names_the_dependents_it_cancelled() {
    let d = TestDaemon::start();
    let a = d.add(&["a"]).to_string();
    let b = d.add(&["b", "--after", &a]).to_string();
    let c = d.add(&["c", "--after", &b]).to_string();
    let run = d.run(&["task", "cancel", &a]);
    assert_says(
        &run,
        0,
        &format!("task {a} cancelled, and tasks {b}, {c}, which waited on it"),
    );
    assert_eq!(d.status_of(c.parse().unwrap()), "cancelled");
    let lone = d.add(&["alone"]).to_string();
    let run = d.run(&["task", "cancel", &lone]);
    assert_eq!(run.stderr.trim(), format!("task {lone} cancelled"));
}

#[test]
fn fail_says_the_task_will_be_retried() {
    let d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["flaky"]).to_string();
    d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    let run = d.run(&["task", "fail", &id]);
    assert_says(&run, 0, "1 of 3 attempts used, will be retried at 20");

    let d = TestDaemon::start_with(&["--retry-backoff", "0s"]);
    d.run(&["agent", "register", "w1"]).ok();
    let id = d.add(&["flaky"]).to_string();
    d.run(&["task", "claim", "--agent", "w1", "-q"]).ok();
    let run = d.run(&["task", "fail", &id]);
    assert_says(&run, 0, "1 of 3 attempts used, queued again now");
}

#[test]
fn bad_values_are_refused_in_the_users_words() {
    let rust = [
        "invalid digit",
        "is not in",
        "expected number at",
        "expected i32",
        "ParseIntError",
    ];
    let run = run_alone(&["task", "add", "t", "--priority", "high"]);
    assert_says(
        &run,
        2,
        "expected a whole number from -2147483648 to 2147483647",
    );
    assert_never_says(&run, &rust);
    let run = run_alone(&["task", "add", "t", "--priority", "99999999999"]);
    assert_says(
        &run,
        2,
        "expected a whole number from -2147483648 to 2147483647",
    );
    assert_never_says(&run, &rust);
    let run = run_alone(&["task", "wait", "1", "--timeout", "forever"]);
    assert_says(&run, 2, "expected a number and a unit, e.g. 500ms");
    assert_never_says(&run, &rust);
    let run = run_alone(&["task", "show", "one"]);
    assert_says(&run, 2, "expected a task id");
    assert_never_says(&run, &rust);
    let run = run_alone(&["task", "list", "--status", "stuck"]);
    assert_says(&run, 2, "[possible values: queued, running, done");

    let d = TestDaemon::start();
    let run = d.run_stdin(
        &["task", "add", "--stdin", "--jsonl"],
        "{\"title\": \"a\", \"priority\": \"high\"}\n{\"title\": \"b\", \"when\": 1}\n[1]\n",
    );
    assert_says(
        &run,
        2,
        "line 1: \"priority\" must be a whole number from -2147483648 to 2147483647",
    );
    assert_says(&run, 2, "line 2: unknown field \"when\" (fields: title,");
    assert_says(&run, 2, "line 3: expected a JSON object");
    assert_never_says(&run, &rust);
    // A null field is a missing one.
    let run = d.run_stdin(
        &["task", "add", "--stdin", "--jsonl", "--queue", "q1"],
        "{\"title\": \"ok\", \"queue\": null, \"priority\": 5}\n",
    );
    let id: u64 = run.ok().parse().unwrap();
    let task = d.run(&["task", "show", &id.to_string(), "--json"]).json();
    assert_eq!(
        (task["queue"].as_str(), task["priority"].as_i64()),
        (Some("q1"), Some(5))
    );
}

#[test]
fn a_daemon_start_up_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let socket = dir.path().join("d.sock");
    let run = run_alone(&[
        "daemon",
        "--socket",
        socket.to_str().unwrap(),
        "--data-dir",
        not_a_dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let mentions = run.stderr.matches(not_a_dir.to_str().unwrap()).count();
    assert_eq!(mentions, 1, "{run:?}");
}

#[test]
fn the_daemon_refuses_client_options() {
    // A data dir that cannot be one: a daemon that took --json would still stop at once.
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let socket = dir.path().join("d.sock");
    let run = run_alone(&[
        "daemon",
        "--json",
        "--socket",
        socket.to_str().unwrap(),
        "--data-dir",
        not_a_dir.to_str().unwrap(),
    ]);
    assert_says(&run, 2, "--json is an option of the client commands");
}

#[test]
fn quiet_means_quiet_and_conflicting_flags_are_refused() {
    let d = TestDaemon::start();
    let run = d.run(&["ping", "-q"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "")
    );
    let run = d.run(&["metrics", "--json", "--format", "prometheus"]);
    assert_says(&run, 2, "use one of them");
    assert!(run.stdout.is_empty(), "{run:?}");
    d.run(&["metrics", "--json", "--format", "json"]).json();
    d.run(&["metrics", "--json"]).json();
}

#[test]
fn help_sets_global_options_apart_and_describes_everything() {
    let help = run_alone(&["task", "list", "--help"]).stdout;
    let (own, global) = help.split_once("Global options:").expect(&help);
    assert!(
        own.contains("--status <STATUS>") && !own.contains("--socket"),
        "{help}"
    );
    assert!(
        global.contains("--socket <PATH>") && global.contains("--json"),
        "{help}"
    );
    assert!(
        own.contains(
            "[possible values: queued, running, done, failed, cancelled, scheduled, blocked]"
        ),
        "{help}"
    );

    let daemon = run_alone(&["daemon", "--help"]).stdout;
    for client_only in ["--json", "--quiet", "--expect-uid", "--no-autostart"] {
        assert!(!daemon.contains(client_only), "{client_only} in {daemon}");
    }
    assert!(daemon.contains("--socket <PATH>"), "{daemon}");
    // Whatever the width of the options' column (the longest option sets it).
    let squeezed = daemon.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squeezed.contains("--handshake-timeout <DUR> How long a client has to send its handshake")
            && squeezed.contains("a duration, e.g. 500ms, 5s"),
        "{daemon}"
    );

    let cancel = run_alone(&["task", "cancel", "--help"]).stdout;
    assert!(
        cancel.contains("queued, scheduled, blocked or running → cancelled"),
        "{cancel}"
    );
    let fail = run_alone(&["task", "fail", "--help"]).stdout;
    assert!(
        fail.contains("running → scheduled") && fail.contains("running → failed"),
        "{fail}"
    );
    let add = run_alone(&["task", "add", "--help"]).stdout;
    for field in [
        "\"title\"",
        "\"payload\"",
        "\"priority\"",
        "\"queue\"",
        "\"requires\"",
        "\"max_attempts\"",
        "\"after\"",
    ] {
        assert!(add.contains(field), "{field} missing from {add}");
    }

    // Every option and argument of every command says what it is.
    for args in [
        &["task", "add"][..],
        &["task", "list"],
        &["task", "show"],
        &["task", "claim"],
        &["task", "done"],
        &["task", "fail"],
        &["task", "cancel"],
        &["task", "retry"],
        &["task", "prune"],
        &["task", "wait"],
        &["agent", "register"],
        &["agent", "list"],
        &["agent", "show"],
        &["agent", "status"],
        &["agent", "heartbeat"],
        &["agent", "remove"],
        &["daemon"],
        &["events"],
        &["metrics"],
        &["completions"],
    ] {
        let mut full = args.to_vec();
        full.push("-h");
        let help = run_alone(&full).stdout;
        for line in help.lines() {
            let entry = line.trim_start();
            if entry.starts_with('-') || entry.starts_with('<') || entry.starts_with('[') {
                assert!(
                    entry.contains("  "),
                    "`vapora {}`: {entry:?} has no description",
                    args.join(" ")
                );
            }
        }
    }
}

#[test]
fn an_unknown_first_word_suggests_the_task_command() {
    let run = run_alone(&["add", "x"]);
    assert_says(&run, 2, "'task add'");
    let run = run_alone(&["list"]);
    assert_says(&run, 2, "'task list', 'agent list'");
}

#[test]
fn wait_documents_its_output_and_shortens_a_long_timeout_list() {
    let help = run_alone(&["task", "wait", "--help"]).stdout;
    assert!(
        help.contains("one line per task, `ID STATUS`") && help.contains("At most 10000 ids"),
        "{help}"
    );
    let d = TestDaemon::start();
    let input: String = (1..=25).map(|n| format!("job {n}\n")).collect();
    let ids = d.run_stdin(&["task", "add", "--stdin"], &input);
    let ids: Vec<&str> = ids.ok().lines().collect();
    let mut args = vec!["task", "wait", "--timeout", "10ms"];
    args.extend(&ids);
    let run = d.run(&args);
    assert_says(&run, 5, "timed out; still not ended: 1, 2, 3,");
    assert_says(&run, 5, ", 20 and 5 more");
    assert_eq!(run.stdout.lines().count(), 25, "{run:?}");

    let many: Vec<String> = (1..=10_001).map(|n| n.to_string()).collect();
    let mut args = vec!["task", "wait"];
    args.extend(many.iter().map(String::as_str));
    let run = d.run(&args);
    assert_says(&run, 2, "a wait names at most 10000 tasks, not 10001");
}
