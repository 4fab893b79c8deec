//! What a model or graph takes and returns.

use super::dtype::TensorSpec;

/// A graph's inputs and outputs (`-1` marks a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// What `compute` takes, in the graph's order.
    pub inputs: Vec<TensorSpec>,
    /// What `compute` returns, in the graph's order.
    pub outputs: Vec<TensorSpec>,
}
