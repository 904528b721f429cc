//! The man pages: vapora(1) and one page per subcommand, all the way down (vapora-task(1),
//! vapora-task-add(1), ...). clap_mangen renders them from the clap definition, so they say
//! what `--help` says and cannot drift from it; vapora(1) also carries what no `--help` has
//! room for: the exit status, the environment, the files and where to read more.
//!
//! `scripts/update-generated.sh` writes them into `man/` (through `examples/manpages.rs`),
//! and `tests/manpages.rs` fails when the committed pages are not what `pages` renders.
//! Not a subcommand, even a hidden one: clap_complete would offer it in the completions,
//! and the `vapora` binary, which never calls this module, links none of it.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use super::cli::Cli;
use super::exit;

/// The centre of each page's header line.
const MANUAL: &str = "vapora manual";

/// One man page: its file name (`vapora-task-add.1`) and its roff source.
pub struct Page {
    pub file_name: String,
    pub source: Vec<u8>,
}

/// Every page: vapora(1) first, then one per visible subcommand, depth first.
pub fn pages() -> io::Result<Vec<Page>> {
    // Without this, clap's own `help` subcommand would get a page (`vapora help X` is
    // `vapora X --help`, which the pages already are).
    let mut command = Cli::command().disable_help_subcommand(true);
    // Builds the deferred subcommands too, and names each one (`vapora-task-add`).
    command.build();
    let mut pages = vec![top_page(&command)?];
    add_subcommand_pages(&command, &mut pages)?;
    Ok(pages)
}

/// Writes every page into `dir`, which must exist, and returns their paths. Pages of
/// subcommands that are gone are left alone (the update script empties `man/` first).
pub fn write(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for page in pages()? {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.source)?;
        written.push(path);
    }
    Ok(written)
}

fn add_subcommand_pages(parent: &clap::Command, pages: &mut Vec<Page>) -> io::Result<()> {
    for command in parent.get_subcommands().filter(|c| !c.is_hide_set()) {
        pages.push(subcommand_page(command)?);
        add_subcommand_pages(command, pages)?;
    }
    Ok(())
}

/// The header every page shares: the title in capitals (as man pages write it), the
/// section, and the version as the source. No date, so the pages change only when the CLI
/// does; it is written `""`, since clap_mangen writes an empty one as nothing at all, which
/// shifts the source and the manual into the date's place.
fn man(command: &clap::Command) -> Man {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name());
    let version = command.get_version().unwrap_or_default();
    Man::new(command.clone())
        .title(name.to_uppercase())
        .section("1")
        .date("\"\"")
        .source(format!("vapora {version}"))
        .manual(MANUAL)
}

fn subcommand_page(command: &clap::Command) -> io::Result<Page> {
    let man = man(command);
    let mut source = Vec::new();
    man.render(&mut source)?;
    Ok(Page {
        file_name: man.get_filename(),
        source: finish(&source),
    })
}

/// vapora(1): clap_mangen's sections, with a description of the whole program instead of
/// the one-line `about`, and the sections a reader of the top page looks for instead of
/// the `--help` footer (which only lists the exit codes).
fn top_page(command: &clap::Command) -> io::Result<Page> {
    let man = man(command);
    let mut source = Vec::new();
    man.render_title(&mut source)?;
    man.render_name_section(&mut source)?;
    man.render_synopsis_section(&mut source)?;
    description().to_writer(&mut source)?;
    man.render_options_section(&mut source)?;
    man.render_subcommands_section(&mut source)?;
    exit_status().to_writer(&mut source)?;
    environment().to_writer(&mut source)?;
    files().to_writer(&mut source)?;
    see_also(command).to_writer(&mut source)?;
    man.render_version_section(&mut source)?;
    Ok(Page {
        file_name: man.get_filename(),
        source: finish(&source),
    })
}

/// What every page gets after clap_mangen:
/// - the two preamble lines (which keep apostrophes straight) once: the roff crate writes
///   them before each part of vapora(1);
/// - no hyphenation and a ragged right margin (`.nh`, `.ad l`) after the title: the pages
///   are full of options, paths and variable names that hyphenation splits
///   (`VA-PORA_SOCKET`) and justification spreads out;
/// - ASCII only: another character is written as its groff escape (`\[u2192]` for the
///   arrow in `running → cancelled`), so no page depends on the reader's locale or on
///   groff's input encoding (`groff -Tutf8` without preconv warns about it).
fn finish(source: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(source);
    let mut preamble = Vec::new();
    // An empty document renders as the preamble alone; writing to a Vec cannot fail.
    let _ = Roff::new().to_writer(&mut preamble);
    let preamble = String::from_utf8_lossy(&preamble).into_owned();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    let mut preamble_written = false;
    while !rest.is_empty() {
        if !preamble.is_empty() && rest.starts_with(preamble.as_str()) {
            if !preamble_written {
                out.push_str(&preamble);
                preamble_written = true;
            }
            rest = &rest[preamble.len()..];
            continue;
        }
        let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        for c in line.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
            }
        }
        if line.starts_with(".TH ") {
            out.push_str(".nh\n.ad l\n");
        }
    }
    out.into_bytes()
}

/// A `.TP` entry: a bold term, then its text.
fn entry(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(term)]);
    roff.text([roman(text)]);
}

fn description() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([
        bold("vapora"),
        roman(" is a local task queue for shell users, scripts and services. One binary: "),
        bold("vapora daemon"),
        roman(
            " is a long-lived process that owns the tasks and the agents (workers) that run \
             them, and every other subcommand is a short client that talks to it over a Unix \
             socket and exits with a meaningful status (see EXIT STATUS).",
        ),
    ]);
    roff.control("PP", []);
    roff.text([
        roman("Every change is on disk before the client hears \"ok\". When no daemon answers, a client command (other than "),
        bold("shutdown"),
        roman(") starts "),
        bold("vapora daemon"),
        roman(" in the background, unless "),
        bold("--no-autostart"),
        roman(" or "),
        bold("VAPORA_NO_AUTOSTART"),
        roman(" says not to."),
    ]);
    roff.control("PP", []);
    roff.text([
        roman(
            "Results (ids, tables, JSON) go to standard output; messages and errors go to \
             standard error. Each subcommand has a page of its own, named after it: ",
        ),
        bold("vapora-task-add"),
        roman("(1) for "),
        bold("vapora task add"),
        roman(", and so on (see SUBCOMMANDS)."),
    ]);
    roff
}

fn exit_status() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit::MEANINGS {
        entry(&mut roff, &code.to_string(), meaning);
    }
    roff
}

fn environment() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, text) in [
        (
            "VAPORA_SOCKET",
            "The daemon's socket, for the daemon and the client alike, as --socket.",
        ),
        (
            "VAPORA_DATA_DIR",
            "Where the daemon keeps its data, as vapora daemon --data-dir (default: \
             $XDG_DATA_HOME/vapora, that is ~/.local/share/vapora). An autostarted daemon \
             gets it from the client's environment.",
        ),
        (
            "VAPORA_NO_AUTOSTART",
            "Set to anything but 0, false, no, off, n or f: never start a daemon, as \
             --no-autostart.",
        ),
        (
            "VAPORA_EXPECT_UID",
            "Talk only to a daemon running as this user (a uid or a user name), as \
             --expect-uid.",
        ),
        (
            "VAPORA_LOG",
            "The daemon's log level or filter, e.g. debug or vapora=trace (default: info).",
        ),
        (
            "VAPORA_SHELL",
            "The shell vapora work runs each payload with, as SHELL -c PAYLOAD (default: \
             /bin/sh).",
        ),
        (
            "VAPORA_TASK_ID, VAPORA_ATTEMPT, VAPORA_AGENT",
            "Set by vapora work for each task it runs: the task's id, the attempt (1 for the \
             first run) and the agent running it.",
        ),
        (
            "XDG_RUNTIME_DIR",
            "The default socket is $XDG_RUNTIME_DIR/vapora/vapora.sock.",
        ),
        (
            "TMPDIR",
            "Without XDG_RUNTIME_DIR, the default socket is $TMPDIR/vapora-UID/vapora.sock \
             (TMPDIR defaults to /tmp).",
        ),
    ] {
        entry(&mut roff, name, text);
    }
    roff
}

fn files() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    for (name, text) in [
        (
            "$XDG_RUNTIME_DIR/vapora/vapora.sock",
            "The default socket, in a directory of mode 0700; the socket itself is 0600.",
        ),
        (
            "vapora.log, vapora.start.lock",
            "Beside the socket: the log of a daemon a client started, and the lock that \
             lets one of several clients starting at once start it.",
        ),
        (
            "~/.local/share/vapora/",
            "The default data directory (mode 0700): vapora.db (SQLite; readable with \
             sqlite3), journal/ (changes not yet in the database), logs/ (task output), \
             vapora.lock (one daemon per data directory) and vapora.used.",
        ),
        (
            "/run/vapora/vapora.sock, /var/lib/vapora/",
            "The socket and the data directory of the system service (vapora.socket and \
             vapora.service, run as the vapora user; members of the vapora group may \
             connect).",
        ),
        (
            "/usr/lib/systemd/system/, /usr/lib/systemd/user/",
            "vapora.socket, vapora.service and the worker template vapora-work@.service, \
             as installed by the Debian package (none is enabled).",
        ),
        (
            "/usr/share/doc/vapora/",
            "README.md (the full guide) and SECURITY.md (the threat model and the limits).",
        ),
    ] {
        entry(&mut roff, name, text);
    }
    roff
}

fn see_also(command: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let mut references: Vec<(String, &str)> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| (format!("vapora-{}", c.get_name()), "1"))
        .collect();
    references.extend(
        [
            ("systemctl", "1"),
            ("systemd.socket", "5"),
            ("systemd.service", "5"),
            ("sqlite3", "1"),
        ]
        .map(|(name, section)| (name.to_string(), section)),
    );
    let mut line = Vec::new();
    for (i, (name, section)) in references.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name.as_str()));
        line.push(roman(format!("({section})")));
    }
    roff.text(line);
    roff.control("PP", []);
    roff.text([
        roman("The README, at "),
        italic("/usr/share/doc/vapora/README.md"),
        roman(" when installed from the Debian package, covers all of it with examples."),
    ]);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_command_and_one_preamble() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        assert_eq!(names[0], "vapora.1");
        assert!(names.contains(&"vapora-task-add.1"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let top = String::from_utf8(pages[0].source.clone()).unwrap();
        assert_eq!(top.matches(".ie \\n(.g").count(), 1, "{top}");
        assert!(top.contains(".SH \"EXIT STATUS\""), "{top}");
        for page in &pages {
            assert!(page.source.is_ascii(), "{} is not ASCII", page.file_name);
        }
        let cancel = pages
            .iter()
            .find(|p| p.file_name == "vapora-task-cancel.1")
            .unwrap();
        let cancel = String::from_utf8_lossy(&cancel.source);
        assert!(cancel.contains("running \\[u2192] cancelled"), "{cancel}");
        assert!(cancel.contains("\n.nh\n.ad l\n"), "{cancel}");
    }
}
