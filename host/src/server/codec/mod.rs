//! Inference bodies of the Open Inference Protocol's REST binding to and
//! from the inference service's terms: JSON tensors (flat or nested data)
//! and the binary tensor extension, in both directions. Checking a request
//! against the model is the service's; this only reads and writes the wire.

mod elements;
mod framing;
#[cfg(test)]
mod proptests;

pub use framing::{Encoded, HEADER_LENGTH, split_body};

use super::error::ApiError;
use super::protocol::{InferRequest as WireRequest, InferResponse as WireResponse, OutputTensor};
use crate::service::{InferRequest, InferResponse, flag};
use crate::tensor::{NamedTensor, Tensor, dims_of};
use bytes::Bytes;
use framing::BinaryTail;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// A decoded request, and how its answer is to be sent.
#[derive(Debug)]
pub struct Decoded {
    /// What the service answers.
    pub request: InferRequest,
    /// Which outputs go back as raw bytes.
    pub binary: BinaryChoice,
}

/// Which outputs the client wants as raw bytes after the JSON.
#[derive(Debug, Default)]
pub struct BinaryChoice {
    by_default: bool,
    /// Per requested output, when it says.
    named: Vec<(String, bool)>,
}

impl BinaryChoice {
    /// Every output as JSON (for a terminal, not a socket).
    pub fn none() -> Self {
        BinaryChoice::default()
    }

    fn binary(&self, name: &str) -> bool {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.by_default, |(_, b)| *b)
    }
}

/// Reads a request body (its JSON part and the binary part after it),
/// received at `received`. The binary part is a slice of the body: binary
/// tensors share its bytes.
pub fn decode(json: &[u8], binary: Bytes, received: Instant) -> Result<Decoded, ApiError> {
    let request: WireRequest = serde_json::from_slice(json).map_err(|e| {
        ApiError::BadRequest(format!("the request is not a valid inference request: {e}"))
    })?;
    let parameters: BTreeMap<String, Value> =
        request.parameters.unwrap_or_default().into_iter().collect();
    let by_default = flag(&parameters, "binary_data_output")?;
    let mut tail = BinaryTail::new(binary);
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        inputs.push(decode_input(input, &mut tail)?);
    }
    tail.finish()?;
    let mut named = Vec::new();
    let outputs = match request.outputs {
        None => None,
        Some(outputs) => {
            let mut names = Vec::with_capacity(outputs.len());
            for o in outputs {
                if let Some(p) = &o.parameters {
                    if p.get("classification")
                        .is_some_and(|c| c.as_u64() != Some(0))
                    {
                        return Err(ApiError::BadRequest(format!(
                            "output `{}`: the classification extension is not supported; \
                             ask for `probabilities` instead",
                            o.name
                        )));
                    }
                    if let Some(b) = p.get("binary_data") {
                        named.push((o.name.clone(), b.as_bool().unwrap_or(false)));
                    }
                }
                names.push(o.name);
            }
            Some(names)
        }
    };
    Ok(Decoded {
        request: InferRequest {
            id: request.id,
            request_id: None,
            parameters,
            inputs,
            outputs,
            received,
        },
        binary: BinaryChoice { by_default, named },
    })
}

fn decode_input(
    input: super::protocol::InputTensor,
    tail: &mut BinaryTail,
) -> Result<NamedTensor, ApiError> {
    let name = input.name;
    let bad = |message: String| ApiError::BadRequest(format!("input `{name}`: {message}"));
    let dtype = elements::dtype(&input.datatype).map_err(bad)?;
    let dims = dims_of(&input.shape).map_err(bad)?;
    let too_big = || bad("it has more elements than fit in memory".into());
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(too_big)?;
    let parameters = input.parameters.unwrap_or_default();
    let data = match (parameters.get("binary_data_size"), &input.data) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(format!(
                "input `{name}` has both `data` and `binary_data_size`; send one"
            )));
        }
        (Some(size), None) => {
            let size = size.as_u64().ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "input `{name}`: binary_data_size must be a byte count, got {size}"
                ))
            })?;
            let want = match dtype.fixed_size() {
                Some(element) => count.checked_mul(element).ok_or_else(too_big)?,
                // BYTES elements frame themselves; the tensor checks them.
                None => usize::try_from(size).map_err(|_| too_big())?,
            };
            if size != want as u64 {
                return Err(ApiError::BadRequest(format!(
                    "input `{name}` of shape {:?} needs {want} bytes of {dtype}, \
                     its binary_data_size is {size}",
                    input.shape
                )));
            }
            tail.take(&name, want)?
        }
        (None, Some(data)) => {
            Bytes::from(elements::to_bytes(dtype, data, &dims, count).map_err(bad)?)
        }
        (None, None) => {
            return Err(ApiError::BadRequest(format!(
                "input `{name}` has neither `data` nor `parameters.binary_data_size`"
            )));
        }
    };
    let tensor = Tensor::new(dtype, dims, data).map_err(|e| bad(e.to_string()))?;
    Ok((name, tensor))
}

/// Writes an answer the way the client asked for it.
pub fn encode(response: InferResponse, binary: &BinaryChoice) -> Result<Encoded, ApiError> {
    let mut tail = Vec::new();
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let parameters: Map<String, Value> = response
        .parameters()
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
    for (name, tensor) in response.outputs {
        let dtype = tensor.dtype();
        let shape = tensor.dims().iter().map(|&d| u64::from(d)).collect();
        // BF16 has no JSON form in the protocol, nor a BYTES element
        // that is not UTF-8.
        let as_binary = binary.binary(&name) || !elements::has_json_form(dtype, tensor.data());
        let mut parameters = Map::new();
        let data = if as_binary {
            parameters.insert("binary_data_size".into(), tensor.len().into());
            tail.extend_from_slice(tensor.data());
            None
        } else {
            Some(elements::to_json(dtype, tensor.data()))
        };
        outputs.push(OutputTensor {
            name,
            datatype: dtype.name(),
            shape,
            parameters,
            data,
        });
    }
    let answer = WireResponse {
        model_name: response.model_name,
        model_version: response.model_version,
        id: response.id,
        parameters,
        outputs,
    };
    let json = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::Internal(format!("cannot encode the response: {e}")))?;
    Ok(framing::assemble(json, &tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Dtype;

    fn decoded(body: &str, binary: &[u8]) -> Result<Decoded, String> {
        decode(
            body.as_bytes(),
            Bytes::copy_from_slice(binary),
            Instant::now(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn json_and_binary_inputs_become_tensors_in_request_order() {
        let body = r#"{"id": "r", "inputs": [
            {"name": "b", "shape": [2], "datatype": "UINT8", "parameters": {"binary_data_size": 2}},
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [[1, 2]]}],
            "outputs": [{"name": "y", "parameters": {"binary_data": true}}, {"name": "z"}]}"#;
        let d = decoded(body, &[7, 9]).unwrap();
        assert_eq!(d.request.id.as_deref(), Some("r"));
        let names: Vec<&str> = d.request.inputs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(d.request.inputs[0].1.data().as_ref(), [7, 9]);
        assert_eq!(d.request.inputs[1].1.f32s().unwrap(), [1.0, 2.0]);
        assert_eq!(
            d.request.outputs,
            Some(vec!["y".to_string(), "z".to_string()])
        );
        assert!(d.binary.binary("y") && !d.binary.binary("z"));
    }

    #[test]
    fn bytes_inputs_come_as_strings_or_length_prefixed_binary() {
        let framed = crate::tensor::strings::encode(&[&b"\xff\x00"[..], b"ok"]).unwrap();
        let body = format!(
            r#"{{"inputs": [
            {{"name": "raw", "shape": [2], "datatype": "BYTES", "parameters": {{"binary_data_size": {}}}}},
            {{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["héllo", ""]}}]}}"#,
            framed.len()
        );
        let d = decoded(&body, &framed).unwrap();
        assert_eq!(d.request.inputs[0].1.strings(), [&b"\xff\x00"[..], b"ok"]);
        assert_eq!(d.request.inputs[1].1.strings(), ["héllo".as_bytes(), b""]);
        let lying = format!(
            r#"{{"inputs": [{{"name": "raw", "shape": [3], "datatype": "BYTES", "parameters": {{"binary_data_size": {}}}}}]}}"#,
            framed.len()
        );
        let err = decoded(&lying, &framed).unwrap_err();
        assert!(
            err.starts_with("input `raw`: BYTES data: element 2 of 3"),
            "{err}"
        );
        let text = decoded(
            r#"{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": [5]}]}"#,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            text,
            "input `t`: element 0 is a number, not a string (BYTES data is strings)"
        );
    }

    #[test]
    fn each_wire_mistake_is_named() {
        let one = |input: &str| decoded(&format!(r#"{{"inputs": [{input}]}}"#), &[]).unwrap_err();
        assert_eq!(
            one(r#"{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}"#),
            format!(
                "input `x`: dimension -1 of shape [-1] is not a size of 0..={}",
                u32::MAX
            )
        );
        assert!(
            one(r#"{"name": "x", "shape": [1], "datatype": "FP8", "data": [1]}"#)
                .contains("unknown datatype `FP8`")
        );
        assert_eq!(
            one(r#"{"name": "x", "shape": [1], "datatype": "FP32"}"#),
            "input `x` has neither `data` nor `parameters.binary_data_size`"
        );
        assert_eq!(
            one(
                r#"{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 4}}"#
            ),
            "input `x` of shape [2] needs 8 bytes of FP32, its binary_data_size is 4"
        );
        let unclaimed = decoded(r#"{"inputs": []}"#, &[1]).unwrap_err();
        assert!(unclaimed.contains("no input claims them"), "{unclaimed}");
        let flag = decoded(
            r#"{"inputs": [], "parameters": {"binary_data_output": 1}}"#,
            &[],
        )
        .unwrap_err();
        assert!(
            flag.contains("`binary_data_output` must be true or false"),
            "{flag}"
        );
    }

    #[test]
    fn answers_are_json_unless_asked_as_binary_and_bf16_is_always_binary() {
        let response = |outputs| InferResponse {
            model_name: "m".into(),
            model_version: "1".into(),
            id: Some("r".into()),
            outputs,
            dropped: vec![],
            trace: vec![],
        };
        let y = (
            "y".to_string(),
            Tensor::from_f32(vec![2], &[0.5, 1.0]).unwrap(),
        );
        let plain = encode(response(vec![y.clone()]), &BinaryChoice::none()).unwrap();
        assert_eq!(plain.json_length, None);
        let text = String::from_utf8(plain.body).unwrap();
        assert!(text.contains(r#""data":[0.5,1.0]"#), "{text}");
        let choice = BinaryChoice {
            by_default: true,
            named: vec![],
        };
        let framed = encode(response(vec![y]), &choice).unwrap();
        let length = framed.json_length.unwrap();
        assert_eq!(framed.body.len(), length + 8);
        let bf16 = (
            "h".to_string(),
            Tensor::new(Dtype::Bf16, vec![1], vec![0u8, 0x3f]).unwrap(),
        );
        let forced = encode(response(vec![bf16]), &BinaryChoice::none()).unwrap();
        assert_eq!(forced.json_length.map(|l| forced.body.len() - l), Some(2));
    }

    #[test]
    fn nan_and_infinity_go_in_binary_exactly_and_finite_outputs_stay_json() {
        let response = |outputs| InferResponse {
            model_name: "m".into(),
            model_version: "1".into(),
            id: None,
            outputs,
            dropped: vec![],
            trace: vec![],
        };
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let y = Tensor::from_f32(vec![3], &[0.5, bad, 1.0]).unwrap();
            let z = Tensor::from_f32(vec![1], &[2.0]).unwrap();
            let outputs = vec![("y".to_string(), y), ("z".to_string(), z)];
            let encoded = encode(response(outputs), &BinaryChoice::none()).unwrap();
            let length = encoded.json_length.expect("a binary part");
            let head: serde_json::Value = serde_json::from_slice(&encoded.body[..length]).unwrap();
            assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 12);
            assert_eq!(head["outputs"][1]["data"], serde_json::json!([2.0]));
            let tail = &encoded.body[length..];
            let middle = f32::from_le_bytes(tail[4..8].try_into().unwrap());
            assert_eq!(middle.to_bits(), bad.to_bits(), "{bad} sent as {middle}");
        }
        let half_inf = Tensor::new(Dtype::Fp16, vec![1], vec![0x00, 0x7c]).unwrap();
        let encoded = encode(
            response(vec![("h".to_string(), half_inf)]),
            &BinaryChoice::none(),
        )
        .unwrap();
        assert!(encoded.json_length.is_some());
        let double_nan =
            Tensor::new(Dtype::Fp64, vec![1], f64::NAN.to_le_bytes().to_vec()).unwrap();
        let encoded = encode(
            response(vec![("d".to_string(), double_nan)]),
            &BinaryChoice::none(),
        )
        .unwrap();
        assert!(encoded.json_length.is_some());
    }
}
