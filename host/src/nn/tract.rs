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

/// Graphs up to this size also get a plan for one row (see
/// [`single_row_plan`]); the plan holds its own packed copy of the weights,
/// so a large graph, where the per-call overhead it saves is lost in the
/// arithmetic anyway, does without.
const SINGLE_ROW_PLAN_MAX_BYTES: usize = 16 << 20;

/// Parses, types and optimises an ONNX model for tract (CPU only).
/// Dimensions the file leaves unnamed become symbols, so one graph serves
/// every batch size.
pub fn load_onnx(bytes: &[u8]) -> Result<(Graph, Signature), String> {
    let (graph, signature) = load_tract_graph(bytes)?;
    let graph: Box<dyn BackendGraph> = Box::new(graph);
    Ok((graph.into(), signature))
}

fn load_tract_graph(bytes: &[u8]) -> Result<(TractGraph, Signature), String> {
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| format!("not a model tract can read: {e:#}"))?;
    close_input_facts(&mut model)?;
    let typed = model
        .into_typed()
        .map_err(|e| format!("tract cannot type this graph: {e:#}"))?;
    let signature = signature_of(&typed)?;
    let single_row = if bytes.len() <= SINGLE_ROW_PLAN_MAX_BYTES {
        // Only a saving: a graph tract cannot fix at one row still serves
        // every batch through its general plan.
        single_row_plan(&typed).unwrap_or_else(|e| {
            tracing::debug!("this graph gets no one-row plan: {e}");
            None
        })
    } else {
        None
    };
    let plan = optimise(typed)?;
    let graph = TractGraph {
        plan,
        single_row,
        signature: Arc::new(signature.clone()),
    };
    Ok((graph, signature))
}

fn optimise(model: TypedModel) -> Result<Arc<TypedRunnableModel>, String> {
    model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("tract cannot optimise this graph: {e:#}"))
}

/// The graph with its batch dimension fixed at one row, when every input
/// leads with it. A batch-1 call is the common case on the request path and
/// one this small is mostly tract's per-call work on symbolic shapes
/// (resolving `N`, sizing scratch space), which a concrete plan does once at
/// load: it measured 25–30% less time per compute on the example's graphs.
fn single_row_plan(model: &TypedModel) -> Result<Option<Arc<TypedRunnableModel>>, String> {
    let Some(batch) = model.symbols.get("N") else {
        return Ok(None);
    };
    let leads_with_batch = |&outlet: &OutletId| {
        model
            .outlet_fact(outlet)
            .is_ok_and(|fact| fact.shape.first() == Some(&TDim::Sym(batch.clone())))
    };
    if model.inputs.is_empty() || !model.inputs.iter().all(leads_with_batch) {
        return Ok(None);
    }
    let one_row = std::collections::HashMap::from([(batch, TDim::Val(1))]);
    let fixed = model
        .set_symbols(&one_row)
        .map_err(|e| format!("tract cannot fix the batch at one row: {e:#}"))?;
    optimise(fixed).map(Some)
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
    /// The same graph for calls of one row, if it has one.
    single_row: Option<Arc<TypedRunnableModel>>,
    signature: Arc<Signature>,
}

impl BackendGraph for TractGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let spawn = |plan: &Arc<TypedRunnableModel>| {
            plan.spawn()
                .map(Mutex::new)
                .map_err(|e| backend_error(format!("tract: {e:#}")))
        };
        let context: Box<dyn BackendExecutionContext> = Box::new(TractContext {
            state: spawn(&self.plan)?,
            single_row: self.single_row.as_ref().map(spawn).transpose()?,
            signature: self.signature.clone(),
        });
        Ok(context.into())
    }
}

struct TractContext {
    /// Kept across calls so its buffers are allocated once per context. The
    /// mutex only makes it `Sync`; `&mut self` reaches it with `get_mut`.
    state: Mutex<TypedSimpleState>,
    /// The state of the one-row plan, for calls whose inputs have one row.
    single_row: Option<Mutex<TypedSimpleState>>,
    signature: Arc<Signature>,
}

impl TractContext {
    fn run(&mut self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let inputs = self.signature.arrange_inputs(inputs)?;
        let inputs = inputs
            .iter()
            .map(|t| to_tract(t).map(TValue::from))
            .collect::<Result<TVec<_>, _>>()?;
        let one_row = inputs.iter().all(|t| t.shape().first() == Some(&1));
        let state = match &mut self.single_row {
            Some(single_row) if one_row => single_row,
            _ => &mut self.state,
        };
        let state = state
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

#[cfg(test)]
mod tests {
    use super::*;

    fn student() -> TractGraph {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/digits/models/student.onnx"
        ))
        .unwrap();
        load_tract_graph(&bytes).unwrap().0
    }

    fn logits(context: &mut ExecutionContext, rows: &[[f32; 32]]) -> Vec<f32> {
        let data = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let input = Tensor::new(vec![rows.len() as u32, 32], TensorType::Fp32, data);
        let outputs = context
            .compute_with_io(vec![NamedTensor {
                name: "input".into(),
                tensor: input,
            }])
            .unwrap();
        let bytes = &outputs[0].tensor.data;
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn a_one_row_call_runs_its_own_plan_and_agrees_with_a_batch() {
        let graph = student();
        assert!(graph.single_row.is_some(), "the student leads with N");
        let mut context = graph.init_execution_context().unwrap();
        let row = |seed: f32| std::array::from_fn::<f32, 32, _>(|i| (seed + i as f32 * 0.37).sin());
        let alone = logits(&mut context, &[row(1.0)]);
        let batched = logits(&mut context, &[row(2.0), row(1.0), row(3.0)]);
        assert_eq!(alone.len(), 10);
        for (a, b) in alone.iter().zip(&batched[10..20]) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{alone:?} vs {batched:?}"
            );
        }
        // And again after a batch, on the same context.
        assert_eq!(logits(&mut context, &[row(1.0)]), alone);
    }
}
