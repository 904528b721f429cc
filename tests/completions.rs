//! The committed completion scripts must match what the binary generates.

mod common;

use std::process::Command;

#[test]
fn committed_completions_are_fresh() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (shell, file) in [
        ("bash", "vapora.bash"),
        ("zsh", "_vapora"),
        ("fish", "vapora.fish"),
    ] {
        let output = Command::new(common::BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success());
        let path = format!("{root}/completions/{file}");
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == output.stdout,
            "completions/{file} is stale; regenerate them (and the man pages) with:\n    scripts/update-generated.sh"
        );
    }
}
