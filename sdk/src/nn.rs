//! Safe wrappers over `wasi:nn`: reach a graph the operator granted to this
//! node, by name, and run it on named tensors.

use crate::bindings::wasi::nn::errors::{Error as NnError, ErrorCode};
use crate::bindings::wasi::nn::{graph, inference};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::tensors::Tensors;

/// A model (weights) the host loaded, with an execution context ready.
///
/// The host, not the plugin, owns models: the operator names artifacts in the
/// config and grants each node the graphs it may use. Asking for any other
/// name fails with `not-found`.
///
/// ```no_run
/// use aimass_sdk::{Graph, Tensor, Tensors};
/// # fn main() -> aimass_sdk::Result<()> {
/// let graph = Graph::by_name("digits-student")?;
/// let pixels = Tensor::new(&[1, 64], &[0f32; 64])?;
/// let mut outputs = graph.compute(Tensors::new().with("input", pixels))?;
/// let logits = outputs.take("logits")?.to_vec::<f32>()?;
/// # let _ = logits; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Graph {
    name: String,
    context: inference::GraphExecutionContext,
    // Kept so the graph outlives its execution context.
    _graph: graph::Graph,
}

impl Graph {
    /// The graph the host registered under `name`, if this node may use it.
    pub fn by_name(name: &str) -> Result<Self> {
        let graph =
            graph::load_by_name(name).map_err(|e| from_nn(&format!("graph `{name}`"), e))?;
        let context = graph
            .init_execution_context()
            .map_err(|e| from_nn(&format!("graph `{name}`: execution context"), e))?;
        Ok(Graph {
            name: name.to_string(),
            context,
            _graph: graph,
        })
    }

    /// The name it was loaded by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the graph on named inputs; returns its named outputs. Inputs
    /// that are host tensors are handed over without copying.
    pub fn compute(&self, inputs: Tensors) -> Result<Tensors> {
        let inputs: Vec<inference::NamedTensor> = inputs
            .into_iter()
            .map(|(name, tensor)| (name, tensor.into_host()))
            .collect();
        let outputs = self
            .context
            .compute(inputs)
            .map_err(|e| from_nn(&format!("graph `{}`: compute", self.name), e))?;
        Ok(outputs
            .into_iter()
            .map(|(name, tensor)| (name, Tensor::from_host(tensor)))
            .collect())
    }
}

/// A `wasi:nn` error as a sub-model error: a rejected argument is the
/// caller's input problem, anything else is the model's.
fn from_nn(context: &str, error: NnError) -> Error {
    let code = error.code();
    let message = format!("{context}: {}: {}", code_name(code), error.data());
    match code {
        ErrorCode::InvalidArgument => Error::InvalidInput(message),
        _ => Error::Model(message),
    }
}

fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "invalid-argument",
        ErrorCode::InvalidEncoding => "invalid-encoding",
        ErrorCode::Timeout => "timeout",
        ErrorCode::RuntimeError => "runtime-error",
        ErrorCode::UnsupportedOperation => "unsupported-operation",
        ErrorCode::TooLarge => "too-large",
        ErrorCode::NotFound => "not-found",
        ErrorCode::Security => "security",
        ErrorCode::Unknown => "unknown",
    }
}
