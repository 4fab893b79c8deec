//! Log lines that no client or plugin can forge: every control character
//! inside a line (a newline in a model name sent as `%0A`, a carriage
//! return, an escape sequence, NEL, U+2028) is written escaped, as
//! [`crate::printable`] says, so each event is exactly one line in both the
//! text and the JSON format.

use std::borrow::Cow;
use std::io::{self, Write};
use tracing_subscriber::fmt::MakeWriter;

/// Wraps a writer factory so that what it writes is escaped.
#[derive(Debug, Clone, Copy)]
pub struct Escaping<M> {
    inner: M,
    /// Terminal colours are the formatter's own escape sequences: ESC passes
    /// only when colours are on (stderr is a terminal).
    keep_ansi: bool,
}

impl<M> Escaping<M> {
    /// Escapes what `inner`'s writers get; `keep_ansi` lets ESC through for
    /// the formatter's colours.
    pub fn new(inner: M, keep_ansi: bool) -> Self {
        Escaping { inner, keep_ansi }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaping<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer(),
            keep_ansi: self.keep_ansi,
        }
    }
}

/// A writer that escapes control characters except a line's final newline.
#[derive(Debug)]
pub struct EscapingWriter<W> {
    inner: W,
    keep_ansi: bool,
}

impl<W: Write> Write for EscapingWriter<W> {
    // The formatter writes each event whole, ending in one newline.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buf, &b""[..]),
        };
        let keep_ansi = self.keep_ansi;
        let keep = |c: char| keep_ansi && c == '\x1b';
        let text = String::from_utf8_lossy(body);
        match crate::printable::escape_except(&text, keep) {
            Cow::Borrowed(_) if matches!(text, Cow::Borrowed(_)) => self.inner.write_all(buf)?,
            clean => {
                let mut out = Vec::with_capacity(clean.len() + 1);
                out.extend_from_slice(clean.as_bytes());
                out.extend_from_slice(end);
                self.inner.write_all(&out)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(text: &str, keep_ansi: bool) -> String {
        let mut writer = EscapingWriter {
            inner: Vec::new(),
            keep_ansi,
        };
        writer.write_all(text.as_bytes()).expect("write");
        String::from_utf8(writer.inner).expect("utf-8")
    }

    #[test]
    fn one_event_stays_one_line() {
        assert_eq!(
            through("no model `x\nfake line`\r\x07\n", false),
            "no model `x\\nfake line`\\r\\x07\n"
        );
        assert_eq!(through("plain\ttext\n", false), "plain\ttext\n");
        assert_eq!(
            through("\x1b[1mbold\x1b[0m\n", true),
            "\x1b[1mbold\x1b[0m\n"
        );
        assert_eq!(through("\x1b[1m\n", false), "\\x1b[1m\n");
        assert_eq!(
            through("a\u{2028}b\u{2029}c\u{85}\n", false),
            "a\\u2028b\\u2029c\\u0085\n"
        );
    }
}
