//! The optional wasi-nn backend on ONNX Runtime (cargo feature
//! `onnxruntime`). The library is loaded at run time from `ORT_DYLIB_PATH`;
//! the `gpu` device registers CUDA with error-on-failure, so a host without a
//! working CUDA refuses the graph instead of quietly running it on the CPU.

use super::Device;
use super::signature::{Signature, backend_error, wasi_dimensions};
use crate::tensor::{Dtype, TensorSpec};
use half::{bf16, f16};
use ort::environment::GlobalThreadPoolOptions;
use ort::execution_providers::CUDAExecutionProvider;
use ort::session::{Session, SessionInputValue};
use ort::tensor::TensorElementType;
use ort::value::{DynValue, Tensor as OrtTensor, ValueType};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor,
};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::{ExecutionContext, Graph, Tensor};

/// Why ONNX Runtime could not load a graph.
#[derive(Debug)]
pub enum OrtLoadError {
    /// The library or the device is missing.
    Unavailable(String),
    /// The library refused the model.
    Refused(String),
}

/// Loads the ONNX Runtime library once per process, with one intra-op
/// thread pool that every session shares.
///
/// Each session would otherwise start its own pool of one thread per core,
/// and its threads spin for a while after every run: a pipeline of several
/// graphs (an OCR page's detector, classifier and recognisers) then had one
/// session's idle threads spinning on the cores the next session's run
/// needed. Measured on the OCR example (`tests/load/ocr.sh`, ONNX Runtime,
/// 2 cores): 0.40 → 0.51 pages/s at 4 concurrent pages, the same at one.
fn environment() -> Result<(), OrtLoadError> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = std::env::var("ORT_DYLIB_PATH").map_err(|_| {
                "ORT_DYLIB_PATH is not set; point it at libonnxruntime.so, e.g. the one in \
                 the PyPI `onnxruntime` wheel (onnxruntime/capi/libonnxruntime.so.*)"
                    .to_string()
            })?;
            if !Path::new(&path).is_file() {
                return Err(format!("ORT_DYLIB_PATH={path} is not a file"));
            }
            // `ort` panics when the library cannot be opened or is too old;
            // that is a set-up mistake to report, not a reason to crash.
            std::panic::catch_unwind(|| {
                // `init_from` names the library; it must come before any
                // other `ort` call, which loads it.
                let builder = ort::init_from(path.clone());
                let options = GlobalThreadPoolOptions::default().with_intra_threads(threads())?;
                builder.with_global_thread_pool(options).commit()
            })
            .map_err(|panic| {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("cannot load {path}: {text}")
            })?
            .map(|_| ())
            .map_err(|e| format!("cannot initialise {path}: {e}"))
        })
        .clone()
        .map_err(OrtLoadError::Unavailable)
}

/// The shared pool's threads: one per core the process may use, as each
/// session's own pool had.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Builds a session for `bytes` on `device`.
pub fn load_onnx(bytes: &[u8], device: Device) -> Result<(Graph, Signature), OrtLoadError> {
    environment()?;
    let refused = |e: ort::Error| OrtLoadError::Refused(e.to_string());
    let mut builder = Session::builder().map_err(refused)?;
    if device == Device::Gpu {
        builder = builder
            .with_execution_providers([CUDAExecutionProvider::default().build().error_on_failure()])
            .map_err(|e| {
                OrtLoadError::Unavailable(format!("the CUDA execution provider failed: {e}"))
            })?;
    }
    let session = builder.commit_from_memory(bytes).map_err(refused)?;
    let signature = Signature {
        inputs: specs(session.inputs.iter().map(|i| (&i.name, &i.input_type)))?,
        outputs: specs(session.outputs.iter().map(|o| (&o.name, &o.output_type)))?,
    };
    let graph: Box<dyn BackendGraph> = Box::new(OrtGraph {
        session: Arc::new(Mutex::new(session)),
        signature: Arc::new(signature.clone()),
    });
    Ok((graph.into(), signature))
}

fn specs<'a>(
    values: impl Iterator<Item = (&'a String, &'a ValueType)>,
) -> Result<Vec<TensorSpec>, OrtLoadError> {
    values
        .map(|(name, ty)| match ty {
            ValueType::Tensor { ty, shape, .. } => Ok(TensorSpec {
                name: name.clone(),
                dtype: dtype_of(*ty).ok_or_else(|| {
                    OrtLoadError::Refused(format!("`{name}` has element type {ty}"))
                })?,
                shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
            }),
            other => Err(OrtLoadError::Refused(format!(
                "`{name}` is a {other:?}, not a tensor"
            ))),
        })
        .collect()
}

fn dtype_of(ty: TensorElementType) -> Option<Dtype> {
    Some(match ty {
        TensorElementType::Float16 => Dtype::Fp16,
        TensorElementType::Float32 => Dtype::Fp32,
        TensorElementType::Float64 => Dtype::Fp64,
        TensorElementType::Bfloat16 => Dtype::Bf16,
        TensorElementType::Uint8 | TensorElementType::Bool => Dtype::Uint8,
        TensorElementType::Int32 => Dtype::Int32,
        TensorElementType::Int64 => Dtype::Int64,
        _ => return None,
    })
}

/// One session shared by every instance granted the graph. `ort` runs a
/// session through `&mut`, hence the mutex: calls to one graph take turns.
struct OrtGraph {
    session: Arc<Mutex<Session>>,
    signature: Arc<Signature>,
}

impl BackendGraph for OrtGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context: Box<dyn BackendExecutionContext> = Box::new(OrtContext {
            session: self.session.clone(),
            signature: self.signature.clone(),
        });
        Ok(context.into())
    }
}

struct OrtContext {
    session: Arc<Mutex<Session>>,
    signature: Arc<Signature>,
}

impl BackendExecutionContext for OrtContext {
    // As for tract: only the component-model `compute` is supported.
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
        let arranged = self.signature.arrange_inputs(inputs)?;
        let values = arranged
            .iter()
            .zip(&self.signature.inputs)
            .map(|(tensor, spec)| Ok((spec.name.clone(), to_ort(tensor)?)))
            .collect::<Result<Vec<(String, SessionInputValue<'static>)>, BackendError>>()?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| backend_error("an earlier onnxruntime call panicked".to_string()))?;
        let outputs = session
            .run(values)
            .map_err(|e| backend_error(format!("onnxruntime: {e}")))?;
        self.signature
            .outputs
            .iter()
            .map(|spec| {
                let value = outputs.get(&spec.name).ok_or_else(|| {
                    backend_error(format!("onnxruntime returned no `{}`", spec.name))
                })?;
                Ok(NamedTensor {
                    name: spec.name.clone(),
                    tensor: from_ort(value, &spec.name)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

macro_rules! typed_tensor {
    ($tensor:expr, $ty:ty) => {{
        let values: Vec<$ty> = $tensor
            .data
            .chunks_exact(size_of::<$ty>())
            .map(|b| <$ty>::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        OrtTensor::from_array((shape_of($tensor), values)).map(SessionInputValue::from)
    }};
}

fn shape_of(tensor: &Tensor) -> Vec<i64> {
    tensor.dimensions.iter().map(|&d| i64::from(d)).collect()
}

fn to_ort(tensor: &Tensor) -> Result<SessionInputValue<'static>, BackendError> {
    match tensor.ty {
        TensorType::Fp16 => typed_tensor!(tensor, f16),
        TensorType::Fp32 => typed_tensor!(tensor, f32),
        TensorType::Fp64 => typed_tensor!(tensor, f64),
        TensorType::Bf16 => typed_tensor!(tensor, bf16),
        TensorType::U8 => typed_tensor!(tensor, u8),
        TensorType::I32 => typed_tensor!(tensor, i32),
        TensorType::I64 => typed_tensor!(tensor, i64),
    }
    .map_err(|e| backend_error(format!("onnxruntime: {e}")))
}

macro_rules! typed_bytes {
    ($value:expr, $ty:ty) => {
        $value
            .try_extract_tensor::<$ty>()
            .map(|(shape, data)| (shape.to_vec(), le_bytes(data, <$ty>::to_le_bytes)))
    };
}

/// Elements as little-endian bytes, written into one buffer of the right
/// size (collecting a `flat_map` grew it a byte at a time: a recogniser's
/// 16 MB of scores took tens of milliseconds).
fn le_bytes<T: Copy, const N: usize>(data: &[T], bytes: fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * N);
    for &value in data {
        out.extend_from_slice(&bytes(value));
    }
    out
}

fn from_ort(value: &DynValue, name: &str) -> Result<Tensor, BackendError> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(backend_error(format!("output `{name}` is not a tensor")));
    };
    let extracted = match ty {
        TensorElementType::Float16 => typed_bytes!(value, f16),
        TensorElementType::Float32 => typed_bytes!(value, f32),
        TensorElementType::Float64 => typed_bytes!(value, f64),
        TensorElementType::Bfloat16 => typed_bytes!(value, bf16),
        TensorElementType::Uint8 => typed_bytes!(value, u8),
        TensorElementType::Bool => value
            .try_extract_tensor::<bool>()
            .map(|(shape, data)| (shape.to_vec(), data.iter().map(|&b| u8::from(b)).collect())),
        TensorElementType::Int32 => typed_bytes!(value, i32),
        TensorElementType::Int64 => typed_bytes!(value, i64),
        other => {
            return Err(backend_error(format!(
                "output `{name}` has element type {other}, which wasi-nn cannot carry"
            )));
        }
    };
    let (shape, data) = extracted.map_err(|e| backend_error(format!("onnxruntime: {e}")))?;
    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let ty = dtype_of(*ty)
        .and_then(Dtype::wasi_nn)
        .unwrap_or(wasmtime_wasi_nn::wit::TensorType::U8);
    Ok(Tensor::new(wasi_dimensions(&dims)?, ty, data))
}
