//! Host bindings generated from the contract in `wit/`.
//!
//! `wasi:nn` tensors in `infer` are mapped to the very type that
//! `wasmtime-wasi-nn` keeps in the resource table, so a tensor handle can go
//! from one plugin's output into another plugin's input, or into a wasi-nn
//! `compute`, without its data being copied through guest memory.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "aimass:plugin/sub-model",
    exports: { default: async },
    with: {
        "wasi:nn/tensor.tensor": wasmtime_wasi_nn::Tensor,
    },
});

pub use self::aimass::plugin::log::Level as LogLevel;
pub use self::aimass::plugin::types::{
    Error as GuestError, ModelInfo as GuestModelInfo, ModelKind as GuestModelKind, ParamValue,
    TensorSpec as GuestTensorSpec,
};
pub use self::wasi::nn::tensor::TensorType as GuestTensorType;

/// The interface name a plugin must export.
pub const MODEL_EXPORT: &str = "aimass:plugin/model@0.1.0";
/// The functions that interface must have.
pub const MODEL_FUNCTIONS: [&str; 3] = ["info", "init", "infer"];
