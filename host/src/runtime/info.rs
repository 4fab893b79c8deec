//! What a plugin says about itself, in host types.

use super::bindings::{
    GuestDatatype, GuestModelInfo, GuestModelKind, GuestTensorSpec, GuestTensorType,
};
use crate::tensor::{Dtype, TensorSpec};
use std::fmt;

impl From<GuestDatatype> for Dtype {
    fn from(ty: GuestDatatype) -> Self {
        use GuestDatatype as G;
        match ty {
            G::Fp16 => Dtype::Fp16,
            G::Fp32 => Dtype::Fp32,
            G::Fp64 => Dtype::Fp64,
            G::Bf16 => Dtype::Bf16,
            G::U8 => Dtype::Uint8,
            G::I32 => Dtype::Int32,
            G::I64 => Dtype::Int64,
            G::Bool => Dtype::Bool,
            G::I8 => Dtype::Int8,
            G::I16 => Dtype::Int16,
            G::U16 => Dtype::Uint16,
            G::U32 => Dtype::Uint32,
            G::U64 => Dtype::Uint64,
            G::Bytes => Dtype::Bytes,
        }
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
