//! The embedded default wasi-nn backend: ONNX graphs run by tract, in pure
//! Rust, with nothing to install.

use super::onnx_fixes;
use super::plans::{PlanCache, PlanLimits, ShapeKey};
use super::signature::{Signature, backend_error, input_error, wasi_dimensions};
use super::tract_signature::{
    close_input_facts, declared_outputs, dtype_of, inference_signature, signature_of,
};
use crate::tensor::Dtype;
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor,
};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::{ExecutionContext, Graph, Tensor};

/// Parses, types and optimises an ONNX model for tract (CPU only).
/// Dimensions the file leaves unnamed become symbols, so one graph serves
/// every batch size; each concrete set of input shapes then gets its own
/// plan (see [`super::plans`]).
pub fn load_onnx(bytes: &[u8]) -> Result<(Graph, Signature), String> {
    let (graph, signature) = load_tract_graph(bytes, PlanLimits::default())?;
    let graph: Box<dyn BackendGraph> = Box::new(graph);
    Ok((graph.into(), signature))
}

/// Splits every tract compute's matrix products over a pool of `threads`
/// (one: each compute on the thread that runs it, the default).
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    if threads > 1 {
        set_default_executor(Executor::multithread_with_name(threads, "aimass-tract"));
    } else {
        set_default_executor(Executor::SingleThread);
    }
}

/// How concrete plans are made.
enum Source {
    /// The graph typed with symbolic dimensions: a plan fixes the symbols.
    Typed(TypedModel),
    /// tract could not type the graph with symbolic dimensions (a
    /// detector's output size it cannot prove): a plan types it from
    /// concrete input shapes.
    Inference(InferenceModel),
}

fn load_tract_graph(bytes: &[u8], limits: PlanLimits) -> Result<(TractGraph, Signature), String> {
    // Stored value_info and output shapes are hints some exports carry
    // stale (PP-OCRv6's clash with its own inputs); tract's analysis
    // recomputes them.
    let onnx = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true);
    let mut proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| format!("not a model tract can read: {e:#}"))?;
    let folded = onnx_fixes::fold_shape_casts(&mut proto);
    if folded.casts > 0 {
        tracing::debug!(
            casts = folded.casts,
            constants = folded.constants,
            "tract: integer casts on the shape path bypassed"
        );
    }
    let mut model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| format!("not a model tract can read: {}", first_failure(&e)))?;
    close_input_facts(&mut model)?;
    let declared = declared_outputs(&proto);
    let (source, general, signature) = match model.clone().into_typed() {
        Ok(typed) => {
            let signature = signature_of(&typed)?;
            // A graph whose symbolic plan cannot be made still runs on
            // concrete ones.
            let general = optimise(typed.clone())
                .inspect_err(|e| tracing::debug!("tract: no symbolic plan: {e}"))
                .ok();
            (Source::Typed(typed), general, signature)
        }
        Err(e) => {
            tracing::debug!("tract: typed per input shape only: {}", first_failure(&e));
            let signature = inference_signature(&model, &declared)?;
            (Source::Inference(model), None, signature)
        }
    };
    let graph = TractGraph {
        shared: Arc::new(Shared {
            source,
            general,
            plans: PlanCache::new(limits, bytes.len()),
            signature: Arc::new(signature.clone()),
        }),
    };
    Ok((graph, signature))
}

/// A tract error with its context chain (the node and op that failed),
/// bounded.
fn first_failure(error: &TractError) -> String {
    let chain: Vec<String> = error.chain().map(|c| c.to_string()).collect();
    let mut text = chain.join(": ");
    if text.len() > 2048 {
        let mut cut = 2048;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn optimise(model: TypedModel) -> Result<Arc<TypedRunnableModel>, String> {
    model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("tract cannot optimise this graph: {}", first_failure(&e)))
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

/// What every context of one graph shares.
struct Shared {
    source: Source,
    /// The plan for symbolic shapes, when tract can make one: the fallback
    /// for shapes no concrete plan can be made for.
    general: Option<Arc<TypedRunnableModel>>,
    plans: PlanCache,
    signature: Arc<Signature>,
}

impl Shared {
    /// A plan made for exactly these input shapes.
    fn concrete_plan(&self, key: &ShapeKey) -> Result<Arc<TypedRunnableModel>, String> {
        match &self.source {
            Source::Typed(typed) => {
                let mut values = std::collections::HashMap::new();
                for (outlet, shape) in typed.inputs.iter().zip(key) {
                    let fact = typed.outlet_fact(*outlet).map_err(|e| format!("{e:#}"))?;
                    for (dim, &actual) in fact.shape.iter().zip(shape) {
                        if let TDim::Sym(symbol) = dim {
                            values.insert(symbol.clone(), TDim::Val(actual as i64));
                        }
                    }
                }
                let fixed = typed
                    .set_symbols(&values)
                    .map_err(|e| format!("tract cannot fix the shapes: {}", first_failure(&e)))?;
                optimise(fixed)
            }
            Source::Inference(model) => {
                let mut model = model.clone();
                for (index, shape) in key.iter().enumerate() {
                    let fact = model.input_fact(index).map_err(|e| format!("{e:#}"))?;
                    let datum_type = fact
                        .datum_type
                        .concretize()
                        .ok_or_else(|| "an input declares no element type".to_string())?;
                    model
                        .set_input_fact(index, InferenceFact::dt_shape(datum_type, shape))
                        .map_err(|e| format!("{e:#}"))?;
                }
                let typed = model.into_typed().map_err(|e| {
                    format!(
                        "tract cannot run this graph on inputs of shapes {key:?}: {}",
                        first_failure(&e)
                    )
                })?;
                optimise(typed)
            }
        }
    }

    /// The plan for `key`: cached, made now, or the symbolic one.
    fn plan_for(&self, key: &ShapeKey) -> Result<Arc<TypedRunnableModel>, String> {
        if let Some(plan) = self.plans.get(key) {
            return Ok(plan);
        }
        match self.concrete_plan(key) {
            Ok(plan) => Ok(self.plans.insert(key.clone(), plan)),
            Err(why) => match &self.general {
                Some(general) => {
                    tracing::debug!("tract: symbolic plan for {key:?}: {why}");
                    Ok(general.clone())
                }
                None => Err(why),
            },
        }
    }
}

struct TractGraph {
    shared: Arc<Shared>,
}

impl BackendGraph for TractGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context: Box<dyn BackendExecutionContext> = Box::new(TractContext {
            shared: self.shared.clone(),
            states: Vec::new(),
        });
        Ok(context.into())
    }
}

/// States a context keeps, most recent first: a plugin alternating two
/// shapes (a batch and a single row) keeps both warm.
const STATES_PER_CONTEXT: usize = 2;

struct TractContext {
    shared: Arc<Shared>,
    /// Kept across calls so their buffers are allocated once per context
    /// and shape. The mutex only makes it `Sync`; `&mut self` reaches it
    /// with `get_mut`.
    states: Vec<(ShapeKey, Mutex<TypedSimpleState>)>,
}

impl TractContext {
    fn state_for(&mut self, key: ShapeKey) -> Result<&mut TypedSimpleState, BackendError> {
        match self.states.iter().position(|(k, _)| *k == key) {
            Some(0) => {}
            Some(at) => {
                let entry = self.states.remove(at);
                self.states.insert(0, entry);
            }
            None => {
                let plan = self.shared.plan_for(&key).map_err(backend_error)?;
                let state = plan
                    .spawn()
                    .map_err(|e| backend_error(format!("tract: {e:#}")))?;
                self.states.insert(0, (key, Mutex::new(state)));
                self.states.truncate(STATES_PER_CONTEXT);
            }
        }
        self.states[0]
            .1
            .get_mut()
            .map_err(|_| backend_error("an earlier tract call panicked".to_string()))
    }

    fn run(&mut self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let signature = self.shared.signature.clone();
        let inputs = signature.arrange_inputs(inputs)?;
        let key: ShapeKey = inputs
            .iter()
            .map(|t| t.dimensions.iter().map(|&d| d as usize).collect())
            .collect();
        let inputs = inputs
            .iter()
            .map(|t| to_tract(t).map(TValue::from))
            .collect::<Result<TVec<_>, _>>()?;
        let state = self.state_for(key)?;
        // Between ops, a compute whose call is over stops (see `cancel`).
        let outputs = state.run_plan_with_eval(inputs, |context, op_state, node, inputs| {
            if super::cancel::is_due() {
                metrics::counter!(crate::metrics::NN_COMPUTES_STOPPED).increment(1);
                anyhow::bail!("stopped before {}: the call is over", node.name);
            }
            tract_onnx::tract_core::plan::eval(context, op_state, node, inputs)
        });
        // tract's kernels leave the vector registers dirty (see vector_state).
        super::vector_state::clear_upper_vector_state();
        if outputs.is_err() {
            // Stopped midway (an error, a call over): its state may hold a
            // half-run turn; the next call starts from a fresh one.
            self.states.remove(0);
        }
        let outputs = outputs.map_err(|e| backend_error(format!("tract: {e:#}")))?;
        outputs
            .iter()
            .zip(&signature.outputs)
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
    let ty = dtype
        .wasi_nn()
        .ok_or_else(|| backend_error(format!("output `{name}` has no wasi-nn type")))?;
    Ok(Tensor::new(dimensions, ty, value.as_bytes().to_vec()))
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
        load_tract_graph(&bytes, PlanLimits::default()).unwrap().0
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
    fn each_shape_runs_its_own_plan_and_they_agree() {
        let graph = student();
        assert!(
            graph.shared.general.is_some(),
            "the student has a symbolic plan"
        );
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
        assert_eq!(graph.shared.plans.len(), 2, "one plan for 1 row, one for 3");
    }

    #[test]
    fn more_tract_threads_set_a_pool_and_give_the_same_answer() {
        use tract_linalg::multithread::{Executor, current_tract_executor};
        let graph = student();
        let mut context = graph.init_execution_context().unwrap();
        let rows = vec![[0.25f32; 32]; 40];
        let alone = logits(&mut context, &rows);
        set_threads(2);
        let pooled = matches!(current_tract_executor(), Executor::MultiThread(_));
        let split = logits(&mut context, &rows);
        set_threads(1);
        assert!(pooled, "--tract-threads 2 sets a pool");
        assert!(matches!(current_tract_executor(), Executor::SingleThread));
        for (a, b) in alone.iter().zip(&split) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn plans_are_bounded_by_count_least_recently_used_out() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/digits/models/student.onnx"
        ))
        .unwrap();
        let limits = PlanLimits {
            max_plans: 3,
            max_bytes: usize::MAX,
        };
        let graph = load_tract_graph(&bytes, limits).unwrap().0;
        let mut context = graph.init_execution_context().unwrap();
        let row = [0.5f32; 32];
        let first = logits(&mut context, &[row]);
        for rows in 2..=12 {
            let out = logits(&mut context, &vec![row; rows]);
            assert_eq!(out.len(), rows * 10);
            // Same answer from every shape's plan.
            assert!(
                (out[0] - first[0]).abs() < 1e-4,
                "{} vs {}",
                out[0],
                first[0]
            );
            assert!(graph.shared.plans.len() <= 3);
        }
        assert_eq!(graph.shared.plans.len(), 3);
        let byte_bound = PlanLimits {
            max_plans: 100,
            max_bytes: bytes.len() * 2,
        };
        let small = load_tract_graph(&bytes, byte_bound).unwrap().0;
        assert_eq!(small.shared.plans.capacity(), 2);
    }
}
