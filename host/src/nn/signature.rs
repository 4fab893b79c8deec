//! What a graph takes and returns, and the checks every backend runs on a
//! plugin's inputs before handing them to native code.

use crate::tensor::{Dtype, TensorSpec, byte_length, check_dims};
pub use crate::tensor::{Signature, shape_text};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

impl Signature {
    /// Puts `given` in the graph's input order after checking each tensor's
    /// name, element type, shape and byte length. A plugin's mistake comes back
    /// as a message it can read, never as a panic in a native kernel.
    pub fn arrange_inputs(&self, given: Vec<NamedTensor>) -> Result<Vec<Tensor>, BackendError> {
        let mut slots: Vec<Option<Tensor>> = vec![None; self.inputs.len()];
        for NamedTensor { name, tensor } in given {
            let Some(index) = self.inputs.iter().position(|spec| spec.name == name) else {
                return Err(input_error(format!(
                    "the graph has no input `{name}` (its inputs: {})",
                    self.input_names()
                )));
            };
            if slots[index].is_some() {
                return Err(input_error(format!("input `{name}` was given twice")));
            }
            check_tensor(&self.inputs[index], &tensor)?;
            slots[index] = Some(tensor);
        }
        slots
            .into_iter()
            .zip(&self.inputs)
            .map(|(slot, spec)| {
                slot.ok_or_else(|| input_error(format!("input `{}` is missing", spec.name)))
            })
            .collect()
    }

    fn input_names(&self) -> String {
        let names: Vec<&str> = self.inputs.iter().map(|s| s.name.as_str()).collect();
        names.join(", ")
    }
}

/// Checks one tensor against its spec: type and shape by the host's one
/// check, then its bytes (a backend tensor's bytes are not checked when made).
fn check_tensor(spec: &TensorSpec, tensor: &Tensor) -> Result<(), BackendError> {
    let dtype = Dtype::from(tensor.ty);
    check_dims(spec, dtype, &tensor.dimensions)
        .map_err(|mismatch| input_error(format!("input `{}` {mismatch}", spec.name)))?;
    let expected = byte_length(dtype, &tensor.dimensions);
    if expected != Some(tensor.data.len()) {
        return Err(input_error(format!(
            "input `{}` of shape {:?} needs {} bytes of {dtype}, got {}",
            spec.name,
            tensor.dimensions,
            expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            tensor.data.len()
        )));
    }
    Ok(())
}

/// A plugin's bad input. wasmtime-wasi-nn 48 shows a guest only the top-level
/// text of a backend error, and this is the one variant whose text carries
/// our message (in ONNX a tensor's type is its element type and its shape).
pub fn input_error(message: String) -> BackendError {
    BackendError::UnsupportedTensorType(message)
}

/// A failure inside the native backend, e.g. a kernel error.
pub fn backend_error(message: String) -> BackendError {
    BackendError::BackendAccess(wasmtime::format_err!("{message}"))
}

/// A tensor's dimensions as wasi-nn carries them.
pub fn wasi_dimensions(shape: &[usize]) -> Result<Vec<u32>, BackendError> {
    shape
        .iter()
        .map(|&d| {
            u32::try_from(d)
                .map_err(|_| backend_error(format!("output dimension {d} does not fit in u32")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi_nn::wit::TensorType;

    fn signature() -> Signature {
        Signature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                dtype: Dtype::Fp32,
                shape: vec![-1, 2],
            }],
            outputs: vec![],
        }
    }

    fn named(name: &str, ty: TensorType, dims: Vec<u32>, bytes: usize) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(dims, ty, vec![0; bytes]),
        }
    }

    fn message(result: Result<Vec<Tensor>, BackendError>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn accepts_any_batch() {
        let arranged =
            signature().arrange_inputs(vec![named("x", TensorType::Fp32, vec![3, 2], 24)]);
        assert_eq!(arranged.map(|v| v.len()).ok(), Some(1));
    }

    #[test]
    fn names_each_mistake() {
        let s = signature();
        let wrong_type = s.arrange_inputs(vec![named("x", TensorType::I64, vec![1, 2], 16)]);
        assert!(message(wrong_type).contains("input `x` must be FP32, got INT64"));
        let wrong_shape = s.arrange_inputs(vec![named("x", TensorType::Fp32, vec![1, 3], 12)]);
        assert!(message(wrong_shape).contains("must have shape [N, 2], got [1, 3]"));
        let short = s.arrange_inputs(vec![named("x", TensorType::Fp32, vec![1, 2], 4)]);
        assert!(message(short).contains("needs 8 bytes of FP32, got 4"));
        let unknown = s.arrange_inputs(vec![named("y", TensorType::Fp32, vec![1, 2], 8)]);
        assert!(message(unknown).contains("no input `y` (its inputs: x)"));
        assert!(message(s.arrange_inputs(vec![])).contains("input `x` is missing"));
    }
}
