//! The request decoder, and the service's checks after it, against
//! arbitrary and mutated bodies: they never panic, and every refusal says
//! what was wrong.

use super::{decode, split_body};
use crate::graph::Served;
use crate::service::check_inputs;
use crate::tensor::Signature;
use crate::tensor::{Dtype, TensorSpec};
use proptest::prelude::*;
use std::time::Instant;

fn model() -> Served {
    let spec = |name: &str, dtype, shape: &[i64]| TensorSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    };
    crate::graph::with_signature(
        "m",
        Signature {
            inputs: vec![
                spec("pixels", Dtype::Fp32, &[-1, 4]),
                spec("ids", Dtype::Int64, &[-1]),
                spec("mask", Dtype::Uint8, &[-1, 2]),
            ],
            outputs: vec![spec("y", Dtype::Fp16, &[-1])],
        },
    )
}

const VALID: &str = r#"{"id": "r1", "parameters": {"binary_data_output": false},
 "inputs": [
  {"name": "pixels", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2.5, -3, 4e3], [0, 0, 0, 1]]},
  {"name": "ids", "shape": [2], "datatype": "INT64", "data": [7, -9007199254740993]},
  {"name": "mask", "shape": [2, 2], "datatype": "UINT8", "parameters": {"binary_data_size": 4}}
 ],
 "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}"#;

/// Decodes, and checks the outcome is a value or a clear error.
fn decoded_or_explained(json: &[u8], binary: &[u8]) {
    let checked = decode(json, bytes::Bytes::copy_from_slice(binary), Instant::now())
        .map_err(|e| e.to_string())
        .and_then(|d| check_inputs(&model(), d.request.inputs, 64).map_err(|e| e.to_string()));
    match checked {
        Ok((inputs, _)) => {
            assert_eq!(inputs.len(), 3);
            for (_, tensor) in &inputs {
                let elements: usize = tensor.dims().iter().map(|&d| d as usize).product();
                assert_eq!(
                    Some(tensor.len()),
                    tensor.dtype().fixed_size().map(|s| elements * s)
                );
            }
        }
        Err(e) => assert!(!e.trim().is_empty(), "an empty error"),
    }
}

#[test]
fn the_valid_request_decodes() {
    let decoded = decode(
        VALID.as_bytes(),
        bytes::Bytes::from_static(&[1, 0, 0, 1]),
        Instant::now(),
    )
    .expect("valid");
    let (_, rows) = check_inputs(&model(), decoded.request.inputs, 64).expect("valid");
    assert_eq!(rows, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(json in proptest::collection::vec(any::<u8>(), 0..512),
                                   binary in proptest::collection::vec(any::<u8>(), 0..64)) {
        decoded_or_explained(&json, &binary);
    }

    #[test]
    fn mutated_requests_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
        binary in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut json = VALID.as_bytes().to_vec();
        for (at, byte, how) in edits {
            let i = at.index(json.len() + 1);
            match how {
                0 if i < json.len() => json[i] = byte,
                1 => json.insert(i, byte),
                _ if i < json.len() => { json.remove(i); }
                _ => {}
            }
        }
        decoded_or_explained(&json, &binary);
    }

    #[test]
    fn arbitrary_shapes_and_data_never_panic(
        shape in proptest::collection::vec(any::<i64>().prop_map(|d| d % 6 - 1), 0..4),
        datatype in prop::sample::select(vec!["FP32", "INT64", "UINT8", "FP16", "BYTES", "BF16"]),
        data in proptest::collection::vec(prop_oneof![
            any::<f64>().prop_map(|v| serde_json::json!(v)),
            any::<i64>().prop_map(|v| serde_json::json!(v)),
            Just(serde_json::json!([1, [2]])),
            Just(serde_json::json!(true)),
        ], 0..12),
        header in proptest::option::of("[0-9a-z ]{0,6}"),
    ) {
        let request = serde_json::json!({"inputs": [
            {"name": "pixels", "shape": shape, "datatype": datatype, "data": data},
            {"name": "ids", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "mask", "shape": [1, 2], "datatype": "UINT8", "data": [1, 2]},
        ]}).to_string();
        let mut body = request.into_bytes();
        body.extend_from_slice(&[0, 1, 2]);
        match split_body(header.as_deref(), &body) {
            Ok((json, binary)) => decoded_or_explained(json, binary),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
