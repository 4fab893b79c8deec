//! Log lines that no client or plugin can forge: every control character
//! inside a line (a newline in a model name sent as `%0A`, a carriage
//! return, an escape sequence) is written escaped, so each event is exactly
//! one line in both the text and the JSON format.

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
        let clean = |b: &u8| !needs_escape(*b, self.keep_ansi);
        if body.iter().all(clean) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        escape_into(body, self.keep_ansi, &mut out);
        out.extend_from_slice(end);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn needs_escape(b: u8, keep_ansi: bool) -> bool {
    (b < 0x20 && b != b'\t' && !(keep_ansi && b == 0x1b)) || b == 0x7f
}

fn escape_into(bytes: &[u8], keep_ansi: bool, out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b if needs_escape(b, keep_ansi) => {
                out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
            b => out.push(b),
        }
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
    }
}
