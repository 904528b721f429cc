//! The one escaping function of human output. Titles, payloads, results, reasons and the
//! messages that echo them come from whoever can reach the socket; printed raw, an ESC or a
//! BEL in them drives the reader's terminal (sets its title, clears the screen), a line
//! break forges table rows, and a bidi override reorders what is shown. Every human view
//! (tables, detail views, text `events` and `metrics`, notes and errors) passes what it
//! prints through [`escape`]; `--json` (serde escapes) and `task show --payload` (asked for
//! by name) stay exact.
//!
//! Renderings, each one unambiguous because the backslash itself is doubled:
//!
//! | character                                   | shown as              |
//! |---------------------------------------------|-----------------------|
//! | `\`                                         | `\\`                  |
//! | line feed, carriage return, tab, ESC        | `\n`, `\r`, `\t`, `\e` |
//! | other C0 (U+0000-U+001F) and DEL (U+007F)   | `\x00` ... `\x7f`      |
//! | C1 (U+0080-U+009F)                          | `\u0080` ... `\u009f`  |
//! | bidi controls: U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069 | `\u202e` |
//! | line and paragraph separators U+2028, U+2029 | `\u2028`, `\u2029`   |
//!
//! Everything else, other non-ASCII text included, is shown as it is.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is shown as an escape.
fn needs_escape(c: char) -> bool {
    // `is_control` is exactly C0, DEL and C1 (general category Cc).
    c == '\\' || c.is_control() || is_bidi_or_separator(c)
}

fn is_bidi_or_separator(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// `text` with control characters, bidi controls and backslashes shown as visible escapes
/// (see the module's table). Borrows when nothing needs escaping, so clean text (nearly
/// all of it) costs no allocation.
pub fn escape(text: &str) -> Cow<'_, str> {
    // Bytes below 0x80 decide on their own; a non-ASCII byte sends the rest through chars.
    let first = text
        .bytes()
        .position(|b| b == b'\\' || !(0x20..0x7f).contains(&b));
    let Some(start) = first else {
        return Cow::Borrowed(text);
    };
    let Some(offset) = text[start..].find(needs_escape) else {
        return Cow::Borrowed(text);
    };
    let start = start + offset;
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..start]);
    for c in text[start..].chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            '\0'..='\u{7f}' if needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        for text in [
            "",
            "plain title",
            "naïve café 日本語 🚀",
            "a/b:c=d \"q\" 'x'",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn specific_renderings() {
        let cases = [
            ("\x1b]0;pwned\x07\x1b[2J", "\\e]0;pwned\\x07\\e[2J"),
            ("ok\n\x1b[31mred", "ok\\n\\e[31mred"),
            ("a\r\tb", "a\\r\\tb"),
            ("nul\0", "nul\\x00"),
            ("del\x7f", "del\\x7f"),
            ("back\\slash", "back\\\\slash"),
            ("lit \\e is not ESC", "lit \\\\e is not ESC"),
            ("c1 \u{85}\u{9b}", "c1 \\u0085\\u009b"),
            ("abc\u{202e}fed", "abc\\u202efed"),
            (
                "\u{061c}\u{200e}\u{200f}\u{2066}\u{2069}",
                "\\u061c\\u200e\\u200f\\u2066\\u2069",
            ),
            ("line\u{2028}para\u{2029}", "line\\u2028para\\u2029"),
            ("é\u{1b}é", "é\\eé"),
            ("\u{a0}\u{ff}", "\u{a0}\u{ff}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), shown, "{raw:?}");
        }
    }

    fn is_dangerous(c: char) -> bool {
        c.is_control()
            || ('\u{80}'..='\u{9f}').contains(&c)
            || matches!(
                c,
                '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
            )
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }

    #[test]
    fn every_char_is_shown_safely_and_unambiguously() {
        let mut escaped = 0;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let shown = escape(&text);
            assert!(
                !shown.chars().any(is_dangerous),
                "U+{:04X}: {shown:?}",
                c as u32
            );
            assert!(shown.is_ascii() || !is_dangerous(c));
            if is_dangerous(c) || c == '\\' {
                escaped += 1;
                assert!(matches!(shown, Cow::Owned(_)), "U+{:04X}", c as u32);
                assert!(
                    shown.starts_with("a\\") && shown.ends_with('b'),
                    "{shown:?}"
                );
                assert_eq!(unescape(&shown), text, "U+{:04X}", c as u32);
            } else {
                assert!(matches!(shown, Cow::Borrowed(_)), "U+{:04X}", c as u32);
            }
        }
        // C0 (32), DEL, C1 (32), 12 bidi controls, 2 separators, the backslash.
        assert_eq!(escaped, 32 + 1 + 32 + 12 + 2 + 1);
    }

    #[test]
    fn a_mixed_string_reads_back_exactly() {
        let mut all = String::new();
        for c in (0..0x3000).filter_map(char::from_u32) {
            all.push(c);
        }
        all.push_str("\\e\\x07\\u202e");
        let shown = escape(&all);
        assert!(!shown.chars().any(is_dangerous));
        assert_eq!(unescape(&shown), all);
    }

    /// The inverse of `escape`, to show that its output is unambiguous.
    fn unescape(shown: &str) -> String {
        let mut out = String::new();
        let mut chars = shown.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().unwrap() {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'e' => out.push('\u{1b}'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => panic!("unknown escape \\{other} in {shown:?}"),
            }
        }
        out
    }
}
