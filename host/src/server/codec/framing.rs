//! The binary tensor extension's framing: a body is a JSON part, then the
//! raw bytes of each binary tensor in the order the JSON lists them.

use crate::server::error::ApiError;
use bytes::Bytes;

/// The header that says how long the JSON part of a binary body is.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Splits a body into its JSON part and its binary part.
pub fn split_body<'a>(
    json_length: Option<&str>,
    body: &'a [u8],
) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(text) = json_length else {
        return Ok((body, &[]));
    };
    let length: usize = text.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "header Inference-Header-Content-Length must be a byte count, got `{text}`"
        ))
    })?;
    if length > body.len() {
        return Err(ApiError::BadRequest(format!(
            "header Inference-Header-Content-Length says the JSON is {length} bytes, \
             but the body has only {}",
            body.len()
        )));
    }
    Ok(body.split_at(length))
}

/// The binary part, handed out tensor by tensor as slices of the body's
/// own bytes (a binary tensor is never copied out of the body).
pub struct BinaryTail(Bytes);

impl BinaryTail {
    pub fn new(bytes: Bytes) -> Self {
        BinaryTail(bytes)
    }

    /// The next `want` bytes, for input `name`.
    pub fn take(&mut self, name: &str, want: usize) -> Result<Bytes, ApiError> {
        if self.0.len() < want {
            return Err(ApiError::BadRequest(format!(
                "input `{name}` needs {want} bytes of binary data, only {} are left in the body",
                self.0.len()
            )));
        }
        Ok(self.0.split_to(want))
    }

    /// Checks every byte was claimed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!(
                "{} bytes of binary data follow the JSON but no input claims them",
                self.0.len()
            )))
        }
    }
}

/// An encoded response body.
#[derive(Debug)]
pub struct Encoded {
    /// JSON, followed by the binary outputs if any.
    pub body: Vec<u8>,
    /// The JSON part's length, when binary outputs follow it.
    pub json_length: Option<usize>,
}

/// The JSON part followed by the binary outputs.
pub fn assemble(mut json: Vec<u8>, binary: &[u8]) -> Encoded {
    let json_length = (!binary.is_empty()).then_some(json.len());
    json.extend_from_slice(binary);
    Encoded {
        body: json,
        json_length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_splits_json_from_binary() {
        assert_eq!(split_body(None, b"{}xy").unwrap(), (&b"{}xy"[..], &b""[..]));
        assert_eq!(
            split_body(Some(" 2 "), b"{}xy").unwrap(),
            (&b"{}"[..], &b"xy"[..])
        );
        let long = split_body(Some("9"), b"{}").unwrap_err().to_string();
        assert!(
            long.contains("says the JSON is 9 bytes, but the body has only 2"),
            "{long}"
        );
        let text = split_body(Some("two"), b"{}").unwrap_err().to_string();
        assert!(text.contains("must be a byte count, got `two`"), "{text}");
    }

    #[test]
    fn binary_parts_are_claimed_in_order_and_all_of_them() {
        let body = Bytes::from_static(b"abcdef");
        let mut tail = BinaryTail::new(body.clone());
        let x = tail.take("x", 2).unwrap();
        assert_eq!(x, b"ab"[..]);
        assert_eq!(x.as_ptr(), body.as_ptr(), "a slice of the body, not a copy");
        assert_eq!(tail.take("y", 3).unwrap(), b"cde"[..]);
        let short = tail.take("z", 4).unwrap_err().to_string();
        assert_eq!(
            short,
            "input `z` needs 4 bytes of binary data, only 1 are left in the body"
        );
        let left = BinaryTail::new(Bytes::from_static(b"ab"))
            .finish()
            .unwrap_err()
            .to_string();
        assert!(
            left.starts_with("2 bytes of binary data follow the JSON"),
            "{left}"
        );
    }

    #[test]
    fn binary_outputs_follow_the_json_and_their_length_is_told() {
        let plain = assemble(b"{}".to_vec(), &[]);
        assert_eq!(
            (plain.body.as_slice(), plain.json_length),
            (&b"{}"[..], None)
        );
        let framed = assemble(b"{}".to_vec(), &[1, 2]);
        assert_eq!(
            (framed.body.as_slice(), framed.json_length),
            (&b"{}\x01\x02"[..], Some(2))
        );
    }
}
