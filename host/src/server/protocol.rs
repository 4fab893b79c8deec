//! The Open Inference Protocol's JSON bodies (KServe v2), plus the Triton
//! extensions tritonclient calls: model config and statistics.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST .../infer`.
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters (`binary_data_output`, a switch's key, `trace`).
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<InputTensor>,
    /// Which outputs to return, and how; all of them when absent.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input tensor of a request.
#[derive(Debug, Deserialize)]
pub struct InputTensor {
    /// The model's input it feeds.
    pub name: String,
    /// Its shape (signed, so that a negative size gets a clear message).
    pub shape: Vec<i64>,
    /// The protocol's datatype name, e.g. `FP32`.
    pub datatype: String,
    /// `binary_data_size` when the data follows the JSON as raw bytes.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The elements, flat or nested, row-major.
    #[serde(default)]
    pub data: Option<super::json_data::JsonData>,
}

/// One output a client asks for.
#[derive(Debug, Deserialize)]
pub struct RequestedOutput {
    /// The model's output.
    pub name: String,
    /// `binary_data: true` to receive it as raw bytes.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// The answer to an inference request.
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    pub model_version: String,
    /// The request's id, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Soft members dropped, and the trace when asked for.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// The output tensors.
    pub outputs: Vec<OutputTensor>,
}

/// One output tensor of a response.
#[derive(Debug, Serialize)]
pub struct OutputTensor {
    /// The model's output.
    pub name: String,
    /// Its datatype.
    pub datatype: &'static str,
    /// Its shape.
    pub shape: Vec<u64>,
    /// `binary_data_size` when the bytes follow the JSON.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// The elements, flat, when sent as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<OutputData>,
}

/// An output's elements as JSON numbers of its own type, so FP32 values
/// print as the shortest text that reads back to the same `f32`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutputData {
    /// FP16 (widened) and FP32.
    F32(Vec<f32>),
    /// FP64.
    F64(Vec<f64>),
    /// UINT8.
    U8(Vec<u8>),
    /// INT32.
    I32(Vec<i32>),
    /// INT64, and the narrower integers widened.
    I64(Vec<i64>),
    /// UINT64.
    U64(Vec<u64>),
    /// BOOL.
    Bool(Vec<bool>),
    /// BYTES whose elements are all UTF-8.
    Text(Vec<String>),
}

/// `GET /v2`.
#[derive(Debug, Serialize)]
pub struct ServerMetadata {
    /// `aimass`.
    pub name: &'static str,
    /// This build's version.
    pub version: &'static str,
    /// The protocol extensions served.
    pub extensions: Vec<&'static str>,
}

/// `GET /v2/models/{m}`.
#[derive(Debug, Serialize)]
pub struct ModelMetadata {
    /// The model.
    pub name: String,
    /// The versions ready to serve.
    pub versions: Vec<String>,
    /// `aimass_<kind>`, e.g. `aimass_cascade`.
    pub platform: String,
    /// What it takes.
    pub inputs: Vec<TensorMetadata>,
    /// What it returns.
    pub outputs: Vec<TensorMetadata>,
}

/// One tensor of a model's metadata.
#[derive(Debug, Serialize)]
pub struct TensorMetadata {
    /// Its name.
    pub name: String,
    /// Its datatype.
    pub datatype: &'static str,
    /// Its shape, `-1` for a dynamic dimension.
    pub shape: Vec<i64>,
}
