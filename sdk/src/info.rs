//! Describing a sub-model: a builder over the contract's `model-info`.

use crate::tensor::DType;

pub use crate::bindings::aimass::plugin::types::{ModelInfo, ModelKind, TensorSpec};

impl ModelInfo {
    /// A description with no inputs, outputs or labels yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>, kind: ModelKind) -> Self {
        ModelInfo {
            name: name.into(),
            version: version.into(),
            kind,
            description: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            labels: None,
            max_batch_size: None,
        }
    }

    /// Sets the one-sentence description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Adds an input; `-1` in `shape` marks a dynamic dimension.
    pub fn input(mut self, name: impl Into<String>, dtype: DType, shape: &[i64]) -> Self {
        self.inputs.push(spec(name, dtype, shape));
        self
    }

    /// Adds an output; `-1` in `shape` marks a dynamic dimension.
    pub fn output(mut self, name: impl Into<String>, dtype: DType, shape: &[i64]) -> Self {
        self.outputs.push(spec(name, dtype, shape));
        self
    }

    /// Sets the class labels, indexed by class number.
    pub fn labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the preferred largest batch.
    pub fn max_batch_size(mut self, size: u32) -> Self {
        self.max_batch_size = Some(size);
        self
    }
}

fn spec(name: impl Into<String>, dtype: DType, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}
