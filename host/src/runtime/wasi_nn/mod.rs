//! The host side of `wasi:nn`, owned by aimass rather than taken from
//! `wasmtime-wasi-nn`, so that a plugin's use of it is contained:
//!
//! - every tensor a plugin creates or gets from `compute` is checked (its
//!   bytes must match its dimensions) and charged to the plugin's memory cap,
//!   and released when the call ends;
//! - handles are valid only for the call they were given in;
//! - graph names and error messages a plugin controls are bounded, and its
//!   failures are not logged per call outside its log budget;
//! - a large `compute` runs on a blocking thread, so it cannot stall the
//!   async workers, and its deadline is checked as soon as it returns.
//!
//! The backends (tract, ONNX Runtime) still implement `wasmtime-wasi-nn`'s
//! public graph and execution-context traits.

mod handles;
mod host;
mod tensors;

pub use handles::MAX_HANDLES;
pub(crate) use handles::{Code, Entry, Handles};

use super::limits::MemoryCap;
use super::output::LogBudget;
use crate::nn::GrantedGraphs;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use wasmtime::component::{HasData, Linker};

pub use super::bindings::{ContextHandle, ErrorHandle, GraphHandle, TensorHandle};

/// Computes on inputs up to this size run inline on the calling worker,
/// unless their graph has been slow lately: a thread hop costs more than
/// such a compute on the graphs we serve (the digits MLPs take 2–18 µs).
pub const INLINE_MAX_BYTES: usize = 64 << 10;
/// The `wasi:nn` state of one instance: the graphs its node may reach, its
/// handles, and the node's share of blocking compute threads.
pub struct NnState {
    pub(crate) graphs: GrantedGraphs,
    pub(crate) handles: Handles,
    pub(crate) compute_slots: Option<Arc<Semaphore>>,
}

impl NnState {
    /// The state of one instance, reaching exactly `graphs`. A plugin
    /// cannot load graph bytes of its own: models belong to the operator.
    pub fn new(graphs: &GrantedGraphs) -> Self {
        NnState {
            graphs: graphs.clone(),
            handles: Handles::default(),
            compute_slots: None,
        }
    }

    /// Bounds the computes of this instance's node that may run on blocking
    /// threads at once, counting those whose call was already abandoned at
    /// its deadline (native code cannot be interrupted): a plugin that keeps
    /// starting huge computes saturates only its own node.
    pub fn with_compute_slots(mut self, slots: Arc<Semaphore>) -> Self {
        self.compute_slots = Some(slots);
        self
    }
}

/// What the `wasi:nn` host functions (and the contract's `tensors`, which
/// reads the same handles) reach of an instance's state.
pub struct WasiNnView<'a> {
    pub(crate) nn: &'a mut NnState,
    pub(crate) memory: &'a mut MemoryCap,
    pub(crate) node: &'a str,
    pub(crate) budget: &'a LogBudget,
    pub(crate) deadline: Instant,
    pub(crate) timed_out: &'a mut bool,
}

struct WasiNn;

impl HasData for WasiNn {
    type Data<'a> = WasiNnView<'a>;
}

/// Links `wasi:nn` and the contract's `tensors` interface, both served
/// from the [`WasiNnView`] `view` gives of a store's state.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> WasiNnView<'_>,
) -> wasmtime::Result<()> {
    use crate::runtime::bindings::aimass::plugin::tensors;
    use crate::runtime::bindings::wasi::nn;
    nn::errors::add_to_linker::<T, WasiNn>(linker, view)?;
    nn::tensor::add_to_linker::<T, WasiNn>(linker, view)?;
    nn::inference::add_to_linker::<T, WasiNn>(linker, view)?;
    nn::graph::add_to_linker::<T, WasiNn>(linker, view)?;
    tensors::add_to_linker::<T, WasiNn>(linker, view)
}

/// Longest graph name looked up; longer names are not-found without a lookup.
pub const MAX_GRAPH_NAME: usize = 256;
/// Longest error message a plugin can read back from `wasi:nn`.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// `wasmtime-wasi-nn`'s element type as the guest's generated `wasi:nn` one.
pub(crate) fn guest_wasi_nn_type(
    ty: wasmtime_wasi_nn::wit::TensorType,
) -> super::bindings::GuestTensorType {
    use super::bindings::GuestTensorType as G;
    use wasmtime_wasi_nn::wit::TensorType as T;
    match ty {
        T::Fp16 => G::Fp16,
        T::Fp32 => G::Fp32,
        T::Fp64 => G::Fp64,
        T::Bf16 => G::Bf16,
        T::U8 => G::U8,
        T::I32 => G::I32,
        T::I64 => G::I64,
    }
}

/// The host's element type as the contract's generated enum.
pub(crate) fn guest_type(dtype: crate::tensor::Dtype) -> super::bindings::GuestDatatype {
    use super::bindings::GuestDatatype as G;
    use crate::tensor::Dtype as D;
    match dtype {
        D::Fp16 => G::Fp16,
        D::Fp32 => G::Fp32,
        D::Fp64 => G::Fp64,
        D::Bf16 => G::Bf16,
        D::Uint8 => G::U8,
        D::Int32 => G::I32,
        D::Int64 => G::I64,
        D::Bool => G::Bool,
        D::Int8 => G::I8,
        D::Int16 => G::I16,
        D::Uint16 => G::U16,
        D::Uint32 => G::U32,
        D::Uint64 => G::U64,
        D::Bytes => G::Bytes,
    }
}
