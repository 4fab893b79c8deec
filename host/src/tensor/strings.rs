//! BYTES elements: byte strings of any length, held as the protocol's
//! binary form (each element a 4-byte little-endian length, then its
//! bytes). That form is what REST's binary extension and gRPC's raw
//! contents carry and what a plugin reads, so a string tensor crosses every
//! layer without being re-encoded; only JSON and typed gRPC contents are
//! converted.

use super::TensorError;

/// The longest one element may be (a page image is a few MiB); the body or
/// message limits bound the total.
pub const MAX_ELEMENT_BYTES: usize = 64 << 20;

/// The start of each element's length prefix in `data`, plus `data.len()`
/// at the end, checking that `data` holds exactly `count` elements.
pub fn offsets(data: &[u8], count: usize) -> Result<Vec<usize>, TensorError> {
    // Each element takes at least 4 bytes: a count past that is a lie told
    // before a single allocation.
    if count > data.len() / 4 + 1 {
        return Err(framing(format!(
            "{count} elements cannot fit in {} bytes (each takes at least 4)",
            data.len()
        )));
    }
    let mut starts = Vec::with_capacity(count + 1);
    let mut at = 0usize;
    for index in 0..count {
        starts.push(at);
        let Some(prefix) = data.get(at..at + 4) else {
            return Err(framing(format!(
                "element {index} of {count}: its 4-byte length is cut off at byte {at} of {}",
                data.len()
            )));
        };
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if length > MAX_ELEMENT_BYTES {
            return Err(framing(format!(
                "element {index} is {length} bytes, the most one element may be is {MAX_ELEMENT_BYTES}"
            )));
        }
        let end = at + 4 + length;
        if end > data.len() {
            return Err(framing(format!(
                "element {index} says it is {length} bytes, only {} are left",
                data.len() - at - 4
            )));
        }
        at = end;
    }
    if at != data.len() {
        return Err(framing(format!(
            "{} bytes follow the last of the {count} elements the shape holds",
            data.len() - at
        )));
    }
    starts.push(at);
    Ok(starts)
}

fn framing(message: String) -> TensorError {
    TensorError::Framing(message)
}

/// The binary form of `elements`.
pub fn encode<E: AsRef<[u8]>>(elements: &[E]) -> Result<Vec<u8>, TensorError> {
    let total: usize = elements.iter().map(|e| e.as_ref().len() + 4).sum();
    let mut data = Vec::with_capacity(total);
    for (index, element) in elements.iter().enumerate() {
        let element = element.as_ref();
        if element.len() > MAX_ELEMENT_BYTES {
            return Err(framing(format!(
                "element {index} is {} bytes, the most one element may be is {MAX_ELEMENT_BYTES}",
                element.len()
            )));
        }
        data.extend_from_slice(&(element.len() as u32).to_le_bytes());
        data.extend_from_slice(element);
    }
    Ok(data)
}

/// The elements of a valid binary form, in order (the form must have come
/// through [`offsets`], as every BYTES tensor's has).
pub fn elements(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let prefix = rest.get(..4)?;
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let element = rest.get(4..4 + length)?;
        rest = &rest[4 + length..];
        Some(element)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_read_back_every_kind_of_element() {
        let items: Vec<&[u8]> = vec![b"", "héllo 文字".as_bytes(), &[0xff, 0x00, 0xfe]];
        let data = encode(&items).unwrap();
        assert_eq!(offsets(&data, 3).unwrap(), [0, 4, 4 + 4 + 13, data.len()]);
        let back: Vec<&[u8]> = elements(&data).collect();
        assert_eq!(back, items);
    }

    #[test]
    fn broken_framing_is_named() {
        let data = encode(&["ab", "c"]).unwrap();
        let err = |data: &[u8], count| offsets(data, count).unwrap_err().to_string();
        assert!(
            err(&data, 3).contains("element 2 of 3"),
            "{}",
            err(&data, 3)
        );
        assert!(err(&data, 1).contains("5 bytes follow the last of the 1"));
        assert!(err(&data[..10], 2).contains("says it is 1 bytes, only 0 are left"));
        let huge = (u32::MAX).to_le_bytes();
        assert!(err(&huge, 1).contains("the most one element may be"));
        assert!(err(&[], 1_000_000).contains("cannot fit in 0 bytes"));
        assert_eq!(offsets(&[], 0).unwrap(), [0]);
    }
}
