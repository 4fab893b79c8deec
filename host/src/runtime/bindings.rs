//! Host bindings generated from the contract in `wit/`, `wasi:nn` included.
//!
//! The host implements `wasi:nn` itself (in `wasi_nn`, on the handle types
//! declared here), so that every tensor
//! a plugin creates is checked and charged to its memory cap, handles live
//! only for the call they were given in, and `compute` can leave the async
//! workers. Tensors in `infer` are the same handles `compute` takes, so a
//! tensor goes from one plugin's output into another plugin's input, or into
//! a wasi-nn `compute`, without its data being copied through guest memory.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "aimass:plugin/sub-model",
    exports: { default: async },
    imports: {
        // Native compute may run on a blocking thread; the call awaits it.
        "wasi:nn/inference.[method]graph-execution-context.compute": async | trappable,
        default: trappable,
    },
    with: {
        "wasi:nn/tensor.tensor": TensorHandle,
        "wasi:nn/graph.graph": GraphHandle,
        "wasi:nn/inference.graph-execution-context": ContextHandle,
        "wasi:nn/errors.error": ErrorHandle,
    },
});

/// The resource type behind a guest's `wasi:nn` tensor handle.
pub struct TensorHandle;
/// The resource type behind a guest's `wasi:nn` graph handle.
pub struct GraphHandle;
/// The resource type behind a guest's `wasi:nn` execution context handle.
pub struct ContextHandle;
/// The resource type behind a guest's `wasi:nn` error handle.
pub struct ErrorHandle;

pub use self::aimass::plugin::log::Level as LogLevel;
pub use self::aimass::plugin::types::{
    Datatype as GuestDatatype, Error as GuestError, ModelInfo as GuestModelInfo,
    ModelKind as GuestModelKind, ParamValue, TensorSpec as GuestTensorSpec,
};
pub use self::wasi::nn::tensor::TensorType as GuestTensorType;

/// The interface name a plugin must export.
pub const MODEL_EXPORT: &str = "aimass:plugin/model@0.2.0";
/// The functions that interface must have.
pub const MODEL_FUNCTIONS: [&str; 3] = ["info", "init", "infer"];
