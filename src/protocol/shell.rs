//! Command words as one `sh` command line: how `task add -- CMD [ARG]...` turns the words
//! it was given into a payload that `/bin/sh -c` splits back into exactly those words.
//!
//! Here, not in the client, because both ends need the one definition: the client writes
//! payloads with it, and the worker and the tests check what a payload means.

/// Quotes each word for `sh` and joins them with spaces. A word of plain characters stays
/// as it is (`ls -la ./src`); any other is put in single quotes, inside which `sh`
/// interprets nothing, with each `'` written as `'\''` (close, escaped quote, reopen). So
/// `$`, backslashes, globs, newlines and non-ASCII text all come back unchanged, and an
/// empty word stays a word (`''`).
///
/// The first word is also quoted when `sh` would read it as something other than a command
/// name: an assignment (`A=1`) or a reserved word (`if`, `while`...). With `sh -c`, as with
/// `exec`, the first word is always the program.
pub fn quote_words(words: &[String]) -> String {
    let mut line = String::new();
    for (index, word) in words.iter().enumerate() {
        if index > 0 {
            line.push(' ');
        }
        if index == 0 && is_special_first(word) {
            line.push('\'');
            line.push_str(word);
            line.push('\'');
        } else {
            line.push_str(&quote_word(word));
        }
    }
    line
}

/// One word quoted for `sh` in any place but the first (as [`quote_words`] does): for
/// showing a value, such as a variable's, unambiguously.
pub fn quote_word(word: &str) -> std::borrow::Cow<'_, str> {
    if is_plain(word) {
        word.into()
    } else {
        format!("'{}'", word.replace('\'', r"'\''")).into()
    }
}

/// Characters that mean nothing to `sh` anywhere in a word.
fn is_plain(word: &str) -> bool {
    !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b',' | b':' | b'+' | b'@' | b'%' | b'='
                )
        })
}

/// A plain first word that `sh` would not take as the command name (holding no `'`).
fn is_special_first(word: &str) -> bool {
    if !is_plain(word) {
        return false;
    }
    const RESERVED: [&str; 17] = [
        "case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in",
        "select", "then", "time", "until", "while", "coproc",
    ];
    word.contains('=') || RESERVED.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn plain_words_stay_as_they_are() {
        assert_eq!(
            quote_words(&words(&["ls", "-la", "./src", "a=b", "x,y:z+1@h%"])),
            "ls -la ./src a=b x,y:z+1@h%"
        );
    }

    #[test]
    fn other_words_are_single_quoted() {
        assert_eq!(quote_words(&words(&["echo", "a b"])), "echo 'a b'");
        assert_eq!(quote_words(&words(&["echo", "it's"])), r"echo 'it'\''s'");
        assert_eq!(quote_words(&words(&["echo", "$HOME"])), "echo '$HOME'");
        assert_eq!(quote_words(&words(&["echo", r"a\b"])), r"echo 'a\b'");
        assert_eq!(quote_words(&words(&["echo", ""])), "echo ''");
        assert_eq!(quote_words(&words(&["echo", "a\nb"])), "echo 'a\nb'");
        assert_eq!(quote_words(&words(&["echo", "héllo"])), "echo 'héllo'");
        assert_eq!(
            quote_words(&words(&["echo", "*", "~", "#"])),
            "echo '*' '~' '#'"
        );
        assert_eq!(quote_words(&[]), "");
    }

    #[test]
    fn a_first_word_sh_would_not_run_is_quoted() {
        assert_eq!(quote_words(&words(&["A=1", "B=2"])), "'A=1' B=2");
        assert_eq!(quote_words(&words(&["if", "then"])), "'if' then");
        assert_eq!(quote_words(&words(&["iffy"])), "iffy");
    }

    /// The payload, run by a real `/bin/sh -c`, hands the program exactly the words.
    #[test]
    fn sh_splits_the_payload_back_into_the_words() {
        let cases = words(&[
            "plain",
            "two words",
            "  leading and trailing  ",
            "",
            "'",
            "it's",
            "''''",
            "\"double\"",
            "$HOME",
            "${PATH}",
            "$(echo no)",
            "`echo no`",
            r"back\slash",
            r"\\",
            r"\'",
            "a\nnew line",
            "\n",
            "tab\there",
            "*",
            "?",
            "[a]",
            "~",
            "~/x",
            "#hash",
            "a;b",
            "a&&b",
            "a|b",
            "<in>",
            "!x",
            "%s",
            "-n",
            "--",
            "x=1",
            "héllo wörld ✓",
            "日本語",
            "\u{1b}[31mred",
        ]);
        let mut all = words(&["printf", r"%s\0"]);
        all.extend(cases.iter().cloned());
        let payload = quote_words(&all);
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&payload)
            .output()
            .unwrap();
        assert!(output.status.success(), "{payload}: {output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        let back: Vec<&str> = text.strip_suffix('\0').unwrap().split('\0').collect();
        assert_eq!(back, cases, "payload: {payload}");
    }

    /// A first word that looks like an assignment is run as a program, not assigned.
    #[test]
    fn sh_runs_an_assignment_like_first_word_as_a_command() {
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(quote_words(&words(&["VAPORA_NO_SUCH=1"])))
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(127));
    }
}
