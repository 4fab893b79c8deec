//! `ModelInferRequest` / `ModelInferResponse` to and from the inference
//! service's terms. Raw contents (`raw_input_contents`) become tensors
//! without a copy; typed contents are written out as little-endian bytes.
//! Answers always go back as `raw_output_contents`, as Triton sends them.

use super::proto::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
    infer_parameter::ParameterChoice, model_infer_request::InferInputTensor,
    model_infer_response::InferOutputTensor,
};
use crate::service::{InferRequest, InferResponse, ServiceError, flag};
use crate::tensor::{Dtype, NamedTensor, Tensor, dims_of, strings};
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The model, the version asked for, and the request.
pub type Decoded = (String, Option<String>, InferRequest);

/// Reads a request received at `received`.
pub fn decode(request: ModelInferRequest, received: Instant) -> Result<Decoded, ServiceError> {
    let parameters = parameters(request.parameters)?;
    if flag(&parameters, "binary_data_output").is_err() {
        return Err(ServiceError::client(
            "parameter `binary_data_output` must be true or false",
        ));
    }
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ServiceError::client(format!(
            "{} raw_input_contents for {} inputs: send one per input, in order, or none",
            raw.len(),
            request.inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        inputs.push(decode_input(input, raw.next())?);
    }
    let outputs = if request.outputs.is_empty() {
        None
    } else {
        let mut names = Vec::with_capacity(request.outputs.len());
        for output in request.outputs {
            if output.parameters.get("classification").is_some_and(|p| {
                !matches!(p.parameter_choice, Some(ParameterChoice::Int64Param(0)))
            }) {
                return Err(ServiceError::client(format!(
                    "output `{}`: the classification extension is not supported; \
                     ask for `probabilities` instead",
                    output.name
                )));
            }
            names.push(output.name);
        }
        Some(names)
    };
    let version = Some(request.model_version).filter(|v| !v.is_empty());
    let id = Some(request.id).filter(|id| !id.is_empty());
    Ok((
        request.model_name,
        version,
        InferRequest {
            id,
            request_id: None,
            parameters,
            inputs,
            outputs,
            received,
        },
    ))
}

fn parameters(
    map: HashMap<String, InferParameter>,
) -> Result<BTreeMap<String, Value>, ServiceError> {
    map.into_iter()
        .map(|(key, parameter)| {
            let value = match parameter.parameter_choice {
                Some(ParameterChoice::BoolParam(b)) => Value::Bool(b),
                Some(ParameterChoice::Int64Param(i)) => Value::from(i),
                Some(ParameterChoice::Uint64Param(u)) => Value::from(u),
                Some(ParameterChoice::StringParam(s)) => Value::String(s),
                Some(ParameterChoice::DoubleParam(d)) => serde_json::Number::from_f64(d)
                    .map(Value::Number)
                    .ok_or_else(|| {
                        ServiceError::client(format!("parameter `{key}` is not a finite number"))
                    })?,
                None => {
                    return Err(ServiceError::client(format!(
                        "parameter `{key}` has no value"
                    )));
                }
            };
            Ok((key, value))
        })
        .collect()
}

fn decode_input(input: InferInputTensor, raw: Option<Bytes>) -> Result<NamedTensor, ServiceError> {
    let name = input.name;
    let bad = |message: String| ServiceError::client(format!("input `{name}`: {message}"));
    let dtype = Dtype::parse(&input.datatype).map_err(bad)?;
    let dims = dims_of(&input.shape).map_err(bad)?;
    let data = match (raw, input.contents) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "it has both `contents` and raw_input_contents; send one".into(),
            ));
        }
        (Some(raw), None) => raw,
        (None, Some(contents)) => typed_bytes(dtype, contents).map_err(bad)?,
        (None, None) => {
            return Err(bad(
                "it has neither `contents` nor raw_input_contents".into()
            ));
        }
    };
    let tensor = Tensor::new(dtype, dims, data).map_err(|e| bad(e.to_string()))?;
    Ok((name, tensor))
}

/// Typed contents as little-endian bytes of `dtype`; the field must be the
/// one the protocol gives the type.
fn typed_bytes(dtype: Dtype, c: InferTensorContents) -> Result<Bytes, String> {
    fn le<T: Copy, const N: usize>(values: &[T], bytes: fn(T) -> [u8; N]) -> Bytes {
        values
            .iter()
            .flat_map(|&v| bytes(v))
            .collect::<Vec<u8>>()
            .into()
    }
    let (field, filled) = match dtype {
        Dtype::Fp32 => ("fp32_contents", !c.fp32_contents.is_empty()),
        Dtype::Fp64 => ("fp64_contents", !c.fp64_contents.is_empty()),
        Dtype::Int32 | Dtype::Int8 | Dtype::Int16 => ("int_contents", !c.int_contents.is_empty()),
        Dtype::Int64 => ("int64_contents", !c.int64_contents.is_empty()),
        Dtype::Uint8 | Dtype::Uint16 | Dtype::Uint32 => {
            ("uint_contents", !c.uint_contents.is_empty())
        }
        Dtype::Uint64 => ("uint64_contents", !c.uint64_contents.is_empty()),
        Dtype::Bool => ("bool_contents", !c.bool_contents.is_empty()),
        Dtype::Bytes => ("bytes_contents", !c.bytes_contents.is_empty()),
        Dtype::Fp16 | Dtype::Bf16 => {
            return Err(format!(
                "{dtype} has no typed contents in the protocol; send it as raw_input_contents"
            ));
        }
    };
    let others = [
        !c.bool_contents.is_empty(),
        !c.int_contents.is_empty(),
        !c.int64_contents.is_empty(),
        !c.uint_contents.is_empty(),
        !c.uint64_contents.is_empty(),
        !c.fp32_contents.is_empty(),
        !c.fp64_contents.is_empty(),
        !c.bytes_contents.is_empty(),
    ]
    .iter()
    .filter(|&&f| f)
    .count();
    if others > usize::from(filled) {
        return Err(format!("a {dtype} tensor's values go in `{field}` only"));
    }
    fn narrow<T: Copy + std::fmt::Display, N: TryFrom<T>, const W: usize>(
        values: &[T],
        bytes: fn(N) -> [u8; W],
        dtype: Dtype,
    ) -> Result<Bytes, String> {
        let mut out = Vec::with_capacity(values.len() * W);
        for &v in values {
            let n = N::try_from(v).map_err(|_| format!("{v} does not fit in {dtype}"))?;
            out.extend_from_slice(&bytes(n));
        }
        Ok(out.into())
    }
    Ok(match dtype {
        Dtype::Fp32 => le(&c.fp32_contents, f32::to_le_bytes),
        Dtype::Fp64 => le(&c.fp64_contents, f64::to_le_bytes),
        Dtype::Int32 => le(&c.int_contents, i32::to_le_bytes),
        Dtype::Int64 => le(&c.int64_contents, i64::to_le_bytes),
        Dtype::Uint32 => le(&c.uint_contents, u32::to_le_bytes),
        Dtype::Uint64 => le(&c.uint64_contents, u64::to_le_bytes),
        Dtype::Uint8 => narrow(&c.uint_contents, u8::to_le_bytes, dtype)?,
        Dtype::Uint16 => narrow(&c.uint_contents, u16::to_le_bytes, dtype)?,
        Dtype::Int8 => narrow(&c.int_contents, i8::to_le_bytes, dtype)?,
        Dtype::Int16 => narrow(&c.int_contents, i16::to_le_bytes, dtype)?,
        Dtype::Bool => c
            .bool_contents
            .iter()
            .map(|&b| u8::from(b))
            .collect::<Vec<u8>>()
            .into(),
        Dtype::Bytes => strings::encode(&c.bytes_contents)
            .map_err(|e| e.to_string())?
            .into(),
        Dtype::Fp16 | Dtype::Bf16 => Bytes::new(),
    })
}

/// The answer, its tensors as raw contents (shared, not copied).
pub fn encode(response: InferResponse) -> ModelInferResponse {
    // Lists do not fit an InferParameter: they go as JSON text.
    let parameters = response
        .parameters()
        .into_iter()
        .map(|(key, value)| {
            let text = ParameterChoice::StringParam(value.to_string());
            (
                key.to_string(),
                InferParameter {
                    parameter_choice: Some(text),
                },
            )
        })
        .collect();
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw = Vec::with_capacity(response.outputs.len());
    for (name, tensor) in response.outputs {
        outputs.push(InferOutputTensor {
            name,
            datatype: tensor.dtype().name().to_string(),
            shape: tensor.dims().iter().map(|&d| i64::from(d)).collect(),
            parameters: HashMap::new(),
            contents: None,
        });
        raw.push(tensor.into_data());
    }
    ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version,
        id: response.id.unwrap_or_default(),
        parameters,
        outputs,
        raw_output_contents: raw,
    }
}
