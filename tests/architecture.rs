//! The house rules that keep modules apart: `src/daemon/` and `src/client/` never import
//! each other (what both need lives below them, in `protocol/`, `paths.rs` or
//! `readiness.rs`), and `protocol/` imports neither.

use std::fs;
use std::path::Path;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                found.push((path.display().to_string(), text));
            }
        }
    }
    found
}

fn assert_never_names(dir: &str, forbidden: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let files = sources(&root);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            for name in forbidden {
                assert!(
                    !line.contains(name),
                    "{path}:{}: `{}` names {name}; move what both need below them",
                    n + 1,
                    line.trim()
                );
            }
        }
    }
}

#[test]
fn the_daemon_never_imports_the_client() {
    assert_never_names("daemon", &["crate::client", "vapora::client"]);
}

#[test]
fn the_client_never_imports_the_daemon() {
    assert_never_names("client", &["crate::daemon", "vapora::daemon"]);
}

#[test]
fn the_protocol_imports_neither_side() {
    assert_never_names(
        "protocol",
        &["crate::client", "crate::daemon", "super::super"],
    );
}
