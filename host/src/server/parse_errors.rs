//! hyper answers a request it cannot parse (a malformed request line or
//! header, headers too large, a URI too long) by itself, before any service
//! runs, with an empty body. This wrapper around the socket gives those
//! answers the protocol's `{"error": "..."}` body too. It can tell them
//! apart from ours: every error response the router sends has a body
//! (`error::json_errors`), so an error head with `content-length: 0` can
//! only be hyper's own.

use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A connection whose empty error responses get a JSON body.
#[derive(Debug)]
pub struct JsonParseErrors<T> {
    inner: T,
    /// The replacement being written, and how much of it is out.
    rewrite: Option<Rewrite>,
}

#[derive(Debug)]
struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    /// How many bytes of hyper's buffer it stands for.
    replaces: usize,
}

impl<T> JsonParseErrors<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        JsonParseErrors {
            inner,
            rewrite: None,
        }
    }
}

/// The response to send instead of `head`, when `buf` starts with an error
/// response head that has no body; and the head's length.
fn replacement(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let status = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    if !matches!(status.first(), Some(b'4' | b'5')) {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let status_line = lines.next()?;
    let mut kept = Vec::new();
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            empty = value.trim() == "0";
        } else if !name.eq_ignore_ascii_case("content-type") {
            kept.push(line);
        }
    }
    if !empty {
        return None;
    }
    let code = status_line.split(' ').nth(1)?;
    let error = match code {
        "431" => "the request's headers are too large or too many",
        "414" => "the request's URI is too long",
        _ => "the request is not valid HTTP/1.1: its request line or a header is malformed",
    };
    let body = serde_json::json!({ "error": error }).to_string();
    let mut out = format!("{status_line}\r\n");
    for line in kept {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    Some((out.into_bytes(), end))
}

impl<T: Read + Unpin> Read for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> JsonParseErrors<T> {
    /// Writes the pending replacement out; `Ok(n)` for the `n` bytes of
    /// hyper's buffer it stands for, once all of it is out.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(rewrite) = &mut self.rewrite else {
            return Poll::Ready(Ok(0));
        };
        while rewrite.written < rewrite.bytes.len() {
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &rewrite.bytes[rewrite.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            rewrite.written += n;
        }
        let replaced = rewrite.replaces;
        self.rewrite = None;
        Poll::Ready(Ok(replaced))
    }

    fn start_rewrite(&mut self, buf: &[u8]) -> bool {
        if self.rewrite.is_some() {
            return true;
        }
        match replacement(buf) {
            Some((bytes, replaces)) => {
                self.rewrite = Some(Rewrite {
                    bytes,
                    written: 0,
                    replaces,
                });
                true
            }
            None => false,
        }
    }
}

impl<T: Write + Unpin> Write for JsonParseErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Only a head can start a write of an error status; a body chunk
        // would have to begin with "HTTP/1.1 4" and end a head of its own.
        if self.start_rewrite(buf) {
            return self.poll_rewrite(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if self.start_rewrite(first) {
            return self.poll_rewrite(cx);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn only_empty_error_heads_are_replaced() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 06:00:00 GMT\r\n\r\n";
        let (bytes, replaces) = replacement(hyper).expect("hyper's own 400");
        assert_eq!(replaces, hyper.len());
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("date: Wed"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("malformed"));

        let (bytes, _) = replacement(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\nrest",
        )
        .expect("431");
        assert!(String::from_utf8(bytes).unwrap().contains("too large"));

        // Our own answers carry bodies; successes are never touched.
        assert!(replacement(b"HTTP/1.1 404 Not Found\r\ncontent-length: 27\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
        assert!(replacement(b"{\"outputs\": []}").is_none());
        // A head line without a colon is kept, never a panic.
        assert!(
            replacement(b"HTTP/1.1 400 Bad Request\r\nx\r\ncontent-length: 0\r\n\r\n").is_some()
        );
    }
}
