//! What a plugin says about itself, in host types.

use super::bindings::{GuestModelInfo, GuestModelKind, GuestTensorSpec, GuestTensorType};
use std::fmt;

/// A tensor element type, named as the Open Inference Protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE half precision.
    Fp16,
    /// IEEE single precision.
    Fp32,
    /// IEEE double precision.
    Fp64,
    /// bfloat16.
    Bf16,
    /// Unsigned byte.
    Uint8,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
}

impl Dtype {
    /// The protocol's name, e.g. `FP32`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp16 => "FP16",
            Dtype::Fp32 => "FP32",
            Dtype::Fp64 => "FP64",
            Dtype::Bf16 => "BF16",
            Dtype::Uint8 => "UINT8",
            Dtype::Int32 => "INT32",
            Dtype::Int64 => "INT64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Fp16 | Dtype::Bf16 => 2,
            Dtype::Fp32 | Dtype::Int32 => 4,
            Dtype::Fp64 | Dtype::Int64 => 8,
            Dtype::Uint8 => 1,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<GuestTensorType> for Dtype {
    fn from(ty: GuestTensorType) -> Self {
        match ty {
            GuestTensorType::Fp16 => Dtype::Fp16,
            GuestTensorType::Fp32 => Dtype::Fp32,
            GuestTensorType::Fp64 => Dtype::Fp64,
            GuestTensorType::Bf16 => Dtype::Bf16,
            GuestTensorType::U8 => Dtype::Uint8,
            GuestTensorType::I32 => Dtype::Int32,
            GuestTensorType::I64 => Dtype::Int64,
        }
    }
}

/// The role a sub-model plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Turns raw inputs into features.
    FeatureExtractor,
    /// Maps inputs to classes.
    Classifier,
    /// Distilled from a teacher.
    Student,
    /// One member of an ensemble.
    EnsembleMember,
    /// Takes other models' outputs.
    MetaModel,
    /// Chooses a branch.
    Router,
    /// Anything else.
    Other,
}

impl ModelKind {
    /// The contract's name, e.g. `feature-extractor`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::FeatureExtractor => "feature-extractor",
            ModelKind::Classifier => "classifier",
            ModelKind::Student => "student",
            ModelKind::EnsembleMember => "ensemble-member",
            ModelKind::MetaModel => "meta-model",
            ModelKind::Router => "router",
            ModelKind::Other => "other",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<GuestModelKind> for ModelKind {
    fn from(kind: GuestModelKind) -> Self {
        match kind {
            GuestModelKind::FeatureExtractor => ModelKind::FeatureExtractor,
            GuestModelKind::Classifier => ModelKind::Classifier,
            GuestModelKind::Student => ModelKind::Student,
            GuestModelKind::EnsembleMember => ModelKind::EnsembleMember,
            GuestModelKind::MetaModel => ModelKind::MetaModel,
            GuestModelKind::Router => ModelKind::Router,
            GuestModelKind::Other => ModelKind::Other,
        }
    }
}

/// One input or output: name, element type, shape (`-1` = dynamic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape; `-1` marks a dynamic dimension.
    pub shape: Vec<i64>,
}

impl From<GuestTensorSpec> for TensorSpec {
    fn from(spec: GuestTensorSpec) -> Self {
        TensorSpec {
            name: spec.name,
            dtype: spec.dtype.into(),
            shape: spec.shape,
        }
    }
}

/// What a plugin reports from `info()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Machine-friendly name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// Its role.
    pub kind: ModelKind,
    /// One sentence for operators.
    pub description: String,
    /// What `infer` takes.
    pub inputs: Vec<TensorSpec>,
    /// What `infer` returns.
    pub outputs: Vec<TensorSpec>,
    /// Class labels, for classifiers.
    pub labels: Option<Vec<String>>,
    /// Preferred largest batch.
    pub max_batch_size: Option<u32>,
}

impl From<GuestModelInfo> for ModelInfo {
    fn from(info: GuestModelInfo) -> Self {
        ModelInfo {
            name: info.name,
            version: info.version,
            kind: info.kind.into(),
            description: info.description,
            inputs: info.inputs.into_iter().map(Into::into).collect(),
            outputs: info.outputs.into_iter().map(Into::into).collect(),
            labels: info.labels,
            max_batch_size: info.max_batch_size,
        }
    }
}
