//! The committed man pages (`man/`) are exactly what `vapora::client::manpages` renders
//! from the CLI definition, and each one renders cleanly with man-db's `man` at 80 columns.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const FIX: &str = "regenerate them with:\n    scripts/update-generated.sh";

/// The `*.1` files in a directory, by name.
fn pages_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "1"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}

fn committed_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

#[test]
fn committed_man_pages_are_fresh() {
    let generated: BTreeMap<String, Vec<u8>> = vapora::client::manpages::pages()
        .unwrap()
        .into_iter()
        .map(|page| (page.file_name, page.source))
        .collect();
    assert!(
        generated.contains_key("vapora.1") && generated.contains_key("vapora-task-add.1"),
        "{:?}",
        generated.keys()
    );
    let committed = if committed_dir().is_dir() {
        pages_in(&committed_dir())
    } else {
        BTreeMap::new()
    };
    let mut problems = Vec::new();
    for (name, text) in &generated {
        match committed.get(name) {
            None => problems.push(format!("man/{name} is missing")),
            Some(old) if old != text => problems.push(format!("man/{name} is stale")),
            Some(_) => {}
        }
    }
    for name in committed
        .keys()
        .filter(|name| !generated.contains_key(*name))
    {
        problems.push(format!("man/{name} is not generated any more"));
    }
    assert!(problems.is_empty(), "{}; {FIX}", problems.join(", "));
}

#[test]
fn man_pages_render_without_warnings() {
    if Command::new("man").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "man (man-db) must be installed in CI (.ci/run does it)"
        );
        return eprintln!("SKIPPED: man is not installed (apt-get install man-db groff-base)");
    }
    let pages = pages_in(&committed_dir());
    assert!(pages.contains_key("vapora.1"), "{:?}", pages.keys());
    for name in pages.keys() {
        let path = committed_dir().join(name);
        // `--warnings=w`: all of groff's warnings; plain `man -l` shows none of them.
        let output = Command::new("man")
            .args(["--warnings=w", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("MAN_KEEP_FORMATTING")
            .env_remove("MANPAGER")
            .env_remove("PAGER")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.is_empty(),
            "man -l man/{name}: {}\n{stderr}",
            output.status
        );
        let command = name.trim_end_matches(".1");
        assert!(
            stdout.contains("NAME") && stdout.contains(&format!("{command} - ")),
            "man/{name} rendered without its NAME line:\n{stdout}"
        );
        for line in stdout.lines() {
            assert!(
                line.chars().count() <= 80,
                "man/{name} has a line wider than 80 columns:\n{line}"
            );
        }
    }
}
