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

pub use handles::MAX_HANDLES;
pub(crate) use handles::{Code, Entry, Handles};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime_wasi_nn::Graph;

pub use super::bindings::{ContextHandle, ErrorHandle, GraphHandle, TensorHandle};

/// Computes on inputs up to this size run inline on the calling worker,
/// unless their graph has been slow lately: a thread hop costs more than
/// such a compute on the graphs we serve (the digits MLPs take 2–18 µs).
pub const INLINE_MAX_BYTES: usize = 64 << 10;
/// A graph whose last compute took longer than this runs its next ones on a
/// blocking thread, whatever their size.
pub const SLOW_COMPUTE: Duration = Duration::from_micros(500);

/// One graph granted to a node, with how long its last compute took.
pub struct GrantedGraph {
    /// The backend's graph.
    pub graph: Graph,
    last_compute_nanos: AtomicU64,
    compute_seconds: Option<metrics::Histogram>,
}

impl GrantedGraph {
    /// Wraps a loaded graph.
    pub fn new(graph: Graph) -> Self {
        GrantedGraph {
            graph,
            last_compute_nanos: AtomicU64::new(0),
            compute_seconds: None,
        }
    }

    /// Also records each compute's time under `name` in `/metrics`.
    pub fn timed(mut self, name: &str) -> Self {
        self.compute_seconds = Some(crate::metrics::compute_timer(name));
        self
    }

    pub(crate) fn is_slow(&self) -> bool {
        self.last_compute_nanos.load(Ordering::Relaxed) > SLOW_COMPUTE.as_nanos() as u64
    }

    pub(crate) fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.last_compute_nanos.store(nanos, Ordering::Relaxed);
        if let Some(histogram) = &self.compute_seconds {
            histogram.record(took.as_secs_f64());
        }
    }
}

/// The `wasi:nn` state of one instance: the graphs its node may reach, its
/// handles, and the node's share of blocking compute threads.
pub struct NnState {
    pub(crate) graphs: Arc<std::collections::HashMap<String, Arc<GrantedGraph>>>,
    pub(crate) handles: Handles,
    pub(crate) compute_slots: Option<Arc<Semaphore>>,
}

impl NnState {
    /// State reaching exactly `graphs`.
    pub fn new(graphs: Arc<std::collections::HashMap<String, Arc<GrantedGraph>>>) -> Self {
        NnState {
            graphs,
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
pub(crate) fn guest_type(dtype: super::Dtype) -> super::bindings::GuestDatatype {
    use super::Dtype as D;
    use super::bindings::GuestDatatype as G;
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
