//! The embedded default wasi-nn backend: ONNX graphs run by tract, in pure
//! Rust, with nothing to install.

use super::signature::{Signature, backend_error, input_error, wasi_dimensions};
use crate::runtime::{Dtype, TensorSpec};
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, ShapeFactoid};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor,
};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::{ExecutionContext, Graph, Tensor};

/// Parses, types and optimises an ONNX model for tract (CPU only).
/// Dimensions the file leaves unnamed become symbols, so one graph serves
/// every batch size.
pub fn load_onnx(bytes: &[u8]) -> Result<(Graph, Signature), String> {
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| format!("not a model tract can read: {e:#}"))?;
    close_input_facts(&mut model)?;
    let typed = model
        .into_typed()
        .map_err(|e| format!("tract cannot type this graph: {e:#}"))?;
    let signature = signature_of(&typed)?;
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("tract cannot optimise this graph: {e:#}"))?;
    let graph = TractGraph {
        plan,
        signature: Arc::new(signature.clone()),
    };
    let graph: Box<dyn BackendGraph> = Box::new(graph);
    Ok((graph.into(), signature))
}

/// Gives every input a closed shape with a known element type; an unnamed
/// dimension becomes a symbol (`N` for the leading one).
fn close_input_facts(model: &mut InferenceModel) -> Result<(), String> {
    for index in 0..model.inputs.len() {
        let fact = model
            .input_fact(index)
            .map_err(|e| format!("{e:#}"))?
            .clone();
        let name = model.node(model.inputs[index].node).name.clone();
        let Some(datum_type) = fact.datum_type.concretize() else {
            return Err(format!("input `{name}` declares no element type"));
        };
        if fact.shape.is_open() {
            return Err(format!("input `{name}` declares no rank"));
        }
        let dims = fact
            .shape
            .dims()
            .enumerate()
            .map(|(axis, dim)| match dim {
                GenericFactoid::Only(d) => GenericFactoid::Only(d.clone()),
                GenericFactoid::Any => {
                    let symbol = if axis == 0 {
                        "N".to_string()
                    } else {
                        format!("{name}_{axis}")
                    };
                    GenericFactoid::Only(TDim::Sym(model.symbols.sym(&symbol)))
                }
            })
            .collect();
        model
            .set_input_fact(
                index,
                InferenceFact::dt_shape(datum_type, ShapeFactoid::closed(dims)),
            )
            .map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

fn signature_of(model: &TypedModel) -> Result<Signature, String> {
    let spec = |outlet: OutletId, name: String| -> Result<TensorSpec, String> {
        let fact = model.outlet_fact(outlet).map_err(|e| format!("{e:#}"))?;
        let dtype = dtype_of(fact.datum_type)
            .ok_or_else(|| format!("`{name}` has element type {:?}", fact.datum_type))?;
        let shape = fact
            .shape
            .iter()
            .map(|d| d.as_i64().unwrap_or(-1))
            .collect();
        Ok(TensorSpec { name, dtype, shape })
    };
    let inputs = model
        .inputs
        .iter()
        .map(|&outlet| spec(outlet, model.node(outlet.node).name.clone()))
        .collect::<Result<_, _>>()?;
    let outputs = model
        .outputs
        .iter()
        .map(|&outlet| {
            let name = model
                .outlet_label(outlet)
                .map_or_else(|| model.node(outlet.node).name.clone(), str::to_string);
            spec(outlet, name)
        })
        .collect::<Result<_, _>>()?;
    Ok(Signature { inputs, outputs })
}

/// The wasi-nn element type for a tract one; booleans travel as `U8` 0/1.
fn dtype_of(datum_type: DatumType) -> Option<Dtype> {
    Some(match datum_type {
        DatumType::F16 => Dtype::Fp16,
        DatumType::F32 => Dtype::Fp32,
        DatumType::F64 => Dtype::Fp64,
        DatumType::U8 | DatumType::Bool => Dtype::Uint8,
        DatumType::I32 => Dtype::Int32,
        DatumType::I64 => Dtype::Int64,
        _ => return None,
    })
}

fn datum_type_of(ty: TensorType) -> Option<DatumType> {
    Some(match ty {
        TensorType::Fp16 => DatumType::F16,
        TensorType::Fp32 => DatumType::F32,
        TensorType::Fp64 => DatumType::F64,
        TensorType::U8 => DatumType::U8,
        TensorType::I32 => DatumType::I32,
        TensorType::I64 => DatumType::I64,
        TensorType::Bf16 => return None,
    })
}

struct TractGraph {
    plan: Arc<TypedRunnableModel>,
    signature: Arc<Signature>,
}

impl BackendGraph for TractGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let state = self
            .plan
            .spawn()
            .map_err(|e| backend_error(format!("tract: {e:#}")))?;
        let context: Box<dyn BackendExecutionContext> = Box::new(TractContext {
            state: Mutex::new(state),
            signature: self.signature.clone(),
        });
        Ok(context.into())
    }
}

struct TractContext {
    /// Kept across calls so its buffers are allocated once per context. The
    /// mutex only makes it `Sync`; `&mut self` reaches it with `get_mut`.
    state: Mutex<TypedSimpleState>,
    signature: Arc<Signature>,
}

impl TractContext {
    fn run(&mut self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let inputs = self.signature.arrange_inputs(inputs)?;
        let inputs = inputs
            .iter()
            .map(|t| to_tract(t).map(TValue::from))
            .collect::<Result<TVec<_>, _>>()?;
        let state = self
            .state
            .get_mut()
            .map_err(|_| backend_error("an earlier tract call panicked".to_string()))?;
        let outputs = state.run(inputs);
        // tract's kernels leave the vector registers dirty (see vector_state).
        super::vector_state::clear_upper_vector_state();
        let outputs = outputs.map_err(|e| backend_error(format!("tract: {e:#}")))?;
        outputs
            .iter()
            .zip(&self.signature.outputs)
            .map(|(value, spec)| {
                Ok(NamedTensor {
                    name: spec.name.clone(),
                    tensor: from_tract(value, &spec.name)?,
                })
            })
            .collect()
    }
}

// The component-model wasi-nn passes inputs to `compute` and gets outputs
// back; the set-input / get-output pair exists only for the older WITX ABI,
// which plugins do not use.
impl BackendExecutionContext for TractContext {
    fn set_input(&mut self, _: Id, _: &Tensor) -> Result<(), BackendError> {
        Err(backend_error("pass inputs to compute".to_string()))
    }

    fn get_output(&mut self, _: Id) -> Result<Tensor, BackendError> {
        Err(backend_error("outputs are returned by compute".to_string()))
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let inputs = inputs.ok_or_else(|| backend_error("pass inputs to compute".to_string()))?;
        self.run(inputs).map(Some)
    }
}

fn to_tract(tensor: &Tensor) -> Result<tract_onnx::prelude::Tensor, BackendError> {
    let datum_type = datum_type_of(tensor.ty)
        .ok_or_else(|| input_error(format!("tract has no {} tensors", Dtype::from(tensor.ty))))?;
    let shape: Vec<usize> = tensor.dimensions.iter().map(|&d| d as usize).collect();
    // SAFETY: every element type above is plain old data (any byte pattern is
    // a valid value), and `from_raw_dt` checks the length against the shape
    // before it copies.
    unsafe { tract_onnx::prelude::Tensor::from_raw_dt(datum_type, &shape, &tensor.data) }
        .map_err(|e| input_error(format!("{e:#}")))
}

fn from_tract(value: &TValue, name: &str) -> Result<Tensor, BackendError> {
    let dtype = dtype_of(value.datum_type()).ok_or_else(|| {
        backend_error(format!(
            "output `{name}` has element type {:?}, which wasi-nn cannot carry",
            value.datum_type()
        ))
    })?;
    let dimensions = wasi_dimensions(value.shape())?;
    Ok(Tensor::new(
        dimensions,
        dtype.into(),
        value.as_bytes().to_vec(),
    ))
}
