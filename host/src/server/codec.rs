//! Inference bodies to and from host tensors: JSON tensors (flat or nested
//! data) and the binary tensor extension, in both directions. Every input
//! is checked against the model's signature here, so a client's mistake is
//! a 400 that names the input, the expected and the actual type or shape.

use super::error::ApiError;
use super::json_data::JsonData;
use super::protocol::{InferRequest, InferResponse, OutputData, OutputTensor};
use crate::graph::{Request, Response, Served};
use crate::nn::shape_text;
use crate::runtime::{Dtype, NamedTensor, TensorSpec};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::wit::TensorType;

/// The header that says how long the JSON part of a binary body is.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Every datatype the protocol names. Models take the seven that `wasi:nn`
/// tensors carry; the others are recognised so that the error can say
/// which type the model wants instead of calling the name unknown.
const PROTOCOL_DATATYPES: [&str; 14] = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
    "FP32", "FP64", "BF16", "BYTES",
];

/// A decoded request, ready for the model.
#[derive(Debug)]
pub struct Decoded {
    /// What the model runs on.
    pub request: Request,
    /// How to send the outputs back.
    pub outputs: OutputChoice,
    /// Rows in the batch (the first input's first dimension).
    pub rows: u64,
}

/// Which outputs the client wants, and which of them as raw bytes.
#[derive(Debug, Default)]
pub struct OutputChoice {
    requested: Option<Vec<(String, bool)>>,
    binary_by_default: bool,
}

impl OutputChoice {
    /// The same outputs, all as JSON (for a terminal, not a socket).
    pub fn as_json(self) -> Self {
        OutputChoice {
            requested: self
                .requested
                .map(|r| r.into_iter().map(|(name, _)| (name, false)).collect()),
            binary_by_default: false,
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

/// Parses and checks a request for `model`, which takes at most
/// `default_max_rows` rows per request unless it sets its own limit.
pub fn decode(
    model: &Served,
    json: &[u8],
    binary: &[u8],
    default_max_rows: usize,
) -> Result<Decoded, ApiError> {
    let request: InferRequest = serde_json::from_slice(json).map_err(|e| {
        ApiError::BadRequest(format!("the request is not a valid inference request: {e}"))
    })?;
    let parameters = request.parameters.unwrap_or_default();
    let binary_by_default = flag(&parameters, "binary_data_output")?;
    let trace = flag(&parameters, "trace")?;

    let specs = &model.signature.inputs;
    let mut slots: Vec<Option<Tensor>> = vec![None; specs.len()];
    let mut rest = binary;
    let mut rows = None;
    for input in request.inputs {
        let Some(index) = specs.iter().position(|s| s.name == input.name) else {
            return Err(ApiError::BadRequest(format!(
                "model `{}` has no input `{}` (its inputs: {})",
                model.name,
                input.name,
                names(specs)
            )));
        };
        if slots[index].is_some() {
            return Err(ApiError::BadRequest(format!(
                "input `{}` is given twice",
                input.name
            )));
        }
        let spec = &specs[index];
        let dims = check_type_and_shape(&model.name, spec, &input.datatype, &input.shape)?;
        if spec.shape.first().is_some_and(|&d| d < 0) {
            let sent = dims.first().copied().unwrap_or(0) as usize;
            check_rows(model, &input.name, sent, default_max_rows)?;
        }
        let count = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .ok_or_else(|| too_big(&input.name))?;
        let input_parameters = input.parameters.unwrap_or_default();
        let data = match (input_parameters.get("binary_data_size"), &input.data) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(format!(
                    "input `{}` has both `data` and `binary_data_size`; send one",
                    input.name
                )));
            }
            (Some(size), None) => {
                let size = size.as_u64().ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "input `{}`: binary_data_size must be a byte count, got {size}",
                        input.name
                    ))
                })?;
                let want = count
                    .checked_mul(spec.dtype.size())
                    .ok_or_else(|| too_big(&input.name))?;
                if size != want as u64 {
                    return Err(ApiError::BadRequest(format!(
                        "input `{}` of shape {:?} needs {want} bytes of {}, \
                         its binary_data_size is {size}",
                        input.name, input.shape, spec.dtype
                    )));
                }
                if rest.len() < want {
                    return Err(ApiError::BadRequest(format!(
                        "input `{}` needs {want} bytes of binary data, only {} are left in the body",
                        input.name,
                        rest.len()
                    )));
                }
                let (mine, after) = rest.split_at(want);
                rest = after;
                mine.to_vec()
            }
            (None, Some(data)) => json_bytes(&input.name, spec.dtype, data, &dims, count)?,
            (None, None) => {
                return Err(ApiError::BadRequest(format!(
                    "input `{}` has neither `data` nor `parameters.binary_data_size`",
                    input.name
                )));
            }
        };
        rows.get_or_insert(dims.first().copied().unwrap_or(1));
        slots[index] = Some(Tensor::new(dims, TensorType::from(spec.dtype), data));
    }
    if !rest.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{} bytes of binary data follow the JSON but no input claims them",
            rest.len()
        )));
    }
    let inputs: Vec<NamedTensor> = slots
        .into_iter()
        .zip(specs)
        .map(|(slot, spec)| {
            slot.map(|t| (spec.name.clone(), t)).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "model `{}` needs input `{}` ({} {})",
                    model.name,
                    spec.name,
                    spec.dtype,
                    shape_text(&spec.shape)
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let requested = match request.outputs {
        None => None,
        Some(outputs) => Some(
            outputs
                .into_iter()
                .map(|o| {
                    let binary = match &o.parameters {
                        Some(p) => {
                            if p.get("classification")
                                .is_some_and(|c| c.as_u64() != Some(0))
                            {
                                return Err(ApiError::BadRequest(format!(
                                    "output `{}`: the classification extension is not supported; \
                                     ask for `probabilities` instead",
                                    o.name
                                )));
                            }
                            p.get("binary_data")
                                .map(|b| b.as_bool().unwrap_or(false))
                                .unwrap_or(binary_by_default)
                        }
                        None => binary_by_default,
                    };
                    Ok((o.name, binary))
                })
                .collect::<Result<Vec<_>, ApiError>>()?,
        ),
    };
    Ok(Decoded {
        request: Request {
            inputs,
            parameters: parameters.into_iter().collect::<BTreeMap<_, _>>(),
            id: request.id,
            trace,
        },
        outputs: OutputChoice {
            requested,
            binary_by_default,
        },
        rows: u64::from(rows.unwrap_or(0)),
    })
}

/// Encodes a model's answer the way the client asked for it.
pub fn encode(
    model: &Served,
    id: Option<String>,
    response: Response,
    choice: &OutputChoice,
) -> Result<Encoded, ApiError> {
    let mut produced: Vec<Option<NamedTensor>> = response.outputs.into_iter().map(Some).collect();
    let chosen: Vec<(NamedTensor, bool)> = match &choice.requested {
        None => produced
            .into_iter()
            .flatten()
            .map(|t| (t, choice.binary_by_default))
            .collect(),
        Some(requested) => {
            let mut chosen = Vec::with_capacity(requested.len());
            for (name, binary) in requested {
                let slot = produced
                    .iter_mut()
                    .find(|slot| slot.as_ref().is_some_and(|(n, _)| n == name));
                let Some(tensor) = slot.and_then(Option::take) else {
                    let outputs: Vec<&str> = model
                        .signature
                        .outputs
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect();
                    return Err(ApiError::BadRequest(format!(
                        "model `{}` has no output `{name}` (its outputs: {}), \
                         or it was asked for twice",
                        model.name,
                        outputs.join(", ")
                    )));
                };
                chosen.push((tensor, *binary));
            }
            chosen
        }
    };

    let mut binary = Vec::new();
    let mut outputs = Vec::with_capacity(chosen.len());
    for ((name, tensor), as_binary) in chosen {
        let dtype = Dtype::from(tensor.ty);
        let shape = tensor.dimensions.iter().map(|&d| u64::from(d)).collect();
        // BF16 has no JSON form in the protocol.
        if as_binary || dtype == Dtype::Bf16 {
            let mut parameters = Map::new();
            parameters.insert("binary_data_size".into(), tensor.data.len().into());
            binary.extend_from_slice(&tensor.data);
            outputs.push(OutputTensor {
                name,
                datatype: dtype.name(),
                shape,
                parameters,
                data: None,
            });
        } else {
            outputs.push(OutputTensor {
                name,
                datatype: dtype.name(),
                shape,
                parameters: Map::new(),
                data: Some(json_data(dtype, &tensor.data)),
            });
        }
    }

    let mut parameters = Map::new();
    if !response.dropped.is_empty() {
        let dropped = response
            .dropped
            .iter()
            .map(|d| serde_json::json!({"hierarchy": d.hierarchy, "model": d.model, "error": d.error}))
            .collect();
        parameters.insert("dropped".into(), Value::Array(dropped));
    }
    if !response.trace.is_empty() {
        let trace = response
            .trace
            .iter()
            .map(|t| {
                serde_json::json!({
                    "model": t.model, "kind": t.kind, "rows": t.rows,
                    "micros": t.micros, "outcome": t.outcome,
                })
            })
            .collect();
        parameters.insert("trace".into(), Value::Array(trace));
    }
    let answer = InferResponse {
        model_name: model.name.clone(),
        model_version: "1".into(),
        id,
        parameters,
        outputs,
    };
    let mut body = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::ModelFailed(format!("cannot encode the response: {e}")))?;
    let json_length = (!binary.is_empty()).then_some(body.len());
    body.extend_from_slice(&binary);
    Ok(Encoded { body, json_length })
}

/// Every model answers one or more rows, up to its limit, the same way
/// whatever its kind: known before any plugin runs, a client error.
fn check_rows(
    model: &Served,
    input: &str,
    rows: usize,
    default_max_rows: usize,
) -> Result<(), ApiError> {
    if rows == 0 {
        return Err(ApiError::BadRequest(format!(
            "input `{input}` has 0 rows; model `{}` needs at least one",
            model.name
        )));
    }
    let (limit, source) = match model.max_rows {
        Some(limit) => (limit, "its own limit"),
        None => (default_max_rows, "the server's --max-batch-rows"),
    };
    if rows > limit {
        return Err(ApiError::BadRequest(format!(
            "input `{input}` has {rows} rows; model `{}` takes at most {limit} per request \
             ({source}); split the request",
            model.name
        )));
    }
    Ok(())
}

fn flag(parameters: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match parameters.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::BadRequest(format!(
            "request parameter `{key}` must be true or false, got {other}"
        ))),
    }
}

fn names(specs: &[TensorSpec]) -> String {
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    names.join(", ")
}

fn too_big(input: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "input `{input}` has more elements than fit in memory"
    ))
}

/// Checks an input's datatype and shape against the model's, and returns
/// the shape as `wasi:nn` dimensions.
fn check_type_and_shape(
    model: &str,
    spec: &TensorSpec,
    datatype: &str,
    shape: &[i64],
) -> Result<Vec<u32>, ApiError> {
    if !PROTOCOL_DATATYPES.contains(&datatype) {
        return Err(ApiError::BadRequest(format!(
            "input `{}`: unknown datatype `{datatype}` (the protocol's are {})",
            spec.name,
            PROTOCOL_DATATYPES.join(", ")
        )));
    }
    if datatype != spec.dtype.name() {
        return Err(ApiError::BadRequest(format!(
            "input `{}` of model `{model}` must be {}, got {datatype}",
            spec.name, spec.dtype
        )));
    }
    let fits = shape.len() == spec.shape.len()
        && shape
            .iter()
            .zip(&spec.shape)
            .all(|(&got, &want)| got >= 0 && (want < 0 || got == want));
    if !fits {
        return Err(ApiError::BadRequest(format!(
            "input `{}` of model `{model}` must have shape {}, got {shape:?}",
            spec.name,
            shape_text(&spec.shape)
        )));
    }
    shape
        .iter()
        .map(|&d| {
            u32::try_from(d).map_err(|_| {
                ApiError::BadRequest(format!(
                    "input `{}`: dimension {d} is larger than {}",
                    spec.name,
                    u32::MAX
                ))
            })
        })
        .collect()
}

/// JSON elements (flat, or nested exactly as the shape) as little-endian
/// bytes of the input's type; a value the type cannot hold is refused, not
/// rounded to infinity or wrapped.
fn json_bytes(
    input: &str,
    dtype: Dtype,
    data: &JsonData,
    dims: &[u32],
    count: usize,
) -> Result<Vec<u8>, ApiError> {
    let bad = |message: String| ApiError::BadRequest(format!("input `{input}`: {message}"));
    if dtype == Dtype::Bf16 {
        return Err(bad("BF16 data can only be sent as binary data".into()));
    }
    if let Some(why) = &data.irregular {
        return Err(bad(format!("its data is not a regular array: {why}")));
    }
    match data.depth {
        Some(0) => return Err(bad("its data must be an array, not a bare value".into())),
        // Flat, or nested exactly as the shape says.
        Some(1) | None => {}
        Some(_) => {
            let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            if data.nesting != shape {
                return Err(bad(format!(
                    "its data is nested as {:?} but its shape is {:?}; send the data flat \
                     or nested exactly as the shape",
                    data.nesting, shape
                )));
            }
        }
    }
    if data.len() != count {
        return Err(bad(format!(
            "its shape holds {count} elements but its data has {}",
            data.len()
        )));
    }
    if let Some((index, what)) = data.not_a_number {
        return Err(bad(format!(
            "element {index} is {what}, not a {dtype} value"
        )));
    }
    let wrong = |i: usize| {
        bad(format!(
            "element {i} is {}, not a {dtype} value",
            data.describe(i)
        ))
    };
    let out_of_range = |i: usize| {
        bad(format!(
            "element {i} is {}, outside the range of {dtype}",
            data.describe(i)
        ))
    };
    let mut bytes = Vec::with_capacity(count.saturating_mul(dtype.size()));
    for i in 0..data.len() {
        let value = data.float(i);
        match dtype {
            Dtype::Fp32 => {
                let v = value as f32;
                if v.is_infinite() {
                    return Err(out_of_range(i));
                }
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Fp64 => bytes.extend_from_slice(&value.to_le_bytes()),
            Dtype::Fp16 => {
                let v = half::f16::from_f64(value);
                if v.is_infinite() {
                    return Err(out_of_range(i));
                }
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Uint8 => {
                let v = data.integer(i).ok_or_else(|| wrong(i))?;
                bytes.push(u8::try_from(v).map_err(|_| out_of_range(i))?);
            }
            Dtype::Int32 => {
                let v = data.integer(i).ok_or_else(|| wrong(i))?;
                let v = i32::try_from(v).map_err(|_| out_of_range(i))?;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Int64 => {
                let v = data.integer(i).ok_or_else(|| wrong(i))?;
                let v = i64::try_from(v).map_err(|_| out_of_range(i))?;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Dtype::Bf16 => return Err(wrong(i)),
        }
    }
    Ok(bytes)
}

/// Little-endian bytes as JSON numbers of the tensor's own type.
fn json_data(dtype: Dtype, data: &[u8]) -> OutputData {
    fn each<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        data.chunks_exact(N)
            .map(|c| {
                let mut bytes = [0u8; N];
                bytes.copy_from_slice(c);
                f(bytes)
            })
            .collect()
    }
    match dtype {
        Dtype::Fp32 => OutputData::F32(each(data, f32::from_le_bytes)),
        Dtype::Fp16 => OutputData::F32(each(data, |b| half::f16::from_le_bytes(b).to_f32())),
        Dtype::Bf16 => OutputData::F32(each(data, |b| half::bf16::from_le_bytes(b).to_f32())),
        Dtype::Fp64 => OutputData::F64(each(data, f64::from_le_bytes)),
        Dtype::Uint8 => OutputData::U8(data.to_vec()),
        Dtype::Int32 => OutputData::I32(each(data, i32::from_le_bytes)),
        Dtype::Int64 => OutputData::I64(each(data, i64::from_le_bytes)),
    }
}
