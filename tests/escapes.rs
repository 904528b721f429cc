//! Issue 15, part 7: what a client writes (titles, results, reasons, payloads, names) cannot
//! drive the terminal of whoever reads human output. Tables, `task show`, text `events` and
//! messages show control characters as visible escapes; `--json` and `task show --payload`
//! stay exact.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::TestDaemon;

/// Sets the terminal's title, rings the bell, clears the screen.
const TITLE: &str = "evil\x1b]0;pwned\x07\x1b[2J title";
const TITLE_SHOWN: &str = r"evil\e]0;pwned\x07\e[2J title";
/// Breaks the layout, turns what follows red.
const RESULT: &str = "ok\n\x1b[31mred";
const RESULT_SHOWN: &str = r"ok\n\e[31mred";
/// A right-to-left override: shows `drow` as `word`.
const REASON: &str = "why\u{202e}drow";
const REASON_SHOWN: &str = r"why\u202edrow";
/// Short and on one line, so `task show` shows it (escaped).
const PAYLOAD: &str = "p\x1b[5m\u{85}\\";
const PAYLOAD_SHOWN: &str = r"p\e[5m\u0085\\";

/// A character that must never reach a terminal from human output.
fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
        )
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Each line of `text` (split on the newlines that end lines) is free of control and bidi
/// characters.
#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            !line.chars().any(is_dangerous),
            "{what} printed a raw control character: {line:?}"
        );
    }
}

#[test]
fn human_output_shows_escapes_and_json_and_payload_stay_exact() {
    let mut d = TestDaemon::start();
    d.run(&["agent", "register", "w1"]).ok();
    let mut watcher = d
        .command(&["events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_subscribed(&d, 1);

    let done = d.add(&[TITLE, "--payload", PAYLOAD]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&["task", "done", &done.to_string(), "--result", RESULT])
        .ok();
    let failed = d.add(&["plain"]);
    d.run(&["task", "claim", "--agent", "w1"]).ok();
    d.run(&[
        "task",
        "fail",
        &failed.to_string(),
        "--reason",
        REASON,
        "--no-retry",
    ])
    .ok();

    // The table: one line per task, the title escaped.
    let list = d.run(&["task", "list"]);
    assert_clean("task list", list.ok());
    let lines: Vec<&str> = list.ok().lines().collect();
    assert_eq!(lines.len(), 3, "a header and two rows: {lines:?}");
    assert!(
        lines[1..].iter().any(|l| l.ends_with(TITLE_SHOWN)),
        "{lines:?}"
    );

    // The detail views: one line per field.
    let show = d.run(&["task", "show", &done.to_string()]);
    assert_clean("task show", show.ok());
    let field = |text: &str, key: &str| -> String {
        let prefix = format!("{key}:");
        let found: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(found.len(), 1, "one {key} line in {text:?}");
        found[0][prefix.len()..].trim_start().to_string()
    };
    assert_eq!(field(show.ok(), "title"), TITLE_SHOWN);
    assert_eq!(field(show.ok(), "result"), RESULT_SHOWN);
    assert_eq!(field(show.ok(), "payload"), PAYLOAD_SHOWN);
    let show = d.run(&["task", "show", &failed.to_string()]);
    assert_clean("task show", show.ok());
    assert_eq!(field(show.ok(), "error"), REASON_SHOWN);

    // `--json` carries the exact strings.
    let task = d.run(&["task", "show", &done.to_string(), "--json"]).json();
    assert_eq!(task["title"], TITLE);
    assert_eq!(task["result"], RESULT);
    assert_eq!(task["payload"], PAYLOAD);
    let tasks = d.run(&["task", "list", "--json"]).json();
    let by_id = |id: u64| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(done)["title"], TITLE);
    assert_eq!(by_id(failed)["error"], REASON);

    // The payload asked for by name is the raw bytes.
    let payload = d.run(&["task", "show", &done.to_string(), "--payload"]);
    assert_eq!(payload.code, 0, "{payload:?}");
    assert_eq!(payload.stdout, PAYLOAD);

    // Text events: one line per event, what clients wrote escaped.
    assert_eq!(d.terminate().code(), Some(0));
    let mut events = String::new();
    watcher
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut events)
        .unwrap();
    assert_eq!(watcher.wait().unwrap().code(), Some(0));
    assert_clean("events", &events);
    let lines: Vec<&str> = events.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(|c: char| c.is_ascii_digit())),
        "every line is an event: {lines:?}"
    );
    let line_of = |kind: &str| -> &str {
        let found: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains(&format!(" {kind} ")))
            .collect();
        assert_eq!(found.len(), 1, "one {kind} in {lines:?}");
        found[0]
    };
    assert!(line_of("task_done").ends_with(&format!("\"{RESULT_SHOWN}\"")));
    assert!(line_of("task_failed").contains(REASON_SHOWN));
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!("\"{TITLE_SHOWN}\"")))
    );
}

#[test]
fn messages_that_echo_a_client_string_escape_it() {
    let d = TestDaemon::start();
    // The daemon's error names the agent it does not know.
    let evil = "w\x1b]0;pwned\x07";
    let show = d.run(&["agent", "show", evil]);
    assert_ne!(show.code, 0);
    assert!(show.stderr.starts_with("vapora: "), "{show:?}");
    assert_clean("agent show", &show.stderr);
    assert_eq!(show.stderr.lines().count(), 1, "{show:?}");

    // A refused name is echoed escaped once (the daemon's message carries it as sent).
    let register = d.run(&["agent", "register", "a\x1bb\\"]);
    assert_eq!(register.code, 2, "{register:?}");
    assert_clean("agent register", &register.stderr);
    assert!(
        register.stderr.contains(r"invalid agent name 'a\eb\\'"),
        "{register:?}"
    );

    // The client's own error names an unknown JSON field.
    let add = d.run_stdin(
        &["task", "add", "--stdin", "--jsonl"],
        "{\"title\": \"t\", \"\\u001b[2J\\u202e\": 1}\n",
    );
    assert_eq!(add.code, 2, "{add:?}");
    assert_clean("task add --stdin", &add.stderr);
    assert!(add.stderr.contains(r"\e[2J\u202e"), "{add:?}");
    assert_eq!(
        d.run(&["task", "list", "--json"]).json(),
        serde_json::json!([])
    );
}
