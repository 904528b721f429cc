//! The systemd units in contrib/systemd and contrib/node_exporter pass `systemd-analyze
//! verify` (where it exists), with ExecStart pointed at the binary (or script) under test.
//! (scripts/check-deb.sh verifies the packaged ones once more as the Debian package
//! installs them.)

use std::path::Path;
use std::process::Command;

fn verify(kind: &str, user: bool) {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let units = ["vapora.service", "vapora.socket", "vapora-work@.service"];
    for unit in units {
        let text =
            std::fs::read_to_string(format!("{root}/contrib/systemd/{kind}/{unit}")).unwrap();
        let text = text.replace("/usr/bin/vapora", env!("CARGO_BIN_EXE_vapora"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    std::fs::copy(
        dir.path().join("vapora-work@.service"),
        dir.path().join("vapora-work@w1.service"),
    )
    .unwrap();
    let mut command = Command::new("systemd-analyze");
    if user {
        command.arg("--user").env("XDG_RUNTIME_DIR", dir.path());
    }
    // The units name man:vapora(1), which verify looks up with `man`: it finds the
    // committed page (where man is installed; tests/manpages.rs requires it in CI).
    if Command::new("man").arg("--version").output().is_ok() {
        let man1 = dir.path().join("man/man1");
        std::fs::create_dir_all(&man1).unwrap();
        std::fs::copy(format!("{root}/man/vapora.1"), man1.join("vapora.1")).unwrap();
        command.env("MANPATH", dir.path().join("man"));
    } else {
        command.arg("--man=no");
    }
    let output = command
        .arg("verify")
        .arg(dir.path().join("vapora.service"))
        .arg(dir.path().join("vapora.socket"))
        // A template is verified through an instance of it.
        .arg(dir.path().join("vapora-work@w1.service"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{kind} units: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn have_systemd_analyze() -> bool {
    Path::new("/usr/bin/systemd-analyze").exists()
        || Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        return eprintln!("SKIPPED: systemd-analyze is not installed");
    }
    verify("system", false);
    verify("user", true);
}

/// The node_exporter textfile recipe's timer and the service it runs.
#[test]
fn textfile_recipe_units_pass_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        return eprintln!("SKIPPED: systemd-analyze is not installed");
    }
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/node_exporter");
    let dir = tempfile::tempdir().unwrap();
    for unit in ["vapora-textfile.service", "vapora-textfile.timer"] {
        let text = std::fs::read_to_string(format!("{recipe}/{unit}")).unwrap();
        let text = text.replace(
            "/usr/local/bin/vapora-textfile",
            &format!("{recipe}/vapora-textfile"),
        );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("vapora-textfile.service"))
        .arg(dir.path().join("vapora-textfile.timer"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "textfile units: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
