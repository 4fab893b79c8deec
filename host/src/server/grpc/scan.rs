//! What a `ModelInferRequest` will cost once decoded, read off its wire
//! form before prost allocates anything. Protobuf lets a few bytes become
//! much memory: an empty input is 2 bytes on the wire and a few hundred in
//! a `Vec<InferInputTensor>`, a one-byte varint of `int64_contents` 8. So the
//! counts are bounded here, and the decoded size is charged to the same
//! budget as REST bodies (`--max-body-memory-bytes`) before decoding.

use super::proto::InferParameter;
use super::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use std::mem::size_of;

/// Inputs, requested outputs or raw contents in one request.
pub const MAX_TENSORS: usize = 4096;
/// Entries in one parameters map.
pub const MAX_PARAMETERS: usize = 256;
/// Dimensions of one input.
pub const MAX_DIMS: usize = 64;

/// The request is malformed or over a count: the message says which.
pub type Refusal = String;

/// The bytes `message` (a `ModelInferRequest`, without gRPC's 5-byte
/// prefix) will take decoded, at least; or why it is refused.
pub fn infer_request(message: &[u8]) -> Result<usize, Refusal> {
    let mut cost = 0usize;
    let (mut inputs, mut outputs, mut raw, mut parameters) = (0, 0, 0, 0);
    for field in Fields::new(message) {
        let (number, value) = field?;
        match (number, value) {
            (1..=3, Value::Bytes(text)) => cost += text.len(),
            (4, Value::Bytes(entry)) => {
                parameters += 1;
                cost += parameter(entry, parameters, "the request")?;
            }
            (5, Value::Bytes(input_bytes)) => {
                inputs += 1;
                count(inputs, MAX_TENSORS, "inputs", "the request")?;
                cost += size_of::<InferInputTensor>() + input(input_bytes, inputs)?;
            }
            (6, Value::Bytes(output)) => {
                outputs += 1;
                count(outputs, MAX_TENSORS, "requested outputs", "the request")?;
                let mut own = 0;
                for field in Fields::new(output) {
                    match field? {
                        (1, Value::Bytes(name)) => cost += name.len(),
                        (2, Value::Bytes(entry)) => {
                            own += 1;
                            cost += parameter(entry, own, "a requested output")?;
                        }
                        _ => {}
                    }
                }
                cost += size_of::<InferRequestedOutputTensor>();
            }
            (7, Value::Bytes(contents)) => {
                raw += 1;
                count(raw, MAX_TENSORS, "raw_input_contents", "the request")?;
                cost += size_of::<Vec<u8>>() + contents.len();
            }
            _ => {}
        }
    }
    Ok(cost)
}

fn count(n: usize, max: usize, what: &str, of: &str) -> Result<(), Refusal> {
    if n > max {
        return Err(format!(
            "{of} has more than {max} {what}, the server's limit"
        ));
    }
    Ok(())
}

/// One map entry: its key and value, and the map's own share.
fn parameter(entry: &[u8], n: usize, of: &str) -> Result<usize, Refusal> {
    count(n, MAX_PARAMETERS, "parameters", of)?;
    for field in Fields::new(entry) {
        field?;
    }
    // A hash map entry: the key's String, the value and the table's slot.
    Ok(size_of::<String>() + size_of::<InferParameter>() + 16 + entry.len())
}

fn input(message: &[u8], n: usize) -> Result<usize, Refusal> {
    let of = format!("input {n}");
    let (mut cost, mut dims, mut parameters) = (0usize, 0usize, 0usize);
    for field in Fields::new(message) {
        match field? {
            (1 | 2, Value::Bytes(text)) => cost += text.len(),
            (3, Value::Bytes(packed)) => dims += varints(packed),
            (3, Value::Varint) => dims += 1,
            (4, Value::Bytes(entry)) => {
                parameters += 1;
                cost += parameter(entry, parameters, &of)?;
            }
            (5, Value::Bytes(contents)) => cost += typed_contents(contents)?,
            _ => {}
        }
        count(dims, MAX_DIMS, "dimensions", &of)?;
    }
    Ok(cost + dims * size_of::<i64>())
}

/// `InferTensorContents`: each repeated field decodes to elements of its
/// own width, whatever their width on the wire.
fn typed_contents(message: &[u8]) -> Result<usize, Refusal> {
    let mut cost = 0usize;
    for field in Fields::new(message) {
        let (number, value) = field?;
        let width = match number {
            1 => 1,
            2 | 4 | 6 => 4,
            3 | 5 | 7 => 8,
            8 => {
                if let Value::Bytes(element) = value {
                    cost += size_of::<Vec<u8>>() + element.len();
                }
                continue;
            }
            _ => continue,
        };
        let elements = match value {
            Value::Bytes(packed) if number == 6 || number == 7 => packed.len() / width,
            Value::Bytes(packed) => varints(packed),
            Value::Varint | Value::Fixed => 1,
        };
        cost = cost.saturating_add(elements.saturating_mul(width));
    }
    Ok(cost)
}

/// The varints in a packed field: each ends at a byte below 0x80.
fn varints(packed: &[u8]) -> usize {
    packed.iter().filter(|&&b| b < 0x80).count()
}

/// A field's value as far as the cost needs it.
#[derive(Debug)]
enum Value<'a> {
    Varint,
    Fixed,
    Bytes(&'a [u8]),
}

/// The fields of one message, in wire order.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(message: &'a [u8]) -> Self {
        Fields {
            rest: message,
            failed: false,
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn field(&mut self) -> Option<(u32, Value<'a>)> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            0 => self.varint().map(|_| Value::Varint)?,
            1 => self.take(8).map(|_| Value::Fixed)?,
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Value::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Value::Fixed)?,
            _ => return None,
        };
        Some((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), Refusal>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        match self.field() {
            Some(field) => Some(Ok(field)),
            None => {
                self.failed = true;
                Some(Err(
                    "the ModelInferRequest message is not valid protobuf".into()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::grpc::proto::{InferTensorContents, ModelInferRequest};
    use prost::Message;

    fn tensor(
        name: &str,
        shape: Vec<i64>,
        contents: Option<InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: "INT64".into(),
            shape,
            contents,
            ..Default::default()
        }
    }

    #[test]
    fn a_million_empty_inputs_are_refused_before_decoding() {
        let mut wire = Vec::new();
        for _ in 0..1_000_000 {
            wire.extend_from_slice(&[5 << 3 | 2, 0]);
        }
        let refusal = infer_request(&wire).unwrap_err();
        assert!(refusal.contains("more than 4096 inputs"), "{refusal}");
        let mut raw = Vec::new();
        for _ in 0..5000 {
            raw.extend_from_slice(&[7 << 3 | 2, 0]);
        }
        assert!(
            infer_request(&raw)
                .unwrap_err()
                .contains("raw_input_contents")
        );
    }

    #[test]
    fn the_cost_covers_what_prost_decodes() {
        // Zeros of int64 are one byte each on the wire, eight decoded.
        let contents = InferTensorContents {
            int64_contents: vec![0; 100_000],
            ..Default::default()
        };
        let request = ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![tensor("x", vec![100_000], Some(contents))],
            ..Default::default()
        };
        let wire = request.encode_to_vec();
        let cost = infer_request(&wire).unwrap();
        assert!(wire.len() < 101_000, "{}", wire.len());
        assert!(cost >= 800_000, "{cost}");
        assert!(cost < 1_000_000, "{cost}");
        let too_deep = ModelInferRequest {
            inputs: vec![tensor("x", vec![1; 65], None)],
            ..Default::default()
        };
        let refusal = infer_request(&too_deep.encode_to_vec()).unwrap_err();
        assert!(
            refusal.contains("input 1 has more than 64 dimensions"),
            "{refusal}"
        );
    }

    #[test]
    fn truncated_or_bad_wire_is_refused_not_read_past() {
        let request = ModelInferRequest {
            model_name: "model".into(),
            inputs: vec![tensor("x", vec![2], None)],
            ..Default::default()
        };
        let wire = request.encode_to_vec();
        for end in 1..wire.len() {
            // Every prefix either parses or is refused; none panics.
            let _ = infer_request(&wire[..end]);
        }
        assert!(infer_request(&[0x0b]).is_err(), "a group's wire type");
        assert!(
            infer_request(&[0x0a, 0x7f]).is_err(),
            "a length past the end"
        );
        assert!(infer_request(&wire).is_ok());
    }
}
