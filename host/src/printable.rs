//! Text that cannot act on a terminal or split a log line: what a plugin,
//! a client or a config names is shown with every character that a
//! terminal or a log reader would act on written as an escape instead.
//!
//! Escaped: C0 controls but tab (newlines forge lines, ESC starts terminal
//! sequences: colours, cursor moves, titles, OSC 52 clipboard writes), DEL,
//! C1 controls (U+0080–U+009F: NEL ends a line, CSI and OSC act like ESC
//! sequences on some terminals), the line and paragraph separators U+2028
//! and U+2029 (lines to JavaScript and many log viewers), and the
//! bidirectional overrides and isolates (which reorder what is shown).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is written escaped.
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\0'..='\x08' | '\n'..='\x1f' | '\x7f'..='\u{9f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character [`needs_escape`] names escaped: `\n`, `\r`,
/// `\xNN` below U+0080, `\uNNNN` above (all of them are below U+10000, and
/// inside a JSON log's strings that is JSON's own escape); `\` itself stays
/// as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_except(text, |_| false)
}

/// As [`escape`], but leaving the characters `keep` accepts (a log's own
/// colour sequences start with ESC).
pub fn escape_except(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !needs_escape(c) || keep(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_terminal_or_log_acts_on_is_escaped() {
        assert_eq!(escape("plain\ttext é 漢"), "plain\ttext é 漢");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\nimports    (nothing else)"),
            "a\\nimports    (nothing else)"
        );
        assert_eq!(
            escape("\x1b]52;c;aGk=\x07\x1b]0;title\x07"),
            "\\x1b]52;c;aGk=\\x07\\x1b]0;title\\x07"
        );
        assert_eq!(
            escape("\u{85}\u{9b}\u{2028}\u{2029}"),
            "\\u0085\\u009b\\u2028\\u2029"
        );
        assert_eq!(escape("\u{202e}txt.exe"), "\\u202etxt.exe");
        assert_eq!(escape("\x7f\r"), "\\x7f\\r");
        assert_eq!(escape_except("\x1b[1m\n", |c| c == '\x1b'), "\x1b[1m\\n");
    }
}
